package ledger_test

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/ledger"
)

// TestStripingOnBookies writes ledgers with (E,Qw) in {(3,3),(4,3),(5,2)} and
// checks on every bookie that each entry is stored on exactly its write set.
func TestStripingOnBookies(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 5})
	lc := c.LedgerClient()
	ctx := ctxT(t, time.Minute)
	for _, q := range []struct{ e, qw int }{{3, 3}, {4, 3}, {5, 2}} {
		w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: q.e, WriteQuorum: q.qw, AckQuorum: q.qw, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		const n = 20
		appendN(t, w, 0, n)
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		md := w.Metadata()
		ens := md.Segments[0].Ensemble
		for slot, b := range ens {
			cli := bookieClient(t, b)
			for id := int64(0); id < n; id++ {
				want := false
				for k := 0; k < q.qw; k++ {
					if int((id+int64(k))%int64(q.e)) == slot {
						want = true
					}
				}
				_, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: w.ID(), EntryId: id})
				if got := err == nil; got != want {
					t.Errorf("E=%d Qw=%d entry %d on slot %d: stored=%v want %v (%v)", q.e, q.qw, id, slot, got, want, err)
				}
			}
			if !slices.Contains(md.WriteSet(int64(slot)), b) {
				t.Errorf("E=%d Qw=%d: WriteSet(%d) %v lacks its first slot bookie %s", q.e, q.qw, slot, md.WriteSet(int64(slot)), b)
			}
		}
	}
}
