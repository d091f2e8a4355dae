package ledger_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/ledger"
)

// TestRecoveryReadsWaitForFence reproduces the race that unfenced recovery
// reads lose (E=Qw=3, Qa=2, bookies H, F, L of the ensemble):
//
//   - entry 10 is durable on H, never reaches F (lost on the way), and is
//     queued on L behind a stalled commit, so L's fence does not answer in
//     time and fencing completes with {H, F};
//   - the recovery read of entry 10: F answers "no entry" at once, H's
//     answer is slow;
//   - L's commit then goes through, and the old writer, holding acks from H
//     and L, acknowledges entry 10.
//
// A plain read on L answers "no entry" too (the entry is still queued), and
// recovery would close the ledger at 9 below an acknowledged entry. A
// fencing read on L waits until L's fence is durable — behind the stalled
// commit — so recovery waits for H and keeps entry 10. Every entry the old
// writer acknowledged must be in the recovered ledger.
func TestRecoveryReadsWaitForFence(t *testing.T) {
	const entry = 10
	var (
		ledgerID atomic.Int64 // the ledger under test, once created
		stall    = make(chan struct{})
		stallOn  atomic.Bool
		stalled  = make(chan struct{}, 1)
		onH      = make(chan struct{}, 1)
		roles    sync.Map // bookie index -> "H", "F" or "L"
	)
	role := func(i int) string {
		r, _ := roles.Load(i)
		s, _ := r.(string)
		return s
	}
	ours := func(ref bookie.EntryRef) bool { return ref.LedgerID == ledgerID.Load() && ref.EntryID == entry }
	c := testcluster.New(t, testcluster.Config{Bookies: 3, BookieOptions: func(i int, o *bookie.Options) {
		o.Hooks = &bookie.Hooks{
			DropAdd: func(ref bookie.EntryRef) bool { return role(i) == "F" && ours(ref) },
			Commit: func(commit func() error) error {
				if role(i) == "L" && stallOn.Load() {
					select {
					case stalled <- struct{}{}:
					default:
					}
					<-stall
				}
				return commit()
			},
			AfterCommit: func(refs []bookie.EntryRef) {
				for _, ref := range refs {
					if role(i) == "H" && ours(ref) {
						onH <- struct{}{}
					}
				}
			},
			ReadDelay: func(ref bookie.EntryRef) time.Duration {
				if role(i) == "H" && ours(ref) {
					return 300 * time.Millisecond
				}
				return 0
			},
		}
	}})
	ctx := ctxT(t, time.Minute)
	// The old writer waits long for slow bookies, as a writer that has not
	// noticed anything yet would.
	w, err := c.LedgerClient(func(o *ledger.ClientOptions) { o.AddTimeout = time.Minute }).Create(ctx,
		ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 3, AckQuorum: 2, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	ledgerID.Store(w.ID())
	for slot, id := range w.Metadata().Segments[0].Ensemble {
		roles.Store(c.BookieIndex(id), []string{"H", "F", "L"}[slot])
	}
	appendN(t, w, 0, entry)

	stallOn.Store(true)
	acked := make(chan error, 1)
	w.AppendAsync(payload(entry), func(id int64, err error) { acked <- err })
	<-onH     // durable on H
	<-stalled // queued on L behind a commit that does not finish

	// Release L's commit once the recovery has had time to read entry 10
	// from every replica and, when it trusts plain reads, to close the
	// ledger below it.
	go func() {
		time.Sleep(1500 * time.Millisecond)
		stallOn.Store(false)
		close(stall)
	}()
	rc := c.LedgerClient(func(o *ledger.ClientOptions) { o.ReadTimeout, o.AddTimeout = time.Second, 2*time.Second })
	r, err := rc.OpenRecover(ctx, w.ID(), pw)
	if err != nil {
		t.Fatal(err)
	}
	last := r.Metadata().LastEntryID
	select {
	case err := <-acked:
		if err == nil && last < entry {
			t.Fatalf("the old writer acknowledged entry %d; recovery closed the ledger at %d", entry, last)
		}
		t.Logf("old writer's add of entry %d: %v; recovered up to %d", entry, err, last)
	case <-ctx.Done():
		t.Fatal("the old writer's add never completed")
	}
	es, err := r.Read(ctx, 0, last)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, 0)
}

// TestCloseGivesUpWithItsContext: a writer whose adds cannot complete (every
// bookie's commit stalls) and whose Close runs out of time is abandoned —
// the pending add fails at once rather than whenever the bookie answers —
// (a recovery's writer closes the same way).
func TestCloseGivesUpWithItsContext(t *testing.T) {
	stall := make(chan struct{})
	var stalled atomic.Bool
	c := testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) {
		o.Hooks = &bookie.Hooks{Commit: func(commit func() error) error {
			if stalled.Load() {
				<-stall
			}
			return commit()
		}}
	}})
	defer close(stall)
	ctx := ctxT(t, time.Minute)
	w, err := c.LedgerClient(func(o *ledger.ClientOptions) { o.AddTimeout = time.Minute }).Create(ctx,
		ledger.CreateOptions{EnsembleSize: 1, WriteQuorum: 1, AckQuorum: 1, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 0, 5)
	stalled.Store(true)
	added := make(chan error, 1)
	w.AppendAsync(payload(5), func(_ int64, err error) { added <- err })
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := w.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with stalled adds: %v, want DeadlineExceeded", err)
	}
	select {
	case err := <-added:
		if err == nil {
			t.Fatal("the stalled add succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the writer kept waiting for its stalled add after Close gave up")
	}
}
