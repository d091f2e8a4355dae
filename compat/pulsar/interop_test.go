package pulsarcompat

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	strata "github.com/strata-mq/strata/client"
)

func newStrataClient(t *testing.T) *strata.Client {
	t.Helper()
	c, err := strata.New(serviceURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestInteropStrataToPulsar: messages produced with Strata's SDK over gRPC,
// batched and not, reach a Pulsar client with their keys, properties and
// event times.
func TestInteropStrataToPulsar(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	sc := newStrataClient(t)
	pc := newClient(t)
	topic := topicName(t)
	cons := subscribe(t, pc, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	event := time.UnixMilli(1_750_000_000_000)
	for _, batched := range []bool{false, true} {
		opts := []strata.ProducerOption{strata.WithoutBatching()}
		if batched {
			opts = []strata.ProducerOption{strata.WithBatching(10, 1<<20, time.Hour)}
		}
		p, err := sc.CreateProducer(ctx, topic, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			p.SendAsync(ctx, &strata.ProducerMessage{Payload: []byte(fmt.Sprintf("b%v-%d", batched, i)), Key: "k",
				Properties: map[string]string{"n": fmt.Sprint(i)}, EventTime: event}, nil)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		p.Close()
		for i, m := range receive(t, cons, 10, true) {
			if string(m.Payload()) != fmt.Sprintf("b%v-%d", batched, i) || m.Key() != "k" || m.Properties()["n"] != fmt.Sprint(i) || !m.EventTime().Equal(event) {
				t.Fatalf("batched=%v message %d: %q key %q properties %v event time %v", batched, i, m.Payload(), m.Key(), m.Properties(), m.EventTime())
			}
			if batched != (m.ID().BatchIdx() >= 0 && m.ID().BatchSize() > 1) {
				t.Fatalf("batched=%v message %d has id %v", batched, i, m.ID())
			}
		}
	}
}

// TestInteropPulsarToStrata: messages produced by a Pulsar client, batched,
// compressed and not, reach Strata's SDK with their keys, properties and
// event times.
func TestInteropPulsarToStrata(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	sc := newStrataClient(t)
	pc := newClient(t)
	topic := topicName(t)
	cons, err := sc.Subscribe(ctx, topic, "s", strata.WithInitialPosition(strata.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	event := time.UnixMilli(1_750_000_000_000)
	var want []string
	for _, o := range []pulsar.ProducerOptions{
		{DisableBatching: true},
		{BatchingMaxMessages: 5, BatchingMaxPublishDelay: time.Hour},
		{BatchingMaxMessages: 5, BatchingMaxPublishDelay: time.Hour, CompressionType: pulsar.ZLib},
		{BatchingMaxMessages: 5, BatchingMaxPublishDelay: time.Hour, CompressionType: pulsar.LZ4},
		{BatchingMaxMessages: 5, BatchingMaxPublishDelay: time.Hour, CompressionType: pulsar.ZSTD},
		{DisableBatching: true, CompressionType: pulsar.LZ4},
	} {
		o.Topic = topic
		p, err := pc.CreateProducer(o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			body := fmt.Sprintf("%v/%v-%d", o.DisableBatching, o.CompressionType, i)
			want = append(want, body)
			p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(body), Key: "k", Properties: map[string]string{"n": fmt.Sprint(i)}, EventTime: event}, nil)
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	var got []string
	for len(got) < len(want) {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Payload))
		if m.Key != "k" || m.Properties["n"] != fmt.Sprint((len(got)-1)%5) || !m.EventTime.Equal(event) {
			t.Fatalf("message %q: key %q properties %v event time %v", m.Payload, m.Key, m.Properties, m.EventTime)
		}
		cons.Ack(m)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Strata's SDK received %v, want %v", got, want)
	}
}

// TestInteropBatchIndexAck: a batch a Pulsar consumer acknowledged in part
// (batch-index acknowledgement) comes to Strata's SDK on the same
// subscription with only the messages left; once the SDK acknowledges
// those, the entry is done and nothing comes back.
func TestInteropBatchIndexAck(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	pc := newClient(t)
	topic := topicName(t)
	o := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", EnableBatchIndexAcknowledgment: true, AckWithResponse: true,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest}
	pcons, err := pc.Subscribe(o)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 6, BatchingMaxPublishDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sent := payloads("m", 6)
	for _, p := range sent {
		prod.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(p)}, nil)
	}
	if err := prod.Flush(); err != nil {
		t.Fatal(err)
	}
	var left []string
	for i, m := range receive(t, pcons, 6, false) {
		if i < 4 {
			if err := pcons.Ack(m); err != nil {
				t.Fatal(err)
			}
		} else {
			left = append(left, sent[i])
		}
	}
	pcons.Close()
	sc := newStrataClient(t)
	scons, err := sc.Subscribe(ctx, topic, "s", strata.WithInitialPosition(strata.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range left {
		m, err := scons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Payload))
		if err := scons.AckWithResponse(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, left) {
		t.Fatalf("Strata's SDK got %v, want only %v", got, left)
	}
	scons.Close()
	scons, err = sc.Subscribe(ctx, topic, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer scons.Close()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if m, err := scons.Receive(short); err == nil {
		t.Fatalf("message %q came back after the whole batch was acknowledged", m.Payload)
	}
}
