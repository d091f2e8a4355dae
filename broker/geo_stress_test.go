//go:build geo_stress

package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
)

// TestGeoStressInflightOwnerKill kills A's topic owner while A's producers
// (batched, deduplicated, a new auto-named producer per 50 messages) have
// sends in flight and replication runs, then checks A's log and B's. Under
// heavy CPU load it failed about one run in ten until a send under an ended
// context could no longer go out after an earlier one failed
// (docs/testing.md, "A hunt, closed"). Tag geo_stress (`make geo-stress`):
// a stress run, too long for CI.
func TestGeoStressInflightOwnerKill(t *testing.T) {
	g := newGeoPair(t, 2, func(cluster string, i int, o *broker.Options) {
		o.DeduplicationEnabled = cluster == "a"
	})
	ctx := ctxT(t, 5*time.Minute)
	const topic = "persistent://geo/ns/inflight"
	ca := newClient(t, g.a)
	done := produceGeoPaced(t, ctx, ca, topic, "a", 0, 3000)
	waitOut(t, ctx, g.a, topic, "b", 500)
	owner := -1
	for i := 0; i < 2; i++ {
		if g.a.Broker(i).B.OwnsTopic(topic) {
			owner = i
		}
	}
	if owner < 0 {
		t.Fatal("no broker of A owns the topic")
	}
	g.a.KillBroker(owner)
	<-done
	waitReplicated(t, ctx, g.a, topic, "b")
	// Where A's log holds the messages around the kill, for a failure to
	// be compared with B's debug log (STRATA_TEST_LOG=debug: "replicated
	// entry already taken" names the source positions B dropped).
	r, err := ca.CreateReader(ctx, topic, client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	var around []string
	for i := 0; i < 3000; i++ {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := string(m.Payload); n >= "a/000450" && n < "a/000700" {
			around = append(around, fmt.Sprintf("%s@%d:%d:%d", n[2:], m.ID.LedgerID, m.ID.EntryID, m.ID.BatchIndex))
		}
	}
	r.Close()
	t.Logf("A's positions of messages 450-699: %v", around)
	got := readAll(t, ctx, ca, topic, 3000)
	checkExactlyOnce(t, "cluster a", "a", got["a"], 0, 3000)
	got = readAll(t, ctx, newClient(t, g.b), topic, 3000)
	checkExactlyOnce(t, "cluster b", "a", got["a"], 0, 3000)
}
