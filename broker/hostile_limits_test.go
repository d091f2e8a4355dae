package broker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

// entryOf encodes one unbatched message.
func entryOf(t *testing.T, payload []byte, seq uint64) []byte {
	t.Helper()
	e, err := pulsarpb.EncodeEntry(&pulsarpb.MessageMetadata{ProducerName: proto.String("flood"), SequenceId: proto.Uint64(seq),
		PublishTime: proto.Uint64(uint64(time.Now().UnixMilli()))}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// consumerBytesOut returns what the broker queued for each consumer of a
// topic (bytesOutCounter of its stats), by subscription name.
func consumerBytesOut(t *testing.T, c *testcluster.Cluster, topic string) map[string]int64 {
	t.Helper()
	var st struct {
		Subscriptions map[string]struct {
			BytesOutCounter int64 `json:"bytesOutCounter"`
		} `json:"subscriptions"`
	}
	getJSON(t, c.Broker(0).B.HTTPURL()+"/admin/v2/persistent/public/default/"+topic+"/stats", &st)
	out := map[string]int64{}
	for name, s := range st.Subscriptions {
		out[name] = s.BytesOutCounter
	}
	return out
}

// TestGreedyReadersAreBounded: readers that grant four billion permits and
// never read get no more than their outbox bound plus what gRPC's flow
// control lets through; the broker stops reading the log for them. They
// used to get the whole topic queued in broker memory (RSS 70 -> 684 MB in
// 2 s with 8 readers).
func TestGreedyReadersAreBounded(t *testing.T) {
	const outbox = 256 << 10
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxConsumerOutboxBytes = outbox
	}})
	ctx := ctxT(t, 2*time.Minute)
	cl := newClient(t, c)
	p, err := cl.CreateProducer(ctx, "greedy", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	const entries, size = 768, 64 << 10 // 48 MiB
	payload := make([]byte, size)
	errs := make(chan error, entries)
	for range entries {
		p.SendAsync(ctx, &client.ProducerMessage{Payload: payload}, func(_ client.MessageID, _ *client.ProducerMessage, err error) { errs <- err })
	}
	for range entries {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	raw := rawClient(t, c.Broker(0).GRPCAddr)
	for i := range 4 {
		s, err := subscribeRaw(t, raw, &clientpb.Subscribe{Topic: "persistent://public/default/greedy", Subscription: fmt.Sprint("greedy-", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Flow{Flow: &clientpb.Flow{Permits: 4_000_000_000}}}); err != nil {
			t.Fatal(err)
		}
		// Never read.
	}
	// Let the dispatchers run until they stop (their output settles).
	var last map[string]int64
	testutil.WaitFor(t, 30*time.Second, func() error {
		now := consumerBytesOut(t, c, "greedy")
		settled := len(now) == 4 && fmt.Sprint(now) == fmt.Sprint(last)
		last = now
		for _, b := range now {
			if b == 0 {
				return errors.New("not dispatching yet")
			}
		}
		if !settled {
			time.Sleep(500 * time.Millisecond)
			return errors.New("dispatching")
		}
		return nil
	})
	// 256 KiB of outbox plus gRPC's stream window (it grows to 16 MiB).
	for name, b := range last {
		if b > outbox+size+17<<20 {
			t.Errorf("%s: the broker queued %d bytes for a reader that reads nothing (of %d)", name, b, entries*size)
		}
	}
	t.Logf("queued for each never-reading reader: %v bytes (topic %d MiB)", last, entries*size>>20)
}

// TestPublishFloodIsBounded: a producer sending without waiting for
// receipts makes the broker hold at most its publish buffer (plus one send
// per producer) and its pending-send limit; the rest waits in the client
// (gRPC flow control). Every send is still persisted, in order. (The heap
// used to grow by a gigabyte in seconds.)
func TestPublishFloodIsBounded(t *testing.T) {
	const buffer = 4 << 20
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxMessagePublishBufferBytes = buffer
		o.MaxPendingPublishRequestsPerProducer = 50
	}, BookieOptions: func(i int, o *bookie.Options) {
		// A slow disk: sends arrive faster than they are persisted.
		o.Hooks = &bookie.Hooks{Commit: func(commit func() error) error { time.Sleep(5 * time.Millisecond); return commit() }}
	}})
	ctx := ctxT(t, 2*time.Minute)
	s, err := openProducer(t, rawClient(t, c.Broker(0).GRPCAddr), "persistent://public/default/flood")
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 1500, 64 << 10 // 94 MiB
	payload := make([]byte, size)
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := s.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Send{Send: &clientpb.Send{
				SequenceId: int64(i), Entry: entryOf(t, payload, uint64(i))}}}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	peak := 0.0
	for received := 0; received < n; received++ {
		if received%50 == 0 {
			v, ok := testutil.MetricValue(t, c.Broker(0).HTTPAddr, "strata_publish_buffer_bytes")
			if !ok {
				t.Fatal("no strata_publish_buffer_bytes series")
			}
			peak = max(peak, v)
			if v > buffer+size {
				t.Fatalf("the broker holds %.0f bytes of sends, over its %d-byte buffer", v, buffer)
			}
			time.Sleep(20 * time.Millisecond) // a slow reader of receipts
		}
		resp, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.GetReceipt(); r == nil || r.SequenceId != int64(received) {
			t.Fatalf("reply %d: %v", received, resp)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	t.Logf("peak publish buffer %.0f bytes for %d MiB sent", peak, n*size>>20)
	if id, err := newClient(t, c).LastMessageID(ctx, "flood"); err != nil || id.EntryID != n-1 {
		t.Fatalf("last message %v %v, want entry %d", id, err, n-1)
	}
}

// TestStreamsPerConnectionAreBounded: one connection gets at most
// MaxConcurrentStreamsPerConnection streams at once; more wait until one
// ends (they used to open by the thousand in a fraction of a second).
func TestStreamsPerConnectionAreBounded(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxConcurrentStreamsPerConnection = 20
	}})
	raw := rawClient(t, c.Broker(0).GRPCAddr)
	var open []clientpb.Broker_ProduceClient
	for i := range 20 {
		s, err := openProducer(t, raw, fmt.Sprintf("persistent://public/default/streams-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	extra, err := raw.Produce(ctx)
	if err == nil {
		err = extra.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Open{Open: &clientpb.ProducerOpen{Topic: "persistent://public/default/streams-x"}}})
		if err == nil {
			_, err = extra.Recv()
		}
	}
	if err == nil {
		t.Fatal("a 21st stream opened on a connection limited to 20")
	}
	open[0].CloseSend()
	open[0].Recv() // the broker ends the stream
	if _, err := openProducer(t, raw, "persistent://public/default/streams-y"); err != nil {
		t.Fatalf("a stream after one ended: %v", err)
	}
}

// TestBadStreamsLeaveNoGoroutines: produce streams that open twice (refused
// with BAD_REQUEST) while sending more leave no goroutine behind (each used
// to leave its receiving goroutine blocked forever).
func TestBadStreamsLeaveNoGoroutines(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	raw := rawClient(t, c.Broker(0).GRPCAddr)
	openReq := &clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Open{Open: &clientpb.ProducerOpen{Topic: "persistent://public/default/twice"}}}
	bad := func() {
		s, err := raw.Produce(ctxT(t, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			s.Send(openReq)
		}
		for {
			if _, err := s.Recv(); err != nil {
				return
			}
		}
	}
	bad() // warm up: the topic is loaded once
	time.Sleep(100 * time.Millisecond)
	base := runtime.NumGoroutine()
	for range 200 {
		bad()
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > base+20 {
			return fmt.Errorf("%d goroutines, %d before 200 bad streams", n, base)
		}
		return nil
	})
}

// TestSlowAndIdleHTTPClientsAreCut: a client that sends a request body too
// slowly, or keeps an idle connection, is disconnected after
// HTTPReadTimeout / HTTPIdleTimeout.
func TestSlowAndIdleHTTPClientsAreCut(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.HTTPReadTimeout, o.HTTPIdleTimeout = 500*time.Millisecond, 500*time.Millisecond
	}})
	addr := c.Broker(0).HTTPAddr
	closedWithin := func(what string, conn net.Conn, d time.Duration) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(d))
		r := bufio.NewReader(conn)
		for {
			if _, err := r.ReadByte(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("%s: connection still open after %v", what, d)
				}
				return // closed by the server
			}
		}
	}
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /admin/v2/tenants/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	closedWithin("slow body", slow, 5*time.Second)

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	closedWithin("idle keep-alive", idle, 5*time.Second)
}

// TestSubscriptionAndTopicLimits: a namespace's max subscriptions per topic
// and max topics (a partitioned topic counts its partitions) are enforced
// for clients (NOT_ALLOWED) and the admin API (412), and the broker's
// defaults apply to namespaces that do not set them.
func TestSubscriptionAndTopicLimits(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxProducersPerTopic = 2
	}})
	ctx := ctxT(t, time.Minute)
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.Namespaces().SetMaxSubscriptionsPerTopic(ctx, "public/default", 2); err != nil {
		t.Fatal(err)
	}
	if err := adm.Namespaces().SetMaxTopicsPerNamespace(ctx, "public/default", 4); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the broker's policy cache
	cl := newClient(t, c)
	for _, sub := range []string{"a", "b"} {
		cons, err := cl.Subscribe(ctx, "limited", sub)
		if err != nil {
			t.Fatal(err)
		}
		cons.Close()
	}
	if _, err := cl.Subscribe(ctx, "limited", "c"); !errors.Is(err, client.ErrNotAllowed) || !strings.Contains(err.Error(), "limit of 2 subscriptions") {
		t.Fatalf("third subscription: %v, want NOT_ALLOWED", err)
	}
	err = adm.Topics().CreateSubscription(ctx, "limited", "d", admin.Earliest)
	if admin.StatusCode(err) != http.StatusPreconditionFailed {
		t.Fatalf("third subscription by the admin API: %v, want 412", err)
	}
	// The broker's default of 2 producers per topic.
	for i := range 3 {
		p, err := cl.CreateProducer(ctx, "limited")
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if i == 2 && !errors.Is(err, client.ErrProducerBusy) {
			t.Fatalf("third producer: %v, want the broker default limit", err)
		}
		if err == nil {
			defer p.Close()
		}
	}
	// "limited" is one topic; two partitions make three; a fifth is refused.
	if err := adm.Topics().CreatePartitioned(ctx, "parts", 2); err != nil {
		t.Fatal(err)
	}
	if err := adm.Topics().Create(ctx, "fourth"); err != nil {
		t.Fatal(err)
	}
	err = adm.Topics().Create(ctx, "fifth")
	if admin.StatusCode(err) != http.StatusPreconditionFailed || !strings.Contains(err.Error(), "4 of its 4 topics") {
		t.Fatalf("fifth topic: %v, want 412", err)
	}
	if _, err := cl.CreateProducer(ctx, "sixth"); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("a topic created by a producer beyond the limit: %v, want NOT_ALLOWED", err)
	}
	if err := adm.Topics().CreatePartitioned(ctx, "more-parts", 1); admin.StatusCode(err) != http.StatusPreconditionFailed {
		t.Fatalf("partitioned topic beyond the limit: %v, want 412", err)
	}
}

// TestIdleTopicsUnload: a topic with no producer, consumer, reader or
// subscription is unloaded after TopicIdleTimeout (its goroutines and
// memory freed) and loads again on use; one with a subscription stays.
func TestIdleTopicsUnload(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.TopicIdleTimeout, o.PolicyCheckInterval = 300*time.Millisecond, 100*time.Millisecond
	}})
	ctx := ctxT(t, time.Minute)
	cl := newClient(t, c)
	for _, topic := range []string{"idle", "subscribed"} {
		if topic == "subscribed" {
			cons, err := cl.Subscribe(ctx, topic, "s")
			if err != nil {
				t.Fatal(err)
			}
			cons.Close()
		}
		p, err := cl.CreateProducer(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		produceN(t, p, 0, 3)
		p.Close()
	}
	loaded := func(topic string) bool { return topicLoaded(t, c, topic) }
	testutil.WaitFor(t, 10*time.Second, func() error {
		if loaded("idle") {
			return errors.New("idle topic still loaded")
		}
		return nil
	})
	if !loaded("subscribed") {
		t.Fatal("a topic with a subscription was unloaded")
	}
	r, err := cl.CreateReader(ctx, "idle", client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range 3 {
		if m, err := r.Next(ctx); err != nil || string(m.Payload) != fmt.Sprintf("msg-%06d", i) {
			t.Fatalf("after reloading: %q %v", m.Payload, err)
		}
	}
}

// topicLoaded reports whether the broker's metrics list the topic (only
// loaded topics have series).
func topicLoaded(t *testing.T, c *testcluster.Cluster, topic string) bool {
	t.Helper()
	resp, err := http.Get(c.Broker(0).B.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "pulsar_producers_count{") && strings.Contains(sc.Text(), `topic="persistent://public/default/`+topic+`"`) {
			return true
		}
	}
	return false
}
