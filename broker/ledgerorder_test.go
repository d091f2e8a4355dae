package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
)

// TestClusterTopicMovesToLowerLedgerIDs moves a topic between two brokers
// whose ledger id blocks are interleaved — the broker taking the topic over
// holds a block below the topic's last ledger — by a graceful stop, a topic
// unload and a kill, with an Exclusive and a Shared subscription and a
// reader from the earliest message created before the first move. Each
// receives every acknowledged message exactly once and in order, and seek by
// time still finds the first message of each round. (With ledger ids taken
// from the new owner's block as they come, the subscriptions stop after the
// first move: the new ledgers sort before the old ones.)
func TestClusterTopicMovesToLowerLedgerIDs(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxEntriesPerLedger = 7
	}})
	ctx := ctxT(t, 3*time.Minute)
	cl := newClient(t, c)

	// The first topic written takes the first id block for its broker; the
	// topic under test goes to the other broker, whose block comes next
	// (higher). Moving it to the first broker then hands it lower ids.
	warm, err := cl.CreateProducer(ctx, "warm")
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, warm, 0, 1)
	warm.Close()
	low := c.BrokerIndex(ownerOf(t, c, "persistent://public/default/warm"))
	var topic string
	for i := 0; topic == ""; i++ {
		name := fmt.Sprintf("persistent://public/default/moving-%d", i)
		if c.BrokerIndex(ownerOf(t, c, name)) != low {
			topic = name
		}
		if i == 50 {
			t.Fatal("every topic lands on the broker owning the warm-up topic")
		}
	}
	high := 1 - low

	excl, err := cl.Subscribe(ctx, topic, "excl", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	shared, err := cl.Subscribe(ctx, topic, "shared", client.WithSubscriptionType(client.Shared), client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	reader, err := cl.CreateReader(ctx, topic, client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, topic, client.WithBatching(4, 1<<20, time.Millisecond), client.WithSendTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	const perRound = 30
	var sent []string
	var roundStart []time.Time
	var last client.MessageID
	round := func(label string) {
		t.Helper()
		roundStart = append(roundStart, time.Now())
		from := len(sent)
		for i := from; i < from+perRound; i++ {
			sent = append(sent, fmt.Sprintf("%s/%03d", label, i))
		}
		ids := make(chan client.MessageID, perRound)
		for _, m := range sent[from:] {
			p.SendAsync(ctx, &client.ProducerMessage{Payload: []byte(m)}, func(id client.MessageID, _ *client.ProducerMessage, err error) {
				if err != nil {
					t.Errorf("send %s: %v", m, err)
				}
				ids <- id
			})
		}
		for range perRound {
			if id := <-ids; last.Less(id) {
				last = id
			}
		}
		for _, cons := range []*client.Consumer{excl, shared} {
			for i := from; i < from+perRound; i++ {
				m, err := cons.Receive(ctxT(t, 30*time.Second))
				if err != nil {
					t.Fatalf("%s: message %d (%s): %v", cons.Subscription(), i, sent[i], err)
				}
				if string(m.Payload) != sent[i] {
					t.Fatalf("%s: got %q, want %q (message %d)", cons.Subscription(), m.Payload, sent[i], i)
				}
				if err := cons.Ack(m); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := from; i < from+perRound; i++ {
			m, err := reader.Next(ctxT(t, 30*time.Second))
			if err != nil || string(m.Payload) != sent[i] {
				t.Fatalf("reader: got %q (%v), want %q (message %d)", m.Payload, err, sent[i], i)
			}
		}
		// Every acknowledgement persisted, so the next move redelivers nothing.
		for _, sub := range []string{"excl", "shared"} {
			waitPersistedAck(t, c, topic, sub, last)
		}
	}

	round("first")
	c.StopBroker(high) // graceful: the topic moves to the broker with the lower block
	round("after-stop")
	if err := c.StartBroker(high); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+c.Broker(low).HTTPAddr+"/admin/v2/persistent/public/default/"+topic[len("persistent://public/default/"):]+"/unload", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("unload: %v %v", resp, err)
	}
	resp.Body.Close()
	round("after-unload")
	c.KillBroker(low) // the topic moves back, to the block it left
	round("after-kill")

	for _, cons := range []*client.Consumer{excl, shared} {
		if m, err := cons.Receive(ctxT(t, time.Second)); err == nil {
			t.Fatalf("%s: message %q delivered twice", cons.Subscription(), m.Payload)
		}
	}
	// Seek by time lands on each round's first message.
	for r, at := range roundStart {
		if err := reader.SeekByTime(ctx, at); err != nil {
			t.Fatalf("seek to round %d: %v", r, err)
		}
		m, err := reader.Next(ctxT(t, 30*time.Second))
		if err != nil || string(m.Payload) != sent[r*perRound] {
			t.Fatalf("after seek to round %d: got %q (%v), want %q", r, m.Payload, err, sent[r*perRound])
		}
	}
}

// waitPersistedAck waits until subscription sub of topic has persisted a
// mark-delete position at or beyond id.
func waitPersistedAck(t *testing.T, c *testcluster.Cluster, topic, sub string, id client.MessageID) {
	t.Helper()
	key := metadata.CursorsPrefix + topic[len("persistent://"):] + "/" + sub
	testutil.WaitFor(t, 30*time.Second, func() error {
		kv, err := c.Store.Get(context.Background(), key)
		if err != nil {
			return err
		}
		var st struct {
			MarkDelete struct{ LedgerID, EntryID int64 } `json:"markDelete"`
		}
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			return err
		}
		md := client.MessageID{LedgerID: st.MarkDelete.LedgerID, EntryID: st.MarkDelete.EntryID, BatchIndex: id.BatchIndex}
		if md.Less(id) {
			return fmt.Errorf("%s persisted at %d:%d, waiting for %v", sub, md.LedgerID, md.EntryID, id)
		}
		return nil
	})
}
