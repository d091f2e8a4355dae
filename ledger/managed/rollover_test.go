package managed_test

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
)

// ledgerShape is a ledger's expected or actual extent.
type ledgerShape struct {
	Entries, Size int64
}

// ledgerShapes returns the extents and ids of the closed ledgers in one
// Stats snapshot and the entries of the open ones; it fails unless the open
// ledgers come last.
func ledgerShapes(t testing.TB, ml *managed.ManagedLedger) (closed []ledgerShape, ids []int64, open []int64) {
	t.Helper()
	ls := ml.Stats().Ledgers
	for _, l := range ls {
		if l.State == "open" {
			open = append(open, l.Entries)
			continue
		}
		if len(open) > 0 {
			t.Fatalf("closed ledger %d after the open one: %+v", l.LedgerID, ls)
		}
		closed = append(closed, ledgerShape{l.Entries, l.Size})
		ids = append(ids, l.LedgerID)
	}
	return closed, ids, open
}

// checkLedgers reports whether ml's closed ledgers have exactly the shapes
// closed and exactly one ledger of openEntries entries is open.
func checkLedgers(ml *managed.ManagedLedger, closed []ledgerShape, openEntries int64) error {
	var got []ledgerShape
	var open []int64
	ls := ml.Stats().Ledgers
	for _, l := range ls {
		if l.State == "open" {
			open = append(open, l.Entries)
		} else {
			got = append(got, ledgerShape{l.Entries, l.Size})
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(closed) || len(open) != 1 || open[0] != openEntries || ls[len(ls)-1].State != "open" {
		return fmt.Errorf("ledgers %+v; want closed %v, then one open ledger of %d entries", ls, closed, openEntries)
	}
	return nil
}

// checkPositions fails unless pos (entry i at pos[i]) fill the ledgers in
// order, shapes[k].Entries entries in ledger k, at entry ids 0, 1, ...; it
// returns the ledger ids in order.
func checkPositions(t testing.TB, pos []managed.Position, shapes []ledgerShape) []int64 {
	t.Helper()
	var ids []int64
	i := 0
	for k, s := range shapes {
		for j := int64(0); j < s.Entries; j++ {
			p := pos[i]
			if j == 0 {
				if k > 0 && p.LedgerID <= ids[k-1] {
					t.Fatalf("entry %d opens ledger %d, not after ledger %d", i, p.LedgerID, ids[k-1])
				}
				ids = append(ids, p.LedgerID)
			}
			if p != (managed.Position{LedgerID: ids[k], EntryID: j}) {
				t.Fatalf("entry %d at %v, want %d:%d (entry %d of ledger #%d)", i, p, ids[k], j, j, k)
			}
			i++
		}
	}
	if i != len(pos) {
		t.Fatalf("%d positions, the ledgers hold %d", len(pos), i)
	}
	return ids
}

// reopenAndCheck closes ml, reopens the log and checks that its closed
// ledgers are exactly ids with shapes, that a fresh empty ledger is current,
// and that every entry reads back in order at its position with want(i) as
// data.
func reopenAndCheck(t testing.TB, e *env, ml *managed.ManagedLedger, name string, ids []int64, shapes []ledgerShape, pos []managed.Position, want func(i int) []byte) {
	t.Helper()
	if err := ml.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	ml2 := e.open(t, name)
	gotShapes, gotIDs, open := ledgerShapes(t, ml2)
	if fmt.Sprint(gotIDs) != fmt.Sprint(ids) || fmt.Sprint(gotShapes) != fmt.Sprint(shapes) || fmt.Sprint(open) != "[0]" {
		t.Fatalf("after reopen: closed ledgers %v %v, open %v; want %v %v, one empty open", gotIDs, gotShapes, open, ids, shapes)
	}
	c, err := ml2.OpenCursor(ctxT(t, time.Minute), "check", managed.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, c)
	if len(got) != len(pos) {
		t.Fatalf("read %d entries after reopen, want %d", len(got), len(pos))
	}
	for i, en := range got {
		if en.Position != pos[i] || !bytes.Equal(en.Data, want(i)) {
			t.Fatalf("entry %d: at %v (want %v), data equal %v", i, en.Position, pos[i], bytes.Equal(en.Data, want(i)))
		}
	}
}

// appendEntries appends entry(0..n-1) in a burst (publish time 1000+i) and
// returns their positions in append order.
func appendEntries(t testing.TB, ml *managed.ManagedLedger, n int, entry func(i int) []byte) []managed.Position {
	t.Helper()
	pos := make([]managed.Position, n)
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		ml.AppendAsync(entry(i), int64(1000+i), func(p managed.Position, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
			pos[i] = p
		})
	}
	wg.Wait()
	return pos
}

// TestRolloverBySize: with MaxSizePerLedger (and no other limit in reach),
// a ledger takes entries until its size reaches the maximum — the entry
// reaching it included — so each closed ledger holds at least the maximum
// and less than the maximum plus its last entry. Entries are appended in a
// burst; the split is computed entry by entry and must match the positions,
// the recorded ledgers and what reads back after a reopen.
func TestRolloverBySize(t *testing.T) {
	cases := []struct {
		name    string
		maxSize int64
		n       int
		entry   func(i int) []byte
	}{
		{"21-70 B entries, max 1000", 1000, 300, func(i int) []byte { return data(i, int64(1000+i)) }},
		// Entries of 40 bytes and more get a ledger each.
		{"21-70 B entries, max 40", 40, 300, func(i int) []byte { return data(i, int64(1000+i)) }},
		// Exactly 4 entries reach the maximum: the 4th closes the ledger.
		{"25 B entries, max 100", 100, 50, func(i int) []byte { return sizedEntry(i, 25) }},
	}
	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			maxSize := tc.maxSize
			e := newEnv(t, 1, func(o *managed.Options) {
				o.MaxEntriesPerLedger = 1 << 40
				o.MaxSizePerLedger = maxSize
			})
			name := fmt.Sprintf("public/default/size-%d", ci)
			ml := e.open(t, name)

			var shapes []ledgerShape
			var lastSize []int64 // size of each ledger's last entry
			for i := 0; i < tc.n; i++ {
				k := len(shapes) - 1
				if k < 0 || shapes[k].Size >= maxSize {
					shapes = append(shapes, ledgerShape{})
					lastSize = append(lastSize, 0)
					k++
				}
				sz := int64(len(tc.entry(i)))
				shapes[k].Entries++
				shapes[k].Size += sz
				lastSize[k] = sz
			}
			for k, s := range shapes[:len(shapes)-1] {
				if s.Size < maxSize || s.Size > maxSize+lastSize[k]-1 {
					t.Fatalf("model ledger %d of %d bytes outside [%d, %d + last entry %d)", k, s.Size, maxSize, maxSize, lastSize[k])
				}
			}

			pos := appendEntries(t, ml, tc.n, tc.entry)
			ids := checkPositions(t, pos, shapes)
			if len(ids) != len(shapes) || len(shapes) < 10 {
				t.Fatalf("%d ledgers used, want %d (>= 10)", len(ids), len(shapes))
			}
			// The recorded extents of the closed ledgers: all but the last,
			// which rolls over too if the last entry filled it.
			wantClosed := len(shapes) - 1
			if shapes[wantClosed].Size >= maxSize {
				wantClosed++
			}
			waitClosedLedgers(t, ml, wantClosed)
			closed, closedIDs, _ := ledgerShapes(t, ml)
			if fmt.Sprint(closed) != fmt.Sprint(shapes[:wantClosed]) || fmt.Sprint(closedIDs) != fmt.Sprint(ids[:wantClosed]) {
				t.Fatalf("closed ledgers %v %v, want %v %v", closedIDs, closed, ids[:wantClosed], shapes[:wantClosed])
			}
			for k, s := range closed {
				if s.Size > maxSize+lastSize[k] {
					t.Fatalf("ledger %d holds %d bytes, over the maximum %d plus its last entry %d", closedIDs[k], s.Size, maxSize, lastSize[k])
				}
			}
			reopenAndCheck(t, e, ml, name, ids, shapes, pos, tc.entry)
		})
	}
}

// TestRolloverByAge: a non-empty ledger rolls over once it is MaxLedgerAge
// old (by Options.Clock), not a millisecond earlier; an empty ledger never
// rolls over by age, and the first entry appended to an over-age ledger
// still goes into it, the rollover following.
func TestRolloverByAge(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	e := newEnv(t, 1, func(o *managed.Options) {
		o.MaxLedgerAge = time.Hour
		o.Clock = clock.Now
		o.CursorPersistInterval = 10 * time.Millisecond // the background check runs this often
	})
	const name = "public/default/age"
	ml := e.open(t, name)
	want := func(i int) []byte { return data(i, int64(1000+i)) }
	shapeOf := func(from, n int) ledgerShape {
		s := ledgerShape{Entries: int64(n)}
		for i := from; i < from+n; i++ {
			s.Size += int64(len(want(i)))
		}
		return s
	}
	// waitShape waits for the closed ledgers closed and one empty open one.
	waitShape := func(closed []ledgerShape) {
		t.Helper()
		testutil.WaitFor(t, 10*time.Second, func() error { return checkLedgers(ml, closed, 0) })
	}
	// stays fails if the ledgers differ from closed and one open ledger of
	// openEntries entries within some 30 background checks.
	stays := func(closed []ledgerShape, openEntries int64) {
		t.Helper()
		holdsFor(t, 300*time.Millisecond, func() error { return checkLedgers(ml, closed, openEntries) })
	}

	pos := appendAll(t, ml, 0, 5)
	clock.Add(time.Hour - time.Millisecond)
	stays(nil, 5)
	clock.Add(time.Millisecond)
	waitShape([]ledgerShape{shapeOf(0, 5)})

	// The new ledger is empty: it does not roll over however old it gets.
	clock.Add(3 * time.Hour)
	stays([]ledgerShape{shapeOf(0, 5)}, 0)
	// One entry goes into the over-age ledger, which then rolls over.
	pos = append(pos, appendAll(t, ml, 5, 1)...)
	waitShape([]ledgerShape{shapeOf(0, 5), shapeOf(5, 1)})

	pos = append(pos, appendAll(t, ml, 6, 4)...)
	shapes := []ledgerShape{shapeOf(0, 5), shapeOf(5, 1), shapeOf(6, 4)}
	ids := checkPositions(t, pos, shapes)
	reopenAndCheck(t, e, ml, name, ids, shapes, pos, want)
}

// TestMinLedgerAgeHoldsRolloverBack: a ledger over its entry or size limit
// keeps taking entries until it is MinLedgerAge old; then it rolls over (in
// the background, without waiting for an append), and the next ledger is
// held back the same way.
func TestMinLedgerAgeHoldsRolloverBack(t *testing.T) {
	const entrySize = 30
	cases := []struct {
		name   string
		adjust func(*managed.Options)
	}{
		{"entries", func(o *managed.Options) { o.MaxEntriesPerLedger = 10 }},
		{"size", func(o *managed.Options) { o.MaxEntriesPerLedger = 1 << 40; o.MaxSizePerLedger = 10 * entrySize }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
			e := newEnv(t, 1, func(o *managed.Options) {
				tc.adjust(o)
				o.MinLedgerAge = time.Hour
				o.Clock = clock.Now
				o.CursorPersistInterval = 10 * time.Millisecond
			})
			name := "public/default/minage-" + tc.name
			ml := e.open(t, name)
			want := func(i int) []byte { return sizedEntry(i, entrySize) }
			appendN := func(from, n int) []managed.Position {
				return appendSized(t, ml, from, n, entrySize)
			}
			shape := func(n int) ledgerShape { return ledgerShape{int64(n), int64(n * entrySize)} }

			pos := appendN(0, 25) // 2.5 times the limit, all into the first ledger
			clock.Add(59 * time.Minute)
			holdsFor(t, 300*time.Millisecond, func() error { return checkLedgers(ml, nil, 25) })
			pos = append(pos, appendN(25, 1)...)
			clock.Add(time.Minute)
			testutil.WaitFor(t, 10*time.Second, func() error { return checkLedgers(ml, []ledgerShape{shape(26)}, 0) })

			pos = append(pos, appendN(26, 12)...) // the new ledger is held back too
			clock.Add(time.Hour)
			pos = append(pos, appendN(38, 1)...) // lands in the next ledger, whoever rolls
			shapes := []ledgerShape{shape(26), shape(12), shape(1)}
			ids := checkPositions(t, pos, shapes)
			reopenAndCheck(t, e, ml, name, ids, shapes, pos, want)
		})
	}
}

// TestNoLedgerStormWhileBookiesAreDown: killed bookies stay registered until
// their sessions end, so new ledgers can still be created on them and fail at
// their first entry. The managed ledger backs off between such ledgers
// instead of creating them in a loop (a storm of metadata writes: thousands
// of ledgers a second per topic), and the entry waiting meanwhile is
// appended once the bookies are back.
func TestNoLedgerStormWhileBookiesAreDown(t *testing.T) {
	e := newEnv(t, 3, func(o *managed.Options) { o.AddTimeout = time.Minute })
	ml := e.open(t, "storm")
	appendAll(t, ml, 0, 5)
	counter := func() int64 {
		kv, err := e.c.Store.Get(ctxT(t, time.Minute), metadata.LedgerIDKey)
		must(t, err)
		n, err := strconv.ParseInt(string(kv.Value), 10, 64)
		must(t, err)
		return n
	}
	before := counter()
	for i := range 3 {
		e.c.KillBookie(i)
	}
	done := make(chan error, 1)
	ml.AppendAsync(data(5, 1005), 1005, func(_ managed.Position, err error) { done <- err })
	time.Sleep(3 * time.Second) // past the killed bookies' 2 s sessions
	// Ids are reserved 16 at a time: a storm reserves hundreds of blocks.
	if used := counter() - before; used > 4*16 {
		t.Fatalf("%d ledger ids taken in 3 s with every bookie down: ledgers are created in a loop", used)
	}
	for i := range 3 {
		must(t, e.c.StartBookie(i))
	}
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the waiting append did not complete after the bookies came back")
	}
	c := mustCursor(t, ml, "all", managed.Earliest)
	if got := len(readAll(t, c)); got != 6 {
		t.Fatalf("read %d entries, want 6", got)
	}
}

// TestCompressedLedgerListReopens: with every ledger list stored compressed
// (the threshold lowered to 0), a log rolls over, reopens and reads back
// every entry in order, and its stored list is a zstd frame, not JSON.
func TestCompressedLedgerListReopens(t *testing.T) {
	defer managed.SetInfoCompressAbove(0)()
	e := newEnv(t, 1, func(o *managed.Options) { o.MaxEntriesPerLedger = 7 })
	ml := e.open(t, "public/default/zipped")
	const n = 100
	pos := appendAll(t, ml, 0, n)
	must(t, ml.Close(ctxT(t, time.Minute)))
	kv, err := e.c.Store.Get(ctxT(t, time.Minute), metadata.ManagedLedgersPrefix+"public/default/zipped")
	must(t, err)
	if !bytes.HasPrefix(kv.Value, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("stored ledger list starts %q, want a zstd frame", kv.Value[:min(8, len(kv.Value))])
	}
	ml2 := e.open(t, "public/default/zipped")
	got := readAll(t, mustCursor(t, ml2, "s", managed.Earliest))
	if len(got) != n {
		t.Fatalf("read %d entries after reopen, want %d", len(got), n)
	}
	for i, en := range got {
		if en.Position != pos[i] || !bytes.Equal(en.Data, data(i, int64(1000+i))) {
			t.Fatalf("entry %d at %v, want %v", i, en.Position, pos[i])
		}
	}
	if l := len(ml2.Stats().Ledgers); l < n/7 {
		t.Fatalf("%d ledgers, want at least %d", l, n/7)
	}
}
