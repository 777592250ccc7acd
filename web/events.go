package web

import (
	"sync"
	"time"
)

// Event kinds shown on the cluster dashboard.
const (
	eventPrune     = "prune"
	eventMigration = "migration"
	eventZooKeeper = "zookeeper"
	eventComet     = "comet"
)

// event is one thing that happened to the cluster, as this web saw it.
type event struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	Text string    `json:"text"`
}

// maxEvents is how many recent events are kept.
const maxEvents = 100

// events keeps the most recent events, oldest first. A nil *events drops
// everything, so that parts built without one (tests) need no check.
type events struct {
	mu   sync.Mutex
	list []event
	now  func() time.Time
}

func newEvents() *events { return &events{now: time.Now} }

func (e *events) add(kind, text string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) == maxEvents {
		copy(e.list, e.list[1:])
		e.list = e.list[:maxEvents-1]
	}
	e.list = append(e.list, event{Time: e.now(), Kind: kind, Text: text})
}

// recent returns a copy of the events, newest first.
func (e *events) recent() []event {
	if e == nil {
		return []event{}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]event, len(e.list))
	for i, ev := range e.list {
		out[len(out)-1-i] = ev
	}
	return out
}
