package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopush/internal/testenv"
)

// TestMakeRun runs the `make run` demo (testdata/makerun.sh): scripts/run.sh
// brings up ZooKeeper, Redis, message, comet and web on the fixed ports of
// conf/*.toml, the demo it prints works (server/get, an nc subscriber gets
// a curl push, msg/get returns it), and Ctrl-C leaves no process behind.
//
// It runs in a private network namespace (unshare -rn), so the fixed ports
// clash neither with other tests nor with a developer's own `make run`, on
// a copy of scripts/ and conf/ with the test's binaries as bin/.
func TestMakeRun(t *testing.T) {
	t.Parallel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"scripts", "conf"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(repo, d), filepath.Join(dir, d)).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", d, err, out)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"message", "comet", "web"} {
		if err := os.Symlink(testenv.Binary(t, name), filepath.Join(dir, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	script, err := filepath.Abs("testdata/makerun.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "unshare", "-rn", "bash", script, dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("makerun.sh:\n%s", out.String())
	if err != nil || !strings.Contains(out.String(), "DEMO OK") {
		t.Fatalf("the make run demo failed: %v", err)
	}
	// Nothing started from the copy is still running (the script checked
	// the pid files; this looks at every process).
	if left := processesMentioning(dir); len(left) > 0 {
		t.Fatalf("processes left after make run stopped:\n%s", strings.Join(left, "\n"))
	}
}

// processesMentioning lists the command lines of running processes that
// contain s.
func processesMentioning(s string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	self := os.Getpid()
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		line := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(line, s) && !strings.HasPrefix(p, "/proc/"+strconv.Itoa(self)+"/") {
			found = append(found, p+": "+line)
		}
	}
	return found
}
