package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DCSentinelShard is a Redis shard watched by Sentinels in a Datacenter:
// a primary and its replicas, and the Sentinels (a majority quorum), each
// a process on a host of its own, on the hosts' addresses. The Sentinels
// call a primary down after 1 s without answer.
type DCSentinelShard struct {
	dc        *Datacenter
	Master    string  // the name the Sentinels watch it under
	Servers   []*Proc // the primary (first) and the replicas, as started
	Addrs     []string
	Sentinels []string // host:port of each Sentinel
}

// SentinelPort is the port of a Sentinel in a datacenter.
const SentinelPort = 26379

// StartSentinelShardOn starts redis-server on each of servers (the first
// the primary, the others its replicas) and a Sentinel on each of
// sentinels, and waits until every replica is in sync and every Sentinel
// knows every replica and the other Sentinels, so that a failover can
// happen.
func (dc *Datacenter) StartSentinelShardOn(servers, sentinels []*Host) *DCSentinelShard {
	t := dc.t
	t.Helper()
	if len(servers) < 2 || len(sentinels) == 0 {
		t.Fatal("a Sentinel shard needs a primary, a replica and a Sentinel")
	}
	sh := &DCSentinelShard{dc: dc, Master: "gp" + Unique(t)}
	for i, h := range servers {
		args := []string{"--bind", h.IP, "--port", "6379", "--save", "", "--appendonly", "no",
			"--dir", t.TempDir(), "--protected-mode", "no"}
		if i > 0 {
			args = append(args, "--replicaof", servers[0].IP, "6379")
		}
		sh.Servers = append(sh.Servers, h.Start("redis-server", args...))
		sh.Addrs = append(sh.Addrs, h.Addr(6379))
	}
	for _, a := range sh.Addrs {
		WaitFor(t, 20*time.Second, "Redis on "+a, func() bool { return pingRedis(a) })
	}
	quorum := len(sentinels)/2 + 1
	for _, h := range sentinels {
		dir := t.TempDir()
		cfg := fmt.Sprintf(`bind %s
port %d
dir %s
protected-mode no
sentinel resolve-hostnames no
sentinel monitor %s %s 6379 %d
sentinel down-after-milliseconds %[4]s 1000
sentinel failover-timeout %[4]s 5000
sentinel parallel-syncs %[4]s 1
`, h.IP, SentinelPort, dir, sh.Master, servers[0].IP, quorum)
		file := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		h.Start("redis-server", file, "--sentinel")
		sh.Sentinels = append(sh.Sentinels, h.Addr(SentinelPort))
	}
	for _, s := range sh.Sentinels {
		WaitFor(t, 20*time.Second, "a Sentinel on "+s, func() bool { return pingRedis(s) })
	}
	WaitFor(t, 30*time.Second, "the replicas in sync with the primary", func() bool {
		for _, a := range sh.Addrs[1:] {
			if !strings.Contains(redisCmd(a, "INFO", "replication"), "master_link_status:up") {
				return false
			}
		}
		return true
	})
	WaitFor(t, 30*time.Second, "Sentinels that know the replicas and each other", func() bool {
		for _, s := range sh.Sentinels {
			replicas := redisCmd(s, "SENTINEL", "replicas", sh.Master)
			for _, h := range servers[1:] {
				if !strings.Contains(replicas, h.IP) {
					return false
				}
			}
			if countLines(redisCmd(s, "SENTINEL", "sentinels", sh.Master), "name") < len(sh.Sentinels)-1 {
				return false
			}
		}
		return true
	})
	return sh
}

// Source is the shard's redis.source value.
func (sh *DCSentinelShard) Source() string {
	return "sentinel@" + strings.Join(sh.Sentinels, ",") + "/" + sh.Master
}

// Primary returns the address the Sentinels name as master now (asking
// each in turn; "" when none answers).
func (sh *DCSentinelShard) Primary() string {
	for _, s := range sh.Sentinels {
		lines := strings.Split(redisCmd(s, "SENTINEL", "get-master-addr-by-name", sh.Master), "\n")
		if len(lines) == 2 {
			return lines[0] + ":" + lines[1]
		}
	}
	return ""
}

// Role returns what the server at addr says it is (master, slave), ""
// when it does not answer.
func Role(addr string) string {
	out := redisCmd(addr, "ROLE")
	role, _, _ := strings.Cut(out, "\n")
	return role
}
