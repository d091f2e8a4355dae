package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
)

// TestCheckCountsEveryKindOfFault feeds the checker a history with one of
// each discrepancy: the harness's verdict is only as good as this count.
func TestCheckCountsEveryKindOfFault(t *testing.T) {
	const topic = "persistent://chaos/ns/t0"
	rec := newRecorder()
	id := func(e int64) client.MessageID {
		return client.MessageID{LedgerID: 1, EntryID: e, BatchIndex: -1, Partition: -1}
	}
	for seq := range int64(8) {
		rec.attempt(topic, seq)
		if seq < 7 { // seq 7 was sent but never acknowledged
			rec.acked(topic, seq, id(seq), time.Millisecond)
		}
	}
	deliver := func(stream string, seqs ...int64) {
		for _, seq := range seqs {
			rec.delivered(stream+"/"+topic, client.Message{ID: id(seq), Payload: payload(topic, seq)})
		}
	}
	deliver("live", 0, 1, 2, 4, 3, 5, 6, 6)                                                                  // 3 after 4: reordered; 6 twice: a redelivery
	rec.delivered("live/"+topic, client.Message{ID: id(9), Payload: payload(topic, 99)})                     // never sent
	rec.delivered("live/"+topic, client.Message{ID: id(9), Payload: payload("persistent://chaos/ns/t1", 0)}) // another topic's
	deliver("reader", 0, 1, 2, 3, 4, 5, 6, 7)                                                                // 7: sent, not acked: fine
	deliver("final", 0, 1, 1, 2, 5, 6)                                                                       // 1 twice: duplicated; 3, 4 lost

	r := &Report{Delivered: map[string]int{}}
	check(r, rec, []topicSpec{{name: topic}})
	if r.Sent != 8 || r.Acked != 7 || r.Lost != 2 || r.Duplicated != 1 || r.Reordered != 1 || r.Phantom != 2 {
		t.Fatalf("sent %d acked %d lost %d duplicated %d reordered %d never sent %d; want 8 7 2 1 1 2\n%s",
			r.Sent, r.Acked, r.Lost, r.Duplicated, r.Reordered, r.Phantom, r.Table())
	}
	if r.OK() {
		t.Fatal("a run with losses reports OK")
	}
	if want := "final " + topic + ": seqs 3..4 (2)"; !strings.Contains(r.Table(), want) {
		t.Fatalf("report lacks %q:\n%s", want, r.Table())
	}
	if r.Delivered["live"] != 10 || r.Delivered["reader"] != 8 || r.Delivered["final"] != 6 {
		t.Fatalf("delivered %v", r.Delivered)
	}
}
