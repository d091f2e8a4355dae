package chaos

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-mq/strata/client"
)

// The workload: one producer per topic sends messages with explicit,
// increasing sequence ids (deduplication is on), resending the same id until
// it is acknowledged; on every topic a durable subscription and (on plain
// topics) a reader created before the faults consume all the time. The
// recorder keeps every send, acknowledgement and delivery for the checker.

// topicSpec is a topic of the workload.
type topicSpec struct {
	name       string // persistent://chaos/ns/...
	partitions int    // 0: not partitioned
}

type sendRec struct {
	acked   bool
	id      client.MessageID
	ackedAt time.Time
}

type delivery struct {
	seq int64
	id  client.MessageID
}

type recorder struct {
	mu         sync.Mutex
	sent       map[string]map[int64]*sendRec // topic -> seq
	streams    map[string][]delivery         // "kind/topic" -> deliveries in order
	longestAck time.Duration                 // longest wait for an acknowledgement
	lastAck    map[string]time.Time          // topic -> last acknowledgement
	sendErr    map[string]error              // topic -> the last failed send's error
}

func newRecorder() *recorder {
	return &recorder{sent: map[string]map[int64]*sendRec{}, streams: map[string][]delivery{}, lastAck: map[string]time.Time{}, sendErr: map[string]error{}}
}

func payload(topic string, seq int64) []byte {
	return fmt.Appendf(nil, "%s|%d|%s", topic, seq, strings.Repeat("x", 200))
}

// parsePayload returns the topic and sequence a payload names.
func parsePayload(b []byte) (string, int64, error) {
	parts := strings.SplitN(string(b), "|", 3)
	if len(parts) != 3 {
		return "", 0, fmt.Errorf("foreign payload %.40q", b)
	}
	seq, err := strconv.ParseInt(parts[1], 10, 64)
	return parts[0], seq, err
}

func (r *recorder) attempt(topic string, seq int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent[topic] == nil {
		r.sent[topic] = map[int64]*sendRec{}
	}
	if r.sent[topic][seq] == nil {
		r.sent[topic][seq] = &sendRec{}
	}
}

func (r *recorder) acked(topic string, seq int64, id client.MessageID, waited time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent[topic][seq]
	s.acked, s.id, s.ackedAt = true, id, time.Now()
	r.longestAck = max(r.longestAck, waited)
	r.lastAck[topic] = s.ackedAt
}

// delivered records a delivery on stream ("kind/topic").
func (r *recorder) delivered(stream string, m client.Message) {
	topic, seq, err := parsePayload(m.Payload)
	if _, want, _ := strings.Cut(stream, "/"); err != nil || topic != want {
		seq = -1 // counted as never sent
	}
	r.mu.Lock()
	r.streams[stream] = append(r.streams[stream], delivery{seq: seq, id: m.ID})
	r.mu.Unlock()
}

// notAckedSince lists the topics with no acknowledgement after t, with the
// last send error of each.
func (r *recorder) notAckedSince(topics []topicSpec, t time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, tp := range topics {
		if last := r.lastAck[tp.name]; !last.After(t) {
			out = append(out, fmt.Sprintf("%s (last acknowledgement %v before healing; last error: %v)",
				tp.name, t.Sub(last).Round(100*time.Millisecond), r.sendErr[tp.name]))
		}
	}
	return out
}

// workload runs producers, subscriptions and readers.
type workload struct {
	cl     *client.Client // producers'
	ccl    *client.Client // subscriptions' and readers' (another cluster's, with geo-replication)
	topics []topicSpec
	rec    *recorder
	logf   func(string, ...any)

	produceCtx  context.Context
	stopProduce context.CancelFunc
	consumeCtx  context.Context
	stopConsume context.CancelFunc
	producers   sync.WaitGroup
	consumers   sync.WaitGroup
}

// startWorkload creates every subscription and reader first, then starts
// the producers. Producers use the cluster at produceURL, subscriptions
// and readers the one at consumeURL (the same, or the cluster the topics
// are geo-replicated to).
func startWorkload(ctx context.Context, produceURL, consumeURL string, topics []topicSpec, logf func(string, ...any)) (*workload, error) {
	cl, err := client.New(produceURL, client.WithOperationTimeout(30*time.Second))
	if err != nil {
		return nil, err
	}
	ccl, err := client.New(consumeURL, client.WithOperationTimeout(30*time.Second))
	if err != nil {
		cl.Close()
		return nil, err
	}
	w := &workload{cl: cl, ccl: ccl, topics: topics, rec: newRecorder(), logf: logf}
	w.produceCtx, w.stopProduce = context.WithCancel(context.Background())
	w.consumeCtx, w.stopConsume = context.WithCancel(context.Background())
	for _, tp := range topics {
		cons, err := ccl.Subscribe(ctx, tp.name, "live", client.WithInitialPosition(client.Earliest))
		if err != nil {
			return w, fmt.Errorf("subscribe %s: %w", tp.name, err)
		}
		w.consumers.Go(func() { w.consume("live/"+tp.name, cons) })
		if tp.partitions == 0 {
			rd, err := ccl.CreateReader(ctx, tp.name, client.EarliestMessageID)
			if err != nil {
				return w, fmt.Errorf("reader %s: %w", tp.name, err)
			}
			w.consumers.Go(func() { w.read("reader/"+tp.name, rd) })
		}
	}
	for _, tp := range topics {
		p, err := cl.CreateProducer(ctx, tp.name, client.WithProducerName("chaos-"+tp.name[strings.LastIndex(tp.name, "/")+1:]),
			client.WithoutBatching(), client.WithSendTimeout(30*time.Second))
		if err != nil {
			return w, fmt.Errorf("producer %s: %w", tp.name, err)
		}
		w.producers.Go(func() { w.produce(tp.name, p) })
	}
	return w, nil
}

func (w *workload) produce(topic string, p *client.Producer) {
	defer p.Close()
	ctx := w.produceCtx
	for seq := int64(0); ctx.Err() == nil; seq++ {
		w.rec.attempt(topic, seq)
		start := time.Now()
		msg := &client.ProducerMessage{Payload: payload(topic, seq), Key: fmt.Sprint("k", seq%8), SequenceID: &seq}
		for {
			sctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			id, err := p.Send(sctx, msg)
			cancel()
			if err == nil {
				w.rec.acked(topic, seq, id, time.Since(start))
				break
			}
			if ctx.Err() != nil {
				return // stopping: this one stays unacknowledged
			}
			w.rec.mu.Lock()
			w.rec.sendErr[topic] = err
			w.rec.mu.Unlock()
			time.Sleep(100 * time.Millisecond) // the same sequence id again
		}
	}
}

func (w *workload) consume(stream string, cons *client.Consumer) {
	defer cons.Close()
	for w.consumeCtx.Err() == nil {
		m, err := cons.Receive(w.consumeCtx)
		if err != nil {
			if errors.Is(err, client.ErrUndecodable) {
				w.rec.delivered(stream, m)
				cons.Ack(m)
				continue
			}
			if w.consumeCtx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		w.rec.delivered(stream, m)
		cons.Ack(m)
	}
}

func (w *workload) read(stream string, rd *client.Reader) {
	defer rd.Close()
	for w.consumeCtx.Err() == nil {
		m, err := rd.Next(w.consumeCtx)
		if err != nil {
			if w.consumeCtx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		w.rec.delivered(stream, m)
	}
}

// stopProducers stops sending and waits for the sends in flight.
func (w *workload) stopProducers() {
	w.stopProduce()
	w.producers.Wait()
}

// caughtUp reports whether every stream of the workload has delivered every
// acknowledged message of its topic.
func (w *workload) caughtUp() bool {
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	for _, tp := range w.topics {
		kinds := []string{"live"}
		if tp.partitions == 0 {
			kinds = append(kinds, "reader")
		}
		for _, k := range kinds {
			got := map[int64]bool{}
			for _, d := range w.rec.streams[k+"/"+tp.name] {
				got[d.seq] = true
			}
			for seq, s := range w.rec.sent[tp.name] {
				if s.acked && !got[seq] {
					return false
				}
			}
		}
	}
	return true
}

// finalRead reads every topic from the start with a new subscription, until
// every acknowledged message came or nothing more comes for idle.
func (w *workload) finalRead(ctx context.Context, idle time.Duration) error {
	for _, tp := range w.topics {
		cons, err := w.ccl.Subscribe(ctx, tp.name, "final", client.WithInitialPosition(client.Earliest))
		if err != nil {
			return fmt.Errorf("final subscription on %s: %w", tp.name, err)
		}
		stream := "final/" + tp.name
		want := 0
		w.rec.mu.Lock()
		for _, s := range w.rec.sent[tp.name] {
			if s.acked {
				want++
			}
		}
		w.rec.mu.Unlock()
		got := map[int64]bool{}
		for len(got) < want {
			rctx, cancel := context.WithTimeout(ctx, idle)
			m, err := cons.Receive(rctx)
			cancel()
			if err != nil && !errors.Is(err, client.ErrUndecodable) {
				break // nothing more: the checker counts what is missing
			}
			w.rec.delivered(stream, m)
			cons.Ack(m)
			if _, seq, perr := parsePayload(m.Payload); perr == nil {
				w.rec.mu.Lock()
				if s := w.rec.sent[tp.name][seq]; s != nil && s.acked {
					got[seq] = true
				}
				w.rec.mu.Unlock()
			}
		}
		// Anything beyond what was acknowledged (a duplicate, a phantom)
		// shows within a short wait.
		for {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			m, err := cons.Receive(rctx)
			cancel()
			if err != nil {
				break
			}
			w.rec.delivered(stream, m)
			cons.Ack(m)
		}
		cons.Close()
	}
	return nil
}

func (w *workload) close() {
	w.stopProduce()
	w.producers.Wait()
	w.stopConsume()
	w.consumers.Wait()
	w.cl.Close()
	w.ccl.Close()
}
