package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
)

func msg(payload string) *client.ProducerMessage {
	return &client.ProducerMessage{Payload: []byte(payload)}
}

// collector gathers SendAsync outcomes in callback order.
type collector struct {
	mu  sync.Mutex
	got []sendResult
	ch  chan sendResult
}

func newCollector() *collector { return &collector{ch: make(chan sendResult, 1000)} }

func (c *collector) cb(id client.MessageID, m *client.ProducerMessage, err error) {
	r := sendResult{payload: string(m.Payload), id: id, err: err}
	c.mu.Lock()
	c.got = append(c.got, r)
	c.mu.Unlock()
	c.ch <- r
}

func (c *collector) results() []sendResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// wait returns the next n outcomes, failing the test after d.
func (c *collector) wait(t *testing.T, n int, d time.Duration) []sendResult {
	t.Helper()
	timeout := time.After(d)
	var out []sendResult
	for len(out) < n {
		select {
		case r := <-c.ch:
			out = append(out, r)
		case <-timeout:
			t.Fatalf("%d of %d send callbacks after %v: %+v", len(out), n, d, out)
		}
	}
	return out
}

// checkSent asserts that results are successes for payloads, in order.
func checkSent(t *testing.T, results []sendResult, payloads ...string) {
	t.Helper()
	if len(results) != len(payloads) {
		t.Fatalf("%d results %+v, want %q", len(results), results, payloads)
	}
	for i, r := range results {
		if r.err != nil || r.payload != payloads[i] {
			t.Fatalf("result %d: %q err %v, want %q sent", i, r.payload, r.err, payloads[i])
		}
	}
}

// flushAndCheck flushes p, then checks that exactly payloads were reported
// sent through col, in order, and that cons receives exactly them, in order.
func flushAndCheck(t *testing.T, ctx context.Context, p *client.Producer, col *collector, cons *client.Consumer, payloads ...string) {
	t.Helper()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkSent(t, col.results(), payloads...)
	if got := receivePayloads(t, cons, len(payloads)); !slices.Equal(got, payloads) {
		t.Fatalf("consumer got %q, want %q", got, payloads)
	}
}

// TestPendingQueueFullFails: with WithBlockIfQueueFull(false) a send
// beyond WithMaxPendingMessages fails at once with ErrProducerQueueFull and
// is not published; once the pending messages complete there is room again.
func TestPendingQueueFullFails(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "queue-full")
	cons := subscribe(t, cl, topic, "s")
	// The batch delay keeps the first messages pending until Flush.
	p := newProducer(t, cl, topic, client.WithMaxPendingMessages(2), client.WithBlockIfQueueFull(false),
		client.WithBatching(100, 1<<20, time.Hour))
	ctx := ctxT(t, time.Minute)
	col := newCollector()
	p.SendAsync(ctx, msg("a"), col.cb)
	p.SendAsync(ctx, msg("b"), col.cb)

	var fullErr error
	called := false
	p.SendAsync(ctx, msg("c"), func(_ client.MessageID, _ *client.ProducerMessage, err error) { called, fullErr = true, err })
	if !called || !errors.Is(fullErr, client.ErrProducerQueueFull) {
		t.Fatalf("third SendAsync with 2 pending: called=%v err=%v, want ErrProducerQueueFull at once", called, fullErr)
	}
	if _, err := p.Send(ctx, msg("d")); !errors.Is(err, client.ErrProducerQueueFull) {
		t.Fatalf("Send with 2 pending: %v, want ErrProducerQueueFull", err)
	}
	if r := col.results(); len(r) != 0 {
		t.Fatalf("a and b completed before Flush: %+v", r)
	}

	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkSent(t, col.results(), "a", "b")
	p.SendAsync(ctx, msg("e"), col.cb)
	flushAndCheck(t, ctx, p, col, cons, "a", "b", "e") // c and d were refused
}

// TestPendingQueueFullBlocks: with WithBlockIfQueueFull(true) a send
// beyond WithMaxPendingMessages waits for room: it gives up with its
// context, or proceeds once earlier messages complete.
func TestPendingQueueFullBlocks(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "queue-block")
	cons := subscribe(t, cl, topic, "s")
	p := newProducer(t, cl, topic, client.WithMaxPendingMessages(2), client.WithBlockIfQueueFull(true),
		client.WithBatching(100, 1<<20, time.Hour))
	ctx := ctxT(t, time.Minute)
	col := newCollector()
	p.SendAsync(ctx, msg("a"), col.cb)
	p.SendAsync(ctx, msg("b"), col.cb)

	// A blocked Send ends with its context, unsent.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	_, err := p.Send(short, msg("x"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("Send with a full queue: %v after %v, want it blocked until its 300ms deadline", err, time.Since(start))
	}

	// A blocked SendAsync returns once a and b complete.
	returned := make(chan struct{})
	go func() {
		p.SendAsync(ctx, msg("c"), col.cb)
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("SendAsync returned while 2 messages were pending")
	case <-time.After(300 * time.Millisecond):
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		t.Fatal("SendAsync still blocked after the pending messages completed")
	}
	flushAndCheck(t, ctx, p, col, cons, "a", "b", "c") // x gave up
}

// TestSendWithEndedContextFails: a send whose context has ended fails
// every time, even with room in the pending queue, and nothing of it is
// published. (Picking at random between a free slot and the ended context
// let some of a pipeline's later sends out after earlier ones failed: the
// geo-replicator's remote then stored the later entries and dropped the
// earlier ones as already seen when they were resent.)
func TestSendWithEndedContextFails(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "ended-ctx")
	cons := subscribe(t, cl, topic, "s")
	ctx := ctxT(t, time.Minute)
	for _, block := range []bool{true, false} {
		p := newProducer(t, cl, topic, client.WithMaxPendingMessages(1000), client.WithBlockIfQueueFull(block))
		ended, cancel := context.WithCancel(ctx)
		cancel()
		for i := range 200 {
			var err error
			called := false
			p.SendAsync(ended, msg(fmt.Sprintf("x%d", i)), func(_ client.MessageID, _ *client.ProducerMessage, e error) { called, err = true, e })
			if !called || !errors.Is(err, context.Canceled) {
				t.Fatalf("block=%v send %d under an ended context: called=%v err=%v, want context.Canceled at once", block, i, called, err)
			}
		}
	}
	p := newProducer(t, cl, topic)
	col := newCollector()
	p.SendAsync(ctx, msg("after"), col.cb)
	flushAndCheck(t, ctx, p, col, cons, "after") // none of the x sends was published
}

// TestSendTimeout: with the only broker down, sends fail with
// ErrSendTimeout after the send timeout; none is reported sent and none is
// published once the broker is back.
func TestSendTimeout(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "send-timeout")
	p := newProducer(t, cl, topic, client.WithSendTimeout(time.Second), client.WithoutBatching())
	send(t, p, "before")

	c.StopBroker(0)
	col := newCollector()
	ctx := ctxT(t, time.Minute)
	start := time.Now()
	const n = 5
	for i := 0; i < n; i++ {
		p.SendAsync(ctx, msg(fmt.Sprintf("lost-%d", i)), col.cb)
	}
	got := col.wait(t, n, 20*time.Second)
	elapsed := time.Since(start)
	if elapsed < time.Second {
		t.Fatalf("sends failed after %v, before the 1s send timeout", elapsed)
	}
	for i, r := range got {
		if want := fmt.Sprintf("lost-%d", i); r.payload != want || !errors.Is(r.err, client.ErrSendTimeout) {
			t.Fatalf("callback %d: %q err %v, want %q failed with ErrSendTimeout", i, r.payload, r.err, want)
		}
	}

	if err := c.StartBroker(0); err != nil {
		t.Fatal(err)
	}
	send(t, p, "after")
	cons := subscribe(t, cl, topic, "s")
	if got := receivePayloads(t, cons, 2); !slices.Equal(got, []string{"before", "after"}) {
		t.Fatalf("topic holds %q, want before, after (timed-out sends are not published)", got)
	}
	if r := col.results(); len(r) != n {
		t.Fatalf("%d callbacks, want %d: %+v", len(r), n, r)
	}
}

// TestSequenceIDs: LastSequenceID follows the acknowledged sends; a new
// producer with the same name on a deduplicated namespace resumes after the
// broker's last sequence id, and a resent old sequence id is dropped
// without disturbing the producer's own sequence.
func TestSequenceIDs(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1,
		BrokerOptions: func(_ int, o *broker.Options) { o.DeduplicationEnabled = true }})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "seq")
	cons := subscribe(t, cl, topic, "s")
	p, err := cl.CreateProducer(ctxT(t, time.Minute), topic, client.WithProducerName("seq-producer"))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.LastSequenceID(); got != -1 {
		t.Fatalf("LastSequenceID of a new producer: %d, want -1", got)
	}
	for i := 0; i < 5; i++ {
		send(t, p, fmt.Sprint(i))
		if got := p.LastSequenceID(); got != int64(i) {
			t.Fatalf("LastSequenceID after send %d: %d", i, got)
		}
	}
	col := newCollector()
	for i := 5; i < 10; i++ {
		p.SendAsync(ctxT(t, time.Minute), msg(fmt.Sprint(i)), col.cb)
	}
	if err := p.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	checkSent(t, col.results(), "5", "6", "7", "8", "9")
	if got := p.LastSequenceID(); got != 9 {
		t.Fatalf("LastSequenceID after 10 sends: %d, want 9", got)
	}
	p.Close()

	p2 := newProducer(t, cl, topic, client.WithProducerName("seq-producer"))
	if got := p2.LastSequenceID(); got != 9 {
		t.Fatalf("LastSequenceID of the resumed producer: %d, want the broker's 9", got)
	}
	send(t, p2, "10")
	if got := p2.LastSequenceID(); got != 10 {
		t.Fatalf("LastSequenceID after the resumed producer's first send: %d, want 10", got)
	}
	// An explicit old sequence id is a duplicate: acknowledged, not stored,
	// and the producer's next message still gets 11.
	old := int64(3)
	if _, err := p2.Send(ctxT(t, time.Minute), &client.ProducerMessage{Payload: []byte("dup"), SequenceID: &old}); err != nil {
		t.Fatalf("send of a duplicate: %v", err)
	}
	send(t, p2, "11")
	if got := p2.LastSequenceID(); got != 11 {
		t.Fatalf("LastSequenceID after a duplicate and another send: %d, want 11", got)
	}
	for i := 0; i < 12; i++ {
		m := receive(t, cons, 30*time.Second)
		if string(m.Payload) != fmt.Sprint(i) || m.SequenceID != int64(i) || m.ProducerName != "seq-producer" {
			t.Fatalf("message %d: %q sequence %d producer %q", i, m.Payload, m.SequenceID, m.ProducerName)
		}
		cons.Ack(m)
	}
}

// TestFlushWaitsForCallbacks: Flush returns after the callbacks of every
// message it waited for have run, so their effects are visible.
func TestFlushWaitsForCallbacks(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	p := newProducer(t, cl, uniqueTopic(t, "flush"))
	const n = 10
	var done atomic.Int32
	ctx := ctxT(t, time.Minute)
	for i := 0; i < n; i++ {
		p.SendAsync(ctx, msg(fmt.Sprint(i)), func(_ client.MessageID, _ *client.ProducerMessage, err error) {
			if err != nil {
				t.Errorf("send %d: %v", i, err)
			}
			if i == n-1 {
				time.Sleep(200 * time.Millisecond) // a slow callback
			}
			done.Add(1)
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := done.Load(); got != n {
		t.Fatalf("Flush returned with %d of %d callbacks done", got, n)
	}
}

// TestCloseRemovesProducerFromBroker: when Close returns, the broker no
// longer counts the producer on the topic (stats list no publisher), so an
// admin operation that needs the topic idle (deleting it) can follow at once.
func TestCloseRemovesProducerFromBroker(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "close-producer")
	statsURL := "http://" + c.Broker(0).HTTPAddr + "/admin/v2/persistent/public/default/" + strings.TrimPrefix(topic, "persistent://public/default/") + "/stats"
	for i := range 20 {
		p, err := cl.CreateProducer(ctxT(t, time.Minute), topic)
		if err != nil {
			t.Fatal(err)
		}
		send(t, p, fmt.Sprintf("m%d", i))
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(statsURL)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Publishers []json.RawMessage `json:"publishers"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Publishers) != 0 {
			t.Fatalf("round %d: after Close the topic still lists %d publisher(s)", i, len(st.Publishers))
		}
	}
}

// TestFlushIgnoresLaterMessages: Flush waits for the messages sent before
// it, not for those other goroutines send meanwhile: here they stay in a
// batch with an hour's delay, and Flush still returns once "first" is
// acknowledged.
func TestFlushIgnoresLaterMessages(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "flush-later")
	p := newProducer(t, cl, topic, client.WithBatching(100000, 64<<20, time.Hour))
	ctx := ctxT(t, time.Minute)
	col := newCollector()
	p.SendAsync(ctx, msg("first"), col.cb)
	stop := make(chan struct{})
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			p.SendAsync(ctx, msg(fmt.Sprintf("later-%d", i)), col.cb)
		}
	}()
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err := p.Flush(fctx)
	cancel()
	close(stop)
	<-sending
	if err != nil {
		t.Fatalf("Flush with later messages batched: %v", err)
	}
	if got := col.results(); len(got) == 0 || got[0].payload != "first" || got[0].err != nil {
		t.Fatalf("after Flush the first result is %+v, want first acknowledged", got)
	}
}
