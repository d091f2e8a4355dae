package pulsarcompat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

func subscribe(t *testing.T, c pulsar.Client, o pulsar.ConsumerOptions) pulsar.Consumer {
	t.Helper()
	if o.SubscriptionInitialPosition == pulsar.SubscriptionPositionLatest {
		o.SubscriptionInitialPosition = pulsar.SubscriptionPositionEarliest
	}
	cons, err := c.Subscribe(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cons.Close)
	return cons
}

func produce(t *testing.T, c pulsar.Client, topic string, o pulsar.ProducerOptions, payloads ...string) []pulsar.MessageID {
	t.Helper()
	o.Topic = topic
	prod, err := c.CreateProducer(o)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := ctxT(t, time.Minute)
	ids := make([]pulsar.MessageID, len(payloads))
	for i, p := range payloads {
		id, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(p), Key: p})
		if err != nil {
			t.Fatalf("send %q: %v", p, err)
		}
		ids[i] = id
	}
	return ids
}

func payloads(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// receive takes n messages, acknowledging each when ack is set.
func receive(t *testing.T, cons pulsar.Consumer, n int, ack bool) []pulsar.Message {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	var out []pulsar.Message
	for len(out) < n {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, m)
		if ack {
			if err := cons.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func texts(ms []pulsar.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload())
	}
	return out
}

// nothingMore checks that no message arrives within d.
func nothingMore(t *testing.T, cons pulsar.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := cons.Receive(ctx); err == nil {
		t.Fatalf("unexpected message %q (redelivery %d)", m.Payload(), m.RedeliveryCount())
	}
}

// TestSubscriptionTypes: Exclusive refuses a second consumer, Failover
// delivers to one, Shared and Key_Shared spread messages over both
// consumers (Key_Shared keeping each key on one), and every message is
// delivered once. Key_Shared places keys by hash over consumers with
// random names: with 20 keys, all of them landing on one consumer (a
// false failure) has a chance of one in half a million.
func TestSubscriptionTypes(t *testing.T) {
	c := newClient(t)
	for _, typ := range []pulsar.SubscriptionType{pulsar.Exclusive, pulsar.Failover, pulsar.Shared, pulsar.KeyShared} {
		t.Run(fmt.Sprint(typ), func(t *testing.T) {
			topic := topicName(t)
			o := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: typ, ReceiverQueueSize: 10}
			c1 := subscribe(t, c, o)
			c2, err := c.Subscribe(o)
			if typ == pulsar.Exclusive {
				if err == nil {
					c2.Close()
					t.Fatal("a second consumer joined an exclusive subscription")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			sent := payloads("m", 60)
			prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t, time.Minute)
			for i, p := range sent {
				if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(p), Key: fmt.Sprintf("key%d", i%20)}); err != nil {
					t.Fatal(err)
				}
			}
			prod.Close()
			got := map[string][]string{} // consumer -> payloads
			keys := map[string]string{}  // key -> consumer
			for len(got["1"])+len(got["2"]) < len(sent) {
				var m pulsar.Message
				var who string
				select {
				case cm := <-c1.Chan():
					m, who = cm.Message, "1"
					c1.Ack(m)
				case cm := <-c2.Chan():
					m, who = cm.Message, "2"
					c2.Ack(m)
				case <-ctx.Done():
					t.Fatalf("received %d of %d", len(got["1"])+len(got["2"]), len(sent))
				}
				got[who] = append(got[who], string(m.Payload()))
				if typ == pulsar.KeyShared {
					if prev, ok := keys[m.Key()]; ok && prev != who {
						t.Fatalf("key %s went to consumers %s and %s", m.Key(), prev, who)
					}
					keys[m.Key()] = who
				}
			}
			all := append(slices.Clone(got["1"]), got["2"]...)
			sort.Strings(all)
			if !slices.Equal(all, sent) {
				t.Fatalf("received %v, want each of %v once", all, sent)
			}
			switch typ {
			case pulsar.Failover:
				if len(got["1"]) > 0 && len(got["2"]) > 0 {
					t.Fatalf("failover delivered to both consumers: %d and %d", len(got["1"]), len(got["2"]))
				}
			default:
				if len(got["1"]) == 0 || len(got["2"]) == 0 {
					t.Fatalf("%v delivered everything to one consumer: %d and %d", typ, len(got["1"]), len(got["2"]))
				}
			}
		})
	}
}

// TestAcks: individually acknowledged messages and everything up to a
// cumulative acknowledgement are not delivered again after the consumer
// reconnects; the rest is.
func TestAcks(t *testing.T) {
	c := newClient(t)
	for _, cumulative := range []bool{false, true} {
		t.Run(fmt.Sprintf("cumulative=%v", cumulative), func(t *testing.T) {
			topic := topicName(t)
			o := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", AckWithResponse: true}
			cons, err := c.Subscribe(o)
			if err != nil {
				t.Fatal(err)
			}
			sent := payloads("m", 10)
			produce(t, c, topic, pulsar.ProducerOptions{DisableBatching: true}, sent...)
			ms := receive(t, cons, 10, false)
			var want []string
			if cumulative {
				if err := cons.AckCumulative(ms[5]); err != nil {
					t.Fatal(err)
				}
				want = sent[6:]
			} else {
				for i, m := range ms {
					if i%2 == 0 {
						if err := cons.Ack(m); err != nil {
							t.Fatal(err)
						}
					} else {
						want = append(want, sent[i])
					}
				}
			}
			cons.Close()
			cons = subscribe(t, c, o)
			if got := texts(receive(t, cons, len(want), true)); !slices.Equal(got, want) {
				t.Fatalf("after reconnecting: %v, want %v", got, want)
			}
			nothingMore(t, cons, 500*time.Millisecond)
		})
	}
}

// TestNackAndDeadLetter: a negatively acknowledged message comes back with
// a higher redelivery count, and after MaxDeliveries goes to the dead
// letter topic.
func TestNackAndDeadLetter(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	dlq := topic + "-dlq"
	dead := subscribe(t, c, pulsar.ConsumerOptions{Topic: dlq, SubscriptionName: "d"})
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared,
		NackRedeliveryDelay: 100 * time.Millisecond, DLQ: &pulsar.DLQPolicy{MaxDeliveries: 3, DeadLetterTopic: dlq}})
	produce(t, c, topic, pulsar.ProducerOptions{DisableBatching: true}, "poison")
	for i := range 3 {
		m := receive(t, cons, 1, false)[0]
		if string(m.Payload()) != "poison" || m.RedeliveryCount() != uint32(i) {
			t.Fatalf("delivery %d: %q with redelivery count %d", i, m.Payload(), m.RedeliveryCount())
		}
		cons.Nack(m)
	}
	if m := receive(t, dead, 1, true)[0]; string(m.Payload()) != "poison" {
		t.Fatalf("dead letter topic got %q", m.Payload())
	}
	nothingMore(t, cons, time.Second)
}

// TestReaders: a reader from a message id starts after it (or at it, when
// inclusive), HasNext is false at the end and on an empty topic, and seek
// by id and by time move it.
func TestReaders(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	empty, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	if empty.HasNext() {
		t.Fatal("HasNext on an empty topic")
	}
	empty.Close()
	for _, batching := range []bool{false, true} {
		sent := payloads(fmt.Sprintf("b%v-", batching), 10)
		var ids []pulsar.MessageID
		if batching {
			prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 5, BatchingMaxPublishDelay: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ids = make([]pulsar.MessageID, len(sent))
			done := make(chan struct{}, len(sent))
			for i, p := range sent {
				prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(p)}, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						t.Error(err)
					}
					ids[i] = id
					done <- struct{}{}
				})
			}
			prod.Flush()
			for range sent {
				<-done
			}
			prod.Close()
		} else {
			ids = produce(t, c, topic, pulsar.ProducerOptions{DisableBatching: true}, sent...)
		}
		for _, inclusive := range []bool{false, true} {
			r, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: ids[3], StartMessageIDInclusive: inclusive})
			if err != nil {
				t.Fatal(err)
			}
			want := sent[4:]
			if inclusive {
				want = sent[3:]
			}
			var got []string
			ctx := ctxT(t, time.Minute)
			for r.HasNext() {
				m, err := r.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(m.Payload()))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("batching=%v inclusive=%v: read %v, want %v", batching, inclusive, got, want)
			}
			if err := r.Seek(ids[1]); err != nil {
				t.Fatal(err)
			}
			m, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := sent[2]; string(m.Payload()) != want && !(inclusive && string(m.Payload()) == sent[1]) {
				t.Fatalf("batching=%v after seeking to message 1: %q", batching, m.Payload())
			}
			r.Close()
		}
	}
}

// TestSeekByTime: a subscription reset to a time delivers again every
// message published at or after it.
func TestSeekByTime(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	produce(t, c, topic, pulsar.ProducerOptions{DisableBatching: true}, payloads("old", 5)...)
	time.Sleep(50 * time.Millisecond)
	mark := time.Now()
	time.Sleep(50 * time.Millisecond)
	fresh := payloads("new", 5)
	produce(t, c, topic, pulsar.ProducerOptions{DisableBatching: true}, fresh...)
	receive(t, cons, 10, true)
	if err := cons.SeekByTime(mark); err != nil {
		t.Fatal(err)
	}
	if got := texts(receive(t, cons, 5, true)); !slices.Equal(got, fresh) {
		t.Fatalf("after seeking by time: %v, want %v", got, fresh)
	}
}

// TestPartitionedTopic: a topic partitioned through the admin REST API (with
// either body Pulsar accepts) is produced to and consumed from across its
// partitions.
func TestPartitionedTopic(t *testing.T) {
	c := newClient(t)
	other := topicName(t) + "-object"
	adminDo(t, "PUT", "/admin/v2/persistent/public/default/"+other[len("persistent://public/default/"):]+"/partitions", `{"partitions":2,"properties":null}`)
	if parts, err := c.TopicPartitions(other); err != nil || len(parts) != 2 {
		t.Fatalf("partitions of %s: %v %v", other, parts, err)
	}
	topic := topicName(t)
	adminDo(t, "PUT", "/admin/v2/persistent/public/default/"+topic[len("persistent://public/default/"):]+"/partitions", "3")
	parts, err := c.TopicPartitions(topic)
	if err != nil || len(parts) != 3 {
		t.Fatalf("partitions: %v %v", parts, err)
	}
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	sent := payloads("m", 30)
	produce(t, c, topic, pulsar.ProducerOptions{DisableBatching: true}, sent...)
	got := texts(receive(t, cons, 30, true))
	sort.Strings(got)
	if !slices.Equal(got, sent) {
		t.Fatalf("received %v", got)
	}
}

// TestDeduplication: a named producer that resends with sequence ids the
// broker stored has them dropped, and learns where to resume.
func TestDeduplication(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	ns := "/admin/v2/namespaces/public/default/deduplication"
	adminDo(t, "POST", ns, "true")
	defer adminDo(t, "DELETE", ns, "")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	ctx := ctxT(t, time.Minute)
	send := func(seqs ...int64) int64 {
		prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "named", DisableBatching: true})
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close()
		for _, s := range seqs {
			if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(s)), SequenceID: &s}); err != nil {
				t.Fatal(err)
			}
		}
		return prod.LastSequenceID()
	}
	send(0, 1, 2)
	if last := send(1, 2, 3); last != 3 {
		t.Fatalf("last sequence id %d, want 3", last)
	}
	if got := texts(receive(t, cons, 4, true)); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Fatalf("received %v", got)
	}
	nothingMore(t, cons, 500*time.Millisecond)
}

// TestProducerNameBusy: a second producer with a connected producer's name
// is refused.
func TestProducerNameBusy(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	p1, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "only"})
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	if p2, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "only"}); err == nil {
		p2.Close()
		t.Fatal("a second producer named only was accepted")
	}
}

// TestChunkingWithDeduplication: a message larger than the broker's maximum
// message size, split by the client into chunks that all carry its sequence
// id, is stored whole and delivered reassembled, with deduplication on.
func TestChunkingWithDeduplication(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	ns := "/admin/v2/namespaces/public/default/deduplication"
	adminDo(t, "POST", ns, "true")
	defer adminDo(t, "DELETE", ns, "")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "chunker", EnableChunking: true, DisableBatching: true, ChunkMaxMessageSize: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := ctxT(t, time.Minute)
	big := []byte(strings.Repeat("0123456789", 50<<10)) // 500 KiB: 5 chunks
	for i := range 3 {
		big[0] = byte('a' + i)
		if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: big}); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range receive(t, cons, 3, true) {
		if len(m.Payload()) != len(big) || m.Payload()[0] != byte('a'+i) || string(m.Payload()[1:20]) != string(big[1:20]) {
			t.Fatalf("message %d: %d bytes starting %q", i, len(m.Payload()), m.Payload()[:20])
		}
	}
	nothingMore(t, cons, 500*time.Millisecond)
}

// TestBatchIndexAck: with batch-index acknowledgement, a consumer that
// acknowledged every other message of a batch and reconnects gets exactly
// the others again; once those are acknowledged nothing comes back.
func TestBatchIndexAck(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	o := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", EnableBatchIndexAcknowledgment: true, AckWithResponse: true}
	cons, err := c.Subscribe(o)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sent := payloads("m", 10)
	for _, p := range sent {
		prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(p)}, nil)
	}
	if err := prod.Flush(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, m := range receive(t, cons, 10, false) {
		if m.ID().BatchSize() != 10 {
			t.Fatalf("message %d not in a batch of 10: %v", i, m.ID())
		}
		if i%2 == 0 {
			if err := cons.Ack(m); err != nil {
				t.Fatal(err)
			}
		} else {
			want = append(want, sent[i])
		}
	}
	cons.Close()
	cons = subscribe(t, c, o)
	got := receive(t, cons, len(want), false)
	if !slices.Equal(texts(got), want) {
		t.Fatalf("after reconnecting: %v, want %v", texts(got), want)
	}
	for _, m := range got {
		if err := cons.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	cons.Close()
	cons = subscribe(t, c, o)
	nothingMore(t, cons, time.Second)
}

// TestStatsShowClients: topic stats name each Pulsar producer's and
// consumer's client version, address and properties.
func TestStatsShowClients(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Properties: map[string]string{"team": "billing"}})
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Properties: map[string]string{"app": "checkout"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var stats struct {
		Publishers []struct {
			ClientVersion, Address string
			Metadata               map[string]string
		}
		Subscriptions map[string]struct {
			Consumers []struct {
				ClientVersion, Address string
				Metadata               map[string]string
			}
		}
	}
	adminGet(t, "/admin/v2/persistent/public/default/"+topic[len("persistent://public/default/"):]+"/stats", &stats)
	if len(stats.Publishers) != 1 || !strings.HasPrefix(stats.Publishers[0].ClientVersion, "Pulsar-Go") ||
		stats.Publishers[0].Address == "" || stats.Publishers[0].Metadata["app"] != "checkout" {
		t.Fatalf("publishers: %+v", stats.Publishers)
	}
	cons := stats.Subscriptions["s"].Consumers
	if len(cons) != 1 || !strings.HasPrefix(cons[0].ClientVersion, "Pulsar-Go") || cons[0].Metadata["team"] != "billing" {
		t.Fatalf("consumers: %+v", cons)
	}
}

// TestReaderSeekByTime: a reader that seeks by time continues at the
// first message published at or after it, although its client subscribes
// again with the start id it had (the broker remembers where the seek put
// it).
func TestReaderSeekByTime(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	produce(t, c, topic, pulsar.ProducerOptions{DisableBatching: true}, payloads("old", 3)...)
	time.Sleep(50 * time.Millisecond)
	mark := time.Now()
	time.Sleep(50 * time.Millisecond)
	fresh := payloads("new", 3)
	produce(t, c, topic, pulsar.ProducerOptions{DisableBatching: true}, fresh...)
	r, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := ctxT(t, time.Minute)
	for range 6 {
		if _, err := r.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.SeekByTime(mark); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Payload()))
	}
	if !slices.Equal(got, fresh) {
		t.Fatalf("after seeking by time the reader read %v, want %v", got, fresh)
	}
}

// TestDeadLetterInitialSubscription: the dead-letter producer's initial
// subscription exists from its creation, so a consumer that comes later
// with that subscription (and the default Latest position) still gets
// what was dead-lettered.
func TestDeadLetterInitialSubscription(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	dlq := topic + "-dlq"
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared,
		NackRedeliveryDelay: 100 * time.Millisecond,
		DLQ:                 &pulsar.DLQPolicy{MaxDeliveries: 1, DeadLetterTopic: dlq, InitialSubscriptionName: "init"}})
	produce(t, c, topic, pulsar.ProducerOptions{DisableBatching: true}, "poison")
	cons.Nack(receive(t, cons, 1, false)[0])
	ctx := ctxT(t, time.Minute)
	// Wait until the dead-letter topic holds it, then subscribe at Latest.
	for {
		var st struct{ MsgInCounter int64 }
		resp, err := http.Get(adminURL + "/admin/v2/persistent/public/default/" + dlq[len("persistent://public/default/"):] + "/stats")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if st.MsgInCounter == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("nothing reached the dead-letter topic")
		}
		time.Sleep(100 * time.Millisecond)
	}
	late, err := c.Subscribe(pulsar.ConsumerOptions{Topic: dlq, SubscriptionName: "init"})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if m := receive(t, late, 1, true)[0]; string(m.Payload()) != "poison" {
		t.Fatalf("the initial subscription got %q", m.Payload())
	}
}
