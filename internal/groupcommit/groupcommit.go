// Package groupcommit is the leader hand-off shared by gopush's group
// commits (comet's saveGroup, web's pushGroup, message's groupCommit).
//
// A group commit has no goroutine and no timer. Its state is a mutex, a
// queue of requests in order of arrival and a leading flag, all owned by
// the group. A caller queues its request under the mutex; if no caller is
// leading, it leads at once: it takes what is queued (its own request
// first), sends it with the mutex released, answers the requests it
// carried, and goes on until its own request is answered. A caller that
// finds a leader queues its request and waits (Wait) until its request is
// answered or the lead is handed to it. When the leader is done it hands
// the lead to the first request still queued (HandOff), whose caller then
// sends everything queued meanwhile. So at most one send of a group is in
// flight, and a batch is whatever arrived during the previous one.
//
// A waiting caller whose context ends leaves the queue and stops waiting
// (its request is gone: whoever sends the batch it was in drops its
// answer), unless the lead was handed to it or it was answered (it takes
// those), or its request is held (Hold: part of it is in flight and its
// answer will be written into memory the caller owns, so the caller waits
// for it).
//
// What goes into a batch, which deadline bounds it and how outcomes map
// to callers is each group's own.
package groupcommit

import (
	"context"
	"slices"
	"sync"
)

// Waiter is the protocol's state of one request; a group's request type
// embeds it. Its fields are guarded by the group's mutex.
type Waiter struct {
	// wake is signalled (never blocking: it holds one) when the request
	// is answered or the lead is handed to its caller. Made by Wait: a
	// caller that leads at once never waits, and signalling it is a no-op.
	wake chan struct{}
	lead bool // the lead was handed to this caller
	done bool // answered
	gone bool // the caller stopped waiting; its answer is dropped
	held bool // part of it is in flight: its caller may not leave
}

func (w *Waiter) waiter() *Waiter { return w }

// Request is a pointer to a group's request type, which embeds Waiter.
type Request interface {
	comparable
	waiter() *Waiter
}

// Answer marks the request answered and wakes its caller. The group's
// mutex is held; the group has written the outcome into the request first.
func (w *Waiter) Answer() {
	w.done = true
	w.signal()
}

// Done reports whether the request was answered. The group's mutex is
// held (or the caller is the request's own, after Wait).
func (w *Waiter) Done() bool { return w.done }

// Gone reports whether the request's caller stopped waiting, so that its
// answer is dropped. The group's mutex is held (or the caller is the
// request's own, after Wait).
func (w *Waiter) Gone() bool { return w.gone }

// Hold keeps the request's caller waiting for its answer even when its
// context ends. The group's mutex is held.
func (w *Waiter) Hold() { w.held = true }

func (w *Waiter) signal() {
	select {
	case w.wake <- struct{}{}: // a nil wake (never waited) is never ready
	default:
	}
}

// Wait is called by a caller that queued r in *queue while another led,
// with mu held; it releases mu and waits. It returns true, with mu held,
// when the lead is handed to r; false, with mu not held, when r was
// answered or when ctx ended first and r left the queue (r.Gone() tells
// which; a gone request is never answered).
func Wait[R Request](ctx context.Context, mu *sync.Mutex, queue *[]R, r R) bool {
	w := r.waiter()
	w.wake = make(chan struct{}, 1)
	mu.Unlock()
	done := ctx.Done()
	for {
		select {
		case <-w.wake:
		case <-done:
			done = nil
			mu.Lock()
			if w.lead || w.done || w.held {
				mu.Unlock()
				continue // the wake is there (take the lead or the answer) or will be
			}
			*queue = Remove(*queue, r)
			w.gone = true
			mu.Unlock()
			return false
		}
		mu.Lock()
		if w.lead {
			w.lead = false
			return true
		}
		answered := w.done
		mu.Unlock()
		if answered {
			return false
		}
	}
}

// HandOff ends a caller's lead, with the group's mutex held: it hands the
// lead to the first request queued and wakes its caller. It returns
// whether a caller leads now (false: the queue is empty).
func HandOff[R Request](queue []R) (leading bool) {
	if len(queue) == 0 {
		return false
	}
	w := queue[0].waiter()
	w.lead = true
	w.signal()
	return true
}

// Remove returns queue without r (as it is when r is not in it).
func Remove[R comparable](queue []R, r R) []R {
	if i := slices.Index(queue, r); i >= 0 {
		queue = slices.Delete(queue, i, i+1)
	}
	return queue
}
