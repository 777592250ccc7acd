package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartNginx runs the real nginx with site (the text of a conf.d file,
// addresses already replaced) inside a minimal main config of its own, as
// Debian's nginx.conf includes conf.d/*.conf. It returns once every
// address in listen accepts connections; nginx stops when the test ends.
func StartNginx(t testing.TB, site string, listen ...string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("nginx is not installed (Debian package nginx); this test needs it")
		}
	}
	dir := t.TempDir()
	for _, sub := range []string{"logs", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "site.conf"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/logs/nginx.pid;
error_log %[1]s/logs/error.log info;
events { worker_connections 1024; }
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
		main = "user root;\n" + main // workers as "nobody" could not write here
	}
	mainPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainPath, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-e", dir+"/logs/error.log", "-c", mainPath).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t refuses the config: %v\n%s\n%s", err, out, site)
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

// ReplaceAll replaces each key of pairs (in the order given, from, to,
// from, to, ...) in s, failing the test when one is not there: a shipped
// file that changed must fail its test rather than be tested unchanged.
func ReplaceAll(t testing.TB, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("the file no longer contains %q; update the test", pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}
