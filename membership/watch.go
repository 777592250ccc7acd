package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"time"

	"github.com/go-zookeeper/zk"
)

// Shared machinery of the comet and message watchers.

// watchSet waits for the first of several go-zookeeper watch channels.
type watchSet struct {
	keys  []string // "" is the root watch; otherwise a node name
	cases []reflect.SelectCase
}

func (w *watchSet) add(key string, ch <-chan zk.Event) {
	if ch == nil {
		return
	}
	w.keys = append(w.keys, key)
	w.cases = append(w.cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
}

// wait returns the key whose watch fired and its event; ok is false when
// ctx ended first.
func (w *watchSet) wait(ctx context.Context) (key string, ev zk.Event, ok bool) {
	cases := append([]reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}, w.cases...)
	i, v, recvOK := reflect.Select(cases)
	if i == 0 {
		return "", zk.Event{}, false
	}
	if recvOK {
		ev = v.Interface().(zk.Event)
	} else {
		ev = zk.Event{Type: zk.EventNotWatching}
	}
	return w.keys[i-1], ev, true
}

// dataCache remembers the decoded data of children, so that a change of one
// child does not re-read its siblings, and bad data is logged once.
type dataCache[T any] struct {
	good map[string]T
	bad  map[string]bool
}

func newDataCache[T any]() *dataCache[T] {
	return &dataCache[T]{good: make(map[string]T), bad: make(map[string]bool)}
}

// read returns the data of path/child for each child, in the children's
// order, skipping children with bad data and children that are gone. check
// validates decoded data.
func (c *dataCache[T]) read(conn *zk.Conn, path string, children []string, check func(*T) error, log *slog.Logger) ([]string, []T, error) {
	keep := make(map[string]bool, len(children))
	var names []string
	var datas []T
	for _, child := range children {
		keep[child] = true
		if d, ok := c.good[child]; ok {
			names, datas = append(names, child), append(datas, d)
			continue
		}
		if c.bad[child] {
			continue
		}
		raw, _, err := conn.Get(path + "/" + child)
		if errors.Is(err, zk.ErrNoNode) {
			continue // gone meanwhile; the parent's watch will tell
		}
		if err != nil {
			return nil, nil, fmt.Errorf("get %s/%s: %w", path, child, err)
		}
		var d T
		err = json.Unmarshal(raw, &d)
		if err == nil {
			err = check(&d)
		}
		if err != nil {
			log.Warn("zookeeper: ignoring node with bad data", "zk_node", path+"/"+child, "data", string(raw), "err", err)
			c.bad[child] = true
			continue
		}
		c.good[child] = d
		names, datas = append(names, child), append(datas, d)
	}
	for child := range c.good {
		if !keep[child] {
			delete(c.good, child)
		}
	}
	for child := range c.bad {
		if !keep[child] {
			delete(c.bad, child)
		}
	}
	return names, datas, nil
}

// backoff is the wait between failed attempts of a loop.
type backoff struct{ d time.Duration }

func (b *backoff) reset() { b.d = 0 }

// sleep waits the next backoff step; false if ctx ended.
func (b *backoff) sleep(ctx context.Context) bool {
	if b.d == 0 {
		b.d = minBackoff
	} else {
		b.d = min(2*b.d, maxBackoff)
	}
	return sleepCtx(ctx, b.d)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
