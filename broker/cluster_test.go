package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/tenants"
)

// failoverRun produces numbered messages to a 2-partition topic while a
// Failover consumer acknowledges them, runs fault() midway, and then checks
// that every acknowledged message was consumed and each partition's
// messages arrived in order (a redelivery may repeat, never reorder). No
// send may fail.
func failoverRun(t *testing.T, c *testcluster.Cluster, topic string, fault func()) {
	ctx := ctxT(t, 3*time.Minute)
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	if err := st.CreatePartitionedTopic(ctx, naming.MustParseTopic(topic), 2); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	cons, err := cl.Subscribe(ctx, topic, "s", client.WithSubscriptionType(client.Failover), client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, topic, client.WithBatching(20, 1<<20, 5*time.Millisecond), client.WithSendTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	const total = 4000
	var mu sync.Mutex
	acked := map[string]bool{}
	var sendErrs int
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for i := 0; i < total; i++ {
			if i == total/3 {
				fault()
			}
			payload := fmt.Sprintf("k%d/%06d", i%2, i)
			wg.Add(1)
			p.SendAsync(ctx, &client.ProducerMessage{Key: fmt.Sprintf("k%d", i%2), Payload: []byte(payload)}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if sendErrs == 0 {
						t.Logf("first failed send: %v", err)
					}
					sendErrs++
					return
				}
				acked[payload] = true
			})
			if i%200 == 0 {
				time.Sleep(10 * time.Millisecond) // a steady stream, not one burst
			}
		}
		wg.Wait()
	}()
	last := map[int32]int{0: -1, 1: -1}
	got := map[string]bool{}
	for {
		mu.Lock()
		missing := 0
		for k := range acked {
			if !got[k] {
				missing++
			}
		}
		finished := missing == 0 && len(acked)+sendErrs == total
		mu.Unlock()
		select {
		case <-done:
			if finished {
				// The SDK reconnects and resends what is pending: a fault
				// fails no send.
				if sendErrs > 0 || len(acked) != total {
					t.Fatalf("%d of %d sends acknowledged, %d failed", len(acked), total, sendErrs)
				}
				p.Close()
				cons.Close()
				return
			}
		default:
		}
		// Long enough for a consumer in its longest reconnect backoff (5 s)
		// after the fault: a quiet spell this long with sends done means loss.
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := cons.Receive(rctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			select {
			case <-done:
				mu.Lock()
				var lost []string
				for k := range acked {
					if !got[k] {
						lost = append(lost, k)
					}
				}
				mu.Unlock()
				if len(lost) > 0 {
					t.Fatalf("%d acknowledged messages never consumed, e.g. %v", len(lost), lost[:min(5, len(lost))])
				}
			default:
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		key, seq, _ := strings.Cut(string(m.Payload), "/")
		n, _ := strconv.Atoi(seq)
		_ = key
		if n < last[m.ID.Partition] && !got[string(m.Payload)] {
			t.Fatalf("partition %d: new message %d after %d (order broken)", m.ID.Partition, n, last[m.ID.Partition])
		}
		last[m.ID.Partition] = max(last[m.ID.Partition], n)
		got[string(m.Payload)] = true
		cons.Ack(m)
	}
}

func TestClusterBrokerKilledMidStream(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 3, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) {
		o.DefaultEnsembleSize, o.DefaultWriteQuorum, o.DefaultAckQuorum = 3, 3, 2
	}})
	failoverRun(t, c, "killbroker", func() {
		// Kill the broker owning partition 0.
		addr := ownerOf(t, c, "persistent://public/default/killbroker-partition-0")
		c.Log.Warn("killing broker", "addr", addr)
		c.KillBroker(c.BrokerIndex(addr))
	})
}

func TestClusterBookieKilledMidStream(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 3, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) {
		o.DefaultEnsembleSize, o.DefaultWriteQuorum, o.DefaultAckQuorum = 3, 3, 2
	}})
	failoverRun(t, c, "killbookie", func() {
		// With 3 bookies and E=3 no replacement exists: writes wait until
		// the bookie is back, and nothing acknowledged is lost.
		c.KillBookie(1)
		go func() {
			time.Sleep(3 * time.Second)
			if err := c.StartBookie(1); err != nil {
				t.Errorf("restart bookie: %v", err)
			}
		}()
	})
}

func ownerOf(t *testing.T, c *testcluster.Cluster, topic string) string {
	t.Helper()
	cl := newClient(t, c)
	id, err := cl.LastMessageID(context.Background(), topic)
	if err != nil {
		t.Fatalf("last message id of %s: %v", topic, err)
	}
	_ = id
	for i := 0; ; i++ {
		n := c.Broker(i)
		if n.B != nil && n.B.OwnsTopic(topic) {
			return n.GRPCAddr
		}
		if i > 10 {
			t.Fatalf("no broker owns %s", topic)
		}
	}
}

func TestClusterBrokerStoppedGracefully(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 3, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) {
		o.DefaultEnsembleSize, o.DefaultWriteQuorum, o.DefaultAckQuorum = 3, 3, 2
		o.SessionTTL = 30 * time.Second // clients must not wait for a lease to expire
	}})
	failoverRun(t, c, "stopbroker", func() {
		addr := ownerOf(t, c, "persistent://public/default/stopbroker-partition-0")
		c.StopBroker(c.BrokerIndex(addr))
	})
}

// TestConsumerResumesAfterBookieOutage: a subscription reading a backlog
// while its only bookie is down receives every message once the bookie is
// back, although no new message arrives to wake its dispatcher.
func TestConsumerResumesAfterBookieOutage(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.TopicCacheBytes = 1 // every read goes to the bookie
	}})
	cl := newClient(t, c)
	ctx := ctxT(t, 2*time.Minute)
	const n = 500
	p, err := cl.CreateProducer(ctx, "outage")
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, n)
	c.StopBookie(0)
	cons, err := cl.Subscribe(ctx, "outage", "s", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // reads fail meanwhile
	c.RestartBookie(0)
	for i, m := range recvN(t, cons, n, true) {
		if want := fmt.Sprintf("msg-%06d", i); string(m.Payload) != want {
			t.Fatalf("message %d: %q, want %q", i, m.Payload, want)
		}
	}
}

// TestClusterTopicUnloadedMidStream: an admin unload (how load balancing
// moves a topic) closes the partition under a live producer and consumer.
func TestClusterTopicUnloadedMidStream(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2})
	failoverRun(t, c, "unload", func() {
		r := rest{t, c.Broker(0).B.HTTPURL()}
		r.want("PUT", "/admin/v2/persistent/public/default/unload-partition-0/unload", "", 204)
	})
}
