package ledger_test

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
)

// streamWriter appends payload(0), payload(1), ... from a goroutine with at
// most inflight adds outstanding, until stopped, recording every callback.
type streamWriter struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	cbs      sync.WaitGroup

	mu     sync.Mutex
	pushed int64   // appends issued
	acked  []int64 // entry ids, in callback order
	errs   []error
}

// startStreamWriter starts appending to w. The appends stop at the end of
// the test at the latest: after a failure, a writer failing every add would
// otherwise spin on and starve the next tests.
func startStreamWriter(t *testing.T, w *ledger.Writer, inflight int) *streamWriter {
	s := &streamWriter{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { s.finish() })
	sem := make(chan struct{}, inflight)
	go func() {
		defer close(s.done)
		for i := int64(0); ; i++ {
			select {
			case <-s.stop:
				return
			case sem <- struct{}{}:
			}
			s.cbs.Add(1)
			s.mu.Lock()
			s.pushed++
			s.mu.Unlock()
			w.AppendAsync(payload(i), func(id int64, err error) {
				s.mu.Lock()
				if err != nil {
					s.errs = append(s.errs, fmt.Errorf("append %d: %w", i, err))
				} else {
					s.acked = append(s.acked, id)
				}
				s.mu.Unlock()
				<-sem
				s.cbs.Done()
			})
		}
	}()
	return s
}

// ackedCount returns how many appends were acknowledged so far.
func (s *streamWriter) ackedCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.acked))
}

// waitAcked waits until at least n appends were acknowledged, failing on
// the first failed append.
func (s *streamWriter) waitAcked(t *testing.T, n int64) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.errs) > 0 {
			t.Fatalf("%d appends failed, first: %v", len(s.errs), s.errs[0])
		}
		if int64(len(s.acked)) < n {
			return fmt.Errorf("%d acknowledged, waiting for %d", len(s.acked), n)
		}
		return nil
	})
}

// finish stops appending and waits for every callback; it returns how many
// appends were issued.
func (s *streamWriter) finish() int64 {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	s.cbs.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushed
}

// TestEnsembleChangeWithAddsInFlight kills an ensemble bookie while a writer
// streams adds, with a spare bookie available; the victim first stops
// answering, so that it dies with adds in flight. No add may fail: the
// writer replaces the dead bookie by the spare from LAC+1 on (a second
// segment) and resends what was pending. Every acknowledged entry is then
// readable, in order and byte-exact, through a fresh client; every live
// replica of every entry holds it; restarting the killed bookie afterwards
// changes nothing.
func TestEnsembleChangeWithAddsInFlight(t *testing.T) {
	cases := []struct {
		name      string
		e, qw, qa int
		restart   bool
	}{
		{"E3Qw3Qa2", 3, 3, 2, false},
		{"E3Qw3Qa2 killed bookie restarted", 3, 3, 2, true},
		{"E3Qw2Qa2 striped", 3, 2, 2, false},
		{"E3Qw2Qa2 striped killed bookie restarted", 3, 2, 2, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var silent atomic.Int64 // index of the bookie holding back its add replies, -1: none
			silent.Store(-1)
			var held atomic.Int64 // replies it held back
			c := testcluster.New(t, testcluster.Config{Bookies: 4, BookieOptions: func(i int, o *bookie.Options) {
				o.Hooks = &bookie.Hooks{ReplyDelay: func(bookie.EntryRef) time.Duration {
					if silent.Load() == int64(i) {
						held.Add(1)
						return time.Hour // beyond the test: never answered
					}
					return 0
				}}
			}})
			lc := c.LedgerClient()
			ctx := ctxT(t, 2*time.Minute)
			w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: tc.e, WriteQuorum: tc.qw, AckQuorum: tc.qa, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			first := w.Metadata().Segments[0].Ensemble
			const victimSlot = 1
			victim := first[victimSlot]
			var spare string
			for i := 0; i < 4; i++ {
				if b := c.Bookie(i).Addr; !slices.Contains(first, b) {
					spare = b
				}
			}

			s := startStreamWriter(t, w, 64)
			s.waitAcked(t, 300)
			// The victim stops answering (it still stores the adds), then
			// dies with those adds in flight.
			silent.Store(int64(c.BookieIndex(victim)))
			testutil.WaitFor(t, 30*time.Second, func() error {
				if n := held.Load(); n < 16 {
					return fmt.Errorf("victim holds back %d replies, waiting for 16", n)
				}
				return nil
			})
			ackedAtKill := s.ackedCount() // the LAC is at least this minus one from now on
			c.KillBookie(c.BookieIndex(victim))
			silent.Store(-1)
			t.Logf("killed %s holding back %d add replies", victim, held.Load())

			// The change is recorded while adds keep flowing; wait for it
			// and for a good number of adds on the new ensemble.
			testutil.WaitFor(t, 30*time.Second, func() error {
				if n := len(w.Metadata().Segments); n < 2 {
					return fmt.Errorf("%d segments: no ensemble change yet", n)
				}
				return nil
			})
			changedAt := w.Metadata().Segments[1].FirstEntryID
			s.waitAcked(t, changedAt+300)
			if tc.restart {
				if err := c.StartBookie(c.BookieIndex(victim)); err != nil {
					t.Fatal(err)
				}
				s.waitAcked(t, s.ackedCount()+300)
			}
			pushed := s.finish()

			if len(s.errs) > 0 {
				t.Fatalf("%d appends failed, first: %v", len(s.errs), s.errs[0])
			}
			if int64(len(s.acked)) != pushed {
				t.Fatalf("%d appends issued, %d acknowledged", pushed, len(s.acked))
			}
			for i, id := range s.acked {
				if id != int64(i) {
					t.Fatalf("callback %d carried entry %d: acknowledgements out of order", i, id)
				}
			}
			if err := w.Close(ctx); err != nil {
				t.Fatalf("close: %v", err)
			}

			// A fresh client sees the closed ledger with exactly two
			// segments: the original ensemble, then the spare in the
			// killed bookie's slot from the first unacknowledged entry at
			// the change.
			fresh := c.LedgerClient()
			md, err := fresh.Metadata(ctx, w.ID())
			if err != nil {
				t.Fatal(err)
			}
			if md.State != ledger.StateClosed || md.LastEntryID != pushed-1 {
				t.Fatalf("metadata: state %s last entry %d, want CLOSED at %d", md.State, md.LastEntryID, pushed-1)
			}
			if len(md.Segments) != 2 {
				t.Fatalf("segments %+v, want exactly 2 (one ensemble change)", md.Segments)
			}
			seg0, seg1 := md.Segments[0], md.Segments[1]
			if seg0.FirstEntryID != 0 || !slices.Equal(seg0.Ensemble, first) {
				t.Fatalf("first segment %+v, want the original ensemble %v from 0", seg0, first)
			}
			if seg1.FirstEntryID != changedAt || seg1.FirstEntryID < ackedAtKill || seg1.FirstEntryID > pushed-1 {
				t.Fatalf("second segment starts at %d; want %d, within [%d (acked at the kill), %d (last entry)]",
					seg1.FirstEntryID, changedAt, ackedAtKill, pushed-1)
			}
			want := slices.Clone(first)
			want[victimSlot] = spare
			if !slices.Equal(seg1.Ensemble, want) {
				t.Fatalf("second ensemble %v, want %v (spare %s in slot %d of killed %s, other slots unchanged)",
					seg1.Ensemble, want, spare, victimSlot, victim)
			}
			for _, seg := range md.Segments[1:] {
				if slices.Contains(seg.Ensemble, victim) {
					t.Fatalf("killed bookie %s in segment %+v after the change", victim, seg)
				}
			}

			// Every acknowledged entry, in order and byte-exact, through
			// a fresh client's recovery open.
			r, err := fresh.OpenRecover(ctx, w.ID(), pw)
			if err != nil {
				t.Fatal(err)
			}
			if r.LastAddConfirmed() != pushed-1 {
				t.Fatalf("reader end %d, want %d", r.LastAddConfirmed(), pushed-1)
			}
			entries, err := r.Read(ctx, 0, pushed-1)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(entries)) != pushed {
				t.Fatalf("read %d entries, want %d", len(entries), pushed)
			}
			checkEntries(t, entries, 0)

			// Every replica of every entry other than the killed bookie
			// holds it: the writer sent each entry to its whole write set,
			// and entries pending at the change were resent to the spare.
			clients := map[string]bookiepb.BookieClient{}
			for id := int64(0); id < pushed; id++ {
				for _, b := range md.WriteSet(id) {
					if b == victim {
						continue
					}
					cli, ok := clients[b]
					if !ok {
						cli = bookieClient(t, b)
						clients[b] = cli
					}
					resp, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: w.ID(), EntryId: id})
					if err != nil {
						t.Fatalf("entry %d missing on replica %s: %v", id, b, err)
					}
					if _, p, err := bookiepb.VerifyEntry(resp.Body, w.ID(), id); err != nil || !bytes.Equal(p, payload(id)) {
						t.Fatalf("entry %d on replica %s: digest %v, payload equal %v", id, b, err, bytes.Equal(p, payload(id)))
					}
				}
			}
		})
	}
}
