package groupcommit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// req is a test group's request: its caller wants id doubled.
type req struct {
	Waiter
	id  int
	out int
}

// group is the smallest group commit: a leader takes the whole queue and
// answers every request in it.
type group struct {
	mu      sync.Mutex
	queue   []*req
	leading bool
	// send, when set, is called by the leader with the batch it took, mu
	// not held.
	send func(batch []*req)
}

// do queues r and returns its answer, or ctx's error when its caller
// stopped waiting first.
func (g *group) do(ctx context.Context, r *req) (int, error) {
	g.mu.Lock()
	g.queue = append(g.queue, r)
	if g.leading {
		if !Wait(ctx, &g.mu, &g.queue, r) {
			if r.Gone() {
				return 0, ctx.Err()
			}
			return r.out, nil
		}
	} else {
		g.leading = true
	}
	for !r.Done() {
		batch := g.queue
		g.queue = nil
		g.mu.Unlock()
		if g.send != nil {
			g.send(batch)
		}
		g.mu.Lock()
		for _, q := range batch {
			if !q.Gone() {
				q.out = 2 * q.id
				q.Answer()
			}
		}
	}
	g.leading = HandOff(g.queue)
	g.mu.Unlock()
	return r.out, nil
}

// queued waits until n requests are queued.
func (g *group) queued(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		g.mu.Lock()
		got := len(g.queue)
		g.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// follow queues r behind the group's leader and waits in a goroutine; the
// channel gets Wait's answer (when true, mu is held for the test).
func (g *group) follow(ctx context.Context, r *req) <-chan bool {
	led := make(chan bool)
	go func() {
		g.mu.Lock()
		g.queue = append(g.queue, r)
		led <- Wait(ctx, &g.mu, &g.queue, r)
	}()
	return led
}

// oneFollower is a group with a leader (that the test plays) and one
// caller queued, waiting, whose context ends with cancel.
func oneFollower(t *testing.T) (g *group, r *req, cancel context.CancelFunc, led <-chan bool) {
	g = &group{leading: true}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r = &req{id: 1}
	led = g.follow(ctx, r)
	g.queued(t, 1)
	return g, r, cancel, led
}

type result struct {
	out int
	err error
}

func (g *group) start(ctx context.Context, r *req) <-chan result {
	c := make(chan result, 1)
	go func() {
		out, err := g.do(ctx, r)
		c <- result{out, err}
	}()
	return c
}

// A caller arriving while another leads waits, is carried by the next
// batch, and gets its own answer; the lead ends when the queue is empty.
func TestFollowerCarriedByNextBatch(t *testing.T) {
	inFlight, release := make(chan struct{}), make(chan struct{})
	g := &group{}
	var batches [][]int
	g.send = func(batch []*req) {
		ids := []int{}
		for _, q := range batch {
			ids = append(ids, q.id)
		}
		batches = append(batches, ids) // one leader at a time
		if len(batches) == 1 {
			close(inFlight)
			<-release
		}
	}
	first := g.start(context.Background(), &req{id: 1})
	<-inFlight
	second := g.start(context.Background(), &req{id: 2})
	third := g.start(context.Background(), &req{id: 3})
	g.queued(t, 2)
	close(release)
	for i, c := range []<-chan result{first, second, third} {
		if r := <-c; r.err != nil || r.out != 2*(i+1) {
			t.Errorf("caller %d got %d, %v; want %d", i+1, r.out, r.err, 2*(i+1))
		}
	}
	if len(batches) != 2 || len(batches[0]) != 1 || len(batches[1]) != 2 {
		t.Errorf("batches %v, want [[1] [2 3]]: the callers queued during the first go together in the second", batches)
	}
	if g.leading {
		t.Error("still leading with nothing queued")
	}
}

// The lead goes to the first caller queued: a caller the leader did not
// carry takes it and sends its own request.
func TestHandOffToFirstQueued(t *testing.T) {
	g := &group{}
	leader := &req{id: 1}
	g.mu.Lock()
	g.queue = append(g.queue, leader)
	g.leading = true
	g.mu.Unlock()

	follower := &req{id: 2}
	led := g.follow(context.Background(), follower)
	g.queued(t, 2)

	g.mu.Lock()
	g.queue = g.queue[1:] // the leader sends only itself
	leader.Answer()
	g.leading = HandOff(g.queue)
	g.mu.Unlock()
	if !g.leading {
		t.Fatal("HandOff with a caller queued: nobody leads")
	}
	if !<-led {
		t.Fatal("the first caller queued was not handed the lead")
	}
	// Wait returned with mu held: the new leader sends and hands off.
	g.queue = nil
	follower.Answer()
	g.leading = HandOff(g.queue)
	g.mu.Unlock()
	if g.leading {
		t.Error("HandOff with an empty queue: still leading")
	}
	if follower.Gone() {
		t.Error("the new leader is gone")
	}
}

// A queued caller whose context ends leaves the queue at once, is not
// sent, and is answered with its context's error.
func TestQueuedCallerLeavesWhenContextEnds(t *testing.T) {
	inFlight, release := make(chan struct{}), make(chan struct{})
	g := &group{}
	var sent []int
	g.send = func(batch []*req) {
		for _, q := range batch {
			sent = append(sent, q.id)
		}
		if len(sent) == 1 {
			close(inFlight)
			<-release
		}
	}
	first := g.start(context.Background(), &req{id: 1})
	<-inFlight
	ctx, cancel := context.WithCancel(context.Background())
	gone := &req{id: 2}
	second := g.start(ctx, gone)
	g.queued(t, 1)
	cancel()
	if r := <-second; !errors.Is(r.err, context.Canceled) {
		t.Errorf("a caller that gave up while queued got %d, %v; want its context's error", r.out, r.err)
	}
	g.queued(t, 0)
	close(release)
	if r := <-first; r.err != nil || r.out != 2 {
		t.Errorf("leader got %d, %v", r.out, r.err)
	}
	if len(sent) != 1 {
		t.Errorf("sent %v: the caller that left was sent", sent)
	}
	if !gone.Gone() || gone.Done() {
		t.Error("a caller that left is not gone, or was answered")
	}
}

// A caller handed the lead as its context ended still takes it (so the
// requests queued behind it are not stranded).
func TestLeadHandedAfterContextEnded(t *testing.T) {
	g, r, cancel, led := oneFollower(t)
	g.mu.Lock()
	cancel() // the context ends and the lead comes at once: Wait sees both
	g.leading = HandOff(g.queue)
	g.mu.Unlock()
	if !<-led {
		t.Fatal("a caller handed the lead as its context ended did not take it")
	}
	if r.Gone() || len(g.queue) != 1 {
		t.Error("the new leader left the queue")
	}
	g.mu.Unlock()
}

// A held request (part of it in flight) keeps its caller waiting after its
// context ends, until it is answered.
func TestHeldCallerWaitsForItsAnswer(t *testing.T) {
	g, r, cancel, led := oneFollower(t)
	g.mu.Lock()
	g.queue = nil // taken into the leader's batch
	r.Hold()
	g.mu.Unlock()
	cancel()
	select {
	case <-led:
		t.Fatal("a held caller stopped waiting when its context ended")
	case <-time.After(20 * time.Millisecond):
	}
	g.mu.Lock()
	r.out = 2
	r.Answer()
	g.mu.Unlock()
	if <-led {
		t.Fatal("an answered caller was handed the lead")
	}
	if r.Gone() || r.out != 2 {
		t.Error("a held caller lost its answer")
	}
}

// Many callers at once: each gets its own answer exactly once, and the
// group ends idle.
func TestManyCallers(t *testing.T) {
	g := &group{send: func([]*req) { time.Sleep(50 * time.Microsecond) }}
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%7 == 0 { // some give up early
				c, cancel := context.WithTimeout(ctx, time.Duration(i%3)*50*time.Microsecond)
				defer cancel()
				ctx = c
			}
			out, err := g.do(ctx, &req{id: i})
			if err == nil && out != 2*i {
				errs <- errors.New("wrong answer")
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if g.leading || len(g.queue) != 0 {
		t.Errorf("after all callers returned: leading %v, %d queued", g.leading, len(g.queue))
	}
}
