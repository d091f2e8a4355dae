package managed_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// model computes the expected mark-delete index and number of ack ranges
// for a set of acknowledged entry indexes over a log whose ledgers hold
// perLedger entries.
func model(acked map[int]bool, n, perLedger int) (markDelete, ranges int) {
	markDelete = -1
	for markDelete+1 < n && acked[markDelete+1] {
		markDelete++
	}
	for i := markDelete + 1; i < n; i++ {
		if acked[i] && (i == markDelete+1 || !acked[i-1] || i%perLedger == 0) {
			ranges++
		}
	}
	return markDelete, ranges
}

func TestCursorIndividualAcksMatchModel(t *testing.T) {
	e := newEnv(t, 1, func(o *managed.Options) { o.MaxEntriesPerLedger = 30 })
	ml := e.open(t, "public/default/acks")
	ctx := ctxT(t, time.Minute)
	c, err := ml.OpenCursor(ctx, "s", managed.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	const n = 90
	pos := appendAll(t, ml, 0, n)
	acked := map[int]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for _, i := range r.Perm(n)[:70] {
		if err := c.Ack(pos[i]); err != nil {
			t.Fatal(err)
		}
		acked[i] = true
		md, ranges := model(acked, n, 30)
		wantMD := managed.Position{pos[0].LedgerID, -1}
		if md >= 0 {
			wantMD = pos[md]
		}
		if got := c.MarkDeletePosition(); got != wantMD {
			t.Fatalf("after acking %d: mark-delete %v, want %v", i, got, wantMD)
		}
		if got := c.AckRanges(); got != ranges {
			t.Fatalf("after acking %d: %d ranges, want %d", i, got, ranges)
		}
		if got := c.Backlog(); got != int64(n-len(acked)) {
			t.Fatalf("after acking %d: backlog %d, want %d", i, got, n-len(acked))
		}
	}
	wantMD, wantRanges, wantBacklog := c.MarkDeletePosition(), c.AckRanges(), c.Backlog()
	if err := ml.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ml2 := e.open(t, "public/default/acks")
	c2, ok := ml2.Cursor("s")
	if !ok {
		t.Fatal("cursor not recovered")
	}
	if c2.MarkDeletePosition() != wantMD || c2.AckRanges() != wantRanges || c2.Backlog() != wantBacklog {
		t.Fatalf("after reopen: md %v ranges %d backlog %d; want %v %d %d",
			c2.MarkDeletePosition(), c2.AckRanges(), c2.Backlog(), wantMD, wantRanges, wantBacklog)
	}
	// Reading delivers exactly the unacknowledged entries.
	var got []int
	for _, en := range readAll(t, c2) {
		got = append(got, slices.Index(pos, en.Position))
	}
	var want []int
	for i := 0; i < n; i++ {
		if !acked[i] {
			want = append(want, i)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("redelivered %v, want %v", got, want)
	}
}

func TestCursorCrashRedeliversOnlyUnpersistedAcks(t *testing.T) {
	e := newEnv(t, 1, func(o *managed.Options) { o.MaxEntriesPerLedger = 40 })
	a := e.open(t, "public/default/crash")
	ctx := ctxT(t, time.Minute)
	c := mustCursor(t, a, "s", managed.Earliest)
	pos := appendAll(t, a, 0, 100)
	persisted := map[int]bool{}
	for i := 0; i < 100; i += 3 {
		must(t, c.Ack(pos[i]))
		persisted[i] = true
	}
	must(t, c.AckCumulative(pos[9]))
	for i := 0; i <= 9; i++ {
		persisted[i] = true
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 50; i < 100; i++ { // acknowledged, never persisted
		must(t, c.Ack(pos[i]))
	}
	// Crash: a second owner takes over without the first closing.
	b := e.open(t, "public/default/crash")
	cb, _ := b.Cursor("s")
	var redelivered []int
	for _, en := range readAll(t, cb) {
		redelivered = append(redelivered, slices.Index(pos, en.Position))
	}
	var want []int
	for i := 0; i < 100; i++ {
		if !persisted[i] {
			want = append(want, i)
		}
	}
	if fmt.Sprint(redelivered) != fmt.Sprint(want) {
		t.Fatalf("after crash redelivered %v\nwant exactly the entries not acked before the last persist %v", redelivered, want)
	}
}

func TestCursorCumulativeAckAndReset(t *testing.T) {
	e := newEnv(t, 1, func(o *managed.Options) { o.MaxEntriesPerLedger = 10 })
	ml := e.open(t, "public/default/cum")
	c := mustCursor(t, ml, "s", managed.Earliest)
	pos := appendAll(t, ml, 0, 35)
	must(t, c.Ack(pos[20], pos[22]))
	if err := c.AckCumulative(pos[20]); err != nil {
		t.Fatal(err)
	}
	if c.MarkDeletePosition() != pos[20] || c.AckRanges() != 1 || c.Backlog() != 13 {
		t.Fatalf("cumulative ack: md %v ranges %d backlog %d", c.MarkDeletePosition(), c.AckRanges(), c.Backlog())
	}
	must(t, c.Ack(pos[21]))
	if c.MarkDeletePosition() != pos[22] || c.AckRanges() != 0 {
		t.Fatalf("mark-delete did not jump over the contiguous range: %v", c.MarkDeletePosition())
	}
	// Reset to an earlier entry: everything from it is unacknowledged again.
	c.Reset(pos[5])
	if c.MarkDeletePosition() != (managed.Position{pos[5].LedgerID, pos[5].EntryID - 1}) || c.Backlog() != 30 {
		t.Fatalf("reset: md %v backlog %d", c.MarkDeletePosition(), c.Backlog())
	}
	es := readAll(t, c)
	if len(es) != 30 || es[0].Position != pos[5] {
		t.Fatalf("after reset read %d entries from %v", len(es), es[0].Position)
	}
}

func TestFindByTime(t *testing.T) {
	e := newEnv(t, 1, func(o *managed.Options) { o.MaxEntriesPerLedger = 16 })
	ml := e.open(t, "public/default/time")
	ctx := ctxT(t, time.Minute)
	pos := appendAll(t, ml, 0, 100) // entry i published at 1000+i
	ml.Close(ctx)
	ml = e.open(t, "public/default/time") // publish times come from the recorded ledgers
	cases := map[int64]int{0: 0, 1000: 0, 1001: 1, 1015: 15, 1016: 16, 1050: 50, 1099: 99}
	for ts, want := range cases {
		p, err := ml.FindByTime(ctx, ts)
		if err != nil || p != pos[want] {
			t.Errorf("FindByTime(%d) = %v, %v; want %v (entry %d)", ts, p, err, pos[want], want)
		}
	}
	p, err := ml.FindByTime(ctx, 5000)
	if err != nil || !pos[99].Less(p) {
		t.Errorf("FindByTime past the end = %v, %v; want after %v", p, err, pos[99])
	}
	c, _ := ml.OpenCursor(ctx, "s", managed.Latest)
	p, _ = ml.FindByTime(ctx, 1042)
	c.Reset(p)
	if es := readAll(t, c); len(es) != 58 || es[0].Position != pos[42] {
		t.Fatalf("reset by time: read %d from %v, want 58 from %v", len(es), es[0].Position, pos[42])
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func TestRetentionMatrix(t *testing.T) {
	cases := []struct {
		name      string
		ret       managed.Retention
		ackUpTo   int           // entries 0..ackUpTo acknowledged
		advance   time.Duration // clock moved forward before trimming
		wantLeft  int           // closed ledgers left (of 5 x 10 entries)
		wantTrims int           // ledgers deleted
	}{
		{"zero deletes consumed", managed.Retention{Time: 0, Size: 0}, 24, 0, 3, 2},
		{"infinite keeps all", managed.Retention{Time: -1, Size: -1}, 49, 0, 5, 0},
		{"size quota keeps newest >= quota", managed.Retention{Time: -1, Size: 2500}, 49, 0, 3, 2},
		{"time not expired keeps", managed.Retention{Time: time.Hour, Size: -1}, 49, 30 * time.Minute, 5, 0},
		{"time expired deletes consumed", managed.Retention{Time: time.Hour, Size: -1}, 29, 2 * time.Hour, 2, 3},
		{"nothing consumed keeps all", managed.Retention{Time: 0, Size: 0}, -1, 0, 5, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
			var lc *ledger.Client
			e := newEnv(t, 1, func(o *managed.Options) {
				o.MaxEntriesPerLedger = 10
				o.Retention = func() managed.Retention { return tc.ret }
				o.Clock = clock.Now
			})
			lc = e.opts.Ledgers
			ml := e.open(t, "public/default/ret")
			ctx := ctxT(t, time.Minute)
			c := mustCursor(t, ml, "s", managed.Earliest)
			payload := make([]byte, 100) // 10 entries x 100 B = 1000 B per ledger
			var pos []managed.Position
			for i := 0; i < 50; i++ {
				p, err := ml.Append(ctx, payload, 1)
				if err != nil {
					t.Fatal(err)
				}
				pos = append(pos, p)
			}
			// Ledgers roll at the 51st append; force it with one more entry.
			if _, err := ml.Append(ctx, payload, 1); err != nil {
				t.Fatal(err)
			}
			if tc.ackUpTo >= 0 {
				must(t, c.AckCumulative(pos[tc.ackUpTo]))
			}
			clock.Add(tc.advance)
			res, err := ml.Trim(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Ledgers) != tc.wantTrims || res.Bytes != int64(tc.wantTrims*1000) || res.Entries != int64(tc.wantTrims*10) {
				t.Fatalf("trim reclaimed %+v, want %d ledgers", res, tc.wantTrims)
			}
			st := ml.Stats()
			closed := 0
			for _, l := range st.Ledgers {
				if l.State == "closed" {
					closed++
				} else if l.Entries != 1 {
					t.Fatalf("current ledger has %d entries, want 1", l.Entries)
				}
			}
			if closed != tc.wantLeft {
				t.Fatalf("%d closed ledgers left, want %d (%+v)", closed, tc.wantLeft, st.Ledgers)
			}
			// Every unconsumed entry is still readable.
			for i := tc.ackUpTo + 1; i < 50; i++ {
				es, _, err := ml.Read(ctx, pos[i], 1, 1)
				if err != nil || len(es) != 1 || es[0].Position != pos[i] {
					t.Fatalf("unconsumed entry %d at %v unreadable after trim: %v", i, pos[i], err)
				}
			}
			for _, id := range res.Ledgers {
				if _, err := lc.Metadata(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
					t.Fatalf("trimmed ledger %d still in metadata: %v", id, err)
				}
			}
		})
	}
}

// TestTrimmedLedgersLeaveBookies checks that trimmed ledgers disappear from
// bookie storage (bookie garbage collection).
func TestTrimmedLedgersLeaveBookies(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) { o.GCInterval = 100 * time.Millisecond }})
	ml, err := managed.Open(ctxT(t, time.Minute), "public/default/gc", managed.Options{
		Ledgers: c.LedgerClient(), Metadata: c.Store, Logger: c.Log, MaxEntriesPerLedger: 5,
		CursorPersistInterval: time.Hour, TrimInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Close(context.Background())
	ctx := ctxT(t, time.Minute)
	pos := appendAll(t, ml, 0, 12)
	res, err := ml.Trim(ctx) // no cursors: everything before the current ledger is consumed
	if err != nil || len(res.Ledgers) != 2 {
		t.Fatalf("trim: %+v %v, want the 2 closed ledgers", res, err)
	}
	cc, _ := grpc.NewClient(c.Bookie(0).Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer cc.Close()
	cli := bookiepb.NewBookieClient(cc)
	testutil.WaitFor(t, 10*time.Second, func() error {
		_, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: pos[0].LedgerID, EntryId: 0})
		if code, _ := bookiepb.CodeOf(err); code != bookiepb.Code_NO_LEDGER {
			return fmt.Errorf("trimmed ledger %d still on the bookie: %v", pos[0].LedgerID, err)
		}
		return nil
	})
	if _, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: pos[11].LedgerID, EntryId: 1}); err != nil {
		t.Fatalf("current ledger's entries gone: %v", err)
	}
}

func TestCursorAckedRangesString(t *testing.T) {
	e := newEnv(t, 1, func(o *managed.Options) { o.MaxEntriesPerLedger = 10 })
	ml := e.open(t, "public/default/ranges-string")
	ctx := ctxT(t, time.Minute)
	c, err := ml.OpenCursor(ctx, "s", managed.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	pos := appendAll(t, ml, 0, 15)
	if s, left := c.AckedRangesString(10); s != "[]" || left != 0 {
		t.Fatalf("no acks: %q, %d", s, left)
	}
	if err := c.Ack(pos[2], pos[3], pos[5], pos[12]); err != nil {
		t.Fatal(err)
	}
	l1, l2 := pos[0].LedgerID, pos[12].LedgerID
	want := fmt.Sprintf("[(%d:1..%d:3],(%d:4..%d:5],(%d:1..%d:2]]", l1, l1, l1, l1, l2, l2)
	if s, left := c.AckedRangesString(10); s != want || left != 0 {
		t.Fatalf("ranges %q, %d; want %q", s, left, want)
	}
	if s, left := c.AckedRangesString(2); s != fmt.Sprintf("[(%d:1..%d:3],(%d:4..%d:5]]", l1, l1, l1, l1) || left != 1 {
		t.Fatalf("limited to 2: %q, %d left", s, left)
	}
}
