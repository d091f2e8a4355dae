package standalone_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

func start(t *testing.T, dir string, addrs []string) *standalone.Standalone {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := standalone.Start(ctx, standalone.Options{
		DataDir: dir, EtcdClientAddr: addrs[0], EtcdPeerAddr: addrs[1], BookieAddr: addrs[2],
		Broker: broker.Options{GRPCAddr: addrs[3], HTTPAddr: addrs[4], SessionTTL: 2 * time.Second},
		Logger: testcluster.TestLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStandaloneSurvivesRestart: 10,000 messages produced with batching on
// and off are consumed in order; after a restart a new Earliest subscription
// still gets all of them. Health, readiness and metrics are served.
func TestStandaloneSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	var addrs []string
	for i := 0; i < 5; i++ {
		addrs = append(addrs, testutil.FreeAddr(t))
	}
	s := start(t, dir, addrs)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := client.New(s.Broker.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	for _, batching := range []bool{true, false} {
		topic := fmt.Sprintf("restart-%v", batching)
		var opts []client.ProducerOption
		if !batching {
			opts = append(opts, client.WithoutBatching())
		}
		cons, err := cl.Subscribe(ctx, topic, "live", client.WithInitialPosition(client.Earliest))
		if err != nil {
			t.Fatal(err)
		}
		p, err := cl.CreateProducer(ctx, topic, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			p.SendAsync(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprint(i))}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
				if err != nil {
					t.Errorf("send: %v", err)
				}
			})
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		consumeInOrder(t, ctx, cons, n)
		p.Close()
		cons.Close()
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ok", "/metrics": `pulsar_in_messages_total{cluster="standalone",namespace="public/default",topic="persistent://public/default/restart-true"} 10000`} {
		resp, err := http.Get(s.Broker.HTTPURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	cl.Close()
	s.Close()

	s = start(t, dir, addrs)
	defer s.Close()
	cl, _ = client.New(s.Broker.GRPCAddr())
	defer cl.Close()
	for _, topic := range []string{"restart-true", "restart-false"} {
		cons, err := cl.Subscribe(ctx, topic, "after-restart", client.WithInitialPosition(client.Earliest))
		if err != nil {
			t.Fatal(err)
		}
		consumeInOrder(t, ctx, cons, n)
		cons.Close()
	}
}

func consumeInOrder(t *testing.T, ctx context.Context, cons *client.Consumer, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, m.Payload)
		}
		cons.Ack(m)
	}
}

func TestMain(m *testing.M) { testutil.Main(m) }

// TestStandaloneMaxMessageSize: a standalone whose broker allows 8 MiB
// messages stores a 6 MiB one (its bookie is sized for the broker's limit).
func TestStandaloneMaxMessageSize(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := standalone.Start(ctx, standalone.Options{
		DataDir: t.TempDir(), EtcdClientAddr: testutil.FreeAddr(t), EtcdPeerAddr: testutil.FreeAddr(t), BookieAddr: testutil.FreeAddr(t),
		Broker: broker.Options{GRPCAddr: testutil.FreeAddr(t), HTTPAddr: testutil.FreeAddr(t), SessionTTL: 2 * time.Second, MaxMessageSize: 8 << 20},
		Logger: testcluster.TestLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cl, err := client.New(s.Broker.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cons, err := cl.Subscribe(ctx, "large", "s", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "large")
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(strings.Repeat("0123456789abcdef", 6<<16)) // 6 MiB
	if _, err := p.Send(ctx, &client.ProducerMessage{Payload: payload}); err != nil {
		t.Fatalf("send 6 MiB to a standalone with --max-message-size 8 MiB: %v", err)
	}
	m, err := cons.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Payload) != string(payload) {
		t.Fatalf("received %d bytes, want the 6 MiB payload", len(m.Payload))
	}
}
