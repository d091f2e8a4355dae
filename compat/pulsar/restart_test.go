package pulsarcompat

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// sendAll sends payloads, retrying each until it is acknowledged (across
// the client's reconnects), and returns them in order.
func sendAll(t *testing.T, ctx context.Context, p pulsar.Producer, prefix string, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		body := fmt.Sprintf("%s%03d", prefix, i)
		for {
			if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(body)}); err == nil {
				break
			} else if ctx.Err() != nil {
				t.Fatalf("send %s: %v", body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		out = append(out, body)
	}
	return out
}

// TestUnloadReconnects: when the topic is unloaded (the broker closes its
// producers and consumers), the client reconnects by itself and nothing
// acknowledged is lost or delivered twice.
func TestUnloadReconnects(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	c := newClient(t)
	topic := topicName(t)
	// Acks confirmed by the broker: an acknowledged message must never come back.
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", AckWithResponse: true})
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := sendAll(t, ctx, p, "a", 20)
	acked := texts(receive(t, cons, 10, true))
	adminDo(t, "PUT", "/admin/v2/persistent/public/default/"+topic[len("persistent://public/default/"):]+"/unload", "")
	want = append(want, sendAll(t, ctx, p, "b", 20)...)
	checkAtLeastOnce(t, cons, want, acked)
}

// checkAtLeastOnce receives until every message of want arrived, and
// checks that they first arrived in order and that only messages not yet
// acknowledged (not in acked, which arrived first) came twice: what a
// consumer held unacknowledged when its connection closed is delivered
// again, as Pulsar does.
func checkAtLeastOnce(t *testing.T, cons pulsar.Consumer, want, acked []string) {
	t.Helper()
	seen := map[string]int{}
	for _, a := range acked {
		seen[a]++
	}
	first := slices.Clone(acked)
	for len(first) < len(want) {
		m := receive(t, cons, 1, true)[0]
		body := string(m.Payload())
		if seen[body]++; seen[body] == 1 {
			first = append(first, body)
		} else if slices.Contains(acked, body) {
			t.Fatalf("acknowledged message %s delivered again", body)
		}
	}
	if !slices.Equal(first, want) {
		t.Fatalf("messages first arrived as %v, want %v", first, want)
	}
	nothingMore(t, cons, 500*time.Millisecond)
}

// TestBrokerRestart: the standalone is stopped (SIGTERM) and started again
// on the same data while a producer and a consumer are connected; both
// reconnect, and every acknowledged message is delivered.
func TestBrokerRestart(t *testing.T) {
	ctx := ctxT(t, 3*time.Minute)
	c := newClient(t)
	topic := topicName(t)
	// Acks confirmed by the broker: an acknowledged message must never come back.
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", AckWithResponse: true})
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true, SendTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := sendAll(t, ctx, p, "before", 20)
	acked := texts(receive(t, cons, 20, true))
	stopStandalone()
	if err := startStandalone(); err != nil {
		t.Fatal(err)
	}
	want = append(want, sendAll(t, ctx, p, "after", 20)...)
	checkAtLeastOnce(t, cons, want, acked)
}
