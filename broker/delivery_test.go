package broker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
)

func fastPolicies(i int, o *broker.Options) { o.PolicyCheckInterval = 100 * time.Millisecond }

// setPolicies updates public/default's policies and waits until every
// running broker's cache has the change.
func setPolicies(t *testing.T, c *testcluster.Cluster, fn func(*tenants.Policies)) {
	t.Helper()
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	if _, err := st.UpdatePolicies(context.Background(), naming.MustParseNamespace("public/default"), func(p *tenants.Policies) error {
		fn(p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // watch propagation plus one policy interval
}

func TestNackAckTimeoutAndRedeliveryCount(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	cons, err := cl.Subscribe(ctx, "nack", "s", client.WithSubscriptionType(client.Shared), client.WithNackRedeliveryDelay(400*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "nack")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	m := recvN(t, cons, 1, false)[0]
	if m.RedeliveryCount != 0 {
		t.Fatalf("first delivery count %d", m.RedeliveryCount)
	}
	nacked := time.Now()
	cons.Nack(m)
	m2 := recvN(t, cons, 1, false)[0]
	if since := time.Since(nacked); since < 400*time.Millisecond || m2.RedeliveryCount != 1 || string(m2.Payload) != "x" {
		t.Fatalf("redelivered after %v with count %d, want >= 400ms and 1", since, m2.RedeliveryCount)
	}
	cons.Ack(m2)
	cons.Close()

	// Ack timeout: not acknowledged within 500 ms -> redelivered.
	cons, err = cl.Subscribe(ctx, "nack", "t", client.WithSubscriptionType(client.Shared), client.WithInitialPosition(client.Earliest),
		client.WithAckTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	got := recvN(t, cons, 1, false)[0]
	start := time.Now()
	again := recvN(t, cons, 1, true)[0]
	if time.Since(start) < 450*time.Millisecond || again.RedeliveryCount != 1 || again.ID != got.ID {
		t.Fatalf("ack timeout redelivery after %v, count %d", time.Since(start), again.RedeliveryCount)
	}
}

func TestDeadLetterAndRetryTopics(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	const max = 3
	cons, err := cl.Subscribe(ctx, "poison", "s", client.WithSubscriptionType(client.Shared),
		client.WithNackRedeliveryDelay(50*time.Millisecond),
		client.WithDLQ(client.DLQPolicy{MaxRedeliveries: max, InitialSubscription: "dlq-sub"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "poison", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("poison"), Properties: map[string]string{"origin": "app"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("good")}); err != nil {
		t.Fatal(err)
	}
	deliveries, good := 0, 0
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := cons.Receive(rctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break // the poison message stopped coming back
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload) == "good" {
			good++
			if err := cons.Ack(m); err != nil {
				t.Fatal(err)
			}
			continue
		}
		deliveries++
		cons.Nack(m)
	}
	if good != 1 {
		t.Fatalf("good message delivered %d times", good)
	}
	if deliveries != max+1 {
		t.Fatalf("poison message delivered %d times, want maxRedeliverCount+1 = %d", deliveries, max+1)
	}
	dlq, err := cl.Subscribe(ctx, "poison-s-DLQ", "dlq-sub", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	d := recvN(t, dlq, 1, true)[0]
	if string(d.Payload) != "poison" || d.Properties["origin"] != "app" || d.Properties[client.PropertyRealTopic] != "poison" || d.Properties[client.PropertyOriginMessageID] == "" {
		t.Fatalf("dead letter %q props %v", d.Payload, d.Properties)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		st, ok := c.Broker(0).B.TopicStats("poison")
		if !ok {
			return fmt.Errorf("topic poison not loaded")
		}
		if st.Unacked != 0 {
			return fmt.Errorf("main subscription still holds %d unacked", st.Unacked)
		}
		return nil
	})

	// Retry topic: reconsume later three times, then the dead-letter topic.
	rc, err := cl.Subscribe(ctx, "retry", "s", client.WithSubscriptionType(client.Shared),
		client.WithRetryTopic(""), client.WithDLQ(client.DLQPolicy{MaxRedeliveries: 3}))
	if err != nil {
		t.Fatal(err)
	}
	rp, err := cl.CreateProducer(ctx, "retry")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Send(ctx, &client.ProducerMessage{Payload: []byte("again")}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for i := 0; i < 4; i++ {
		m := recvN(t, rc, 1, false)[0]
		seen = append(seen, m.Properties[client.PropertyReconsumeTimes])
		if err := rc.ReconsumeLater(ctx, m, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(seen) != "[ 1 2 3]" {
		t.Fatalf("reconsume counters seen %v, want [ 1 2 3]", seen)
	}
	noMore(t, rc, 500*time.Millisecond)
	rd, err := cl.Subscribe(ctx, "retry-s-DLQ", "x", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	if d := recvN(t, rd, 1, true)[0]; string(d.Payload) != "again" || d.Properties[client.PropertyRealTopic] != "retry" {
		t.Fatalf("retry dead letter %q %v", d.Payload, d.Properties)
	}
}

// dedupRun sends 10,000 numbered messages with explicit sequence ids from a
// named producer, kills the owning broker at the middle, then re-sends a
// random 20% with the same sequence ids. It returns how many messages of
// the topic carry each number (distinct message ids: redeliveries are not
// counted) and whether they arrived in order.
func dedupRun(t *testing.T, dedupOn bool) (counts map[int]int, inOrder bool) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) {
		o.DeduplicationEnabled = dedupOn
		o.DeduplicationSnapshotInterval = 500
	}})
	cl := newClient(t, c)
	ctx := ctxT(t, 3*time.Minute)
	cons, err := cl.Subscribe(ctx, "dedup", "s", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "dedup", client.WithProducerName("dedup-producer"), client.WithBatching(50, 1<<20, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	var wg sync.WaitGroup
	send := func(i int) {
		seq := int64(i)
		wg.Add(1)
		p.SendAsync(ctx, &client.ProducerMessage{Payload: []byte(strconv.Itoa(i)), SequenceID: &seq}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("send %d: %v", i, err)
			}
		})
	}
	for i := 0; i < n; i++ {
		if i == n/2 {
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			c.KillBroker(c.BrokerIndex(ownerOf(t, c, "persistent://public/default/dedup")))
		}
		send(i)
	}
	wg.Wait()
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, i := range rnd.Perm(n)[:n/5] {
		send(i)
	}
	wg.Wait()
	counts = map[int]int{}
	seen := map[[3]int64]bool{}
	inOrder = true
	last := -1
	for {
		// Until every message came, wait long: the consumer may still be
		// in its reconnect backoff (up to 5 s) from the kill. Then a quiet
		// spell ends the run; duplicates would have come by then.
		wait := 3 * time.Second
		if len(counts) < n {
			wait = time.Minute
		}
		rctx, cancel := context.WithTimeout(ctx, wait)
		m, err := cons.Receive(rctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return counts, inOrder
		}
		if err != nil {
			t.Fatal(err)
		}
		cons.Ack(m)
		// A redelivery (same message id: the consumer acknowledged on a
		// connection the kill had cut) is not a duplicate in the topic.
		id := [3]int64{m.ID.LedgerID, m.ID.EntryID, int64(m.ID.BatchIndex)}
		if seen[id] {
			continue
		}
		seen[id] = true
		v, _ := strconv.Atoi(string(m.Payload))
		if counts[v] == 0 && v < last {
			inOrder = false
		}
		counts[v]++
		last = max(last, v)
	}
}

func TestDeduplicationAcrossFailover(t *testing.T) {
	counts, inOrder := dedupRun(t, true)
	for i := 0; i < 10000; i++ {
		if counts[i] != 1 {
			t.Fatalf("message %d stored %d times with deduplication on", i, counts[i])
		}
	}
	if len(counts) != 10000 || !inOrder {
		t.Fatalf("%d distinct messages, in order %v", len(counts), inOrder)
	}
	// Without deduplication the same run duplicates: the test can fail.
	counts, _ = dedupRun(t, false)
	dups := 0
	for _, n := range counts {
		dups += n - 1
	}
	if dups < 1000 {
		t.Fatalf("without deduplication only %d duplicates; the run does not exercise dedup", dups)
	}
}

func TestDelayedDeliveryAcrossFailover(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2})
	cl := newClient(t, c)
	ctx := ctxT(t, 2*time.Minute)
	cons, err := cl.Subscribe(ctx, "delayed", "s", client.WithSubscriptionType(client.Shared))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "delayed")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	due := map[string]time.Time{}
	rnd := rand.New(rand.NewPCG(5, 6))
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		d := time.Duration(rnd.IntN(3000)) * time.Millisecond
		payload := strconv.Itoa(i)
		mu.Lock()
		due[payload] = time.Now().Add(d)
		mu.Unlock()
		p.SendAsync(ctx, &client.ProducerMessage{Payload: []byte(payload), DeliverAfter: d}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Fail over while most messages are still pending.
	c.KillBroker(c.BrokerIndex(ownerOf(t, c, "persistent://public/default/delayed")))
	got := map[string]bool{}
	for len(got) < n {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d of %d: %v", len(got), n, err)
		}
		mu.Lock()
		at := due[string(m.Payload)]
		mu.Unlock()
		// Publish times are set at send; allow 5 ms of clock rounding.
		if time.Now().Before(at.Add(-5 * time.Millisecond)) {
			t.Fatalf("message %s delivered %v before it was due", m.Payload, time.Until(at))
		}
		got[string(m.Payload)] = true
		cons.Ack(m)
	}
}

func TestMessageTTL(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	cons, err := cl.Subscribe(ctx, "ttl", "s")
	if err != nil {
		t.Fatal(err)
	}
	cons.Close()
	p, err := cl.CreateProducer(ctx, "ttl")
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 100)
	ttl := 1
	setPolicies(t, c, func(p *tenants.Policies) { p.MessageTTLInSeconds = &ttl })
	testutil.WaitFor(t, 10*time.Second, func() error {
		if st := subBacklog(t, c, "ttl", "s"); st != 0 {
			return fmt.Errorf("backlog %d", st)
		}
		return nil
	})
	setPolicies(t, c, func(p *tenants.Policies) { p.MessageTTLInSeconds = nil })
}

// subBacklog returns a subscription's backlog from the admin API.
func subBacklog(t *testing.T, c *testcluster.Cluster, topic, sub string) int64 {
	t.Helper()
	var st struct {
		Subscriptions map[string]struct {
			MsgBacklog int64 `json:"msgBacklog"`
		} `json:"subscriptions"`
	}
	getJSON(t, c.Broker(0).B.HTTPURL()+"/admin/v2/persistent/public/default/"+topic+"/stats", &st)
	return st.Subscriptions[sub].MsgBacklog
}

func TestBacklogQuotas(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.PolicyCheckInterval = 100 * time.Millisecond
		o.BacklogQuotaHoldTimeout = time.Second
		o.MaxEntriesPerLedger = 20
	}})
	cl := newClient(t, c)
	ctx := ctxT(t, 2*time.Minute)
	payload := make([]byte, 1024)
	quota := func(policy tenants.BacklogPolicy) {
		setPolicies(t, c, func(p *tenants.Policies) {
			p.BacklogQuotaMap = map[tenants.BacklogQuotaType]tenants.BacklogQuota{
				tenants.DestinationStorage: {LimitSize: 50 << 10, LimitTime: -1, Policy: policy}}
		})
	}
	fill := func(topic string) *client.Producer {
		cons, err := cl.Subscribe(ctx, topic, "slow")
		if err != nil {
			t.Fatal(err)
		}
		cons.Close() // a subscription nobody consumes
		p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching(), client.WithSendTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if _, err := p.Send(ctx, &client.ProducerMessage{Payload: payload}); err != nil {
				t.Fatalf("fill %s: %v", topic, err)
			}
		}
		return p
	}

	// Backlogs are built first, then the quota is set.
	p := fill("quota-exception")
	quota(tenants.ProducerException)
	if _, err := p.Send(ctx, &client.ProducerMessage{Payload: payload}); !errors.Is(err, client.ErrQuotaExceeded) {
		t.Fatalf("send over a producer_exception quota: %v, want ErrQuotaExceeded", err)
	}
	if _, err := cl.CreateProducer(ctx, "quota-exception"); !errors.Is(err, client.ErrQuotaExceeded) {
		t.Fatalf("new producer over a producer_exception quota: %v", err)
	}

	setPolicies(t, c, func(p *tenants.Policies) { p.BacklogQuotaMap = nil })
	p = fill("quota-hold")
	quota(tenants.ProducerRequestHold)
	start := time.Now()
	_, err := p.Send(ctx, &client.ProducerMessage{Payload: payload})
	if !errors.Is(err, client.ErrQuotaExceeded) || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("held send: %v after %v, want ErrQuotaExceeded after the 1 s hold", err, time.Since(start))
	}
	// Consuming the backlog releases held sends.
	done := make(chan error, 1)
	go func() {
		_, err := p.Send(ctx, &client.ProducerMessage{Payload: payload})
		done <- err
	}()
	drain, err := cl.Subscribe(ctx, "quota-hold", "slow")
	if err != nil {
		t.Fatal(err)
	}
	recvN(t, drain, 90, true)
	if err := <-done; err != nil {
		t.Fatalf("held send after the backlog shrank: %v", err)
	}

	setPolicies(t, c, func(p *tenants.Policies) { p.BacklogQuotaMap = nil })
	fill("quota-evict")
	quota(tenants.ConsumerBacklogEviction)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if b := subBacklog(t, c, "quota-evict", "slow"); b > 60 {
			return fmt.Errorf("backlog %d entries, the quota is ~50", b)
		}
		return nil
	})
	setPolicies(t, c, func(p *tenants.Policies) { p.BacklogQuotaMap = nil })
}

func TestPublishRateLimit(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	const limit = 1000
	setPolicies(t, c, func(p *tenants.Policies) {
		p.PublishMaxMessageRate = map[string]tenants.PublishRate{testcluster.ClusterName: {PublishThrottlingRateInMsg: limit}}
	})
	p, err := cl.CreateProducer(ctx, "rate", client.WithoutBatching(), client.WithMaxPendingMessages(2000))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []time.Time
	start := time.Now()
	stop := time.Now().Add(7 * time.Second)
	for time.Now().Before(stop) {
		p.SendAsync(ctx, &client.ProducerMessage{Payload: []byte("r")}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
			if err == nil {
				mu.Lock()
				acked = append(acked, time.Now())
				mu.Unlock()
			}
		})
	}
	mu.Lock()
	n := 0
	for _, at := range acked { // a 5 s window after the first second's burst
		if d := at.Sub(start); d >= time.Second && d < 6*time.Second {
			n++
		}
	}
	mu.Unlock()
	rate := float64(n) / 5
	t.Logf("measured publish rate %.0f msg/s against a %d msg/s limit", rate, limit)
	if rate < limit*0.8 || rate > limit*1.2 {
		t.Fatalf("publish rate %.0f msg/s outside ±20%% of the %d msg/s limit", rate, limit)
	}
	setPolicies(t, c, func(p *tenants.Policies) { p.PublishMaxMessageRate = nil })
}

func TestMaxConsumersAndProducers(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	two, one := 2, 1
	setPolicies(t, c, func(p *tenants.Policies) { p.MaxConsumersPerSubscription, p.MaxProducersPerTopic = &two, &one })
	for i := 0; i < 2; i++ {
		if _, err := cl.Subscribe(ctx, "maxc", "s", client.WithSubscriptionType(client.Shared)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Subscribe(ctx, "maxc", "s", client.WithSubscriptionType(client.Shared)); !errors.Is(err, client.ErrConsumerBusy) {
		t.Fatalf("third consumer: %v, want ErrConsumerBusy", err)
	}
	if _, err := cl.CreateProducer(ctx, "maxc"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateProducer(ctx, "maxc"); !errors.Is(err, client.ErrProducerBusy) {
		t.Fatalf("second producer: %v, want ErrProducerBusy", err)
	}
	setPolicies(t, c, func(p *tenants.Policies) { p.MaxConsumersPerSubscription, p.MaxProducersPerTopic = nil, nil })
}
