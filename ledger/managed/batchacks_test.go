package managed_test

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-mq/strata/ledger/managed"
)

// TestBatchIndexAcks: partial acknowledgements of a batch entry add up (a
// message stays unacknowledged only while no acknowledgement covered it),
// survive a reopen, complete the entry when nothing is left, and go with
// the entry when the mark-delete position passes it.
func TestBatchIndexAcks(t *testing.T) {
	e := newEnv(t, 1, nil)
	ml := e.open(t, "public/default/batch-acks")
	ctx := ctxT(t, time.Minute)
	c, err := ml.OpenCursor(ctx, "s", managed.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	pos := appendAll(t, ml, 0, 4)
	// Entry 1 is a batch of 4: messages 0 and 2 acknowledged, then 1.
	if done, err := c.AckBatchIndexes(pos[1], []int64{0b1010}); err != nil || done {
		t.Fatalf("first partial ack: complete=%v %v", done, err)
	}
	if done, err := c.AckBatchIndexes(pos[1], []int64{0b1101}); err != nil || done {
		t.Fatalf("second partial ack: complete=%v %v", done, err)
	}
	if got := c.BatchAckSet(pos[1]); !slices.Equal(got, []int64{0b1000}) {
		t.Fatalf("unacknowledged messages of entry 1: %b, want [1000]", got)
	}
	if c.IsAcked(pos[1]) || c.Backlog() != 4 {
		t.Fatalf("a partly acknowledged entry counts as acknowledged (backlog %d)", c.Backlog())
	}
	// Entry 2 partly, then the log is closed and reopened.
	if _, err := c.AckBatchIndexes(pos[2], []int64{0b01}); err != nil {
		t.Fatal(err)
	}
	if err := ml.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ml = e.open(t, "public/default/batch-acks")
	c, _ = ml.Cursor("s")
	if got := c.BatchAckSet(pos[1]); !slices.Equal(got, []int64{0b1000}) {
		t.Fatalf("after reopening, unacknowledged messages of entry 1: %b, want [1000]", got)
	}
	// The last message of entry 1: the entry is complete.
	if done, err := c.AckBatchIndexes(pos[1], []int64{0}); err != nil || !done {
		t.Fatalf("last partial ack: complete=%v %v", done, err)
	}
	if !c.IsAcked(pos[1]) || c.BatchAckSet(pos[1]) != nil {
		t.Fatal("entry 1 not acknowledged once all its messages were")
	}
	// A cumulative ack past entry 2 drops its partial state.
	if err := c.AckCumulative(pos[2]); err != nil {
		t.Fatal(err)
	}
	if c.BatchAckSet(pos[2]) != nil {
		t.Fatal("partial state of entry 2 kept below the mark-delete position")
	}
	if done, err := c.AckBatchIndexes(pos[2], []int64{0b1}); err != nil || !done {
		t.Fatalf("partial ack below the mark-delete position: complete=%v %v", done, err)
	}
	if _, err := c.AckBatchIndexes(managed.Position{LedgerID: pos[3].LedgerID, EntryID: pos[3].EntryID + 5}, []int64{1}); err == nil {
		t.Fatal("partial ack of an entry that does not exist accepted")
	}
}
