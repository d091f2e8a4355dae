package managed_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
)

// TestTrimKeepsCurrentLedger: with retention 0 and every entry consumed —
// those of the current ledger included — a trim deletes exactly the closed
// ledgers. The current ledger stays in the list and in ledger metadata, and
// appends go on at its next entry. After a reopen the former current ledger
// is closed and trimmed in turn, and the new current one stays.
func TestTrimKeepsCurrentLedger(t *testing.T) {
	e := newEnv(t, 1, func(o *managed.Options) {
		o.MaxEntriesPerLedger = 10
		o.Retention = func() managed.Retention { return managed.Retention{Time: 0, Size: 0} }
	})
	const name = "public/default/trim-current"
	lc := e.opts.Ledgers
	ml := e.open(t, name)
	ctx := ctxT(t, time.Minute)
	c, err := ml.OpenCursor(ctx, "s", managed.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	pos := appendAll(t, ml, 0, 25) // ledgers of entries 0-9, 10-19, and the current one 20-24
	cur := pos[24].LedgerID
	if pos[20] != (managed.Position{LedgerID: cur, EntryID: 0}) || pos[10].LedgerID == cur || pos[0].LedgerID == pos[10].LedgerID {
		t.Fatalf("positions %v %v %v: want entries 0, 10, 20 opening three ledgers", pos[0], pos[10], pos[20])
	}
	size := func(from, to int) (n int64) {
		for i := from; i <= to; i++ {
			n += int64(len(data(i, int64(1000+i))))
		}
		return n
	}
	// onlyLedger checks that the log's only ledger is id, open in the list
	// and in ledger metadata, with entries entries.
	onlyLedger := func(ml *managed.ManagedLedger, id, entries int64) {
		t.Helper()
		ls := ml.Stats().Ledgers
		if len(ls) != 1 || ls[0].LedgerID != id || ls[0].State != "open" || ls[0].Entries != entries {
			t.Fatalf("ledgers %+v, want only the current ledger %d, open, of %d entries", ls, id, entries)
		}
		if md, err := lc.Metadata(ctx, id); err != nil || md.State != ledger.StateOpen {
			t.Fatalf("current ledger %d metadata: %+v, %v; want it OPEN", id, md, err)
		}
	}

	if err := c.AckCumulative(pos[24]); err != nil {
		t.Fatal(err)
	}
	res, err := ml.Trim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantTrim := fmt.Sprint([]int64{pos[0].LedgerID, pos[10].LedgerID})
	if fmt.Sprint(res.Ledgers) != wantTrim || res.Entries != 20 || res.Bytes != size(0, 19) {
		t.Fatalf("trim reclaimed %+v, want ledgers %s, 20 entries, %d bytes", res, wantTrim, size(0, 19))
	}
	for _, id := range res.Ledgers {
		if _, err := lc.Metadata(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("trimmed ledger %d: %v, want ErrNotFound", id, err)
		}
	}
	onlyLedger(ml, cur, 5)
	if ml.FirstPosition() != pos[20] || ml.LastConfirmed() != pos[24] {
		t.Fatalf("first %v last %v after trim, want %v %v", ml.FirstPosition(), ml.LastConfirmed(), pos[20], pos[24])
	}

	// Appends continue in the current ledger, at its next entry, and reach
	// the cursor.
	p, err := ml.Append(ctx, data(25, 1025), 1025)
	if err != nil || p != (managed.Position{LedgerID: cur, EntryID: 5}) {
		t.Fatalf("append after trim at %v (%v), want %d:5", p, err, cur)
	}
	if got := readAll(t, c); len(got) != 1 || got[0].Position != p || !bytes.Equal(got[0].Data, data(25, 1025)) {
		t.Fatalf("cursor read %d entries after the trim (first %+v), want the one at %v", len(got), got, p)
	}
	if err := c.AckCumulative(p); err != nil {
		t.Fatal(err)
	}
	// Everything consumed again: the current ledger is still not trimmed.
	if res, err := ml.Trim(ctx); err != nil || len(res.Ledgers) != 0 {
		t.Fatalf("second trim: %+v, %v; want nothing (only the current ledger is left)", res, err)
	}
	onlyLedger(ml, cur, 6)

	// Reopened, the former current ledger is closed and consumed: it goes,
	// the new current ledger stays and takes the next append at entry 0.
	if err := ml.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ml2 := e.open(t, name)
	c2, _ := ml2.Cursor("s")
	if c2.MarkDeletePosition() != p || c2.Backlog() != 0 {
		t.Fatalf("cursor after reopen at %v with backlog %d, want %v and 0", c2.MarkDeletePosition(), c2.Backlog(), p)
	}
	ls := ml2.Stats().Ledgers
	if len(ls) != 2 || ls[0].LedgerID != cur || ls[0].State != "closed" || ls[0].Entries != 6 || ls[1].State != "open" {
		t.Fatalf("ledgers after reopen %+v, want %d closed with 6 entries, then a new open one", ls, cur)
	}
	cur2 := ls[1].LedgerID
	res, err = ml2.Trim(ctx)
	if err != nil || fmt.Sprint(res.Ledgers) != fmt.Sprint([]int64{cur}) || res.Entries != 6 || res.Bytes != size(20, 25) {
		t.Fatalf("trim after reopen: %+v, %v; want ledger %d, 6 entries, %d bytes", res, err, cur, size(20, 25))
	}
	onlyLedger(ml2, cur2, 0)
	p2, err := ml2.Append(ctx, data(26, 1026), 1026)
	if err != nil || p2 != (managed.Position{LedgerID: cur2, EntryID: 0}) {
		t.Fatalf("append after the second trim at %v (%v), want %d:0", p2, err, cur2)
	}
	if got := readAll(t, c2); len(got) != 1 || got[0].Position != p2 || !bytes.Equal(got[0].Data, data(26, 1026)) {
		t.Fatalf("cursor read %d entries after reopen and trim (%+v), want the one at %v", len(got), got, p2)
	}
	onlyLedger(ml2, cur2, 1)
}
