package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The daemon binaries are built once per test process. This is the only
// state the package keeps: building them again for every test would cost
// seconds each time.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error             // a failure that prevents building anything
	buildErrs map[string]string // binary name → its build error output
)

// Binaries builds every command under ./cmd of the repository (comet, web,
// message and whatever else exists) into a temporary directory, once per
// test process, and returns that directory. A command that does not compile
// is only an error for the test that starts it (see Binary).
//
// The binaries are built without -race unless GOPUSH_E2E_RACE=1.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatalf("building the daemons: %v", buildErr)
	}
	return buildDir
}

// Binary returns the path of one built command (for example "comet"),
// failing the test with the compiler's output if it did not build.
func Binary(t testing.TB, name string) string {
	t.Helper()
	dir := Binaries(t)
	if msg, ok := buildErrs[name]; ok {
		t.Fatalf("building cmd/%s failed:\n%s", name, msg)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no binary for cmd/%s: %v", name, err)
	}
	return p
}

func build() {
	root, err := repoRoot()
	if err != nil {
		buildErr = err
		return
	}
	base := filepath.Join(os.TempDir(), "gopush-testbin-"+strconv.Itoa(os.Getuid()))
	if err := os.MkdirAll(base, 0o755); err != nil {
		buildErr = err
		return
	}
	removeStaleBuilds(base)
	buildDir = filepath.Join(base, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		buildErr = err
		return
	}
	entries, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		buildErr = fmt.Errorf("listing cmd/: %w", err)
		return
	}
	buildErrs = make(map[string]string)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(root, "cmd", e.Name(), "*.go")); len(m) == 0 {
			continue
		}
		args := []string{"build", "-o", filepath.Join(buildDir, e.Name())}
		if os.Getenv("GOPUSH_E2E_RACE") == "1" {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/"+e.Name())
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErrs[e.Name()] = fmt.Sprintf("%v\n%s", err, out)
		}
	}
}

// removeStaleBuilds deletes the build directories of test processes that
// have exited, so that repeated runs do not fill the temporary directory.
func removeStaleBuilds(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM) {
			continue // still running
		}
		os.RemoveAll(filepath.Join(base, e.Name()))
	}
}

// repoRoot walks up from the working directory to the directory holding
// go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Daemon is a daemon process started by StartDaemon.
type Daemon struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	code    int           // exit code, valid after done
}

// StartDaemon writes configTOML to a file and starts `bin -c file`, with
// stdout and stderr going to a log file. The log is printed with t.Log when
// the test fails. The process is killed when the test ends, if it is still
// running; then a log that reports a data race (a binary built with
// GOPUSH_E2E_RACE=1) fails the test.
func StartDaemon(t testing.TB, bin string, configTOML string) *Daemon {
	t.Helper()
	dir := t.TempDir()
	name := filepath.Base(bin)
	cfgPath := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(cfgPath, []byte(configTOML), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cfgPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	d := &Daemon{t: t, name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		logFile.Close()
		d.code = exitCode(err)
		close(d.done)
	}()
	t.Cleanup(func() {
		d.Kill()
		if strings.Contains(d.Log(), "WARNING: DATA RACE") {
			t.Errorf("%s (pid %d) reported a data race", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("--- log of %s (pid %d) ---\n%s", name, cmd.Process.Pid, d.Log())
		}
	})
	return d
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

// Pid returns the process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Log returns what the daemon has written so far.
func (d *Daemon) Log() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	return string(b)
}

// Exited reports whether the process has exited.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to 30 s for the process to exit, then
// kills it (failing the test). It returns the exit code.
func (d *Daemon) Stop() int {
	d.t.Helper()
	if d.Exited() {
		return d.code
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return d.code
	case <-time.After(30 * time.Second):
		d.t.Errorf("%s did not exit within 30 s of SIGTERM; killing it", d.name)
		d.Kill()
		return d.code
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (d *Daemon) Kill() {
	if d.Exited() {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// Wait waits for the process to exit and returns its exit code.
func (d *Daemon) Wait() int {
	<-d.done
	return d.code
}

// WaitListening waits until a TCP connection to addr succeeds, failing the
// test after timeout.
func WaitListening(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitFor polls cond every 20 ms until it returns true, failing the test
// with what after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
