package client_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
)

// TestConsumerChanInOrder: Consumer.Chan delivers every message in
// publish order, is the same channel on every call, and is closed when the
// consumer closes.
func TestConsumerChanInOrder(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "chan")
	cons := subscribe(t, cl, topic, "s", client.WithReceiverQueueSize(50))
	p := newProducer(t, cl, topic)
	const n = 500
	col := newCollector()
	for i := 0; i < n; i++ {
		p.SendAsync(ctxT(t, time.Minute), msg(fmt.Sprintf("m-%04d", i)), col.cb)
	}
	if err := p.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, r := range col.results() {
		if r.err != nil {
			t.Fatalf("send %q: %v", r.payload, r.err)
		}
	}
	ch := cons.Chan()
	if cons.Chan() != ch {
		t.Fatal("Chan returned a different channel on the second call")
	}
	timeout := time.After(time.Minute)
	for i := 0; i < n; i++ {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d messages", i)
			}
			if want := fmt.Sprintf("m-%04d", i); string(m.Payload) != want {
				t.Fatalf("message %d: %q, want %q", i, m.Payload, want)
			}
			if err := cons.Ack(m); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("%d of %d messages from Chan after a minute", i, n)
		}
	}
	cons.Close()
	timeout = time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			t.Fatalf("message %q after all %d were received", m.Payload, n)
		case <-timeout:
			t.Fatal("Chan not closed 30s after the consumer closed")
		}
	}
}

// TestMessageRouter: WithMessageRouter picks each message's partition
// (over the key's hash), and the router sees the partition count.
func TestMessageRouter(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	topic := uniqueTopic(t, "routed")
	createPartitioned(t, c, topic, 4)
	cl := newClient(t, c)
	cons := subscribe(t, cl, topic, "s")
	var mu sync.Mutex
	var counts []int
	router := func(m *client.ProducerMessage, partitions int) int {
		mu.Lock()
		counts = append(counts, partitions)
		mu.Unlock()
		to, _ := strconv.Atoi(m.Properties["to"])
		return to
	}
	p := newProducer(t, cl, topic, client.WithMessageRouter(router))
	targets := []int{2, 0, 3, 3, 1, 2, 2, 0}
	for i, to := range targets {
		// Every message has the same key: without the router they would
		// all land on one partition.
		id, err := p.Send(ctxT(t, time.Minute), &client.ProducerMessage{Payload: []byte(strconv.Itoa(i)), Key: "same-key",
			Properties: map[string]string{"to": strconv.Itoa(to)}})
		if err != nil {
			t.Fatal(err)
		}
		if id.Partition != int32(to) {
			t.Fatalf("message %d routed to %d: sent to partition %d", i, to, id.Partition)
		}
	}
	if len(counts) != len(targets) {
		t.Fatalf("router called %d times for %d messages", len(counts), len(targets))
	}
	for _, n := range counts {
		if n != 4 {
			t.Fatalf("router told %d partitions, want 4", n)
		}
	}
	for i := range targets {
		m := receive(t, cons, 30*time.Second)
		k, _ := strconv.Atoi(string(m.Payload))
		if k < 0 || k >= len(targets) {
			t.Fatalf("unexpected message %q", m.Payload)
		}
		want := targets[k]
		if m.ID.Partition != int32(want) || m.Topic != fmt.Sprintf("%s-partition-%d", topic, want) {
			t.Fatalf("message %d (%d of %d) received from %s (partition %d), want partition %d", k, i, len(targets), m.Topic, m.ID.Partition, want)
		}
		cons.Ack(m)
	}
}

// TestKeylessMessagesRoundRobin: without a key or router, messages go to
// the partitions in turn, so every partition gets the same share, and each
// partition keeps their order.
func TestKeylessMessagesRoundRobin(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	topic := uniqueTopic(t, "rr")
	const parts, n = 4, 40
	createPartitioned(t, c, topic, parts)
	cl := newClient(t, c)
	cons := subscribe(t, cl, topic, "s")
	p := newProducer(t, cl, topic)
	ids := make([]client.MessageID, n)
	for i := range ids {
		ids[i] = send(t, p, strconv.Itoa(i))
	}
	first := ids[0].Partition
	for i, id := range ids {
		if want := (first + int32(i)) % parts; id.Partition != want {
			t.Fatalf("message %d on partition %d, want %d (message 0 on %d, then in turn)", i, id.Partition, want, first)
		}
	}
	last := map[int32]int{}
	perPartition := map[int32]int{}
	for i := 0; i < n; i++ {
		m := receive(t, cons, 30*time.Second)
		k, _ := strconv.Atoi(string(m.Payload))
		if m.ID.Partition != ids[k].Partition {
			t.Fatalf("message %d received from partition %d, sent to %d", k, m.ID.Partition, ids[k].Partition)
		}
		if prev, ok := last[m.ID.Partition]; ok && k <= prev {
			t.Fatalf("partition %d: message %d after %d", m.ID.Partition, k, prev)
		}
		last[m.ID.Partition] = k
		perPartition[m.ID.Partition]++
		cons.Ack(m)
	}
	for part := int32(0); part < parts; part++ {
		if perPartition[part] != n/parts {
			t.Fatalf("partition %d got %d messages, want %d: %v", part, perPartition[part], n/parts, perPartition)
		}
	}
}
