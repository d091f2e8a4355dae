package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

// TestAckCumulativeNotAllowedOnSharedSubscriptions: on Shared and
// Key_Shared subscriptions AckCumulative fails locally with
// ErrCumulativeAckNotAllowed, acknowledges nothing and keeps the consumer's
// bookkeeping (the ack timeout still redelivers the messages); the messages
// come again after the consumer closes.
func TestAckCumulativeNotAllowedOnSharedSubscriptions(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	for _, typ := range []client.SubscriptionType{client.Shared, client.KeyShared} {
		t.Run(typ.String(), func(t *testing.T) {
			topic := uniqueTopic(t, "cumack")
			p := newProducer(t, cl, topic, client.WithoutBatching())
			cons := subscribe(t, cl, topic, "s", client.WithSubscriptionType(typ), client.WithAckTimeout(time.Second))
			send(t, p, "m0")
			send(t, p, "m1")
			m0, m1 := receive(t, cons, 30*time.Second), receive(t, cons, 30*time.Second)
			if string(m0.Payload) != "m0" || string(m1.Payload) != "m1" {
				t.Fatalf("received %q, %q; want m0, m1", m0.Payload, m1.Payload)
			}

			err := cons.AckCumulative(m1)
			if !errors.Is(err, client.ErrCumulativeAckNotAllowed) || !errors.Is(err, client.ErrNotAllowed) {
				t.Fatalf("AckCumulative on %s: %v, want ErrCumulativeAckNotAllowed (an ErrNotAllowed)", typ, err)
			}
			var se *client.ServerError
			if errors.As(err, &se) {
				t.Fatalf("AckCumulative error came from the broker (%v); want a local refusal", se)
			}

			// The failed acknowledgement left m0 and m1 unacknowledged in
			// the consumer's bookkeeping: the ack timeout redelivers both.
			again := redeliveredPayloads(t, cons, 2)
			if !slices.Equal(again, []string{"m0", "m1"}) {
				t.Fatalf("after the ack timeout: %q, want m0 and m1 again", again)
			}

			// Nothing was acknowledged on the broker: a new consumer gets
			// both messages once this one closes.
			cons.Close()
			cons2 := subscribe(t, cl, topic, "s", client.WithSubscriptionType(typ))
			got := make([]string, 0, 2)
			for _, m := range []client.Message{receive(t, cons2, 30*time.Second), receive(t, cons2, 30*time.Second)} {
				got = append(got, string(m.Payload))
				if err := cons2.AckWithResponse(ctxT(t, 30*time.Second), m); err != nil {
					t.Fatalf("ack %q: %v", m.Payload, err)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, []string{"m0", "m1"}) {
				t.Fatalf("after close, the new consumer got %q, want m0 and m1", got)
			}
			// Individual acknowledgements do work: the next message is m2.
			cons2.Close()
			cons3 := subscribe(t, cl, topic, "s", client.WithSubscriptionType(typ))
			send(t, p, "m2")
			if m := receive(t, cons3, 30*time.Second); string(m.Payload) != "m2" {
				t.Fatalf("after acknowledging m0 and m1: got %q (redeliveries %d), want m2", m.Payload, m.RedeliveryCount)
			}
		})
	}
}

// redeliveredPayloads receives n messages that must be redeliveries and
// returns their payloads sorted.
func redeliveredPayloads(t *testing.T, cons *client.Consumer, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		m := receive(t, cons, 30*time.Second)
		if m.RedeliveryCount == 0 {
			t.Fatalf("message %q delivered again with redelivery count 0", m.Payload)
		}
		out = append(out, string(m.Payload))
	}
	slices.Sort(out)
	return out
}

// TestAckCumulativeExclusiveAndFailover: AckCumulative acknowledges the
// message and everything before it, so a new consumer starts after it.
func TestAckCumulativeExclusiveAndFailover(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	for _, typ := range []client.SubscriptionType{client.Exclusive, client.Failover} {
		t.Run(typ.String(), func(t *testing.T) {
			topic := uniqueTopic(t, "cumack")
			p := newProducer(t, cl, topic, client.WithoutBatching())
			cons := subscribe(t, cl, topic, "s", client.WithSubscriptionType(typ))
			for _, s := range []string{"m0", "m1", "m2", "m3", "m4"} {
				send(t, p, s)
			}
			var msgs []client.Message
			for i := 0; i < 5; i++ {
				msgs = append(msgs, receive(t, cons, 30*time.Second))
			}
			for i, m := range msgs {
				if want := fmt.Sprintf("m%d", i); string(m.Payload) != want {
					t.Fatalf("message %d: %q, want %q", i, m.Payload, want)
				}
			}
			if err := cons.AckCumulative(msgs[2]); err != nil {
				t.Fatalf("AckCumulative on %s: %v", typ, err)
			}
			// A cumulative ack gets no answer; an acknowledgement with
			// response sent after it on the same stream is processed after
			// it, so once m4's answer is back both are on the broker.
			if err := cons.AckWithResponse(ctxT(t, 30*time.Second), msgs[4]); err != nil {
				t.Fatalf("ack m4: %v", err)
			}
			cons.Close()
			// m0..m2 (cumulatively) and m4 are acknowledged: only m3 is
			// redelivered, then new messages.
			cons2 := subscribe(t, cl, topic, "s", client.WithSubscriptionType(typ))
			send(t, p, "m5")
			if got := receivePayloads(t, cons2, 2); !slices.Equal(got, []string{"m3", "m5"}) {
				t.Fatalf("after AckCumulative(m2) and Ack(m4), a new consumer got %q, want m3, m5", got)
			}
		})
	}
}

// TestAcksBeforeCloseReachBroker: acknowledgements sent (without waiting
// for a response) just before Close are all applied: Close lets the broker
// finish the stream instead of cutting it, so a new consumer of the
// subscription gets only the messages that were never acknowledged.
func TestAcksBeforeCloseReachBroker(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	const n, acked = 200, 150
	for round := range 5 {
		topic := uniqueTopic(t, fmt.Sprintf("ackclose%d", round))
		p := newProducer(t, cl, topic, client.WithoutBatching())
		cons := subscribe(t, cl, topic, "s", client.WithSubscriptionType(client.Shared), client.WithReceiverQueueSize(n))
		for i := range n {
			send(t, p, fmt.Sprintf("m%03d", i))
		}
		for i := range acked {
			m := receive(t, cons, 30*time.Second)
			if want := fmt.Sprintf("m%03d", i); string(m.Payload) != want {
				t.Fatalf("round %d: received %q, want %q", round, m.Payload, want)
			}
			if err := cons.Ack(m); err != nil {
				t.Fatalf("ack %q: %v", m.Payload, err)
			}
		}
		cons.Close()
		cons2 := subscribe(t, cl, topic, "s", client.WithSubscriptionType(client.Shared))
		for i := acked; i < n; i++ {
			m := receive(t, cons2, 30*time.Second)
			if want := fmt.Sprintf("m%03d", i); string(m.Payload) != want {
				t.Fatalf("round %d: after close the new consumer received %q (redeliveries %d), want %q: an acknowledgement sent before Close was lost",
					round, m.Payload, m.RedeliveryCount, want)
			}
		}
		cons2.Close()
		p.Close()
	}
}

// TestClosedConsumerReturnsNoBufferedMessage: after Close, Receive returns
// ErrClosed rather than a message the consumer had buffered, and the
// buffered, unacknowledged messages go to the next consumer.
func TestClosedConsumerReturnsNoBufferedMessage(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "close-buffered")
	cons := subscribe(t, cl, topic, "s", client.WithReceiverQueueSize(10))
	p := newProducer(t, cl, topic, client.WithoutBatching())
	for i := 0; i < 5; i++ {
		send(t, p, fmt.Sprintf("m%d", i))
	}
	m0 := receive(t, cons, 30*time.Second)
	if string(m0.Payload) != "m0" {
		t.Fatalf("first message %q, want m0", m0.Payload)
	}
	if err := cons.AckWithResponse(ctxT(t, 30*time.Second), m0); err != nil {
		t.Fatal(err)
	}
	// m1..m4 are delivered (the broker counts them unacknowledged at the
	// consumer) before it closes, so Close has buffered messages to drop.
	testutil.WaitFor(t, 30*time.Second, func() error {
		st, ok := c.Broker(0).B.TopicStats(topic)
		if !ok || st.Unacked != 4 {
			return fmt.Errorf("topic loaded %v, unacked %d; want 4", ok, st.Unacked)
		}
		return nil
	})
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	if m, err := cons.Receive(ctxT(t, 5*time.Second)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Receive after Close: %q, %v; want ErrClosed", m.Payload, err)
	}
	cons2 := subscribe(t, cl, topic, "s")
	if got := receivePayloads(t, cons2, 4); !slices.Equal(got, []string{"m1", "m2", "m3", "m4"}) {
		t.Fatalf("next consumer got %q, want m1..m4", got)
	}
}

// TestAckWithResponsePartOfBatch: acknowledging one message of a batch
// with a response does not acknowledge its entry: the batch's other
// messages come back to the next consumer; once all are acknowledged
// (the last with a response), nothing does.
func TestAckWithResponsePartOfBatch(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	topic := uniqueTopic(t, "ack-part-batch")
	cons := subscribe(t, cl, topic, "s")
	p := newProducer(t, cl, topic, client.WithBatching(3, 1<<20, time.Hour))
	for i := range 3 {
		p.SendAsync(ctx, msg(fmt.Sprintf("b%d", i)), nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m0 := receive(t, cons, 30*time.Second)
	if m0.ID.BatchSize != 3 {
		t.Fatalf("first message %v is not in a batch of 3", m0.ID)
	}
	if err := cons.AckWithResponse(ctx, m0); err != nil {
		t.Fatal(err)
	}
	cons.Close()
	cons = subscribe(t, cl, topic, "s")
	var got []string
	for range 3 { // the entry comes back whole
		m := receive(t, cons, 30*time.Second)
		got = append(got, string(m.Payload))
		if err := cons.AckWithResponse(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, []string{"b0", "b1", "b2"}) {
		t.Fatalf("after acknowledging b0 alone: %q, want the batch again", got)
	}
	cons.Close()
	cons = subscribe(t, cl, topic, "s")
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if m, err := cons.Receive(short); err == nil {
		t.Fatalf("%q came back after the whole batch was acknowledged", m.Payload)
	}
}
