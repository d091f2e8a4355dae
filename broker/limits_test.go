package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
)

// countFor receives from every consumer for d and returns how many
// messages each received (acknowledging them).
func countFor(t *testing.T, d time.Duration, consumers ...*client.Consumer) []int64 {
	t.Helper()
	counts := make([]atomic.Int64, len(consumers))
	ctx := ctxT(t, d)
	var wg sync.WaitGroup
	for i, cons := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := cons.Receive(ctx)
				if err != nil {
					return
				}
				counts[i].Add(1)
				cons.Ack(m)
			}
		}()
	}
	wg.Wait()
	out := make([]int64, len(consumers))
	for i := range counts {
		out[i] = counts[i].Load()
	}
	return out
}

func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	t.Logf("%s: %.0f/s against %.0f/s", what, got, want)
	if got < want*0.75 || got > want*1.25 {
		t.Fatalf("%s: %.0f/s, want %.0f/s ±25%%", what, got, want)
	}
}

// TestDispatchRateLimits: the topic dispatch rate is shared by all the
// topic's subscriptions; a subscription dispatch rate limits that
// subscription alone.
func TestDispatchRateLimits(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, 2*time.Minute)
	const backlog = 3000
	var subs []*client.Consumer
	for _, name := range []string{"a", "b"} {
		cons, err := cl.Subscribe(ctx, "dispatch", name, client.WithReceiverQueueSize(10))
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, cons)
	}
	setPolicies(t, c, func(p *tenants.Policies) {
		p.TopicDispatchRate = map[string]tenants.DispatchRate{testcluster.ClusterName: {DispatchThrottlingRateInMsg: 200, DispatchThrottlingRateInByte: -1, RatePeriodInSecond: 1}}
	})
	// One message per entry: a batch is dispatched whole, so with batching
	// the rate holds on average but a second may carry a whole batch more.
	p, err := cl.CreateProducer(ctx, "dispatch", client.WithoutBatching(), client.WithMaxPendingMessages(backlog))
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, backlog)
	countFor(t, time.Second, subs...) // the limiter's initial burst
	n := countFor(t, 4*time.Second, subs...)
	within(t, "topic dispatch rate over two subscriptions", float64(n[0]+n[1])/4, 200)

	setPolicies(t, c, func(p *tenants.Policies) {
		p.TopicDispatchRate = nil
		p.SubscriptionDispatchRate = map[string]tenants.DispatchRate{testcluster.ClusterName: {DispatchThrottlingRateInMsg: 100, DispatchThrottlingRateInByte: -1, RatePeriodInSecond: 1}}
	})
	countFor(t, time.Second, subs...)
	n = countFor(t, 4*time.Second, subs...)
	within(t, "subscription a", float64(n[0])/4, 100)
	within(t, "subscription b", float64(n[1])/4, 100)
	setPolicies(t, c, func(p *tenants.Policies) { p.SubscriptionDispatchRate = nil })
}

// TestPublishByteRateLimit: publishThrottlingRateInByte bounds the
// publish rate in bytes.
func TestPublishByteRateLimit(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	const limit, size = 100 << 10, 1 << 10
	setPolicies(t, c, func(p *tenants.Policies) {
		p.PublishMaxMessageRate = map[string]tenants.PublishRate{testcluster.ClusterName: {PublishThrottlingRateInMsg: -1, PublishThrottlingRateInByte: limit}}
	})
	p, err := cl.CreateProducer(ctx, "byterate", client.WithoutBatching(), client.WithMaxPendingMessages(1000))
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte{'b'}, size)
	var acked atomic.Int64
	start := time.Now()
	var mark int64
	for time.Since(start) < 6*time.Second {
		if mark == 0 && time.Since(start) >= time.Second {
			mark = acked.Load()
		}
		p.SendAsync(ctx, &client.ProducerMessage{Payload: payload}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
			if err == nil {
				acked.Add(1)
			}
		})
	}
	within(t, "publish bytes", float64((acked.Load()-mark)*size)/5, limit)
	setPolicies(t, c, func(p *tenants.Policies) { p.PublishMaxMessageRate = nil })
}

// TestBacklogQuotaByAge: a message_age quota rejects producers
// (producer_exception) or expires old messages (consumer_backlog_eviction).
func TestBacklogQuotaByAge(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	for _, policy := range []tenants.BacklogPolicy{tenants.ProducerException, tenants.ConsumerBacklogEviction} {
		topic := "age-" + string(policy)
		cons, err := cl.Subscribe(ctx, topic, "slow")
		if err != nil {
			t.Fatal(err)
		}
		cons.Close()
		p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
		if err != nil {
			t.Fatal(err)
		}
		produceN(t, p, 0, 10)
		setPolicies(t, c, func(p *tenants.Policies) {
			p.BacklogQuotaMap = map[tenants.BacklogQuotaType]tenants.BacklogQuota{
				tenants.MessageAge: {LimitSize: -1, LimitTime: 1, Policy: policy}}
		})
		time.Sleep(1500 * time.Millisecond) // the backlog grows older than 1 s
		switch policy {
		case tenants.ProducerException:
			testutil.WaitFor(t, 10*time.Second, func() error {
				_, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("late")})
				if !errors.Is(err, client.ErrQuotaExceeded) {
					return fmt.Errorf("send with a backlog over the age quota: %v", err)
				}
				return nil
			})
			if b := subBacklog(t, c, topic, "slow"); b != 10 {
				t.Fatalf("producer_exception changed the backlog to %d", b)
			}
		case tenants.ConsumerBacklogEviction:
			testutil.WaitFor(t, 10*time.Second, func() error {
				if b := subBacklog(t, c, topic, "slow"); b != 0 {
					return fmt.Errorf("backlog %d, want the old messages expired", b)
				}
				return nil
			})
			if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("fresh")}); err != nil {
				t.Fatalf("send after eviction: %v", err)
			}
		}
		setPolicies(t, c, func(p *tenants.Policies) { p.BacklogQuotaMap = nil })
		p.Close()
	}
}

// TestMaxConsumersPerTopic counts consumers over every subscription.
func TestMaxConsumersPerTopic(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	two := 2
	setPolicies(t, c, func(p *tenants.Policies) { p.MaxConsumersPerTopic = &two })
	for _, sub := range []string{"s1", "s2"} {
		if _, err := cl.Subscribe(ctx, "maxct", sub); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Subscribe(ctx, "maxct", "s3"); !errors.Is(err, client.ErrConsumerBusy) {
		t.Fatalf("third consumer on the topic: %v, want ErrConsumerBusy", err)
	}
	setPolicies(t, c, func(p *tenants.Policies) { p.MaxConsumersPerTopic = nil })
}

// TestMessageTTLEverySubscription: TTL expires the backlog of every
// subscription, not only the slowest.
func TestMessageTTLEverySubscription(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	for _, sub := range []string{"x", "y", "z"} {
		cons, err := cl.Subscribe(ctx, "ttl-all", sub)
		if err != nil {
			t.Fatal(err)
		}
		cons.Close()
	}
	p, err := cl.CreateProducer(ctx, "ttl-all")
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 50)
	ttl := 1
	setPolicies(t, c, func(p *tenants.Policies) { p.MessageTTLInSeconds = &ttl })
	testutil.WaitFor(t, 10*time.Second, func() error {
		for _, sub := range []string{"x", "y", "z"} {
			if b := subBacklog(t, c, "ttl-all", sub); b != 0 {
				return fmt.Errorf("subscription %s backlog %d", sub, b)
			}
		}
		return nil
	})
	setPolicies(t, c, func(p *tenants.Policies) { p.MessageTTLInSeconds = nil })
}

// TestNackExponentialBackoff: each redelivery of a negatively acknowledged
// message waits longer, as the backoff function says.
func TestNackExponentialBackoff(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	backoff := client.ExponentialBackoff(200*time.Millisecond, 2*time.Second)
	cons, err := cl.Subscribe(ctx, "nack-backoff", "s", client.WithSubscriptionType(client.Shared), client.WithNackBackoff(backoff))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "nack-backoff")
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 1)
	m := recvN(t, cons, 1, false)[0]
	for i := uint32(0); i < 4; i++ {
		nacked := time.Now()
		cons.Nack(m)
		m = recvN(t, cons, 1, false)[0]
		waited := time.Since(nacked)
		if m.RedeliveryCount != i+1 {
			t.Fatalf("redelivery %d: count %d", i+1, m.RedeliveryCount)
		}
		if want := backoff(i); waited < want || waited > want+time.Second {
			t.Fatalf("redelivery %d after %v, want %v (backoff of %d redeliveries)", i+1, waited, want, i)
		}
	}
	cons.Ack(m)
}

// TestDelayedDeliveryKeyShared: on Key_Shared, delayed messages arrive no
// earlier than due and keep their key's order among messages due together.
func TestDelayedDeliveryKeyShared(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	cons, err := cl.Subscribe(ctx, "delayed-ks", "s", client.WithSubscriptionType(client.KeyShared))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "delayed-ks", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	due := map[string]time.Time{}
	for i := 0; i < 60; i++ {
		delay := time.Duration(i%3) * 700 * time.Millisecond
		payload := fmt.Sprint(i)
		due[payload] = time.Now().Add(delay)
		if _, err := p.Send(ctx, &client.ProducerMessage{Key: fmt.Sprint("k", i%5), Payload: []byte(payload), DeliverAfter: delay}); err != nil {
			t.Fatal(err)
		}
	}
	// Delivery times are milliseconds (Pulsar's deliverAtTime): a message
	// is due in its millisecond, so arriving in it or later is on time.
	for range 60 {
		m, err := cons.Receive(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if d := due[string(m.Payload)]; now.UnixMilli() < d.UnixMilli() {
			t.Fatalf("message %s arrived in millisecond %d, due in %d", m.Payload, now.UnixMilli(), d.UnixMilli())
		}
		if err := cons.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	noMore(t, cons, 500*time.Millisecond)
}

// TestDelayedDeliveryIgnoredOnExclusiveAndFailover: Exclusive and Failover
// subscriptions deliver a delayed message at once, as in Pulsar
// (docs/behaviour.md); a Shared subscription of the same topic holds it.
func TestDelayedDeliveryIgnoredOnExclusiveAndFailover(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	var cons []*client.Consumer
	for _, typ := range []client.SubscriptionType{client.Exclusive, client.Failover, client.Shared} {
		cs, err := cl.Subscribe(ctx, "delayed-excl", typ.String(), client.WithSubscriptionType(typ))
		if err != nil {
			t.Fatal(err)
		}
		cons = append(cons, cs)
	}
	p, err := cl.CreateProducer(ctx, "delayed-excl", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("later"), DeliverAfter: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for _, cs := range cons[:2] {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := cs.Receive(rctx)
		cancel()
		if err != nil || string(m.Payload) != "later" {
			t.Fatalf("%s subscription: %v, want the delayed message at once", cs.Subscription(), err)
		}
	}
	noMore(t, cons[2], 2*time.Second)
}
