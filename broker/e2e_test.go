package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t testing.TB, c *testcluster.Cluster) *client.Client {
	t.Helper()
	cl, err := client.New(c.ServiceURL(), client.WithLogger(c.Log), client.WithOperationTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func produceN(t testing.TB, p *client.Producer, from, n int) {
	t.Helper()
	ctx := ctxT(t, 2*time.Minute)
	errs := make(chan error, n)
	for i := from; i < from+n; i++ {
		p.SendAsync(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprintf("msg-%06d", i))}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
			errs <- err
		})
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

func TestProduceConsumeInOrder(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	for _, batching := range []bool{true, false} {
		t.Run(fmt.Sprint("batching=", batching), func(t *testing.T) {
			ctx := ctxT(t, 2*time.Minute)
			topic := fmt.Sprintf("persistent://public/default/order-%v", batching)
			cons, err := cl.Subscribe(ctx, topic, "s", client.WithInitialPosition(client.Earliest))
			if err != nil {
				t.Fatal(err)
			}
			opts := []client.ProducerOption{}
			if !batching {
				opts = append(opts, client.WithoutBatching())
			}
			p, err := cl.CreateProducer(ctx, topic, opts...)
			if err != nil {
				t.Fatal(err)
			}
			const n = 10000
			produceN(t, p, 0, n)
			for i := 0; i < n; i++ {
				m, err := cons.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("msg-%06d", i); string(m.Payload) != want {
					t.Fatalf("message %d: %q, want %q (id %v redeliveries %d)", i, m.Payload, want, m.ID, m.RedeliveryCount)
				}
				if err := cons.Ack(m); err != nil {
					t.Fatal(err)
				}
			}
			p.Close()
			cons.Close()
		})
	}
}
