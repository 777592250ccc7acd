package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A Datacenter is a few "hosts" on one machine: each host is a Linux
// network namespace with its own address on one bridge. The bridge has no
// uplink and no host has a default route, so traffic goes only between the
// hosts (and the test process, which has the bridge's own address). Every
// namespace, link and process it makes is removed when the test ends,
// failed or not; leftovers of a test process that died are removed by the
// next NewDatacenter.
//
// It needs root (CAP_NET_ADMIN) and the ip command; without them the test
// fails, as a missing service does under make test.
type Datacenter struct {
	t      testing.TB
	id     string // short and unique: names the bridge, links and namespaces
	bridge string
	prefix string // "10.A.B."
	gw     string // the bridge's (the test process's) address

	mu    sync.Mutex
	hosts []*Host
	procs []*Proc
}

// Host is one network namespace of a Datacenter.
type Host struct {
	dc   *Datacenter
	Name string
	NS   string // namespace name, for ip netns exec
	IP   string
	veth string // the host end's peer on the bridge (root namespace)
}

// dcPrefix starts the names of everything a Datacenter makes, followed by
// the pid of the test process that made it.
const dcPrefix = "gpdc"

// NewDatacenter creates the bridge. Hosts come with AddHost.
func NewDatacenter(t testing.TB) *Datacenter {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("the ip command (iproute2) is needed for network namespaces: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("network namespaces need root: run the datacenter tests as root (make test does)")
	}
	removeStaleDatacenters(t)
	dc := &Datacenter{t: t}
	dc.id = fmt.Sprintf("%s%d%c", dcPrefix, os.Getpid(), 'a'+rand.IntN(26))
	dc.bridge = dc.id + "br"
	if len(dc.bridge) > 15 {
		t.Fatalf("link name %q too long", dc.bridge)
	}
	dc.prefix = freeSubnet(t)
	dc.gw = dc.prefix + "1"
	t.Cleanup(dc.close)
	dc.ip("link", "add", dc.bridge, "type", "bridge")
	dc.ip("addr", "add", dc.gw+"/24", "dev", dc.bridge)
	dc.ip("link", "set", dc.bridge, "up")
	return dc
}

// freeSubnet picks a 10.A.B.0/24 that no route of this machine covers.
func freeSubnet(t testing.TB) string {
	out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	routes := string(out)
	for range 100 {
		p := fmt.Sprintf("10.%d.%d.", 100+rand.IntN(100), rand.IntN(250))
		if !strings.Contains(routes, p) {
			return p
		}
	}
	t.Fatal("no free 10.x.y.0/24 subnet")
	return ""
}

func (dc *Datacenter) ip(args ...string) {
	dc.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		dc.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// AddHost creates a namespace with loopback up and an address on the
// bridge, and no other route.
func (dc *Datacenter) AddHost(name string) *Host {
	dc.t.Helper()
	dc.mu.Lock()
	n := len(dc.hosts) + 1
	h := &Host{dc: dc, Name: name, NS: fmt.Sprintf("%sh%d", dc.id, n), IP: fmt.Sprintf("%s%d", dc.prefix, n+1)}
	dc.hosts = append(dc.hosts, h)
	dc.mu.Unlock()
	h.veth = fmt.Sprintf("%sv%d", dc.id, n)
	inner := h.veth + "i"
	dc.ip("netns", "add", h.NS)
	dc.ip("link", "add", h.veth, "type", "veth", "peer", "name", inner)
	dc.ip("link", "set", inner, "netns", h.NS)
	dc.ip("link", "set", h.veth, "master", dc.bridge)
	dc.ip("link", "set", h.veth, "up")
	h.exec("ip", "link", "set", "lo", "up")
	h.exec("ip", "addr", "add", h.IP+"/24", "dev", inner)
	h.exec("ip", "link", "set", inner, "up")
	return h
}

// Bridge is the name of the datacenter's bridge.
func (dc *Datacenter) Bridge() string { return dc.bridge }

// Hosts returns the hosts in the order they were added.
func (dc *Datacenter) Hosts() []*Host {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return append([]*Host(nil), dc.hosts...)
}

// GatewayIP is the test process's own address on the bridge.
func (dc *Datacenter) GatewayIP() string { return dc.gw }

// exec runs a command inside the host's namespace and fails the test if it
// fails.
func (h *Host) exec(args ...string) {
	h.dc.t.Helper()
	full := append([]string{"netns", "exec", h.NS}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		h.dc.t.Fatalf("in %s: %s: %v: %s", h.Name, strings.Join(args, " "), err, out)
	}
}

// Cut makes h and each of others unreachable from one another (a route
// that refuses traffic, in both namespaces), as a broken link between them
// would; the other hosts still reach both. Heal undoes it.
func (h *Host) Cut(others ...*Host) {
	h.dc.t.Helper()
	for _, o := range others {
		h.exec("ip", "route", "add", "prohibit", o.IP+"/32")
		o.exec("ip", "route", "add", "prohibit", h.IP+"/32")
	}
}

// Heal undoes Cut.
func (h *Host) Heal(others ...*Host) {
	h.dc.t.Helper()
	for _, o := range others {
		h.exec("ip", "route", "del", "prohibit", o.IP+"/32")
		o.exec("ip", "route", "del", "prohibit", h.IP+"/32")
	}
}

// Isolate takes the host's link down: it reaches nothing but itself, and
// nothing reaches it. Join brings it back.
func (h *Host) Isolate() { h.dc.ip("link", "set", h.veth, "down") }

// Join undoes Isolate.
func (h *Host) Join() { h.dc.ip("link", "set", h.veth, "up") }

// Addr returns IP:port on this host.
func (h *Host) Addr(port int) string { return net.JoinHostPort(h.IP, fmt.Sprint(port)) }

// inNS runs f on an OS thread that has entered the host's namespace, so
// that sockets f creates belong to the host. The thread is left to die
// if it cannot go back to the test's namespace.
func (h *Host) inNS(f func()) error {
	target, err := os.Open(filepath.Join("/var/run/netns", h.NS))
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		f()
		if err := setns(self); err != nil {
			errc <- fmt.Errorf("could not leave namespace %s: %w", h.NS, err)
			return // the thread stays locked and ends with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}

func setns(f *os.File) error {
	const cloneNewNet = 0x40000000
	if _, _, e := syscall.RawSyscall(sysSetns, f.Fd(), cloneNewNet, 0); e != 0 {
		return e
	}
	return nil
}

// Listen opens a TCP listener on the host (addr like ":0" or "IP:port").
func (h *Host) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	var lerr error
	if err := h.inNS(func() { ln, lerr = net.Listen("tcp", addr) }); err != nil {
		return nil, err
	}
	return ln, lerr
}

// Dial connects from the host to addr, giving up after timeout.
func (h *Host) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := h.inNS(func() { c, derr = net.DialTimeout("tcp", addr, timeout) }); err != nil {
		return nil, err
	}
	return c, derr
}

// Proc is a process running on a host.
type Proc struct {
	Host *Host
	bin  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Start runs bin with args on the host, its output in a file of the test's
// temporary directory. It is killed when the test ends.
func (h *Host) Start(bin string, args ...string) *Proc {
	h.dc.t.Helper()
	lf, err := os.CreateTemp(h.dc.t.TempDir(), h.Name+"-*.log")
	if err != nil {
		h.dc.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		h.dc.t.Fatalf("start %s on %s: %v", bin, h.Name, err)
	}
	p := &Proc{Host: h, bin: bin, args: args, cmd: cmd, done: make(chan struct{}), log: lf}
	go func() { cmd.Wait(); close(p.done) }()
	h.dc.mu.Lock()
	h.dc.procs = append(h.dc.procs, p)
	h.dc.mu.Unlock()
	return p
}

// Restart starts the same command again on the same host (after Kill or
// Stop) and returns the new process.
func (p *Proc) Restart() *Proc {
	p.Host.dc.t.Helper()
	return p.Host.Start(p.bin, p.args...)
}

// Signal sends sig to the process (SIGSTOP pauses it, SIGCONT continues).
func (p *Proc) Signal(sig syscall.Signal) { p.cmd.Process.Signal(sig) }

// Kill ends the process (SIGKILL) and waits for it.
func (p *Proc) Kill() {
	p.cmd.Process.Signal(syscall.SIGCONT)
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout before killing it.
func (p *Proc) Stop(timeout time.Duration) {
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns what the process wrote so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

// close kills the processes and removes the namespaces, links and bridge.
func (dc *Datacenter) close() {
	dc.mu.Lock()
	procs, hosts := dc.procs, dc.hosts
	dc.mu.Unlock()
	for _, p := range procs {
		if !p.Exited() {
			p.Kill()
		}
		p.log.Close()
	}
	for _, h := range hosts {
		exec.Command("ip", "netns", "del", h.NS).Run()
		exec.Command("ip", "link", "del", h.veth).Run()
	}
	exec.Command("ip", "link", "del", dc.bridge).Run()
}

// removeStaleDatacenters removes namespaces and links left by a test
// process that no longer runs (killed before its cleanup).
func removeStaleDatacenters(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alive := func(name string) bool {
		rest := strings.TrimPrefix(name, dcPrefix)
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end <= 0 {
			return true // not ours to judge
		}
		var pid int
		fmt.Sscan(rest[:end], &pid)
		return syscall.Kill(pid, 0) == nil
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], dcPrefix) && !alive(f[0]) {
				exec.CommandContext(ctx, "ip", "netns", "del", f[0]).Run()
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name := strings.TrimSuffix(f[1], ":")
			name, _, _ = strings.Cut(name, "@")
			if strings.HasPrefix(name, dcPrefix) && !alive(name) {
				exec.CommandContext(ctx, "ip", "link", "del", name).Run()
			}
		}
	}
}
