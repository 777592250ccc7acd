package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Services of a Datacenter: ZooKeeper servers and Redis, each a process on
// its own host, on the host's address.

// ZKClientPort is the client port of a ZooKeeper server in a datacenter
// (hosts have their own addresses, so fixed ports do not collide).
const ZKClientPort = 2181

const javaDir = "/usr/share/java"

// StartZooKeeper starts one ZooKeeper server on each of hosts, forming one
// ensemble when there are several, and waits until each serves (as leader,
// follower or standalone). It returns the servers' processes and the
// address list for zookeeper.addr.
func (dc *Datacenter) StartZooKeeper(hosts ...*Host) ([]*Proc, []string) {
	t := dc.t
	t.Helper()
	cp := ""
	for _, jar := range []string{"zookeeper", "zookeeper-jute", "slf4j-api", "slf4j-log4j12", "log4j-1.2"} {
		p := filepath.Join(javaDir, jar+".jar")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing (Debian package zookeeper): %v", p, err)
		}
		cp += ":" + p
	}
	var servers strings.Builder
	if len(hosts) > 1 {
		for i, h := range hosts {
			fmt.Fprintf(&servers, "server.%d=%s:2888:3888\n", i+1, h.IP)
		}
	}
	var procs []*Proc
	var addrs []string
	for i, h := range hosts {
		dir := t.TempDir()
		for _, d := range []string{"conf", "data", "logs"} {
			os.MkdirAll(filepath.Join(dir, d), 0o755)
		}
		cfg := fmt.Sprintf(`tickTime=1000
initLimit=10
syncLimit=5
dataDir=%s/data
clientPort=%d
clientPortAddress=%s
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,srvr,mntr
%s`, dir, ZKClientPort, h.IP, servers.String())
		if len(hosts) > 1 {
			os.WriteFile(filepath.Join(dir, "data", "myid"), []byte(fmt.Sprint(i+1)), 0o644)
		}
		os.WriteFile(filepath.Join(dir, "conf", "zoo.cfg"), []byte(cfg), 0o644)
		os.WriteFile(filepath.Join(dir, "conf", "log4j.properties"), []byte(fmt.Sprintf(
			"log4j.rootLogger=WARN, F\nlog4j.appender.F=org.apache.log4j.FileAppender\nlog4j.appender.F.File=%s/logs/zk.log\nlog4j.appender.F.layout=org.apache.log4j.PatternLayout\nlog4j.appender.F.layout.ConversionPattern=%%d %%p %%c: %%m%%n\n", dir)), 0o644)
		procs = append(procs, h.Start("java", "-Xmx128m", "-XX:+UseSerialGC", "-Dzookeeper.log.dir="+dir+"/logs",
			"-cp", filepath.Join(dir, "conf")+cp, "org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(dir, "conf", "zoo.cfg")))
		addrs = append(addrs, h.Addr(ZKClientPort))
	}
	for _, a := range addrs {
		WaitFor(t, 90*time.Second, "ZooKeeper serving on "+a, func() bool {
			mode := ZKMode(a)
			return mode == "leader" || mode == "follower" || mode == "standalone"
		})
	}
	return procs, addrs
}

// ZKMode asks the ZooKeeper server at addr for its mode (leader, follower,
// standalone); "" when it does not answer.
func ZKMode(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte("srvr"))
	buf := make([]byte, 4096)
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		if mode, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(mode)
		}
	}
	return ""
}

// StartRedisOn starts redis-server on h, on the host's address and port
// 6379, and waits until it answers.
func (dc *Datacenter) StartRedisOn(h *Host) (*Proc, string) {
	dc.t.Helper()
	dir := dc.t.TempDir()
	p := h.Start("redis-server", "--bind", h.IP, "--port", "6379", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "no")
	addr := h.Addr(6379)
	WaitFor(dc.t, 20*time.Second, "Redis on "+addr, func() bool { return pingRedis(addr) })
	return p, addr
}

// StartDaemonOn runs the gopush daemon name (comet, web, message) on h with
// cfg (a *conf.Comet, *conf.Web or *conf.Message), and waits until addr,
// one of its listeners, accepts connections. Its log is shown if the test
// fails.
func (dc *Datacenter) StartDaemonOn(h *Host, name string, cfg any, addr string) *Proc {
	t := dc.t
	t.Helper()
	file := filepath.Join(t.TempDir(), name+".toml")
	if err := os.WriteFile(file, []byte(EncodeTOML(t, cfg)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := h.Start(Binary(t, name), "-c", file)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of %s on %s ---\n%s", name, h.Name, p.Log())
		}
	})
	WaitFor(t, 30*time.Second, name+" listening on "+addr, func() bool {
		if p.Exited() {
			t.Fatalf("%s on %s exited:\n%s", name, h.Name, p.Log())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return p
}
