package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// ctxT returns a context cancelled after d or at the end of the test.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newClient returns a client of the cluster, closed at the end of the test.
func newClient(t testing.TB, c *testcluster.Cluster, opts ...client.ClientOption) *client.Client {
	t.Helper()
	opts = append([]client.ClientOption{client.WithLogger(c.Log), client.WithOperationTimeout(30 * time.Second)}, opts...)
	cl, err := client.New(c.ServiceURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func newProducer(t testing.TB, cl *client.Client, topic string, opts ...client.ProducerOption) *client.Producer {
	t.Helper()
	p, err := cl.CreateProducer(ctxT(t, time.Minute), topic, opts...)
	if err != nil {
		t.Fatalf("create producer on %s: %v", topic, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func subscribe(t testing.TB, cl *client.Client, topic, sub string, opts ...client.ConsumerOption) *client.Consumer {
	t.Helper()
	opts = append([]client.ConsumerOption{client.WithInitialPosition(client.Earliest)}, opts...)
	cons, err := cl.Subscribe(ctxT(t, time.Minute), topic, sub, opts...)
	if err != nil {
		t.Fatalf("subscribe %s/%s: %v", topic, sub, err)
	}
	t.Cleanup(func() { cons.Close() })
	return cons
}

// send publishes one message and fails the test on error.
func send(t testing.TB, p *client.Producer, payload string) client.MessageID {
	t.Helper()
	id, err := p.Send(ctxT(t, time.Minute), &client.ProducerMessage{Payload: []byte(payload)})
	if err != nil {
		t.Fatalf("send %q: %v", payload, err)
	}
	return id
}

// receive returns the next message, failing the test after d.
func receive(t testing.TB, cons *client.Consumer, d time.Duration) client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := cons.Receive(ctx)
	if err != nil {
		t.Fatalf("receive on %s: %v", cons.Topic(), err)
	}
	return m
}

// receivePayloads receives n messages, acknowledging each, and returns
// their payloads in arrival order.
func receivePayloads(t testing.TB, cons *client.Consumer, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for len(out) < n {
		m := receive(t, cons, 30*time.Second)
		if err := cons.Ack(m); err != nil {
			t.Fatalf("ack %v: %v", m.ID, err)
		}
		out = append(out, string(m.Payload))
	}
	return out
}

// createPartitioned creates a partitioned topic in public/default.
func createPartitioned(t testing.TB, c *testcluster.Cluster, topic string, n int) {
	t.Helper()
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	if err := st.CreatePartitionedTopic(ctxT(t, time.Minute), naming.MustParseTopic(topic), n); err != nil {
		t.Fatalf("create partitioned topic %s: %v", topic, err)
	}
}

// uniqueTopic returns a fresh topic name for the test.
func uniqueTopic(t testing.TB, base string) string {
	return fmt.Sprintf("persistent://public/default/%s-%d", base, time.Now().UnixNano())
}

// sendResult is the outcome of one SendAsync.
type sendResult struct {
	payload string
	id      client.MessageID
	err     error
}
