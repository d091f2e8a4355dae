package bookie_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
)

// journalBytes returns the total size of a data dir's entry-log segments.
func journalBytes(t *testing.T, dir string) int64 {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "journal", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range segs {
		if st, err := os.Stat(s); err == nil {
			n += st.Size()
		}
	}
	return n
}

// TestCompactionReclaimsDeletedLedgers: three ledgers interleaved in the
// entry log; once two are deleted from metadata, garbage collection drops
// them and compaction moves the third's entries out of the sparse segments
// and deletes those, so the log shrinks to about a third. The survivor reads
// back whole, before and after a crash; once it is deleted too, every
// segment but the one being written goes.
func TestCompactionReclaimsDeletedLedgers(t *testing.T) {
	c := crashCluster(t, func(o *bookie.Options) {
		o.SegmentSize, o.CheckpointBytes = 1<<20, 256<<10
		o.GCInterval = 100 * time.Millisecond
	})
	ctx := ctxT(t)
	addr, dir := c.Bookie(0).Addr, c.Bookie(0).Dir
	for _, id := range []int64{1, 2, 3} {
		if _, err := c.Store.Create(ctx, metadata.LedgerKey(id), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	const n = 1500
	payload := func(l, i int64) string { return fmt.Sprintf("%d/%d/%s", l, i, strings.Repeat("x", 700)) }
	a := newAdder(t, addr)
	for i := int64(0); i < n; i++ {
		for _, l := range []int64{1, 2, 3} {
			a.mustAdd(l, i, i-1, payload(l, i))
		}
	}
	before := journalBytes(t, dir)
	for _, id := range []int64{1, 2} {
		if err := c.Store.Delete(ctx, metadata.LedgerKey(id), metadata.AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		if now := journalBytes(t, dir); now > before/2 {
			return fmt.Errorf("entry log %d bytes, was %d", now, before)
		}
		return nil
	})
	check := func(when string) {
		t.Helper()
		cli := client(t, addr)
		for i := int64(0); i < n; i++ {
			resp, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 3, EntryId: i})
			if err != nil {
				t.Fatalf("%s: entry 3/%d: %v", when, i, err)
			}
			if _, p, err := bookiepb.VerifyEntry(resp.Body, 3, i); err != nil || string(p) != payload(3, i) {
				t.Fatalf("%s: entry 3/%d damaged: %v", when, i, err)
			}
		}
		for _, l := range []int64{1, 2} {
			if _, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: l, EntryId: 0}); codeOf(t, err) != bookiepb.Code_NO_LEDGER {
				t.Fatalf("%s: deleted ledger %d: %v", when, l, err)
			}
		}
	}
	check("after compaction")
	t.Logf("entry log %d bytes before, %d after compaction", before, journalBytes(t, dir))
	c.CrashBookie(0)
	if err := c.StartBookie(0); err != nil {
		t.Fatal(err)
	}
	check("after a crash")

	if err := c.Store.Delete(context.Background(), metadata.LedgerKey(3), metadata.AnyVersion); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		if now := journalBytes(t, dir); now > 256<<10 {
			return fmt.Errorf("entry log still %d bytes with every ledger deleted", now)
		}
		return nil
	})
}
