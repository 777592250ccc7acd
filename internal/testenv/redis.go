package testenv

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a private redis-server started by StartRedis, for tests
// that stop and restart a shard. It writes an append-only file in its own
// directory, so what it stored survives Stop and Start.
type RedisServer struct {
	t    testing.TB
	addr string
	dir  string
	args []string // more redis-server arguments (a replica's --replicaof)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis starts redis-server on a free loopback port in a temporary
// directory and waits until it answers. It is stopped when the test ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is needed: %v", err)
	}
	return startRedis(t)
}

func startRedis(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	r := &RedisServer{t: t, addr: FreeAddr(t), dir: t.TempDir(), args: args}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Addr returns host:port, the same across Stop and Start.
func (r *RedisServer) Addr() string { return r.addr }

// Socket returns the path of the server's unix socket.
func (r *RedisServer) Socket() string { return filepath.Join(r.dir, "redis.sock") }

// Start starts the server again after Stop (it does nothing if it runs)
// and waits until it answers PING.
func (r *RedisServer) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return
	}
	_, port, _ := net.SplitHostPort(r.addr)
	cmd := exec.Command("redis-server",
		"--bind", "127.0.0.1", "--port", port,
		"--unixsocket", r.Socket(), "--unixsocketperm", "700",
		"--dir", r.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--logfile", filepath.Join(r.dir, "redis.log"), "--daemonize", "no")
	cmd.Args = append(cmd.Args, r.args...)
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done

	deadline := time.Now().Add(20 * time.Second)
	for {
		if pingRedis(r.addr) {
			return
		}
		select {
		case <-done:
			r.cmd = nil
			r.t.Fatalf("redis-server on %s exited at start; see %s", r.addr, filepath.Join(r.dir, "redis.log"))
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s did not answer within 20s", r.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down (SIGTERM, the append-only file is flushed) and
// waits for it to exit. It does nothing if it is stopped.
func (r *RedisServer) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGCONT)
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// Kill ends the server at once (SIGKILL), like a crashed machine; Start
// brings it back on the same address.
func (r *RedisServer) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Pause freezes the server (SIGSTOP): it keeps its connections and port
// but answers nothing, like a hung machine. Resume undoes it; Stop resumes
// it first.
func (r *RedisServer) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *RedisServer) Resume() { r.signal(syscall.SIGCONT) }

func (r *RedisServer) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		r.cmd.Process.Signal(sig)
	}
}

// pingRedis reports whether a Redis server answers PING on addr.
func pingRedis(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	return err == nil && strings.HasPrefix(string(buf[:n]), "+PONG")
}
