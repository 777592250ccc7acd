package comet

import (
	"encoding/json"
	"gopush/api"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// stats are comet's counters. Each is an atomic, so updating one never takes
// a lock shared by all connections.
type stats struct {
	start time.Time

	tcpConns      atomic.Int64 // open TCP connections (subscribed or in handshake)
	wsConns       atomic.Int64 // open WebSocket connections
	tcpAccepted   atomic.Int64 // TCP connections accepted since start
	wsAccepted    atomic.Int64 // WebSocket connections upgraded since start
	subscribed    atomic.Int64 // connections currently in a channel
	refused       atomic.Int64 // handshakes answered with an error reply
	channels      atomic.Int64 // channels (keys) in memory
	pushed        atomic.Int64 // messages pushed to a key (one per key)
	pushFailed    atomic.Int64 // pushes that failed (storage failure)
	stored        atomic.Int64 // messages stored through MessageRPC
	framesQueued  atomic.Int64 // message frames queued to connections
	framesWritten atomic.Int64 // frames (messages and replies) written
	slowClosed    atomic.Int64 // connections closed because their queue was full
	heartbeats    atomic.Int64 // heartbeats answered
}

// statResponse is the JSON of every /stat answer: ret 0 and data, or an
// error code (65534: unknown type or missing parameter).
type statResponse struct {
	Ret  int `json:"ret"`
	Data any `json:"data,omitempty"`
}

// statHandler serves GET /stat?type=server|golang|memory|config|channel|message|connection
// (docs/protocol.md §8).
func (c *Comet) statHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var data any
	q := r.URL.Query()
	st := c.stats
	switch q.Get("type") {
	case "server":
		host, _ := os.Hostname()
		data = map[string]any{
			"node":       c.cfg.ZooKeeper.Comet.Node,
			"pid":        os.Getpid(),
			"host":       host,
			"start_time": st.start.Unix(),
			"uptime":     int64(time.Since(st.start).Seconds()),
			"ring":       c.ring.weights(),
		}
	case "golang":
		data = map[string]any{
			"version":    runtime.Version(),
			"goroutines": runtime.NumGoroutine(),
			"gomaxprocs": runtime.GOMAXPROCS(0),
			"numcpu":     runtime.NumCPU(),
			"os":         runtime.GOOS,
			"arch":       runtime.GOARCH,
		}
	case "memory":
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		data = map[string]any{
			"alloc":       m.Alloc,
			"total_alloc": m.TotalAlloc,
			"sys":         m.Sys,
			"heap_alloc":  m.HeapAlloc,
			"heap_inuse":  m.HeapInuse,
			"heap_sys":    m.HeapSys,
			"heap_objs":   m.HeapObjects,
			"stack_inuse": m.StackInuse,
			"stack_sys":   m.StackSys,
			"mallocs":     m.Mallocs,
			"frees":       m.Frees,
			"num_gc":      m.NumGC,
			"pause_total": m.PauseTotalNs,
		}
	case "config":
		data = c.cfg
	case "channel":
		if key := q.Get("key"); key != "" {
			data = map[string]any{"key": key, "connections": c.hub.count(key)}
		} else {
			data = map[string]any{"channels": st.channels.Load(), "buckets": len(c.hub.buckets)}
		}
	case "message":
		data = map[string]any{
			"pushed":         st.pushed.Load(),
			"push_failed":    st.pushFailed.Load(),
			"stored":         st.stored.Load(),
			"frames_queued":  st.framesQueued.Load(),
			"frames_written": st.framesWritten.Load(),
		}
	case "connection":
		tcp, ws := st.tcpConns.Load(), st.wsConns.Load()
		data = map[string]any{
			"tcp":          tcp,
			"websocket":    ws,
			"total":        tcp + ws,
			"subscribed":   st.subscribed.Load(),
			"tcp_accepted": st.tcpAccepted.Load(),
			"ws_accepted":  st.wsAccepted.Load(),
			"refused":      st.refused.Load(),
			"slow_closed":  st.slowClosed.Load(),
			"heartbeats":   st.heartbeats.Load(),
		}
	default:
		writeStat(w, r, statResponse{Ret: api.CodeParamErr})
		return
	}
	writeStat(w, r, statResponse{Ret: 0, Data: data})
}

func writeStat(w http.ResponseWriter, r *http.Request, resp statResponse) {
	b, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}
