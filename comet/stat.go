package comet

import (
	"encoding/json"
	"net/http"
	"os"
	"os/user"
	"runtime"
	"sync/atomic"
	"time"

	"gopush/conf"
)

// stats are comet's counters. Each is an atomic, so updating one never takes
// a lock shared by all connections.
type stats struct {
	start time.Time

	tcpConns       atomic.Int64 // open TCP connections (subscribed or in handshake)
	wsConns        atomic.Int64 // open WebSocket connections
	tcpAccepted    atomic.Int64 // TCP connections accepted since start
	wsAccepted     atomic.Int64 // WebSocket connections upgraded since start
	sseConns       atomic.Int64 // open Server-Sent Events connections
	sseAccepted    atomic.Int64 // SSE requests taken on since start
	resumed        atomic.Int64 // stored messages sent to SSE clients for their Last-Event-ID
	subsAdded      atomic.Int64 // connections added to a channel since start
	subsRemoved    atomic.Int64 // connections taken out of a channel since start
	refused        atomic.Int64 // handshakes answered with an error reply
	chanCreated    atomic.Int64 // channels (keys) created since start
	chanDeleted    atomic.Int64 // channels freed since start
	chanAccess     atomic.Int64 // lookups that found a key's channel
	pushed         atomic.Int64 // messages pushed to a key (one per key)
	pushFailed     atomic.Int64 // pushes that failed (storage failure)
	stored         atomic.Int64 // messages stored through MessageRPC
	framesQueued   atomic.Int64 // message frames queued to connections
	framesWritten  atomic.Int64 // frames (messages and replies) written
	msgsWritten    atomic.Int64 // message frames written to a connection
	msgsFailed     atomic.Int64 // message frames lost: connection closed or failed first
	slowClosed     atomic.Int64 // connections closed because their queue was full
	heartbeats     atomic.Int64 // heartbeats answered, and SSE heartbeat comments sent
	migrateRefused atomic.Int64 // Migrate calls refused (node map not ZooKeeper's)

	// Since metrics (metrics.go): what Prometheus needs beyond the above.
	subscribes        atomic.Int64 // subscribes answered +h
	refusedParam      atomic.Int64 // subscribes answered -p
	refusedAuth       atomic.Int64 // -a
	refusedChannel    atomic.Int64 // -c
	refusedNotOwner   atomic.Int64 // -n
	handshakeTimeouts atomic.Int64 // TCP connections silent past handshake.timeout
	rpcPushPrivate    atomic.Int64 // CometRPC.PushPrivate calls
	rpcPushPrivates   atomic.Int64 // CometRPC.PushPrivates calls
	rpcPushBatch      atomic.Int64 // CometRPC.PushBatch calls
	rpcBroadcast      atomic.Int64 // CometRPC.Broadcast calls
	bytesWritten      atomic.Int64 // bytes written to clients
	queued            atomic.Int64 // frames waiting in send queues now
	migrations        atomic.Int64 // ring changes applied (Migrate)
	migrationClosed   atomic.Int64 // connections closed by ring changes

	tlsOpen [numProtos]atomic.Int64 // of the open connections, those over TLS, by protocol
}

// opened counts cn in as an open connection of its protocol (and of TLS).
func (s *stats) opened(cn *conn) {
	s.open(cn.proto).Add(1)
	if cn.tls {
		s.tlsOpen[cn.proto].Add(1)
	}
}

// closed counts cn out again.
func (s *stats) closed(cn *conn) {
	s.open(cn.proto).Add(-1)
	if cn.tls {
		s.tlsOpen[cn.proto].Add(-1)
	}
}

// open returns the counter of open connections of protocol p.
func (s *stats) open(p proto) *atomic.Int64 {
	switch p {
	case protoWS:
		return &s.wsConns
	case protoSSE:
		return &s.sseConns
	}
	return &s.tcpConns
}

// subscribed is the number of connections in a channel now.
func (s *stats) subscribed() int64 { return s.subsAdded.Load() - s.subsRemoved.Load() }

// channels is the number of channels in memory now.
func (s *stats) channels() int64 { return s.chanCreated.Load() - s.chanDeleted.Load() }

// statHandler serves GET /stat?type=server|golang|memory|config|channel|message|connection
// (docs/protocol.md §8) in gopush-cluster 1.0.5's shapes, so that scripts
// written for 1.0.5 read it: the same JSON object with the same field
// names, indented by four spaces as 1.0.5 writes it, no envelope. Fields
// gopush adds stand beside 1.0.5's. An unknown type is 404, as in 1.0.5.
func (c *Comet) statHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	var data any
	q := r.URL.Query()
	switch q.Get("type") {
	case "server":
		data = c.serverStat()
	case "golang":
		data = golangStat()
	case "memory":
		data = memoryStat()
	case "config":
		data = config105{Comet: c.cfg.Redacted(), MaxProc: runtime.GOMAXPROCS(0)}.fill()
	case "channel":
		if key := q.Get("key"); key != "" {
			// Exactly 1.0.5's answer; a key without a channel has 0.
			data = map[string]any{"channel": map[string]any{"conn": c.hub.count(key)}}
		} else {
			data = c.channelStat()
		}
	case "message":
		data = c.messageStat()
	case "connection":
		data = c.connectionStat()
	default:
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	b, err := json.MarshalIndent(data, "", "    ")
	if err != nil {
		c.log.Error("stat: marshal", "type", q.Get("type"), "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}

// serverStat: 1.0.5's uptime (nanoseconds), hostname, wd, ppid, pid,
// pagesize, user and group (numeric ids), then gopush's node, start_time
// (unix seconds) and ring (node → weight).
func (c *Comet) serverStat() map[string]any {
	st := c.stats
	host, _ := os.Hostname()
	wd, _ := os.Getwd()
	uid, gid := "", ""
	if u, err := user.Current(); err == nil {
		uid, gid = u.Uid, u.Gid
	}
	return map[string]any{
		"uptime":     time.Since(st.start).Nanoseconds(),
		"hostname":   host,
		"wd":         wd,
		"ppid":       os.Getppid(),
		"pid":        os.Getpid(),
		"pagesize":   os.Getpagesize(),
		"user":       uid,
		"group":      gid,
		"node":       c.cfg.ZooKeeper.Comet.Node,
		"start_time": st.start.Unix(),
		"ring":       c.ring.weights(),
	}
}

// golangStat: 1.0.5's fields, then gopush's numcpu.
func golangStat() map[string]any {
	return map[string]any{
		"compiler":      runtime.Compiler,
		"arch":          runtime.GOARCH,
		"os":            runtime.GOOS,
		"max_procs":     runtime.GOMAXPROCS(0),
		"root":          runtime.GOROOT(), // deprecated in Go; 1.0.5 reports it ("" in a binary built with -trimpath)
		"cgo_call":      runtime.NumCgoCall(),
		"goroutine_num": runtime.NumGoroutine(),
		"version":       runtime.Version(),
		"numcpu":        runtime.NumCPU(),
	}
}

// memoryStat: 1.0.5's fields, from runtime.MemStats.
func memoryStat() map[string]any {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return map[string]any{
		"alloc":          m.Alloc,
		"total_alloc":    m.TotalAlloc,
		"sys":            m.Sys,
		"lookups":        m.Lookups,
		"mallocs":        m.Mallocs,
		"frees":          m.Frees,
		"heap_alloc":     m.HeapAlloc,
		"heap_sys":       m.HeapSys,
		"heap_idle":      m.HeapIdle,
		"heap_inuse":     m.HeapInuse,
		"heap_released":  m.HeapReleased,
		"heap_objects":   m.HeapObjects,
		"stack_inuse":    m.StackInuse,
		"stack_sys":      m.StackSys,
		"mspan_inuse":    m.MSpanInuse,
		"mspan_sys":      m.MSpanSys,
		"mcache_inuse":   m.MCacheInuse,
		"mcache_sys":     m.MCacheSys,
		"buckhash_sys":   m.BuckHashSys,
		"next_gc":        m.NextGC,
		"last_gc":        m.LastGC,
		"pause_total_ns": m.PauseTotalNs,
		"pause_ns":       m.PauseNs,
		"num_gc":         m.NumGC,
		"enable_gc":      m.EnableGC,
		"debug_gc":       m.DebugGC,
		"by_size":        m.BySize,
	}
}

// channelStat: 1.0.5's access (lookups that found a channel), create,
// delete and current, then gopush's buckets.
func (c *Comet) channelStat() map[string]any {
	st := c.stats
	return map[string]any{
		"access":  st.chanAccess.Load(),
		"create":  st.chanCreated.Load(),
		"delete":  st.chanDeleted.Load(),
		"current": st.channels(),
		"buckets": len(c.hub.buckets),
	}
}

// messageStat: 1.0.5's succeed and failed (message frames written to a
// connection, and lost because the connection failed or closed first) and
// their total, then gopush's push counters.
func (c *Comet) messageStat() map[string]any {
	st := c.stats
	ok, failed := st.msgsWritten.Load(), st.msgsFailed.Load()
	return map[string]any{
		"succeed":        ok,
		"failed":         failed,
		"total":          ok + failed,
		"pushed":         st.pushed.Load(),
		"push_failed":    st.pushFailed.Load(),
		"stored":         st.stored.Load(),
		"frames_queued":  st.framesQueued.Load(),
		"frames_written": st.framesWritten.Load(),
	}
}

// connectionStat: 1.0.5's add, remove and current (subscribed
// connections), then gopush's per-protocol counters.
func (c *Comet) connectionStat() map[string]any {
	st := c.stats
	added, removed := st.subsAdded.Load(), st.subsRemoved.Load()
	tcp, ws, sse := st.tcpConns.Load(), st.wsConns.Load(), st.sseConns.Load()
	return map[string]any{
		"add":          added,
		"remove":       removed,
		"current":      added - removed,
		"tcp":          tcp,
		"websocket":    ws,
		"sse":          sse,
		"total":        tcp + ws + sse,
		"tcp_accepted": st.tcpAccepted.Load(),
		"ws_accepted":  st.wsAccepted.Load(),
		"sse_accepted": st.sseAccepted.Load(),
		"sse_resumed":  st.resumed.Load(),
		"refused":      st.refused.Load(),
		"slow_closed":  st.slowClosed.Load(),
		"heartbeats":   st.heartbeats.Load(),
	}
}

// config105 is the answer of type=config: 1.0.5's configuration fields,
// by 1.0.5's names and in its order (durations in nanoseconds, as 1.0.5's
// time.Duration fields marshal), filled from gopush's configuration, then
// gopush's own configuration, whose top-level names (Log, TCP, Channel,
// ...) differ from all of 1.0.5's. User, PidFile, Dir, BufioInstance and
// BufioNum are 1.0.5 settings gopush does not have: they are empty.
type config105 struct {
	User                    string
	PidFile                 string
	Dir                     string
	MaxProc                 int
	TCPBind                 []string
	WebsocketBind           []string
	RPCBind                 []string
	PprofBind               []string
	StatBind                []string
	ZookeeperAddr           []string
	ZookeeperTimeout        time.Duration
	ZookeeperCometPath      string
	ZookeeperCometNode      string
	ZookeeperMessagePath    string
	RPCPing                 time.Duration
	RPCRetry                time.Duration
	SndbufSize              int
	RcvbufSize              int
	Proto                   []string
	BufioInstance           int
	BufioNum                int
	TCPKeepalive            bool
	MaxSubscriberPerChannel int
	ChannelBucket           int
	Auth                    bool
	TokenExpire             time.Duration
	MsgBufNum               int
	*conf.Comet
}

func (x config105) fill() config105 {
	c := x.Comet
	ch := &c.Channel
	orEmpty := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	x.TCPBind = orEmpty(c.TCP.Bind)
	x.WebsocketBind = orEmpty(c.WebSocket.Bind)
	x.RPCBind = orEmpty(c.RPC.Bind)
	x.PprofBind = orEmpty(c.Pprof.Bind)
	x.StatBind = orEmpty(c.Stat.Bind)
	x.ZookeeperAddr = orEmpty(c.ZooKeeper.Addr)
	x.ZookeeperTimeout = c.ZooKeeper.Timeout.D()
	x.ZookeeperCometPath = c.ZooKeeper.Comet.Path
	x.ZookeeperCometNode = c.ZooKeeper.Comet.Node
	x.ZookeeperMessagePath = c.ZooKeeper.Message.Path
	x.RPCPing = c.RPC.Ping.D()
	x.RPCRetry = c.RPC.Retry.D()
	x.SndbufSize = ch.Sndbuf.Size
	x.RcvbufSize = ch.Rcvbuf.Size
	x.Proto = orEmpty(ch.Proto)
	x.TCPKeepalive = ch.TCP.Keepalive
	x.MaxSubscriberPerChannel = ch.MaxSubscriber
	x.ChannelBucket = ch.Bucket
	x.Auth = ch.Auth
	x.TokenExpire = ch.Token.Expire.D()
	x.MsgBufNum = ch.Msgbuf.Num
	return x
}
