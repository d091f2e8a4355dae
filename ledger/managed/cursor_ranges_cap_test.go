package managed_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/strata-mq/strata/ledger/managed"
)

// TestPersistedAckRangesCap: a cursor persists at most
// MaxUnackedRangesToPersist individually acknowledged ranges — the lowest
// ones — with its mark-delete position. After a reopen (clean close, or a
// crash after a flush) the mark-delete position and exactly those ranges are
// back, and redelivery is exactly the unacknowledged entries plus the
// acknowledged ones of the ranges beyond the cap.
func TestPersistedAckRangesCap(t *testing.T) {
	var def managed.Options
	def.EnsureDefaults()
	if def.MaxUnackedRangesToPersist != 10000 {
		t.Fatalf("default MaxUnackedRangesToPersist %d, want 10000", def.MaxUnackedRangesToPersist)
	}

	const maxRanges, n, perLedger = 5, 40, 20
	// Individually acknowledged ranges of entry indexes, inclusive, above
	// the mark-delete position (entry 4); entries 20.. are in the second
	// ledger.
	all := [][2]int{{6, 7}, {9, 9}, {11, 13}, {15, 15}, {17, 18}, {20, 21}, {25, 25}, {30, 39}}
	cases := []struct {
		name   string
		ranges int
		crash  bool
	}{
		{"under the cap", maxRanges - 1, false},
		{"at the cap", maxRanges, false},
		{"over the cap", len(all), false},
		{"over the cap, crash after flush", len(all), true},
	}
	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1, func(o *managed.Options) {
				o.MaxEntriesPerLedger = perLedger
				o.MaxUnackedRangesToPersist = maxRanges
			})
			name := fmt.Sprintf("public/default/ranges-%d", ci)
			ml := e.open(t, name)
			ctx := ctxT(t, time.Minute)
			c, err := ml.OpenCursor(ctx, "s", managed.Earliest)
			if err != nil {
				t.Fatal(err)
			}
			pos := appendAll(t, ml, 0, n)
			if err := c.AckCumulative(pos[4]); err != nil {
				t.Fatal(err)
			}
			for _, r := range all[:tc.ranges] {
				for i := r[0]; i <= r[1]; i++ {
					if err := c.Ack(pos[i]); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got := c.AckRanges(); got != tc.ranges {
				t.Fatalf("%d ranges before the reopen, want %d", got, tc.ranges)
			}

			// What survives: mark-delete 4 and the lowest maxRanges ranges.
			kept := map[int]bool{}
			for i := 0; i <= 4; i++ {
				kept[i] = true
			}
			for _, r := range all[:min(tc.ranges, maxRanges)] {
				for i := r[0]; i <= r[1]; i++ {
					kept[i] = true
				}
			}

			if tc.crash {
				if err := c.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			} else if err := ml.Close(ctx); err != nil {
				t.Fatal(err)
			}
			ml2 := e.open(t, name) // after a crash: takes the log over from ml
			c2, ok := ml2.Cursor("s")
			if !ok {
				t.Fatal("cursor not recovered")
			}
			if got := c2.MarkDeletePosition(); got != pos[4] {
				t.Fatalf("mark-delete %v after reopen, want %v", got, pos[4])
			}
			if got, want := c2.AckRanges(), min(tc.ranges, maxRanges); got != want {
				t.Fatalf("%d ranges after reopen, want %d", got, want)
			}
			for i := 0; i < n; i++ {
				if got := c2.IsAcked(pos[i]); got != kept[i] {
					t.Fatalf("entry %d acknowledged %v after reopen, want %v", i, got, kept[i])
				}
			}
			if got, want := c2.Backlog(), int64(n-len(kept)); got != want {
				t.Fatalf("backlog %d after reopen, want %d", got, want)
			}
			var redelivered, want []int
			for _, en := range readAll(t, c2) {
				redelivered = append(redelivered, slices.Index(pos, en.Position))
			}
			for i := 0; i < n; i++ {
				if !kept[i] {
					want = append(want, i)
				}
			}
			if fmt.Sprint(redelivered) != fmt.Sprint(want) {
				t.Fatalf("redelivered %v\nwant %v", redelivered, want)
			}

			// The recovered ranges work: acknowledging entry 5 moves the
			// mark-delete position over the first one (6-7).
			if err := c2.Ack(pos[5]); err != nil {
				t.Fatal(err)
			}
			if got := c2.MarkDeletePosition(); got != pos[7] {
				t.Fatalf("mark-delete %v after acking entry 5, want %v (end of range 6-7)", got, pos[7])
			}
			if got, want := c2.AckRanges(), min(tc.ranges, maxRanges)-1; got != want {
				t.Fatalf("%d ranges after acking entry 5, want %d", got, want)
			}
		})
	}
}
