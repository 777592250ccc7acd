// Command gopush-bench loads a gopush cluster on this machine and measures
// it: subscribers held per comet and their memory, pushes per second through
// web's admin API, deliveries, losses, end-to-end latency and the CPU each
// daemon spends.
//
// Scenarios (-scenario):
//
//	idle       open -n subscribers, measure comet RSS per connection, hold
//	           them for -hold while heartbeating, report drops and CPU
//	private    open -n subscribers on -keys keys, then push/private at -rate
//	           (0: as fast as possible) with -clients HTTP clients for
//	           -duration or -max calls
//	mprivate   same with push/mprivate, -kpc keys per call, to the first
//	           -push-keys keys (the first -keys of them are online)
//	all        same with push/all (every connection)
//	room       same with push/room, to a room holding the -push-keys keys
//	           (joined through /1/admin/room/join first, deleted after)
//	fanout     all, room and mprivate (-modes) one after the other on the
//	           same connections, one result each (and JSON file: {mode}
//	           in -json is replaced by the mode, else it is appended)
//	push-batch same with /1/admin/push/batch, -batch entries per call, each
//	           entry one key and its own push; lost, duplicated or failed
//	           pushes make the run fail
//	serverget  /1/server/get with -clients keep-alive clients for -duration
//
// It exits non-zero when a run's correctness check fails: a delivery lost,
// duplicated or not ours, a push call failed, a stored message missing.
//
// With -report DIR it reads the JSON files of a scripts/bench.sh run
// (<scenario>.<target>.<round>.json) and prints the comparison table:
// gopush's figures beside its ratios to the floors and to the baseline.
//
// Subscribers connect from 127.0.0.1 .. 127.0.0.<-src>, so that more than
// one address's port range can be used, and may be spread over -procs child
// processes (this binary re-executed with -child), because one process may
// hold at most 20 000 open files here.
//
// Every address must be a loopback one: this is a tool for one machine.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pidFlag collects -pid name=PID (or name=@pidfile).
type pidFlag []namedPid

type namedPid struct {
	Name string
	Pid  int
}

func (p *pidFlag) String() string { return fmt.Sprint(*p) }

func (p *pidFlag) Set(v string) error {
	name, val, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return errors.New("want name=PID or name=@pidfile")
	}
	if path, isFile := strings.CutPrefix(val, "@"); isFile {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// A pid file holds the pid first (scripts/lib.sh adds the start time).
		f := strings.Fields(string(raw))
		if len(f) == 0 {
			return fmt.Errorf("%s is empty", path)
		}
		val = f[0]
	}
	pid, err := strconv.Atoi(val)
	if err != nil || pid <= 0 {
		return fmt.Errorf("%q is not a process id", val)
	}
	*p = append(*p, namedPid{name, pid})
	return nil
}

type options struct {
	scenario  string
	name      string
	httpAddr  string
	admin     string
	comet     string
	proto     string
	caFile    string
	n         int
	keys      int
	pushKeys  int
	prefix    string
	heartbeat int
	version   string
	src       int
	procs     int
	parallel  int
	clients   int
	rate      float64
	duration  time.Duration
	max       int
	expire    int
	kpc       int
	batch     int
	hold      time.Duration
	settle    time.Duration
	drain     time.Duration
	verify    int
	modes     []string
	report    string
	pids      pidFlag
	pprof     addrFlag
	pprofDir  string
	cpuprof   string
	jsonOut   string
	child     bool
}

func main() {
	exit := 0
	defer func() { os.Exit(exit) }()
	var o options
	flag.StringVar(&o.scenario, "scenario", "private", "idle, private, mprivate, all, room, fanout, push-batch or serverget")
	modes := flag.String("modes", "all,room,mprivate", "fanout: the push modes to run, in order")
	flag.StringVar(&o.report, "report", "", "print the comparison table of the bench.sh results in this directory, and exit")
	flag.StringVar(&o.name, "name", "", "name of this run in the output and the profile file names (default: the scenario)")
	flag.StringVar(&o.httpAddr, "http", "127.0.0.1:8090", "web http.bind (routing, /1/server/get, /1/msg/get)")
	flag.StringVar(&o.admin, "admin", "127.0.0.1:8091", "web admin.bind (pushes)")
	flag.StringVar(&o.comet, "comet", "", "connect every subscriber to this comet address instead of asking web")
	flag.StringVar(&o.proto, "proto", "tcp", "subscriber protocol: tcp, ws, wss (WebSocket over TLS, with -ca) or sse")
	flag.StringVar(&o.caFile, "ca", "", "wss: PEM file of the CA (or self-signed certificate) to verify comet's certificate with")
	flag.IntVar(&o.n, "n", 2000, "subscriber connections")
	flag.IntVar(&o.keys, "keys", 0, "distinct keys among the subscribers (0: one per subscriber); subscriber i takes key i mod keys")
	flag.IntVar(&o.pushKeys, "push-keys", 0, "keys pushed to (0: -keys); keys beyond -keys have no subscriber")
	flag.StringVar(&o.prefix, "prefix", "", "key prefix (default: random per run)")
	flag.IntVar(&o.heartbeat, "heartbeat", 30, "subscriber heartbeat, seconds (comet wants ≥ 30)")
	flag.StringVar(&o.version, "ver", "1.0", "client version sent on subscribe (\"\" gets the old message form)")
	flag.IntVar(&o.src, "src", 8, "source addresses 127.0.0.1 .. 127.0.0.<src>")
	flag.IntVar(&o.procs, "procs", 0, "child processes holding the subscribers (0: this process)")
	flag.IntVar(&o.parallel, "parallel", 64, "connects (and routing lookups) in flight per process")
	flag.IntVar(&o.clients, "clients", 8, "concurrent HTTP clients (keep-alive)")
	flag.Float64Var(&o.rate, "rate", 0, "push calls per second in total (0: as fast as possible)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to push (or to load /1/server/get)")
	flag.IntVar(&o.max, "max", 0, "stop after this many push calls (0: no limit)")
	flag.IntVar(&o.expire, "expire", 0, "push expire, seconds (0: online only, nothing stored)")
	flag.IntVar(&o.kpc, "kpc", 0, "mprivate: keys per call (0: all push keys)")
	flag.IntVar(&o.batch, "batch", 1000, "push-batch: entries (pushes) per call")
	flag.DurationVar(&o.hold, "hold", 0, "idle: how long to hold the connections after they are open")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait after connecting before reading RSS")
	flag.DurationVar(&o.drain, "drain", 10*time.Second, "longest wait for outstanding deliveries after the last push")
	flag.IntVar(&o.verify, "verify-stored", 0, "after pushing with expire > 0, read back this many keys' offline messages")
	flag.Var(&o.pids, "pid", "name=PID or name=@pidfile of a daemon to measure (repeatable; names starting with \"comet\" count for RSS per connection)")
	flag.Var(&o.pprof, "pprof", "name=host:port of a daemon's pprof listener: take a CPU profile of it while pushing, loading or holding (repeatable)")
	flag.StringVar(&o.pprofDir, "pprof-dir", ".", "where -pprof profiles go, as <scenario>-<name>.pprof")
	flag.StringVar(&o.cpuprof, "cpuprofile", "", "write this tool's own CPU profile to this file")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results to this file as JSON")
	flag.BoolVar(&o.child, "child", false, "internal: run as a subscriber process fed on stdin")
	flag.Parse()
	o.modes = strings.Split(*modes, ",")
	if o.report != "" {
		if err := printReport(os.Stdout, o.report); err != nil {
			fmt.Fprintln(os.Stderr, "gopush-bench:", err)
			exit = 1
		}
		return
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if o.child {
		if err := runChild(o); err != nil {
			fmt.Fprintln(os.Stderr, "gopush-bench child:", err)
			os.Exit(1)
		}
		return
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "gopush-bench:", err)
		os.Exit(2)
	}
	if o.cpuprof != "" {
		f, err := os.Create(o.cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gopush-bench:", err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o, log)
	if res != nil {
		all := append([]*Result{res}, res.More...)
		for i, r := range all {
			if i > 0 {
				fmt.Println()
			}
			r.Print(os.Stdout)
			if o.jsonOut != "" {
				path := o.jsonOut
				if o.scenario == "fanout" {
					path = fanoutPath(path, r.Scenario)
				}
				if werr := r.WriteJSON(path); werr != nil {
					log.Error("write json", "file", path, "err", werr)
				}
			}
			if cerr := r.Check(); cerr != nil {
				fmt.Fprintf(os.Stderr, "gopush-bench: %s: FAILED: %v\n", r.Name, cerr)
				exit = 1
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gopush-bench:", err)
		exit = 1
	}
}

func (o *options) check() error {
	switch o.scenario {
	case "idle", "private", "mprivate", "all", "room", "push-batch", "serverget":
	case "fanout":
		for _, m := range o.modes {
			if m != "all" && m != "room" && m != "mprivate" && m != "private" {
				return fmt.Errorf("-modes: %q is not all, room, mprivate or private", m)
			}
		}
	default:
		return fmt.Errorf("-scenario %q: want idle, private, mprivate, all, room, fanout, push-batch or serverget", o.scenario)
	}
	if o.scenario == "push-batch" && o.batch < 1 {
		return errors.New("-batch must be at least 1")
	}
	if o.name == "" {
		o.name = o.scenario
	}
	if o.proto != "tcp" && o.proto != "ws" && o.proto != "wss" && o.proto != "sse" {
		return fmt.Errorf("-proto %q: want tcp, ws, wss or sse", o.proto)
	}
	if o.proto == "wss" && o.caFile == "" {
		return errors.New("-proto wss needs -ca (the CA of comet's certificate)")
	}
	if o.n < 0 || o.keys < 0 || o.pushKeys < 0 || o.procs < 0 || o.max < 0 || o.kpc < 0 || o.expire < 0 || o.rate < 0 {
		return errors.New("counts, rates and expire must not be negative")
	}
	if o.clients <= 0 {
		return errors.New("-clients must be at least 1")
	}
	if o.heartbeat <= 0 {
		return errors.New("-heartbeat must be positive")
	}
	if o.src < 1 || o.src > 254 {
		return errors.New("-src must be 1..254")
	}
	if o.keys == 0 || o.keys > o.n {
		o.keys = o.n
	}
	if o.pushKeys == 0 {
		o.pushKeys = o.keys
	}
	if o.pushKeys < o.keys {
		return errors.New("-push-keys must be at least -keys")
	}
	if o.scenario != "idle" && o.pushKeys == 0 {
		return errors.New("no keys to push to: set -n or -push-keys")
	}
	if o.prefix == "" {
		var b [4]byte
		rand.Read(b[:])
		o.prefix = "bench-" + hex.EncodeToString(b[:]) + "-"
	}
	for _, a := range []string{o.httpAddr, o.admin, o.comet} {
		if a == "" {
			continue
		}
		if err := loopbackOnly(a); err != nil {
			return err
		}
	}
	return nil
}

// loopbackOnly refuses an address that is not on this machine's loopback.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %v", addr, err)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("address %q: %v", addr, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("address %q is not loopback: this tool only loads the local machine", addr)
		}
	}
	return nil
}

// key returns the name of key i.
func (o *options) key(i int) string { return o.prefix + strconv.Itoa(i) }

// fanoutPath is the JSON file of one mode of a fanout run.
func fanoutPath(path, mode string) string {
	if strings.Contains(path, "{mode}") {
		return strings.ReplaceAll(path, "{mode}", mode)
	}
	return strings.TrimSuffix(path, ".json") + "-" + mode + ".json"
}
