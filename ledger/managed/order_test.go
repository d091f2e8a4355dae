package managed_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
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

// TestOutOfOrderLedgerListRenumbered opens a log as builds before ledger-id
// ordering left it: its list names ledgers 17, 18 (one broker's id block),
// then 2, 3 and an unclosed 4 (another broker's lower block), with cursors
// persisted by such a build. Opening renumbers 2, 3 and 4 into copies above
// 18, in order, so the cursors deliver every entry after their mark-delete
// position once, old ids in acknowledgements and reader starts name the
// same entries, and the replaced ledgers are deleted.
func TestOutOfOrderLedgerListRenumbered(t *testing.T) {
	e := newEnv(t, 1, nil)
	ctx := ctxT(t, 2*time.Minute)
	low, high := e.c.LedgerClient(), e.c.LedgerClient()
	create := func(lc *ledger.Client) *ledger.Writer {
		w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: 1, WriteQuorum: 1, AckQuorum: 1})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	reserve := create(low) // ledger 1: low's block is 1..16
	reserve.Abandon()
	if err := low.Delete(ctx, reserve.ID()); err != nil {
		t.Fatal(err)
	}
	const perLedger = 10
	var entries [][]byte
	var infos []map[string]any
	for i, lc := range []*ledger.Client{high, high, low, low, low} {
		w := create(lc)
		for j := 0; j < perLedger; j++ {
			n := len(entries)
			entries = append(entries, data(n, int64(1000+n)))
			if _, err := w.Append(ctx, entries[n]); err != nil {
				t.Fatal(err)
			}
		}
		li := map[string]any{"ledgerId": w.ID()}
		if i < 4 {
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			li["entries"], li["size"], li["timestamp"] = perLedger, w.Length(), time.Now().UnixMilli()
		} else {
			w.Abandon() // the last owner crashed with it open
		}
		infos = append(infos, li)
	}
	ids := []int64{}
	for _, li := range infos {
		ids = append(ids, li["ledgerId"].(int64))
	}
	if want := []int64{17, 18, 2, 3, 4}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("legacy ledgers %v, want %v", ids, want)
	}
	const name = "public/default/legacy"
	put := func(key string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.Store.Put(ctx, key, b, metadata.AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	put(metadata.ManagedLedgersPrefix+name, map[string]any{"ledgers": infos})
	// "stuck" consumed ledgers 17 and 18, then skipped 2..4; "ranges"
	// acknowledged 17:0..4 and, individually, 18:2..3.
	put(metadata.CursorsPrefix+name+"/stuck", map[string]any{"markDelete": map[string]int64{"ledgerId": 18, "entryId": 9}})
	put(metadata.CursorsPrefix+name+"/ranges", map[string]any{"markDelete": map[string]int64{"ledgerId": 17, "entryId": 4},
		"ranges": [][3]int64{{18, 2, 3}}})

	ml := e.open(t, name)
	var pos []managed.Position
	rd := ml.NewNonDurableCursor(ml.FirstPosition())
	for _, en := range readAll(t, rd) {
		pos = append(pos, en.Position)
		if i := len(pos) - 1; !bytes.Equal(en.Data, entries[i]) {
			t.Fatalf("entry %d at %v has the wrong data", i, en.Position)
		}
	}
	rd.Close()
	if len(pos) != len(entries) {
		t.Fatalf("read %d entries, want %d", len(pos), len(entries))
	}
	for i := 1; i < len(pos); i++ {
		if !pos[i-1].Less(pos[i]) {
			t.Fatalf("after renumbering, entry %d at %v does not follow %v", i, pos[i], pos[i-1])
		}
	}
	for i, id := range []int64{17, 18} {
		if pos[i*perLedger].LedgerID != id {
			t.Fatalf("ledger %d was renumbered to %d; only ledgers out of order should be", id, pos[i*perLedger].LedgerID)
		}
	}
	readFrom := func(c *managed.Cursor) []managed.Position {
		var out []managed.Position
		for _, en := range readAll(t, c) {
			out = append(out, en.Position)
		}
		return out
	}
	stuck, _ := ml.Cursor("stuck")
	if got := readFrom(stuck); fmt.Sprint(got) != fmt.Sprint(pos[20:]) {
		t.Fatalf("cursor stuck read %v, want %v", got, pos[20:])
	}
	ranges, _ := ml.Cursor("ranges")
	want := append(append(append([]managed.Position{}, pos[5:12]...), pos[14:20]...), pos[20:]...)
	if got := readFrom(ranges); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("cursor ranges read %v, want %v", got, want)
	}
	// Old ids still name the same entries.
	if err := stuck.Ack(managed.Position{LedgerID: 2, EntryID: 0}); err != nil {
		t.Fatal(err)
	}
	if !stuck.IsAcked(pos[20]) {
		t.Fatalf("ack of old position 2:0 did not acknowledge its copy %v", pos[20])
	}
	rd = ml.NewNonDurableCursor(managed.Position{LedgerID: 3, EntryID: 5})
	if got := readFrom(rd); len(got) == 0 || got[0] != pos[35] {
		t.Fatalf("reader from old position 3:5 read %v, want it to start at %v", got, pos[35])
	}
	rd.Close()
	for _, id := range []int64{2, 3, 4} {
		if _, err := e.opts.Ledgers.Metadata(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("replaced ledger %d still exists: %v", id, err)
		}
	}
	// Reopened, the log is in order and needs no renumbering.
	if err := ml.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ml = e.open(t, name)
	stuck, _ = ml.Cursor("stuck")
	if md := stuck.MarkDeletePosition(); md != pos[20] {
		t.Fatalf("after reopen stuck's mark-delete is %v, want %v", md, pos[20])
	}
	if got := readFrom(stuck); fmt.Sprint(got) != fmt.Sprint(pos[21:]) {
		t.Fatalf("after reopen stuck read %v, want %v", got, pos[21:])
	}
}
