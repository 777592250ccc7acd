package message

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/internal/testenv"
)

// gatedFlush is a group commit flush that records its batches, fails the
// entries whose key starts with "bad", and, while gated, holds each flush
// until the test lets it go.
type gatedFlush struct {
	mu      sync.Mutex
	batches [][]string // keys of each flush
	gate    chan struct{}
	entered chan struct{} // a flush began
}

func newGatedFlush() *gatedFlush {
	return &gatedFlush{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (f *gatedFlush) flush(_ context.Context, es []Entry, errs []error) {
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.Key
		if strings.HasPrefix(e.Key, "bad") {
			errs[i] = fmt.Errorf("refused %s", e.Key)
		}
	}
	f.mu.Lock()
	f.batches = append(f.batches, keys)
	f.mu.Unlock()
	f.entered <- struct{}{}
	<-f.gate
}

func (f *gatedFlush) open() { close(f.gate) }

func (f *gatedFlush) got() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.batches...)
}

func noWrap(err error) error { return err }

// queued waits until n callers wait behind the flush in flight.
func queued(t *testing.T, g *groupCommit, n int) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("%d saves queued", n), func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.queue) == n
	})
}

// Saves that arrive while a flush is in flight go out together in the
// next one, and each caller gets the outcome of its own entry: the one bad
// key fails, the others in its batch are stored.
func TestGroupCommitCoalescesAndAnswersEachCaller(t *testing.T) {
	f := newGatedFlush()
	g := newGroupCommit(100, noWrap, f.flush)
	ctx := context.Background()

	first := make(chan error, 1)
	go func() { first <- g.saveOne(ctx, Entry{Key: "k0"}) }()
	<-f.entered // k0 is in flight

	keys := []string{"k1", "bad2", "k3", "k4", "k5"}
	errs := make(map[string]error)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.saveOne(ctx, Entry{Key: k})
			mu.Lock()
			errs[k] = err
			mu.Unlock()
		}()
	}
	// and a batch save, in the same flush
	many := []Entry{{Key: "m1"}, {Key: "bad-m2"}, {Key: "m3"}}
	manyErrs := make([]error, len(many))
	wg.Add(1)
	go func() { defer wg.Done(); g.save(ctx, many, manyErrs) }()
	queued(t, g, len(keys)+1)
	f.open()
	wg.Wait()
	if err := <-first; err != nil {
		t.Errorf("k0: %v", err)
	}

	b := f.got()
	if len(b) != 2 || len(b[1]) != len(keys)+len(many) {
		t.Fatalf("flushes %v: want [k0] then the %d entries queued meanwhile in one", b, len(keys)+len(many))
	}
	for _, k := range keys {
		if bad := strings.HasPrefix(k, "bad"); (errs[k] != nil) != bad {
			t.Errorf("save of %s: %v (should fail: %v)", k, errs[k], bad)
		}
	}
	for i, e := range many {
		if bad := strings.HasPrefix(e.Key, "bad"); (manyErrs[i] != nil) != bad {
			t.Errorf("batch entry %s: %v (should fail: %v)", e.Key, manyErrs[i], bad)
		}
	}
	if errs["bad2"] == nil || errs["bad2"].Error() != "refused bad2" {
		t.Errorf("bad2 got %v, want its own error", errs["bad2"])
	}
}

// No flush carries more than storage.batch entries; a batch save larger
// than that is sent in pieces, and single saves queued meanwhile are not
// held up until its last piece.
func TestGroupCommitBoundsBatches(t *testing.T) {
	f := newGatedFlush()
	g := newGroupCommit(3, noWrap, f.flush)
	ctx := context.Background()
	go g.saveOne(ctx, Entry{Key: "first"})
	<-f.entered

	big := make([]Entry, 8)
	for i := range big {
		big[i] = Entry{Key: fmt.Sprintf("big%d", i)}
	}
	bigErrs := make([]error, len(big))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.save(ctx, big, bigErrs) }()
	queued(t, g, 1)
	wg.Add(1)
	go func() { defer wg.Done(); g.saveOne(ctx, Entry{Key: "single"}) }()
	queued(t, g, 2)
	f.open()
	wg.Wait()

	b := f.got()
	total, singleAt := 0, -1
	for i, keys := range b {
		if len(keys) > 3 {
			t.Errorf("flush %d carried %d entries, bound is 3: %v", i, len(keys), keys)
		}
		total += len(keys)
		for _, k := range keys {
			if k == "single" {
				singleAt = i
			}
		}
	}
	if total != 1+len(big)+1 {
		t.Errorf("flushed %d entries, want %d: %v", total, 2+len(big), b)
	}
	if singleAt < 0 || singleAt > 2 {
		t.Errorf("the single save went out in flush %d of %v, want right after the first piece of the big one", singleAt, b)
	}
	var order []string
	for _, keys := range b {
		for _, k := range keys {
			if strings.HasPrefix(k, "big") {
				order = append(order, k)
			}
		}
	}
	for i, k := range order {
		if k != fmt.Sprintf("big%d", i) {
			t.Fatalf("big batch flushed in order %v, want its own order", order)
		}
	}
	for i, err := range bigErrs {
		if err != nil {
			t.Errorf("big%d: %v", i, err)
		}
	}
}

// A save still queued when its caller's deadline passes is dropped: the
// caller gets the deadline error at its deadline, not after the flush in
// flight, and the entry is never sent.
func TestGroupCommitDropsSavesPastTheirDeadline(t *testing.T) {
	f := newGatedFlush()
	g := newGroupCommit(100, noWrap, f.flush)
	go g.saveOne(context.Background(), Entry{Key: "slow"})
	<-f.entered

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := g.saveOne(ctx, Entry{Key: "late"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queued save past its deadline: %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("it returned after %v, want at its deadline (50ms)", took)
	}
	// One whose caller gives up while it is queued in front of a caller
	// that stays.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	var wg sync.WaitGroup
	var keptErr, droppedErr error
	wg.Add(2)
	go func() { defer wg.Done(); droppedErr = g.saveOne(ctx2, Entry{Key: "late2"}) }()
	queued(t, g, 1)
	go func() { defer wg.Done(); keptErr = g.saveOne(context.Background(), Entry{Key: "kept"}) }()
	queued(t, g, 2)
	cancel2()
	queued(t, g, 1)
	f.open()
	wg.Wait()
	if !errors.Is(droppedErr, context.Canceled) || keptErr != nil {
		t.Errorf("late2: %v (want Canceled), kept: %v (want nil)", droppedErr, keptErr)
	}
	for _, keys := range f.got() {
		for _, k := range keys {
			if strings.HasPrefix(k, "late") {
				t.Errorf("%s was flushed after its deadline: %v", k, f.got())
			}
		}
	}
	// The lead passed on: the shard still saves.
	if err := g.saveOne(context.Background(), Entry{Key: "after"}); err != nil {
		t.Errorf("save after the drops: %v", err)
	}
}

// A batch save larger than storage.batch whose caller gives up between two
// pieces: the pieces already sent are answered with their outcome, the
// rest are not sent and fail with the caller's error.
func TestGroupCommitDropsTheRestOfABatchPastItsDeadline(t *testing.T) {
	f := newGatedFlush()
	g := newGroupCommit(2, noWrap, f.flush)
	go g.saveOne(context.Background(), Entry{Key: "first"})
	<-f.entered

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	big := make([]Entry, 6)
	for i := range big {
		big[i] = Entry{Key: fmt.Sprintf("big%d", i)}
	}
	bigErrs := make([]error, len(big))
	done := make(chan struct{})
	go func() { g.save(ctx, big, bigErrs); close(done) }()
	queued(t, g, 1)
	f.gate <- struct{}{} // "first" ends; the big save leads its first piece
	<-f.entered
	cancel()
	f.gate <- struct{}{}
	<-done
	for i, err := range bigErrs {
		if sent := i < 2; (err == nil) != sent {
			t.Errorf("big%d: %v (sent before the cancel: %v)", i, err, sent)
		}
		if i >= 2 && !errors.Is(err, context.Canceled) {
			t.Errorf("big%d: %v, want Canceled", i, err)
		}
	}
	if b := f.got(); len(b) != 2 || len(b[1]) != 2 {
		t.Errorf("flushes %v, want [first] and the first piece only", b)
	}
}

// After close, saves fail at once and say why.
func TestGroupCommitClosed(t *testing.T) {
	f := newGatedFlush()
	f.open()
	g := newGroupCommit(10, func(err error) error { return fmt.Errorf("shard x: %w", err) }, f.flush)
	g.close()
	if err := g.saveOne(context.Background(), Entry{Key: "k"}); !errors.Is(err, errStorageClosed) || !strings.Contains(err.Error(), "shard x") {
		t.Errorf("save after close: %v, want the shard's storage closed error", err)
	}
	if len(f.got()) != 0 {
		t.Errorf("flushed after close: %v", f.got())
	}
}

// Many callers at once on both backends, each key's saves in mid order as
// comet makes them (one at a time per key, many keys at once), single
// saves and batch saves mixed: every message is stored, each key reads
// back every mid in order, and every entry went through a flush once.
func TestGroupCommitConcurrentSaves(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			const keys, perKey = 40, 12
			cfg := b.cfg(t, perKey)
			st := openStorage(t, cfg)
			var flushes, entries countingFlushes
			countFlushes(st, &flushes, &entries)

			prefix := testenv.Unique(t)
			base := baseMid()
			exp := time.Now().Add(time.Hour).Unix()
			ctx := context.Background()
			var wg sync.WaitGroup
			errc := make(chan error, keys*perKey)
			for k := range keys {
				key := fmt.Sprintf("%s-%d", prefix, k)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range perKey {
						e := Entry{Key: key, MsgId: base + int64(j), Msg: []byte(fmt.Sprintf(`{"k":%d,"j":%d}`, k, j)), Expire: exp}
						var err error
						if j%3 == 2 {
							err = st.SaveMany(ctx, []Entry{e})[0]
						} else {
							err = st.Save(ctx, e)
						}
						if err != nil {
							errc <- fmt.Errorf("save %s/%d: %w", key, j, err)
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Error(err)
			}
			for k := range keys {
				key := fmt.Sprintf("%s-%d", prefix, k)
				msgs, err := st.Get(ctx, key, 0)
				if err != nil {
					t.Fatal(err)
				}
				want := make([]int64, perKey)
				for j := range want {
					want[j] = base + int64(j)
				}
				if !sameMids(msgs, want...) {
					t.Errorf("%s holds mids %v, want %v", key, mids(msgs), want)
				}
			}
			f, n := flushes.get(), entries.get()
			t.Logf("%d saves in %d flushes", n, f)
			if n != keys*perKey {
				t.Errorf("%d entries flushed, want %d", n, keys*perKey)
			}
		})
	}
}

// On Redis, one entry that the server refuses (its key holds a string,
// not a sorted set) fails that caller only; the saves flushed with it are
// stored.
func TestRedisGroupCommitOneBadEntry(t *testing.T) {
	t.Parallel()
	addr := testenv.Redis(t)
	cfg := redisConfig(map[string]string{"node1:1": addr}, 20)
	st := openStorage(t, cfg).(*RedisStorage)
	prefix := testenv.Unique(t)
	bad := prefix + "-string"
	c, err := redis.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("SET", bad, "not a set", "EX", 60); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Do("DEL", bad) })

	// Hold the shard's flushes until every save has queued, so that they
	// share one.
	s := st.shards["node1"]
	real := s.saves.flush
	gate := make(chan struct{})
	s.saves.flush = func(ctx context.Context, es []Entry, errs []error) {
		<-gate
		real(ctx, es, errs)
	}
	exp := time.Now().Add(time.Hour).Unix()
	base := baseMid()
	keys := []string{prefix + "-a", bad, prefix + "-b", prefix + "-c"}
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	go st.Save(context.Background(), Entry{Key: prefix + "-first", MsgId: base, Msg: []byte(`0`), Expire: exp})
	testenv.WaitFor(t, 5*time.Second, "the first flush", func() bool {
		s.saves.mu.Lock()
		defer s.saves.mu.Unlock()
		return s.saves.leading && len(s.saves.queue) == 0
	})
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.Save(context.Background(), Entry{Key: k, MsgId: base + 1, Msg: []byte(`1`), Expire: exp})
		}()
	}
	queued(t, s.saves, len(keys))
	close(gate)
	wg.Wait()
	for i, k := range keys {
		if k == bad {
			if errs[i] == nil || !strings.Contains(errs[i].Error(), "WRONGTYPE") {
				t.Errorf("save to a string key: %v, want WRONGTYPE", errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("save of %s, flushed with the bad one: %v", k, errs[i])
		}
		if msgs, err := st.Get(context.Background(), k, 0); err != nil || !sameMids(msgs, base+1) {
			t.Errorf("%s holds %v (%v), want its message", k, mids(msgs), err)
		}
	}
}

type countingFlushes struct {
	mu sync.Mutex
	n  int
}

func (c *countingFlushes) add(n int) { c.mu.Lock(); c.n += n; c.mu.Unlock() }
func (c *countingFlushes) get() int  { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// countFlushes counts the flushes and the entries they carry on every shard
// of st.
func countFlushes(st Storage, flushes, entries *countingFlushes) {
	var groups []*groupCommit
	switch s := st.(type) {
	case *RedisStorage:
		for _, sh := range s.shards {
			groups = append(groups, sh.saves)
		}
	case *MySQLStorage:
		for _, sh := range s.shards {
			groups = append(groups, sh.saves)
		}
	}
	for _, g := range groups {
		real := g.flush
		g.flush = func(ctx context.Context, es []Entry, errs []error) {
			flushes.add(1)
			entries.add(len(es))
			real(ctx, es, errs)
		}
	}
}
