package pulsarcompat

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/sirupsen/logrus"
)

// quiet keeps the client's info logs out of test output.
var quiet = func() plog.Logger {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	return plog.NewLoggerWithLogrus(l)
}()

func newClient(t *testing.T) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: serviceURL, OperationTimeout: 30 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestProduceConsume: every message sent with batching on and off arrives
// once, in order, with its key, properties and event time.
func TestProduceConsume(t *testing.T) {
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			ctx := ctxT(t, time.Minute)
			c := newClient(t)
			topic := topicName(t)
			cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: !batching})
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			const n = 200
			event := time.UnixMilli(1_700_000_000_000)
			for i := range n {
				prod.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("m%03d", i)), Key: fmt.Sprintf("k%d", i%3),
					Properties: map[string]string{"i": fmt.Sprint(i)}, EventTime: event}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						t.Errorf("send %d: %v", i, err)
					}
				})
			}
			if err := prod.Flush(); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				m, err := cons.Receive(ctx)
				if err != nil {
					t.Fatalf("receive %d: %v", i, err)
				}
				if got, want := string(m.Payload()), fmt.Sprintf("m%03d", i); got != want {
					t.Fatalf("message %d: %q, want %q", i, got, want)
				}
				if m.Key() != fmt.Sprintf("k%d", i%3) || m.Properties()["i"] != fmt.Sprint(i) || !m.EventTime().Equal(event) {
					t.Fatalf("message %d: key %q properties %v event time %v", i, m.Key(), m.Properties(), m.EventTime())
				}
				if err := cons.Ack(m); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestHTTPServiceURL: a client given the HTTP service URL looks topics up
// through the REST API (/lookup/v2/..., partitions) and then talks to the
// broker it names.
func TestHTTPServiceURL(t *testing.T) {
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: adminURL, OperationTimeout: 30 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, time.Minute)
	topic := topicName(t)
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("over http lookup")}); err != nil {
		t.Fatal(err)
	}
	m, err := cons.Receive(ctx)
	if err != nil || string(m.Payload()) != "over http lookup" {
		t.Fatalf("received %v %v", m, err)
	}
}
