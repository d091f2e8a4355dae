package ledger_test

import (
	"bytes"
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
)

func TestMain(m *testing.M) { testutil.Main(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var pw = []byte("secret")

// payload returns a deterministic payload for entry i of a test.
func payload(i int64) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	b := make([]byte, 16+r.IntN(1024))
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return b
}

// appendN appends n entries asynchronously and waits; it returns the ids
// acknowledged, in callback order.
func appendN(t *testing.T, w *ledger.Writer, from, n int64) []int64 {
	t.Helper()
	var mu sync.Mutex
	var acked []int64
	var errs []error
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := from; i < from+n; i++ {
		w.AppendAsync(payload(i), func(id int64, err error) {
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				acked = append(acked, id)
			}
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d appends failed, first: %v", len(errs), errs[0])
	}
	return acked
}

func checkEntries(t *testing.T, entries []ledger.Entry, first int64) {
	t.Helper()
	for i, e := range entries {
		want := first + int64(i)
		if e.ID != want || !bytes.Equal(e.Payload, payload(want)) {
			t.Fatalf("entry %d: got id %d, payload equal %v", want, e.ID, bytes.Equal(e.Payload, payload(want)))
		}
	}
}

func TestWriteReadEveryReplica(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 3})
	lc := c.LedgerClient()
	ctx := ctxT(t, 2*time.Minute)
	w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 3, AckQuorum: 2, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	acked := appendN(t, w, 0, n)
	for i, id := range acked {
		if id != int64(i) {
			t.Fatalf("callback %d got entry id %d: acks out of order", i, id)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	md, err := lc.Metadata(ctx, w.ID())
	if err != nil || md.State != ledger.StateClosed || md.LastEntryID != n-1 {
		t.Fatalf("metadata after close: %+v, %v", md, err)
	}
	r, err := lc.Open(ctx, w.ID(), pw)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := r.Read(ctx, 0, n-1)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, entries, 0)

	// Every single replica holds every entry byte-identical: read each
	// bookie directly.
	for i := 0; i < 3; i++ {
		cli := bookieClient(t, c.Bookie(i).Addr)
		for id := int64(0); id < n; id += 1 {
			resp, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: w.ID(), EntryId: id})
			if err != nil {
				t.Fatalf("bookie %d entry %d: %v", i, id, err)
			}
			_, p, err := bookiepb.VerifyEntry(resp.Body, w.ID(), id)
			if err != nil || !bytes.Equal(p, payload(id)) {
				t.Fatalf("bookie %d entry %d: digest %v, equal %v", i, id, err, bytes.Equal(p, payload(id)))
			}
		}
	}
}

// TestAckOrderWithOutOfOrderReplies delays bookie replies at random so that
// later entries reach the ack quorum before earlier ones: callbacks must still
// run 0,1,2,... and the LAC piggybacked on stored entries must never skip.
func TestAckOrderWithOutOfOrderReplies(t *testing.T) {
	var reordered sync.Map
	c := testcluster.New(t, testcluster.Config{Bookies: 3, BookieOptions: func(i int, o *bookie.Options) {
		o.Hooks = &bookie.Hooks{ReplyDelay: func(ref bookie.EntryRef) time.Duration {
			// Bookies 0 and 1 hold back even entries, so entry 2k+1 completes first.
			if i < 2 && ref.EntryID%2 == 0 {
				reordered.Store(ref.EntryID, true)
				return time.Duration(1+rand.IntN(20)) * time.Millisecond
			}
			return 0
		}}
	}})
	lc := c.LedgerClient()
	ctx := ctxT(t, time.Minute)
	w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 3, AckQuorum: 2, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var mu sync.Mutex
	var order []int64
	var lacs []int64
	var wg sync.WaitGroup
	wg.Add(n)
	for i := int64(0); i < n; i++ {
		w.AppendAsync(payload(i), func(id int64, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
			}
			mu.Lock()
			order = append(order, id)
			lacs = append(lacs, w.LastAddConfirmed())
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	for i, id := range order {
		if id != int64(i) {
			t.Fatalf("callback %d carried entry %d: acknowledgements out of order", i, id)
		}
		if lacs[i] < id {
			t.Fatalf("LAC %d below acknowledged entry %d", lacs[i], id)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// LAC piggybacked on each stored entry: below its id and monotone.
	cli := bookieClient(t, c.Bookie(2).Addr)
	prev := int64(-1)
	for id := int64(0); id < n; id++ {
		resp, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: w.ID(), EntryId: id})
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := bookiepb.VerifyEntry(resp.Body, w.ID(), id)
		if err != nil {
			t.Fatal(err)
		}
		if h.LAC >= id || h.LAC < prev {
			t.Fatalf("entry %d carries LAC %d after LAC %d", id, h.LAC, prev)
		}
		prev = h.LAC
	}
	n0 := 0
	reordered.Range(func(_, _ any) bool { n0++; return true })
	if n0 == 0 {
		t.Fatal("no reply was delayed: the test did not exercise reordering")
	}
}

// TestEnsembleChangeOnBookieKill kills an ensemble bookie mid-stream with a
// fourth available: writes continue, metadata shows a new segment starting
// at LAC+1 without the dead bookie, and every acknowledged entry is readable.
func TestEnsembleChangeOnBookieKill(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 4})
	lc := c.LedgerClient()
	ctx := ctxT(t, 2*time.Minute)
	w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 3, AckQuorum: 2, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 0, 1000) // LAC = 999
	victim := w.Metadata().Segments[0].Ensemble[1]
	c.KillBookie(c.BookieIndex(victim))
	appendN(t, w, 1000, 1000)

	md := w.Metadata()
	if len(md.Segments) != 2 || md.Segments[1].FirstEntryID != 1000 {
		t.Fatalf("segments %+v, want a second one starting at LAC+1 = 1000", md.Segments)
	}
	if slices.Contains(md.Segments[1].Ensemble, victim) || len(md.Segments[1].Ensemble) != 3 {
		t.Fatalf("new ensemble %v still holds killed bookie %s", md.Segments[1].Ensemble, victim)
	}
	for slot, b := range md.Segments[1].Ensemble {
		if b != md.Segments[0].Ensemble[slot] && slot != 1 {
			t.Fatalf("slot %d changed (%s -> %s); only the failed slot 1 may", slot, md.Segments[0].Ensemble[slot], b)
		}
	}

	// Kill another one while adds are in flight: every acknowledged entry
	// must survive.
	var acked sync.Map
	var wg sync.WaitGroup
	wg.Add(1000)
	for i := int64(2000); i < 3000; i++ {
		if i == 2300 {
			c.KillBookie(c.BookieIndex(md.Segments[1].Ensemble[0]))
		}
		w.AppendAsync(payload(i), func(id int64, err error) {
			if err == nil {
				acked.Store(id, true)
			}
			wg.Done()
		})
	}
	wg.Wait()
	// Only two bookies are left for an ensemble of 3: the writer must fail
	// rather than acknowledge below the write quorum...
	if err := w.Err(); !errors.Is(err, ledger.ErrNotEnoughBookies) {
		t.Fatalf("writer error with 2 bookies left for E=3: %v, want ErrNotEnoughBookies", err)
	}
	// ...and closing it seals the ledger at its LAC.
	lac := w.LastAddConfirmed()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("close of failed writer: %v", err)
	}
	r, err := lc.OpenRecover(ctx, w.ID(), pw)
	if err != nil {
		t.Fatal(err)
	}
	if r.LastAddConfirmed() != lac {
		t.Fatalf("closed at %d, want the writer's LAC %d", r.LastAddConfirmed(), lac)
	}
	entries, err := r.Read(ctx, 0, r.LastAddConfirmed())
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, entries, 0)
	acked.Range(func(k, _ any) bool {
		if k.(int64) > r.LastAddConfirmed() {
			t.Errorf("acknowledged entry %d beyond the closed ledger's end %d", k, r.LastAddConfirmed())
		}
		return true
	})
}

// TestRecoveryOfAbandonedWriter: a writer stops without closing; another
// client recovers the ledger. The ledger is CLOSED with every acknowledged
// entry, and the old writer's next add fails with ErrFenced.
func TestRecoveryOfAbandonedWriter(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 3})
	ctx := ctxT(t, time.Minute)
	old := c.LedgerClient()
	w, err := old.Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 3, AckQuorum: 2, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	acked := appendN(t, w, 0, 500)
	lastAcked := acked[len(acked)-1]
	// More adds in flight while the new owner takes over; each is either
	// acknowledged (then it must be in the recovered ledger) or fails.
	inflight := make(chan int64, 100)
	for i := int64(500); i < 600; i++ {
		w.AppendAsync(payload(i), func(id int64, err error) {
			if err != nil {
				id = -1
			}
			inflight <- id
		})
	}

	r, err := c.LedgerClient().OpenRecover(ctx, w.ID(), pw)
	if err != nil {
		t.Fatal(err)
	}
	md := r.Metadata()
	if md.State != ledger.StateClosed || md.LastEntryID < lastAcked {
		t.Fatalf("recovered state %s lastEntry %d, want CLOSED >= %d", md.State, md.LastEntryID, lastAcked)
	}
	for range 100 {
		select {
		case id := <-inflight:
			if id > md.LastEntryID {
				t.Fatalf("old writer acknowledged entry %d; recovery closed the ledger at %d", id, md.LastEntryID)
			}
		case <-ctx.Done():
			t.Fatal("an add in flight during recovery never completed")
		}
	}
	entries, err := r.Read(ctx, 0, md.LastEntryID)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, entries, 0)
	var wantLen int64
	for _, e := range entries {
		wantLen += int64(len(e.Payload))
	}
	if md.Length != wantLen {
		t.Fatalf("recovered length %d, entries sum to %d", md.Length, wantLen)
	}

	if _, err := w.Append(ctx, []byte("late")); !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("old writer's add after recovery: %v, want ErrFenced", err)
	}
	if err := w.Close(ctx); !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("old writer's close: %v, want ErrFenced", err)
	}
	if md2, err := c.LedgerClient().Metadata(ctx, w.ID()); err != nil || md2.LastEntryID != md.LastEntryID {
		t.Fatalf("old writer changed the recovered end: %d -> %d", md.LastEntryID, md2.LastEntryID)
	}
}

// TestRacingRecoverersAgree: entries of the tail were written to fewer than
// Qa bookies (the writer crashed mid-send). Recoverers racing each other must
// end with one lastEntryId, and all readers must see the same entries.
func TestRacingRecoverersAgree(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := testcluster.New(t, testcluster.Config{Bookies: 3})
			ctx := ctxT(t, time.Minute)
			w, err := c.LedgerClient().Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 3, AckQuorum: 2, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			acked := appendN(t, w, 0, 100)
			ens := w.Metadata().Segments[0].Ensemble
			w.Abandon()

			// The crashed writer had sent entries 100.. to some bookies only.
			rnd := rand.New(rand.NewPCG(seed, 7))
			key := ledger.MasterKey(pw)
			length := int64(0)
			for _, id := range acked {
				length += int64(len(payload(id)))
			}
			for id := int64(100); id < 100+int64(rnd.IntN(8)); id++ {
				length += int64(len(payload(id)))
				body := bookiepb.PackEntry(bookiepb.EntryHeader{LedgerID: w.ID(), EntryID: id, LAC: 99, Length: length}, payload(id))
				for _, b := range ens {
					if rnd.IntN(3) == 0 { // each replica with probability 1/3
						rawAdd(t, b, w.ID(), id, key, body)
					}
				}
			}

			const racers = 3
			ends := make([]int64, racers)
			var wg sync.WaitGroup
			for i := range racers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := c.LedgerClient().OpenRecover(ctx, w.ID(), pw)
					if err != nil {
						t.Errorf("recoverer %d: %v", i, err)
						return
					}
					ends[i] = r.LastAddConfirmed()
				}()
			}
			wg.Wait()
			for i := 1; i < racers; i++ {
				if ends[i] != ends[0] {
					t.Fatalf("recoverers disagree: %v", ends)
				}
			}
			if ends[0] < 99 {
				t.Fatalf("recovered end %d lost acknowledged entries (last acked 99)", ends[0])
			}
			var first []ledger.Entry
			for i := 0; i < 3; i++ {
				r, err := c.LedgerClient().Open(ctx, w.ID(), pw)
				if err != nil {
					t.Fatal(err)
				}
				entries, err := r.Read(ctx, 0, r.LastAddConfirmed())
				if err != nil {
					t.Fatal(err)
				}
				checkEntries(t, entries, 0)
				if r.LastAddConfirmed() != ends[0] {
					t.Fatalf("reader %d ends at %d, recoverers at %d", i, r.LastAddConfirmed(), ends[0])
				}
				if i == 0 {
					// Each entry's envelope carries the ledger's cumulative
					// payload length up to it.
					var sum int64
					for _, e := range entries {
						if sum += int64(len(e.Payload)); e.Length != sum {
							t.Fatalf("entry %d carries length %d, payloads up to it sum to %d", e.ID, e.Length, sum)
						}
					}
					first = entries
					continue
				}
				if len(entries) != len(first) {
					t.Fatalf("readers disagree on length: %d vs %d", len(entries), len(first))
				}
				for j := range entries {
					a, b := entries[j], first[j]
					if a.ID != b.ID || a.Length != b.Length || !bytes.Equal(a.Payload, b.Payload) {
						t.Fatalf("reader %d and reader 0 disagree on entry %d: id %d/%d, length %d/%d, payload equal %v",
							i, j, a.ID, b.ID, a.Length, b.Length, bytes.Equal(a.Payload, b.Payload))
					}
				}
			}
		})
	}
}

func rawAdd(t *testing.T, addr string, ledgerID, entryID int64, key, body []byte) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	stream, err := bookieClient(t, addr).Add(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&bookiepb.AddRequest{LedgerId: ledgerID, EntryId: entryID, MasterKey: key, Body: body}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || resp.Code != bookiepb.Code_OK {
		t.Fatalf("raw add %d/%d to %s: %v %v", ledgerID, entryID, addr, resp, err)
	}
	stream.CloseSend()
}

// TestFencingCoverageWithUnansweringBookies: recovery needs answers covering
// every write set; dead or silent bookies beyond that make it fail clearly.
func TestFencingCoverageWithUnansweringBookies(t *testing.T) {
	cases := []struct {
		name         string
		bookies      int
		e, qw, qa    int
		dead, silent int // bookies of the ensemble killed / not answering
		ok           bool
	}{
		{"E3Qw3Qa2 one dead", 3, 3, 3, 2, 1, 0, true},
		{"E3Qw3Qa2 one silent", 3, 3, 3, 2, 0, 1, true},
		{"E3Qw3Qa2 two dead", 3, 3, 3, 2, 2, 0, false},
		{"E3Qw3Qa2 one dead one silent", 3, 3, 3, 2, 1, 1, false},
		{"E3Qw2Qa2 one dead with a spare", 4, 3, 2, 2, 1, 0, true},
		// Re-replicating the tail needs Qa=2 live bookies in every write set.
		{"E3Qw2Qa2 one dead no spare", 3, 3, 2, 2, 1, 0, false},
		{"E5Qw3Qa2 one dead", 5, 5, 3, 2, 1, 0, true},
		{"E5Qw3Qa2 two dead", 5, 5, 3, 2, 2, 0, false},
		{"E1 dead", 1, 1, 1, 1, 1, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var silence sync.Map // bookie index -> chan struct{} blocking its commits
			c := testcluster.New(t, testcluster.Config{Bookies: tc.bookies, BookieOptions: func(i int, o *bookie.Options) {
				o.Hooks = &bookie.Hooks{Commit: func(commit func() error) error {
					if ch, ok := silence.Load(i); ok {
						<-ch.(chan struct{})
					}
					return commit()
				}}
			}})
			ctx := ctxT(t, time.Minute)
			w, err := c.LedgerClient().Create(ctx, ledger.CreateOptions{EnsembleSize: tc.e, WriteQuorum: tc.qw, AckQuorum: tc.qa, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, w, 0, 50)
			ens := w.Metadata().Segments[0].Ensemble
			w.Abandon()
			for i := 0; i < tc.dead; i++ {
				c.KillBookie(c.BookieIndex(ens[i]))
			}
			for i := tc.dead; i < tc.dead+tc.silent; i++ {
				ch := make(chan struct{})
				silence.Store(c.BookieIndex(ens[i]), ch)
				defer close(ch)
			}
			rc := c.LedgerClient(func(o *ledger.ClientOptions) { o.ReadTimeout = time.Second })
			r, err := rc.OpenRecover(ctx, w.ID(), pw)
			if !tc.ok {
				if !errors.Is(err, ledger.ErrRecovery) {
					t.Fatalf("recovery with too few answers: %v, want ErrRecovery", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.LastAddConfirmed() != 49 {
				t.Fatalf("recovered end %d, want 49", r.LastAddConfirmed())
			}
		})
	}
}

// TestCorruptReplica flips a byte of one stored replica: reads return the
// right bytes from another replica; with a single replica they fail with
// ErrCorrupt and never return the damaged entry.
func TestCorruptReplica(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 3})
	lc := c.LedgerClient()
	ctx := ctxT(t, time.Minute)
	for _, q := range []struct{ e, qw, qa int }{{3, 3, 2}, {1, 1, 1}} {
		w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: q.e, WriteQuorum: q.qw, AckQuorum: q.qa, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, w, 0, 10)
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		first := w.Metadata().WriteSet(5)[0]
		i := c.BookieIndex(first)
		c.StopBookie(i)
		if err := bookie.CorruptEntry(c.Bookie(i).Dir, w.ID(), 5); err != nil {
			t.Fatal(err)
		}
		if err := c.StartBookie(i); err != nil {
			t.Fatal(err)
		}
		r, err := lc.Open(ctx, w.ID(), pw)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := r.Read(ctx, 0, 9)
		if q.qw == 1 {
			if !errors.Is(err, ledger.ErrCorrupt) {
				t.Fatalf("single corrupt replica: err %v, entries %d; want ErrCorrupt", err, len(entries))
			}
			if _, err := r.Read(ctx, 5, 5); !errors.Is(err, ledger.ErrCorrupt) {
				t.Fatalf("single-entry read of the corrupt entry: %v, want ErrCorrupt", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		checkEntries(t, entries, 0)
	}
}

// TestReadOnlyBookieAvoided: a read-only bookie rejects adds (the writer
// moves to another bookie), serves reads, and new ledgers avoid it.
func TestReadOnlyBookieAvoided(t *testing.T) {
	var full sync.Map
	c := testcluster.New(t, testcluster.Config{Bookies: 4, BookieOptions: func(i int, o *bookie.Options) {
		o.DiskUsage = func(string) (uint64, uint64, error) {
			if _, ok := full.Load(i); ok {
				return 99, 100, nil
			}
			return 10, 100, nil
		}
	}})
	lc := c.LedgerClient()
	ctx := ctxT(t, time.Minute)
	w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 3, AckQuorum: 3, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 0, 100)
	ro := w.Metadata().Segments[0].Ensemble[0]
	full.Store(c.BookieIndex(ro), true)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !c.Bookie(c.BookieIndex(ro)).B.ReadOnly() {
			return fmt.Errorf("bookie %s not read-only yet", ro)
		}
		return nil
	})
	appendN(t, w, 100, 100)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	md := w.Metadata()
	if len(md.Segments) != 2 || slices.Contains(md.Segments[1].Ensemble, ro) {
		t.Fatalf("segments %+v: writer should have left read-only bookie %s", md.Segments, ro)
	}
	// Reads of the entries it holds are still served by it.
	cli := bookieClient(t, ro)
	if _, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: w.ID(), EntryId: 3}); err != nil {
		t.Fatalf("read from read-only bookie: %v", err)
	}
	for range 20 {
		w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 2, AckQuorum: 2, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(w.Metadata().Segments[0].Ensemble, ro) {
			t.Fatalf("new ledger placed on read-only bookie %s", ro)
		}
		w.Abandon()
	}
}

// TestOpenNoRecoveryTails reads an open ledger up to its LAC without
// disturbing the writer, and follows it with WaitLAC.
func TestOpenNoRecoveryTails(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 3, BookieOptions: func(i int, o *bookie.Options) { o.HTTPAddr = "127.0.0.1:0" }})
	lc := c.LedgerClient()
	ctx := ctxT(t, time.Minute)
	w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 2, AckQuorum: 2, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 10; i++ { // one at a time: entry i carries LAC i-1
		if _, err := w.Append(ctx, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.LedgerClient().Open(ctx, w.ID(), pw)
	if err != nil {
		t.Fatal(err)
	}
	// Entry 9 is acknowledged but its LAC only travels with entry 10.
	if lac := r.LastAddConfirmed(); lac != 8 {
		t.Fatalf("reader LAC %d, want 8 (piggybacked on entry 9)", lac)
	}
	done := make(chan int64)
	go func() {
		lac, err := r.WaitLAC(ctx, 8, 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- lac
	}()
	testutil.WaitFor(t, 10*time.Second, func() error { // the long poll is parked on a bookie
		for i := range 3 {
			if n, _ := testutil.MetricValue(t, c.Bookie(i).B.HTTPAddr(), "strata_bookie_lac_waiters"); n > 0 {
				return nil
			}
		}
		return errors.New("no long poll parked")
	})
	if _, err := w.Append(ctx, payload(10)); err != nil {
		t.Fatal(err)
	}
	if lac := <-done; lac < 9 {
		t.Fatalf("WaitLAC returned %d, want >= 9", lac)
	}
	entries, err := r.Read(ctx, 0, 9)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, entries, 0)
	if _, err := r.Read(ctx, 0, 11); !errors.Is(err, ledger.ErrNoEntry) {
		t.Fatalf("read beyond LAC: %v, want ErrNoEntry", err)
	}
	// The writer is undisturbed.
	appendN(t, w, 11, 5)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBadInput: invalid quorums, oversize entries, wrong passwords, unknown
// ledgers and ranges get precise errors.
func TestBadInput(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 2})
	lc := c.LedgerClient()
	ctx := ctxT(t, time.Minute)
	for _, q := range [][3]int{{2, 3, 1}, {2, 2, 3}, {0, 0, 0}, {3, 3, 3}} {
		_, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: q[0], WriteQuorum: q[1], AckQuorum: q[2]})
		want := ledger.ErrInvalid
		if q[0] == 3 {
			want = ledger.ErrNotEnoughBookies
		}
		if !errors.Is(err, want) {
			t.Errorf("create %v: %v, want %v", q, err, want)
		}
	}
	w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: 2, WriteQuorum: 2, AckQuorum: 2, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, make([]byte, 5<<20+1)); !errors.Is(err, ledger.ErrTooLarge) {
		t.Fatalf("oversize append: %v, want ErrTooLarge", err)
	}
	appendN(t, w, 0, 3)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Open(ctx, w.ID(), []byte("wrong")); !errors.Is(err, ledger.ErrUnauthorized) {
		t.Fatalf("open with wrong password: %v", err)
	}
	if _, err := lc.OpenRecover(ctx, 424242, pw); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("open unknown ledger: %v", err)
	}
	r, err := lc.Open(ctx, w.ID(), pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(ctx, 2, 1); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("inverted range: %v", err)
	}
	if _, err := r.Read(ctx, 0, 3); !errors.Is(err, ledger.ErrNoEntry) {
		t.Fatalf("read past the end: %v", err)
	}
	if _, err := w.Append(ctx, []byte("x")); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}
