package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
)

func recvN(t testing.TB, cons *client.Consumer, n int, ack bool) []client.Message {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	var out []client.Message
	for len(out) < n {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("received %d of %d: %v", len(out), n, err)
		}
		out = append(out, m)
		if ack {
			cons.Ack(m)
		}
	}
	return out
}

// noMore checks that nothing more arrives within d.
func noMore(t testing.TB, cons *client.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := cons.Receive(ctx); err == nil {
		t.Fatalf("unexpected message %q (%v)", m.Payload, m.ID)
	}
}

func TestSubscriptionTypes(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)

	t.Run("Exclusive rejects a second consumer", func(t *testing.T) {
		ctx := ctxT(t, time.Minute)
		a, err := cl.Subscribe(ctx, "excl", "s")
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if _, err := cl.Subscribe(ctx, "excl", "s"); !errors.Is(err, client.ErrConsumerBusy) {
			t.Fatalf("second exclusive consumer: %v, want ErrConsumerBusy", err)
		}
		if _, err := cl.Subscribe(ctx, "excl", "s", client.WithSubscriptionType(client.Shared)); !errors.Is(err, client.ErrConsumerBusy) {
			t.Fatalf("shared consumer on an exclusive subscription: %v, want ErrConsumerBusy", err)
		}
	})

	t.Run("Failover switches on disconnect", func(t *testing.T) {
		ctx := ctxT(t, time.Minute)
		opts := func(name string) []client.ConsumerOption {
			return []client.ConsumerOption{client.WithSubscriptionType(client.Failover), client.WithConsumerName(name), client.WithInitialPosition(client.Earliest)}
		}
		b, err := cl.Subscribe(ctx, "fo", "s", opts("b")...)
		if err != nil {
			t.Fatal(err)
		}
		a, err := cl.Subscribe(ctx, "fo", "s", opts("a")...) // "a" sorts first: it becomes active
		if err != nil {
			t.Fatal(err)
		}
		p, _ := cl.CreateProducer(ctx, "fo", client.WithoutBatching())
		produceN(t, p, 0, 20)
		got := recvN(t, a, 10, true)
		recvN(t, a, 5, false) // 10..14 received by a, never acknowledged
		noMore(t, b, 300*time.Millisecond)
		a.Close()
		rest := recvN(t, b, 10, true) // b takes over from the first unacknowledged
		for i, m := range append(got, rest...) {
			if want := fmt.Sprintf("msg-%06d", i); string(m.Payload) != want {
				t.Fatalf("failover message %d: %q, want %q", i, m.Payload, want)
			}
		}
		for _, m := range rest { // all of them were in a's receive queue
			if m.RedeliveryCount != 1 {
				t.Fatalf("redelivery count of %q: %d, want 1", m.Payload, m.RedeliveryCount)
			}
		}
		b.Close()
		p.Close()
	})

	t.Run("Shared round-robins and redelivers a gone consumer's messages", func(t *testing.T) {
		ctx := ctxT(t, time.Minute)
		var cons []*client.Consumer
		for i := 0; i < 3; i++ {
			cs, err := cl.Subscribe(ctx, "shared", "s", client.WithSubscriptionType(client.Shared), client.WithReceiverQueueSize(5))
			if err != nil {
				t.Fatal(err)
			}
			cons = append(cons, cs)
		}
		p, _ := cl.CreateProducer(ctx, "shared", client.WithoutBatching())
		produceN(t, p, 0, 300)
		seen := map[string]int{}
		perConsumer := make([]int, 3)
		// Consumer 0 takes a few messages and leaves without acknowledging.
		for _, m := range recvN(t, cons[0], 3, false) {
			seen[string(m.Payload)]++
		}
		cons[0].Close()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 1; i < 3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					m, err := cons[i].Receive(rctx)
					cancel()
					if err != nil {
						return
					}
					// Work that takes a while: a consumer whose goroutine
					// is descheduled for a few milliseconds still gets its share.
					time.Sleep(2 * time.Millisecond)
					cons[i].Ack(m)
					mu.Lock()
					seen[string(m.Payload)]++
					perConsumer[i]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for i := 0; i < 300; i++ {
			if seen[fmt.Sprintf("msg-%06d", i)] == 0 {
				t.Fatalf("message %d never delivered", i)
			}
		}
		if perConsumer[1] < 10 || perConsumer[2] < 10 { // both get a share (scheduling makes it uneven)
			t.Fatalf("uneven shared distribution: %v", perConsumer)
		}
		// Cumulative acknowledgement is refused on Shared.
		cons[1].Close()
		cons[2].Close()
		p.Close()
	})

	t.Run("Key_Shared keeps per-key order across joins and leaves", func(t *testing.T) {
		testKeyShared(t, cl)
	})
}

func testKeyShared(t *testing.T, cl *client.Client) {
	ctx := ctxT(t, 2*time.Minute)
	const keys, perKey = 20, 100
	type rec struct {
		key, seq int
	}
	var mu sync.Mutex
	var processed []rec
	byConsumer := map[int]map[int]bool{} // consumer -> keys it processed
	run := func(id int, cs *client.Consumer, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			m, err := cs.Receive(rctx)
			cancel()
			if err != nil {
				select {
				case <-stop:
					return
				default:
					if errors.Is(err, client.ErrClosed) {
						return
					}
					continue
				}
			}
			k, _ := strconv.Atoi(strings.TrimPrefix(m.Key, "k"))
			seq, _ := strconv.Atoi(string(m.Payload))
			mu.Lock()
			processed = append(processed, rec{k, seq})
			if byConsumer[id] == nil {
				byConsumer[id] = map[int]bool{}
			}
			byConsumer[id][k] = true
			mu.Unlock()
			cs.Ack(m)
		}
	}
	sub := func() *client.Consumer {
		cs, err := cl.Subscribe(ctx, "keyshared", "s", client.WithSubscriptionType(client.KeyShared), client.WithReceiverQueueSize(20))
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := func(id int, cs *client.Consumer, stop <-chan struct{}) *sync.WaitGroup {
		var one sync.WaitGroup
		wg.Add(1)
		one.Add(1)
		go func() { defer wg.Done(); defer one.Done(); run(id, cs, stop) }()
		return &one
	}
	c1 := sub()
	stop1 := make(chan struct{})
	c1done := start(1, c1, stop1)
	p, err := cl.CreateProducer(ctx, "keyshared", client.WithBatching(10, 1<<20, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	send := func(from, to int) {
		for seq := from; seq < to; seq++ {
			for k := 0; k < keys; k++ {
				p.SendAsync(ctx, &client.ProducerMessage{Key: fmt.Sprintf("k%d", k), Payload: []byte(strconv.Itoa(seq))}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
					if err != nil {
						t.Errorf("send: %v", err)
					}
				})
			}
		}
		p.Flush(ctx)
	}
	send(0, 30)
	c2 := sub() // joins: some keys move to it
	start(2, c2, stop)
	send(30, 60)
	// c1 leaves: the application stops processing, then closes; its keys
	// (and unacknowledged messages) move.
	close(stop1)
	c1done.Wait()
	c1.Close()
	c3 := sub()
	start(3, c3, stop)
	send(60, perKey)
	testutil.WaitFor(t, time.Minute, func() error {
		mu.Lock()
		defer mu.Unlock()
		seen := map[rec]bool{}
		for _, r := range processed {
			seen[r] = true
		}
		if len(seen) < keys*perKey {
			return fmt.Errorf("%d of %d distinct messages processed", len(seen), keys*perKey)
		}
		return nil
	})
	close(stop)
	c2.Close()
	c3.Close()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	last := map[int]int{}
	for k := range keys {
		last[k] = -1
	}
	for _, r := range processed {
		// Redelivery may repeat the latest message of a key, never an older one.
		if r.seq < last[r.key] {
			t.Fatalf("key k%d: message %d processed after %d", r.key, r.seq, last[r.key])
		}
		last[r.key] = r.seq
	}
	spread := []int{len(byConsumer[1]), len(byConsumer[2]), len(byConsumer[3])}
	t.Logf("keys per consumer: %v", spread)
	sort.Ints(spread)
	if spread[1] == 0 {
		t.Fatalf("keys were not spread over consumers: %v", spread)
	}
}

func TestReadersSeekAndLastMessageID(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	p, _ := cl.CreateProducer(ctx, "readers", client.WithBatching(5, 1<<20, time.Millisecond))
	var ids []client.MessageID
	var times []time.Time
	for i := 0; i < 20; i++ {
		times = append(times, time.Now())
		id, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprintf("msg-%06d", i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		time.Sleep(2 * time.Millisecond)
	}
	last, err := cl.LastMessageID(ctx, "readers")
	if err != nil || last.LedgerID != ids[19].LedgerID || last.EntryID != ids[19].EntryID {
		t.Fatalf("last message id %v (%v), want entry of %v", last, err, ids[19])
	}
	read := func(r *client.Reader, n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			m, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(m.Payload))
		}
		return out
	}
	r, err := cl.CreateReader(ctx, "readers", client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(r, 20); got[0] != "msg-000000" || got[19] != "msg-000019" {
		t.Fatalf("reader from earliest: %v", got)
	}
	r.Close()
	r, _ = cl.CreateReader(ctx, "readers", ids[7]) // exclusive of message 7
	if got := read(r, 1); got[0] != "msg-000008" {
		t.Fatalf("reader after message 7: %v", got)
	}
	r.Close()
	r, _ = cl.CreateReader(ctx, "readers", ids[7], client.WithStartInclusive())
	if got := read(r, 1); got[0] != "msg-000007" {
		t.Fatalf("reader from message 7 inclusive: %v", got)
	}
	if err := r.SeekByTime(ctx, times[15]); err != nil {
		t.Fatal(err)
	}
	got := read(r, 1)
	if n, _ := strconv.Atoi(strings.TrimPrefix(got[0], "msg-")); n < 10 || n > 15 {
		t.Fatalf("seek by time to message 15's send time landed on %s (batches of 5 share a publish time)", got[0])
	}
	r.Close()
	r, _ = cl.CreateReader(ctx, "readers", client.LatestMessageID)
	p.Send(ctx, &client.ProducerMessage{Payload: []byte("after")})
	if got := read(r, 1); got[0] != "after" {
		t.Fatalf("reader from latest: %v", got)
	}
	r.Close()

	// Seek a durable subscription back to the start.
	cons, _ := cl.Subscribe(ctx, "readers", "s", client.WithInitialPosition(client.Latest))
	noMore(t, cons, 200*time.Millisecond)
	if err := cons.Seek(ctx, client.EarliestMessageID); err != nil {
		t.Fatal(err)
	}
	if m := recvN(t, cons, 1, true); string(m[0].Payload) != "msg-000000" {
		t.Fatalf("after seek to earliest: %q", m[0].Payload)
	}
	if err := cons.Seek(ctx, ids[12]); err != nil {
		t.Fatal(err)
	}
	if m := recvN(t, cons, 1, true); !strings.HasPrefix(string(m[0].Payload), "msg-0000") || m[0].ID.EntryID != ids[12].EntryID {
		t.Fatalf("after seek to message 12's entry: %q %v", m[0].Payload, m[0].ID)
	}
	// Unsubscribe, then a new subscription from Latest sees nothing old.
	if err := cons.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	cons, _ = cl.Subscribe(ctx, "readers", "s")
	noMore(t, cons, 200*time.Millisecond)
	cons.Close()
}

func TestPartitionedTopic(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2})
	ctx := ctxT(t, time.Minute)
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	if err := st.CreatePartitionedTopic(ctx, naming.MustParseTopic("parts"), 4); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	cons, err := cl.Subscribe(ctx, "parts", "s", client.WithSubscriptionType(client.Shared))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "parts")
	if err != nil {
		t.Fatal(err)
	}
	keyPart := map[string]int32{}
	for i := 0; i < 400; i++ {
		key := fmt.Sprintf("key-%d", i%10)
		id, err := p.Send(ctx, &client.ProducerMessage{Key: key, Payload: []byte(fmt.Sprintf("%s/%06d", key, i))})
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := keyPart[key]; ok && prev != id.Partition {
			t.Fatalf("key %s went to partitions %d and %d", key, prev, id.Partition)
		}
		keyPart[key] = id.Partition
	}
	parts := map[int32]bool{}
	for _, pa := range keyPart {
		parts[pa] = true
	}
	if len(parts) < 2 {
		t.Fatalf("10 keys landed on %d partition(s)", len(parts))
	}
	perKey := map[string]int{}
	for _, m := range recvN(t, cons, 400, true) {
		key, seq, _ := strings.Cut(string(m.Payload), "/")
		n, _ := strconv.Atoi(seq)
		if n < perKey[key] {
			t.Fatalf("key %s: %d after %d (per-partition order broken)", key, n, perKey[key])
		}
		perKey[key] = n
	}
	// The partitioned parent is no topic of its own: a producer or consumer
	// that names it without routing to partitions (a raw stream, as a
	// partition-unaware client sends) is refused at its owner.
	parent := "persistent://public/default/parts"
	lk, err := rawClient(t, c.Broker(0).GRPCAddr).Lookup(ctx, &clientpb.LookupRequest{Topic: parent})
	if err != nil {
		t.Fatal(err)
	}
	owner := rawClient(t, lk.BrokerUrl)
	_, err = openProducer(t, owner, parent)
	wantCode(t, "producer on the partitioned parent", err, clientpb.ServerError_NOT_ALLOWED, codes.FailedPrecondition)
	_, err = subscribeRaw(t, owner, &clientpb.Subscribe{Topic: parent, Subscription: "raw", Durable: true})
	wantCode(t, "consumer on the partitioned parent", err, clientpb.ServerError_NOT_ALLOWED, codes.FailedPrecondition)
}

// TestPartitionBeyondCount: a partition index at or above a partitioned
// topic's count names no topic: Pulsar answers topic not found
// (BrokerService.getTopic) rather than creating a stray topic.
func TestPartitionBeyondCount(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	ctx := ctxT(t, time.Minute)
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	if err := st.CreatePartitionedTopic(ctx, naming.MustParseTopic("parts"), 4); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	if _, err := cl.Subscribe(ctx, "parts-partition-3", "s"); err != nil {
		t.Fatalf("subscribe to partition 3 of 4: %v", err)
	}
	if _, err := cl.Subscribe(ctx, "parts-partition-9", "s"); !errors.Is(err, client.ErrTopicNotFound) {
		t.Errorf("subscribe to partition 9 of 4: %v, want ErrTopicNotFound", err)
	}
	if _, err := cl.CreateProducer(ctx, "parts-partition-4"); !errors.Is(err, client.ErrTopicNotFound) {
		t.Errorf("producer on partition 4 of 4: %v, want ErrTopicNotFound", err)
	}
	r := rest{t, c.Broker(0).B.HTTPURL()}
	r.want("GET", "/admin/v2/persistent/public/default/parts-partition-9/stats", "", 404)
	// A topic merely named like a partition, without partitioned metadata,
	// is an ordinary topic (as in Pulsar).
	if _, err := cl.CreateProducer(ctx, "plain-partition-7"); err != nil {
		t.Fatalf("producer on plain-partition-7 (no partitioned parent): %v", err)
	}
}
