package conf_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopush/internal/testenv"
)

// A daemon given a bad configuration file exits with status 2 and prints
// one line that names the file, the key and the problem (issue 2). The
// daemons do this in their main; this test holds all three to it.
func TestDaemonsExitWithStatus2OnABadFile(t *testing.T) {
	cases := []struct {
		daemon string
		body   string
		key    string
	}{
		{"comet", "[zookeeper]\ncomet.weight = 0\n", "zookeeper.comet.weight"},
		{"comet", "tcp.bind = []\n", "tcp.bind"},
		{"web", "http.bind = [\n", "line 1"},
		{"web", "[zookeeper]\nmigrate.path = \"lock\"\n", "zookeeper.migrate.path"},
		{"message", "[redis.source]\n\"node1\" = \"tcp@localhost:6379\"\n", "redis.source.node1"},
		{"message", "[storage]\nkind = \"redis\"\n", "storage.kind"},
	}
	for _, tc := range cases {
		t.Run(tc.daemon+"/"+tc.key, func(t *testing.T) {
			t.Parallel()
			bin := testenv.Binary(t, tc.daemon)
			path := filepath.Join(t.TempDir(), tc.daemon+".toml")
			if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stderr := runDaemon(t, bin, "-c", path)
			if code != 2 {
				t.Fatalf("%s -c %s exited with %d, want 2; stderr:\n%s", tc.daemon, path, code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 {
				t.Errorf("stderr has %d lines, want 1:\n%s", len(lines), stderr)
			}
			if !strings.Contains(lines[0], path) || !strings.Contains(lines[0], tc.key) {
				t.Errorf("stderr %q does not name the file %s and the key %s", lines[0], path, tc.key)
			}
		})
	}
	for _, daemon := range []string{"comet", "web", "message"} {
		t.Run(daemon+"/missing file", func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "absent.toml")
			code, stderr := runDaemon(t, testenv.Binary(t, daemon), "-c", path)
			if code != 2 || !strings.Contains(stderr, path) {
				t.Errorf("%s -c %s: exit %d, stderr %q; want 2 and the file named", daemon, path, code, stderr)
			}
		})
	}
}

// runDaemon runs bin until it exits (it must, within a minute) and returns
// its exit status and standard error.
func runDaemon(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %v still runs after a minute; stderr:\n%s", bin, args, stderr.String())
		return 0, ""
	}
}
