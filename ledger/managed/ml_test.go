package managed_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger/managed"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// entry i's data: publish time (8 bytes) then a deterministic body.
func data(i int, publish int64) []byte {
	b := make([]byte, 8, 8+64)
	binary.BigEndian.PutUint64(b, uint64(publish))
	return append(b, fmt.Sprintf("entry-%06d-%s", i, bytes.Repeat([]byte{byte(i)}, i%50))...)
}

func publishTime(d []byte) (int64, error) {
	if len(d) < 8 {
		return 0, errors.New("short entry")
	}
	return int64(binary.BigEndian.Uint64(d)), nil
}

type env struct {
	c    *testcluster.Cluster
	opts managed.Options
}

func newEnv(t testing.TB, bookies int, adjust func(*managed.Options)) *env {
	c := testcluster.New(t, testcluster.Config{Bookies: bookies})
	o := managed.Options{
		Ledgers: c.LedgerClient(), Metadata: c.Store, Logger: c.Log,
		MaxEntriesPerLedger: 1000, PublishTime: publishTime,
		CursorPersistInterval: time.Hour, TrimInterval: time.Hour,
	}
	if adjust != nil {
		adjust(&o)
	}
	return &env{c: c, opts: o}
}

func (e *env) open(t testing.TB, name string) *managed.ManagedLedger {
	t.Helper()
	ml, err := managed.Open(ctxT(t, time.Minute), name, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Close(context.Background()) })
	return ml
}

// appendAll appends n entries asynchronously from index from and returns
// their positions in callback order.
func appendAll(t testing.TB, ml *managed.ManagedLedger, from, n int) []managed.Position {
	t.Helper()
	var mu sync.Mutex
	var pos []managed.Position
	var wg sync.WaitGroup
	wg.Add(n)
	for i := from; i < from+n; i++ {
		ml.AppendAsync(data(i, int64(1000+i)), int64(1000+i), func(p managed.Position, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("append: %v", err)
				return
			}
			mu.Lock()
			pos = append(pos, p)
			mu.Unlock()
		})
	}
	wg.Wait()
	return pos
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mustCursor opens (or creates) a durable cursor.
func mustCursor(t testing.TB, ml *managed.ManagedLedger, name string, initial managed.InitialPosition) *managed.Cursor {
	t.Helper()
	c, err := ml.OpenCursor(ctxT(t, time.Minute), name, initial)
	must(t, err)
	return c
}

func readAll(t testing.TB, c *managed.Cursor) []managed.Entry {
	t.Helper()
	var out []managed.Entry
	for {
		es, err := c.Read(ctxT(t, time.Minute), 500, 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return out
		}
		out = append(out, es...)
	}
}

func TestAppendAcrossRolloversAndReopen(t *testing.T) {
	e := newEnv(t, 2, func(o *managed.Options) {
		o.MaxEntriesPerLedger = 1500
		o.EnsembleSize, o.WriteQuorum, o.AckQuorum = 2, 2, 2
	})
	ml := e.open(t, "public/default/roll")
	const n = 20000
	pos := appendAll(t, ml, 0, n)
	ledgers := map[int64]bool{}
	for i := 1; i < len(pos); i++ {
		if !pos[i-1].Less(pos[i]) {
			t.Fatalf("positions not increasing: %v then %v", pos[i-1], pos[i])
		}
		ledgers[pos[i].LedgerID] = true
	}
	if len(ledgers) < 11 {
		t.Fatalf("%d ledgers used, want >= 11 (>= 10 rollovers)", len(ledgers))
	}
	if err := ml.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	ml2 := e.open(t, "public/default/roll")
	c, err := ml2.OpenCursor(ctxT(t, time.Minute), "s", managed.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, c)
	if len(got) != n {
		t.Fatalf("read %d entries after reopen, want %d", len(got), n)
	}
	for i, en := range got {
		if en.Position != pos[i] || !bytes.Equal(en.Data, data(i, int64(1000+i))) {
			t.Fatalf("entry %d: position %v (want %v), data equal %v", i, en.Position, pos[i], bytes.Equal(en.Data, data(i, int64(1000+i))))
		}
	}
	st := ml2.Stats()
	if st.Entries != n || st.LastConfirmed != pos[n-1] {
		t.Fatalf("stats: %d entries, last %v", st.Entries, st.LastConfirmed)
	}
	// New appends go to a fresh ledger after every old one.
	p, err := ml2.Append(ctxT(t, time.Minute), data(n, 1), 1)
	if err != nil || !pos[n-1].Less(p) || p.LedgerID == pos[n-1].LedgerID {
		t.Fatalf("append after reopen at %v (err %v), last before %v", p, err, pos[n-1])
	}
}

// TestSecondOwnerFencesFirst: the owner is dropped without closing while it
// appends; a second owner opens the log. Every acknowledged position stays
// readable, the first owner's later appends fail with ErrFenced, and no
// position is reused.
func TestSecondOwnerFencesFirst(t *testing.T) {
	e := newEnv(t, 3, func(o *managed.Options) {
		o.EnsembleSize, o.WriteQuorum, o.AckQuorum = 3, 3, 2
		o.MaxEntriesPerLedger = 700
	})
	a := e.open(t, "public/default/fence")
	var mu sync.Mutex
	acked := map[managed.Position]int{}
	var fenced bool
	stop := make(chan struct{})
	done := make(chan struct{})
	var all sync.WaitGroup // every callback, so none runs after the test
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var wg sync.WaitGroup
			wg.Add(1)
			all.Add(1)
			a.AppendAsync(data(i, int64(i)), int64(i), func(p managed.Position, err error) {
				defer all.Done()
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					if fenced {
						t.Errorf("append acknowledged at %v after the first owner saw ErrFenced", p)
					}
					acked[p] = i
				case errors.Is(err, managed.ErrFenced):
					fenced = true
				default:
					t.Errorf("append %d: %v", i, err)
				}
			})
			if i%50 == 0 {
				wg.Wait()
			}
		}
	}()
	testutil.WaitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 2000 {
			return fmt.Errorf("%d acked", len(acked))
		}
		return nil
	})
	b := e.open(t, "public/default/fence")
	testutil.WaitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !fenced {
			return errors.New("first owner not fenced yet")
		}
		return nil
	})
	close(stop)
	<-done
	all.Wait()
	if _, err := a.Append(ctxT(t, time.Minute), []byte("late"), 1); !errors.Is(err, managed.ErrFenced) {
		t.Fatalf("first owner's append after takeover: %v, want ErrFenced", err)
	}
	c, err := b.OpenCursor(ctxT(t, time.Minute), "check", managed.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	got := map[managed.Position][]byte{}
	for _, en := range readAll(t, c) {
		got[en.Position] = en.Data
	}
	mu.Lock()
	defer mu.Unlock()
	for p, i := range acked {
		if d, ok := got[p]; !ok || !bytes.Equal(d, data(i, int64(i))) {
			t.Fatalf("acknowledged entry %d at %v lost after takeover (present %v)", i, p, ok)
		}
	}
	var maxAcked managed.Position
	for p := range acked {
		if maxAcked.Less(p) {
			maxAcked = p
		}
	}
	p, err := b.Append(ctxT(t, time.Minute), []byte("new owner"), 1)
	if err != nil || !maxAcked.Less(p) {
		t.Fatalf("second owner appended at %v (err %v); first owner's last ack %v: position reused", p, err, maxAcked)
	}
}

func TestTerminate(t *testing.T) {
	e := newEnv(t, 1, nil)
	ml := e.open(t, "public/default/term")
	pos := appendAll(t, ml, 0, 10)
	last, err := ml.Terminate(ctxT(t, time.Minute))
	if err != nil || last != pos[9] {
		t.Fatalf("terminate: %v %v, want %v", last, err, pos[9])
	}
	if _, err := ml.Append(ctxT(t, time.Minute), []byte("x"), 1); !errors.Is(err, managed.ErrTerminated) {
		t.Fatalf("append after terminate: %v", err)
	}
	ml.Close(ctxT(t, time.Minute))
	ml2 := e.open(t, "public/default/term")
	if !ml2.IsTerminated() {
		t.Fatal("terminated state lost on reopen")
	}
	if _, err := ml2.Append(ctxT(t, time.Minute), []byte("x"), 1); !errors.Is(err, managed.ErrTerminated) {
		t.Fatalf("append after reopen of terminated log: %v", err)
	}
	c, _ := ml2.OpenCursor(ctxT(t, time.Minute), "s", managed.Earliest)
	if n := len(readAll(t, c)); n != 10 {
		t.Fatalf("terminated log holds %d entries, want 10", n)
	}
}

func TestCacheServesTailAndEvictsBehindReaders(t *testing.T) {
	e := newEnv(t, 1, func(o *managed.Options) { o.CacheMaxBytes = 1 << 20 })
	ml := e.open(t, "public/default/cache")
	c, _ := ml.OpenCursor(ctxT(t, time.Minute), "tail", managed.Latest)
	appendAll(t, ml, 0, 100)
	before := ml.Stats().Cache
	if before.Entries != 100 {
		t.Fatalf("cache holds %d entries after 100 appends, want 100", before.Entries)
	}
	es, err := c.Read(ctxT(t, time.Minute), 60, 8<<20)
	if err != nil || len(es) != 60 {
		t.Fatalf("read %d, %v", len(es), err)
	}
	after := ml.Stats().Cache
	if after.Hits <= before.Hits || after.Entries != 40 {
		t.Fatalf("cache after tail read: %+v (before %+v); want hits and 40 entries left behind the reader", after, before)
	}
	// A slower second reader keeps entries cached.
	slow := ml.NewNonDurableCursor(ml.FirstPosition())
	c.Read(ctxT(t, time.Minute), 40, 8<<20)
	if n := ml.Stats().Cache.Entries; n != 40 {
		t.Fatalf("cache dropped entries a slower reader still needs: %d left", n)
	}
	slow.Close()
	// Bounded in bytes.
	big := make([]byte, 100<<10)
	for i := 0; i < 30; i++ {
		ml.Append(ctxT(t, time.Minute), big, 1)
	}
	if b := ml.Stats().Cache.Bytes; b > 1<<20 {
		t.Fatalf("cache holds %d bytes, over its 1 MiB bound", b)
	}
}

func TestAckUnknownPosition(t *testing.T) {
	e := newEnv(t, 1, nil)
	ml := e.open(t, "public/default/bad")
	c := mustCursor(t, ml, "s", managed.Earliest)
	pos := appendAll(t, ml, 0, 5)
	for _, p := range []managed.Position{{pos[4].LedgerID, 99}, {pos[4].LedgerID + 100, 0}, {pos[4].LedgerID, -3}} {
		if err := c.Ack(p); !errors.Is(err, managed.ErrInvalidPosition) {
			t.Errorf("ack %v: %v, want ErrInvalidPosition", p, err)
		}
		if err := c.AckCumulative(p); !errors.Is(err, managed.ErrInvalidPosition) && p.EntryID >= 0 {
			t.Errorf("cumulative ack %v: %v, want ErrInvalidPosition", p, err)
		}
	}
	if c.Backlog() != 5 {
		t.Fatalf("backlog %d after rejected acks, want 5", c.Backlog())
	}
}

// TestConcurrentAppendsAcksReads runs appends, acks, reads and rollovers
// from many goroutines (meant for -race).
func TestConcurrentAppendsAcksReads(t *testing.T) {
	e := newEnv(t, 2, func(o *managed.Options) { o.MaxEntriesPerLedger = 97; o.CursorPersistInterval = 20 * time.Millisecond })
	ml := e.open(t, "public/default/conc")
	ctx := ctxT(t, 2*time.Minute)
	const writers, per = 4, 500
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if _, err := ml.Append(ctx, data(w*per+i, 1), 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for r := 0; r < 3; r++ {
		c, err := ml.OpenCursor(ctx, fmt.Sprint("sub", r), managed.Earliest)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := 0
			deadline := time.Now().Add(time.Minute)
			for seen < writers*per && time.Now().Before(deadline) {
				es, err := c.Read(ctx, 50, 1<<20)
				if err != nil {
					t.Error(err)
					return
				}
				for i, en := range es {
					ack := c.Ack
					if (i+r)%2 != 0 {
						ack = func(ps ...managed.Position) error { return c.AckCumulative(ps[0]) }
					}
					if err := ack(en.Position); err != nil {
						t.Error(err)
						return
					}
				}
				seen += len(es)
				if len(es) == 0 {
					select {
					case <-ml.Wait():
					case <-time.After(50 * time.Millisecond):
					}
				}
				// Stats and backlog race with everything else here (-race).
				if b, st := c.Backlog(), ml.Stats(); b < 0 || b > st.Entries {
					t.Errorf("backlog %d of %d entries", b, st.Entries)
					return
				}
			}
			if seen != writers*per {
				t.Errorf("reader %d saw %d entries, want %d", r, seen, writers*per)
			}
		}()
	}
	wg.Wait()
	for r := 0; r < 3; r++ {
		c, _ := ml.Cursor(fmt.Sprint("sub", r))
		if b := c.Backlog(); b != 0 {
			t.Errorf("cursor %d backlog %d after acking everything", r, b)
		}
	}
}
