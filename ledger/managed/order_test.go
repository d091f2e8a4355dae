package managed_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
)

// TestOwnerWithLowerLedgerIDs moves a log between two owners (ledger
// clients) whose reserved id blocks lie below each other's last ledger: the
// second owner's next id from its block is lower than the log's last ledger.
// Every new ledger must still get a higher id, so that a durable cursor made
// before the moves, a reader from the earliest entry and a reader resuming
// after its last read position all get every entry once, in order, and
// FindByTime, backlog and trimming see the log in order. The moves are a
// graceful close and an abandonment (a crash); with ids taken from the
// blocks as they come, the cursor skips everything the lower-id owner
// writes.
func TestOwnerWithLowerLedgerIDs(t *testing.T) {
	for _, move := range []string{"close", "crash"} {
		t.Run(move, func(t *testing.T) {
			e := newEnv(t, 1, func(o *managed.Options) { o.MaxEntriesPerLedger = 10 })
			ctx := ctxT(t, 2*time.Minute)
			clients := []*ledger.Client{e.c.LedgerClient(), e.c.LedgerClient()}
			// Client 1 reserves the first id block (1..16) before client 0
			// writes the log: client 1's next ids are below the log's.
			w, err := clients[1].Create(ctx, ledger.CreateOptions{EnsembleSize: 1, WriteQuorum: 1, AckQuorum: 1})
			if err != nil {
				t.Fatal(err)
			}
			w.Abandon()
			if err := clients[1].Delete(ctx, w.ID()); err != nil {
				t.Fatal(err)
			}

			const name = "public/default/moves"
			open := func(owner int) *managed.ManagedLedger {
				o := e.opts
				o.Ledgers = clients[owner]
				ml, err := managed.Open(ctx, name, o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ml.Close(context.Background()) })
				return ml
			}
			ml := open(0)
			sub, err := ml.OpenCursor(ctx, "sub", managed.Earliest)
			if err != nil {
				t.Fatal(err)
			}
			var pos []managed.Position
			var lastRead managed.Position // the resuming reader's last entry
			for round := 0; round < 4; round++ {
				pos = append(pos, appendAll(t, ml, len(pos), 25)...)
				// The resuming reader reads what is there, then resumes after
				// its last entry on the next owner, as a client reader does.
				rd := ml.NewNonDurableCursor(managed.Position{LedgerID: lastRead.LedgerID, EntryID: lastRead.EntryID + 1})
				got := readAll(t, rd)
				rd.Close()
				if len(got) != 25 || got[0].Position != pos[len(pos)-25] {
					t.Fatalf("round %d: resuming reader got %d entries from %v, want 25 from %v", round, len(got), first(got), pos[len(pos)-25])
				}
				lastRead = got[len(got)-1].Position
				if err := sub.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if move == "close" {
					if err := ml.Close(ctx); err != nil {
						t.Fatal(err)
					}
				} else {
					ml.Abandon()
				}
				ml = open((round + 1) % 2)
				var ok bool
				if sub, ok = ml.Cursor("sub"); !ok {
					t.Fatal("cursor sub lost in the move")
				}
			}
			pos = append(pos, appendAll(t, ml, len(pos), 25)...)
			for i := 1; i < len(pos); i++ {
				if !pos[i-1].Less(pos[i]) {
					t.Fatalf("entry %d at %v does not follow entry %d at %v", i, pos[i], i-1, pos[i-1])
				}
			}
			check := func(what string, got []managed.Entry) {
				t.Helper()
				if len(got) != len(pos) {
					t.Fatalf("%s: %d entries, want %d", what, len(got), len(pos))
				}
				for i, en := range got {
					if en.Position != pos[i] || !bytes.Equal(en.Data, data(i, int64(1000+i))) {
						t.Fatalf("%s: entry %d at %v, want %v", what, i, en.Position, pos[i])
					}
				}
			}
			if b := sub.Backlog(); b != int64(len(pos)) {
				t.Fatalf("backlog %d, want %d", b, len(pos))
			}
			check("cursor made before the moves", readAll(t, sub))
			earliest := ml.NewNonDurableCursor(ml.FirstPosition())
			check("reader from the earliest entry", readAll(t, earliest))
			earliest.Close()

			for _, i := range []int{0, 30, 60, 99, len(pos) - 1} {
				p, err := ml.FindByTime(ctx, int64(1000+i))
				if err != nil || p != pos[i] {
					t.Fatalf("FindByTime(entry %d) = %v, %v; want %v", i, p, err, pos[i])
				}
			}
			// Acknowledge the first 60 entries: trimming removes exactly the
			// ledgers they fill, and the backlog counts the rest.
			if err := sub.AckCumulative(pos[59]); err != nil {
				t.Fatal(err)
			}
			if b := sub.Backlog(); b != int64(len(pos)-60) {
				t.Fatalf("backlog after acking 60: %d, want %d", b, len(pos)-60)
			}
			res, err := ml.Trim(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.Entries != 60 {
				t.Fatalf("trim removed %d entries (ledgers %v), want 60", res.Entries, res.Ledgers)
			}
			rest := ml.NewNonDurableCursor(ml.FirstPosition())
			got := readAll(t, rest)
			if len(got) != len(pos)-60 || got[0].Position != pos[60] {
				t.Fatalf("after trim: %d entries from %v, want %d from %v", len(got), first(got), len(pos)-60, pos[60])
			}
		})
	}
}

func first(es []managed.Entry) managed.Position {
	if len(es) == 0 {
		return managed.Position{LedgerID: -1, EntryID: -1}
	}
	return es[0].Position
}
