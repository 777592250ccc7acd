package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SentinelShard is a Redis shard that survives the loss of its primary: a
// primary, one replica and three Sentinels (quorum 2) that watch it under
// the name Master, all private processes on free loopback ports. The
// Sentinels call a primary down after 1 s without answer.
type SentinelShard struct {
	t         testing.TB
	Master    string
	Servers   [2]*RedisServer // the primary and the replica as started
	sentinels []string
}

// StartSentinelShard starts the shard and waits until the replica is in
// sync and every Sentinel knows the replica and the other Sentinels (so that a failover can happen). All
// of it stops when the test ends.
func StartSentinelShard(t testing.TB) *SentinelShard {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is needed: %v", err)
	}
	sh := &SentinelShard{t: t, Master: "gp" + Unique(t)}
	sh.Servers[0] = startRedis(t)
	sh.Servers[1] = startRedis(t, "--replicaof", "127.0.0.1", port(sh.Servers[0].Addr()))
	for range 3 {
		sh.sentinels = append(sh.sentinels, sh.startSentinel())
	}
	WaitFor(t, 30*time.Second, "the replica in sync with the primary", func() bool {
		return strings.Contains(redisCmd(sh.Servers[1].Addr(), "INFO", "replication"), "master_link_status:up")
	})
	WaitFor(t, 30*time.Second, "Sentinels that know the replica and each other", func() bool {
		for _, s := range sh.sentinels {
			if !strings.Contains(redisCmd(s, "SENTINEL", "replicas", sh.Master), port(sh.Servers[1].Addr())) {
				return false
			}
			if countLines(redisCmd(s, "SENTINEL", "sentinels", sh.Master), "name") < 2 {
				return false
			}
		}
		return true
	})
	return sh
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func (sh *SentinelShard) startSentinel() string {
	t := sh.t
	addr, dir := FreeAddr(t), t.TempDir()
	cfg := fmt.Sprintf(`bind 127.0.0.1
port %s
dir %s
sentinel resolve-hostnames no
sentinel monitor %s 127.0.0.1 %s 2
sentinel down-after-milliseconds %[3]s 1000
sentinel failover-timeout %[3]s 5000
sentinel parallel-syncs %[3]s 1
`, port(addr), dir, sh.Master, port(sh.Servers[0].Addr()))
	file := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", file, "--sentinel", "--logfile", filepath.Join(dir, "sentinel.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a Sentinel: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	WaitFor(t, 20*time.Second, "a Sentinel on "+addr, func() bool { return pingRedis(addr) })
	return addr
}

// Source is the shard's redis.source address (without "tcp@").
func (sh *SentinelShard) Source() string {
	return "sentinel@" + strings.Join(sh.sentinels, ",") + "/" + sh.Master
}

// Primary returns the server that the Sentinels name as master now.
func (sh *SentinelShard) Primary() *RedisServer {
	for _, s := range sh.sentinels {
		lines := strings.Split(redisCmd(s, "SENTINEL", "get-master-addr-by-name", sh.Master), "\n")
		if len(lines) < 2 {
			continue
		}
		addr := net.JoinHostPort(lines[0], lines[1])
		for _, r := range sh.Servers {
			if r.Addr() == addr {
				return r
			}
		}
	}
	return nil
}

// redisCmd runs one command through redis-cli and returns its output
// (empty when it fails).
func redisCmd(addr string, args ...string) string {
	h, p, _ := net.SplitHostPort(addr)
	out, err := exec.Command("redis-cli", append([]string{"-h", h, "-p", p}, args...)...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func countLines(s, line string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if l == line {
			n++
		}
	}
	return n
}
