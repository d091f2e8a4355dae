package ledger_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/ledger"
)

// TestLedgersAvoidBookiesWithSmallerEntryLimits: a client whose largest
// entry exceeds a bookie's limit never places a ledger on that bookie
// (which would refuse its large entries and be mistaken for a failed
// bookie); when no bookie fits, creating a ledger says why.
func TestLedgersAvoidBookiesWithSmallerEntryLimits(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 3, BookieOptions: func(i int, o *bookie.Options) {
		if i < 2 {
			o.MaxEntrySize = 1 << 20 // bookies 0 and 1: 1 MiB
		} else {
			o.MaxEntrySize = 4 << 20
		}
	}})
	ctx := ctxT(t, time.Minute)
	big := c.LedgerClient(func(o *ledger.ClientOptions) { o.MaxEntrySize = 2 << 20 })
	for i := 0; i < 5; i++ {
		w, err := big.Create(ctx, ledger.CreateOptions{EnsembleSize: 1, WriteQuorum: 1, AckQuorum: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := w.Metadata().Segments[0].Ensemble[0], c.Bookie(2).Addr; got != want {
			t.Fatalf("ledger placed on %s, which accepts 1 MiB entries; want %s", got, want)
		}
		if _, err := w.Append(ctx, make([]byte, 2<<20)); err != nil {
			t.Fatalf("2 MiB entry: %v", err)
		}
		w.Close(ctx)
	}
	_, err := big.Create(ctx, ledger.CreateOptions{EnsembleSize: 2, WriteQuorum: 2, AckQuorum: 2})
	if !errors.Is(err, ledger.ErrNotEnoughBookies) || !strings.Contains(err.Error(), "--max-entry-size") {
		t.Fatalf("E=2 with one large enough bookie: %v", err)
	}
	// A client within every bookie's limit uses them all.
	small := c.LedgerClient(func(o *ledger.ClientOptions) { o.MaxEntrySize = 512 << 10 })
	if _, err := small.Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 3, AckQuorum: 2}); err != nil {
		t.Fatal(err)
	}
}
