package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartNginx runs the real nginx with conf (what goes into the http {}
// context, as Debian's nginx.conf includes conf.d/*.conf) inside a minimal
// main configuration of its own, under a temporary prefix. It fails the
// test when nginx is missing or refuses conf, waits until every address in
// listen accepts connections, and stops nginx when the test ends (printing
// its error log if the test failed). Its one worker takes 4096 connections
// (clients and upstreams together), enough for a thousand subscribers.
func StartNginx(t testing.TB, conf string, listen ...string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("nginx is not installed (Debian package nginx)")
		}
	}
	dir := t.TempDir()
	for _, sub := range []string{"logs", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "site.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
worker_rlimit_nofile 8192;
pid %[1]s/logs/nginx.pid;
error_log %[1]s/logs/error.log info;
events { worker_connections 4096; }
http {
    access_log %[1]s/logs/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include %[1]s/site.conf;
}
`, dir)
	if os.Getuid() == 0 {
		// As root, workers would switch to "nobody", who cannot write here.
		main = "user root;\n" + main
	}
	mainPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainPath, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-e", dir+"/logs/error.log", "-c", mainPath).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t refuses the configuration: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", dir+"/logs/error.log", "-c", mainPath)
	out, err := os.Create(filepath.Join(dir, "logs", "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // SIGINT: fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			t.Logf("--- nginx error.log ---\n%s", b)
		}
	})
	for _, a := range listen {
		WaitListening(t, a, 20*time.Second)
	}
}
