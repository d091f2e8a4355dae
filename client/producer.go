package client

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
)

// Producer publishes to a topic; on a partitioned topic it routes each
// message to a partition (by key hash, else round-robin).
type Producer struct {
	topic string
	opts  producerOptions
	parts []*partitionProducer
	rr    atomic.Uint64
}

// CreateProducer creates a producer and waits until it is connected.
func (c *Client) CreateProducer(ctx context.Context, topic string, opts ...ProducerOption) (*Producer, error) {
	o := defaultProducerOptions()
	for _, f := range opts {
		f(&o)
	}
	n, err := c.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	p := &Producer{topic: topic, opts: o}
	names := []string{topic}
	if n > 0 {
		names = partitionNames(topic, n)
	}
	for i, name := range names {
		part := int32(-1)
		if n > 0 {
			part = int32(i)
		}
		pp := newPartitionProducer(c, name, part, o)
		if err := pp.waitReady(ctx); err != nil {
			p.Close()
			pp.close()
			return nil, err
		}
		p.parts = append(p.parts, pp)
	}
	return p, nil
}

func partitionNames(topic string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = topic + "-partition-" + strconv.Itoa(i)
	}
	return out
}

// Topic returns the producer's topic.
func (p *Producer) Topic() string { return p.topic }

// Name returns the producer name (of the first partition).
func (p *Producer) Name() string { return p.parts[0].producerName() }

// IsConnected reports whether the producer is connected to the broker of
// its topic (of every partition), rather than reconnecting.
func (p *Producer) IsConnected() bool {
	for _, pp := range p.parts {
		pp.mu.Lock()
		up := pp.mu.conn != nil
		pp.mu.Unlock()
		if !up {
			return false
		}
	}
	return true
}

// LastSequenceID returns the last sequence id the broker acknowledged.
func (p *Producer) LastSequenceID() int64 {
	var last int64 = -1
	for _, pp := range p.parts {
		last = max(last, pp.lastAcked.Load())
	}
	return last
}

func (p *Producer) route(msg *ProducerMessage) *partitionProducer {
	n := len(p.parts)
	if n == 1 {
		return p.parts[0]
	}
	if p.opts.router != nil {
		return p.parts[p.opts.router(msg, n)%n]
	}
	if msg.Key != "" {
		return p.parts[int(javaStringHash(msg.Key)&0x7fffffff)%n]
	}
	return p.parts[int(p.rr.Add(1)%uint64(n))]
}

// javaStringHash is Java's String.hashCode, Pulsar's default key hash.
func javaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		h = 31*h + int32(r)
	}
	return h
}

// Send publishes a message and waits for its acknowledgement.
func (p *Producer) Send(ctx context.Context, msg *ProducerMessage) (MessageID, error) {
	type res struct {
		id  MessageID
		err error
	}
	ch := make(chan res, 1)
	p.SendAsync(ctx, msg, func(id MessageID, _ *ProducerMessage, err error) { ch <- res{id, err} })
	select {
	case r := <-ch:
		return r.id, r.err
	case <-ctx.Done():
		return MessageID{}, ctx.Err()
	}
}

// SendAsync publishes a message; cb runs once with its id or an error.
// Callbacks of one partition run in send order. It blocks while the
// pending queue is full (see WithBlockIfQueueFull).
func (p *Producer) SendAsync(ctx context.Context, msg *ProducerMessage, cb func(MessageID, *ProducerMessage, error)) {
	p.route(msg).sendAsync(ctx, msg, cb)
}

// SendEntryAsync publishes an entry already encoded in the layout brokers
// store ([0x0e01][crc32c][metadata size][MessageMetadata][payload], a batch
// included), unchanged: for replicators and proxies that pass on what
// another broker stored. The producer must be on one topic or partition;
// cb runs once, in send order with the producer's other sends, with the
// entry's id (BatchIndex -1) or an error. Such entries never skip one
// another: when the broker refuses one, the producer ends and every entry
// after it fails too (none is sent again on a new connection), so the
// caller resends from the failed one on a new producer.
func (p *Producer) SendEntryAsync(ctx context.Context, entry []byte, cb func(MessageID, error)) {
	if len(p.parts) != 1 {
		cb(MessageID{}, fmt.Errorf("strata: SendEntryAsync on %s: a partitioned producer cannot choose a partition for an encoded entry; produce to a partition", p.topic))
		return
	}
	p.parts[0].sendEntryAsync(ctx, entry, cb)
}

// Flush sends any batched messages and waits until every pending one is
// acknowledged (or failed) and its callback has returned. Do not call it
// (or Close) from a send callback.
func (p *Producer) Flush(ctx context.Context) error {
	for _, pp := range p.parts {
		if err := pp.flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close flushes, waits (bounded by the send timeout) for pending messages,
// and disconnects. Messages still pending then fail with ErrClosed.
func (p *Producer) Close() error {
	for _, pp := range p.parts {
		ctx, cancel := context.WithTimeout(context.Background(), max(pp.opts.sendTimeout, time.Second))
		pp.flush(ctx)
		cancel()
		pp.close()
	}
	return nil
}

// defaultMaxMessageSize is the message size limit assumed when the broker
// does not announce its own (Pulsar's default).
const defaultMaxMessageSize = 5 << 20

// partitionProducer is a producer session on one topic (or partition).
type partitionProducer struct {
	c         *Client
	topic     string
	partition int32
	opts      producerOptions
	sem       chan struct{}
	ready     chan struct{} // closed once connected the first time (or failed)
	done      chan struct{}
	exited    chan struct{} // closed when run returns
	lastAcked atomic.Int64
	maxSize   atomic.Int64 // largest payload the broker accepts

	mu struct {
		sync.Mutex
		name string
		// schemaVersion is the version of the producer's schema the
		// broker named; every entry carries it.
		schemaVersion []byte
		seq           int64
		batch         []*pendingMsg
		batchBytes    int
		batchKey      string
		timer         *time.Timer
		pending       []*pendingEntry
		conn          *produceConn // the connected stream, nil while reconnecting
		closed        bool
		closing       bool          // Close is ending the stream: no reconnect
		err           error         // fatal
		drained       []flushWaiter // flushes waiting for their entries' callbacks
		callbacks     int           // goroutines running callbacks of popped entries
	}
}

// produceConn is one produce stream and the entries waiting to be written
// to it. Its own goroutine writes them in order, so no stream write ever
// happens under the producer's mutex, which the receive loop needs for
// every receipt (a write blocked on flow control while the broker ends the
// stream would otherwise stop both).
type produceConn struct {
	stream clientpb.Broker_ProduceClient
	ctx    context.Context
	cancel context.CancelFunc
	queue  []*pendingEntry // guarded by the producer's mu
	ending bool            // guarded by the producer's mu: end the stream once queue is sent
	wake   chan struct{}
}

func (pc *produceConn) signal() {
	select {
	case pc.wake <- struct{}{}:
	default:
	}
}

// sendLoop writes the queued entries until the stream ends; a failed write
// ends the stream, and the receive loop reconnects and resends.
func (p *partitionProducer) sendLoop(pc *produceConn) {
	for {
		select {
		case <-pc.wake:
		case <-pc.ctx.Done():
			return
		}
		p.mu.Lock()
		q, ending := pc.queue, pc.ending
		pc.queue = nil
		p.mu.Unlock()
		for _, pe := range q {
			if err := pc.stream.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Send{Send: &clientpb.Send{
				SequenceId: pe.seqFirst, HighestSequenceId: pe.seqLast, NumMessages: pe.messages(), Entry: pe.entry}}}); err != nil {
				pc.cancel()
				return
			}
		}
		if ending {
			pc.stream.CloseSend() // the broker drops the producer and ends the stream
			return
		}
	}
}

type pendingMsg struct {
	msg *ProducerMessage
	cb  func(MessageID, *ProducerMessage, error)
	seq int64
}

type pendingEntry struct {
	seqFirst, seqLast int64
	entry             []byte
	msgs              []*pendingMsg
	batch             bool
	numMessages       int32 // of an encoded entry sent as is; else len(msgs)
	sentAt            time.Time
}

// messages returns how many messages the entry holds.
func (pe *pendingEntry) messages() int32 {
	if pe.numMessages > 0 {
		return pe.numMessages
	}
	return int32(len(pe.msgs))
}

func newPartitionProducer(c *Client, topic string, partition int32, o producerOptions) *partitionProducer {
	p := &partitionProducer{c: c, topic: topic, partition: partition, opts: o,
		sem: make(chan struct{}, max(o.maxPending, 1)), ready: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{})}
	p.mu.name = o.name
	p.lastAcked.Store(-1)
	p.maxSize.Store(defaultMaxMessageSize)
	go p.run()
	if o.sendTimeout > 0 {
		go p.timeouts()
	}
	return p
}

func (p *partitionProducer) producerName() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.name
}

func (p *partitionProducer) waitReady(ctx context.Context) error {
	select {
	case <-p.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.err
}

// run keeps the producer connected: lookup, open, resend what is pending,
// read receipts; reconnect with backoff on retryable failures.
func (p *partitionProducer) run() {
	defer close(p.exited)
	b := newBackoff()
	first := true
	var deadline time.Time
	for {
		p.mu.Lock()
		if p.mu.closed || p.mu.closing {
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		stream, err := p.connect()
		if err == nil {
			b.reset()
			deadline = time.Time{}
			if first {
				first = false
				close(p.ready)
			}
			err = p.receive(stream)
		}
		e, retryable := brokerError(err)
		p.mu.Lock()
		if pc := p.mu.conn; pc != nil {
			pc.cancel() // stops its send loop
			p.mu.conn = nil
		}
		closed := p.mu.closed || p.mu.closing
		p.mu.Unlock()
		if closed {
			return
		}
		if first && deadline.IsZero() {
			deadline = time.Now().Add(p.c.opts.operationTimeout)
		}
		if !retryable || (first && time.Now().After(deadline)) {
			p.fail(fmt.Errorf("producer %s: %w", p.topic, e))
			if first {
				close(p.ready)
			}
			return
		}
		p.c.log.Debug("producer reconnecting", "topic", p.topic, "err", e)
		select {
		case <-time.After(b.next()):
		case <-p.done:
			return
		}
	}
}

// connect opens a produce stream on the topic's owner and resends every
// pending entry, in order.
func (p *partitionProducer) connect() (clientpb.Broker_ProduceClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.c.opts.operationTimeout)
	addr, err := p.c.lookup(ctx, p.topic)
	cancel()
	if err != nil {
		return nil, err
	}
	cli, err := p.c.conn(addr)
	if err != nil {
		return nil, err
	}
	sctx, scancel := context.WithCancel(context.Background())
	stream, err := cli.Produce(sctx)
	if err != nil {
		scancel()
		return nil, err
	}
	p.mu.Lock()
	name := p.mu.name
	p.mu.Unlock()
	open := &clientpb.ProducerOpen{Topic: p.topic, ProducerName: name, Schema: p.opts.schema.pb()}
	if p.opts.exclusive {
		open.AccessMode = clientpb.ProducerAccessMode_ACCESS_EXCLUSIVE
	}
	if err := stream.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Open{Open: open}}); err != nil {
		scancel()
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		scancel()
		return nil, err
	}
	opened := resp.GetOpened()
	if opened == nil {
		scancel()
		return nil, fmt.Errorf("strata: unexpected first reply %T", resp.Cmd)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		scancel()
		return nil, ErrClosed
	}
	if p.mu.name == "" {
		p.mu.name = opened.ProducerName
	}
	p.mu.schemaVersion = opened.SchemaVersion
	if opened.MaxMessageSize > 0 {
		p.maxSize.Store(opened.MaxMessageSize)
	} else {
		p.maxSize.Store(defaultMaxMessageSize) // a broker that does not say
	}
	// With deduplication the broker knows the last sequence id it stored
	// for this producer name: continue after it.
	p.mu.seq = max(p.mu.seq, opened.LastSequenceId+1)
	storeMax(&p.lastAcked, opened.LastSequenceId)
	// Every pending entry is resent first, in order.
	pc := &produceConn{stream: stream, ctx: sctx, cancel: scancel, wake: make(chan struct{}, 1),
		queue: append([]*pendingEntry(nil), p.mu.pending...)}
	p.mu.conn = pc
	go p.sendLoop(pc)
	pc.signal()
	return stream, nil
}

// receive handles receipts and send errors until the stream fails.
func (p *partitionProducer) receive(stream clientpb.Broker_ProduceClient) error {
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		switch cmd := resp.Cmd.(type) {
		case *clientpb.ProduceResponse_Receipt:
			if err := p.onReceipt(cmd.Receipt); err != nil {
				return err
			}
		case *clientpb.ProduceResponse_SendError:
			p.onSendError(cmd.SendError)
		}
	}
}

func (p *partitionProducer) onReceipt(r *clientpb.Receipt) error {
	p.mu.Lock()
	if len(p.mu.pending) == 0 || r.SequenceId < p.mu.pending[0].seqFirst {
		p.mu.Unlock()
		return nil // duplicate of something already completed
	}
	head := p.mu.pending[0]
	if r.SequenceId != head.seqFirst {
		p.mu.Unlock()
		return fmt.Errorf("strata: receipt for sequence %d while %d is pending: reconnecting", r.SequenceId, head.seqFirst)
	}
	p.popLocked()
	p.mu.callbacks++
	p.mu.Unlock()
	defer p.callbacksDone()
	storeMax(&p.lastAcked, head.seqLast)
	for i, m := range head.msgs {
		id := messageIDFromPB(r.MessageId)
		id.Partition = p.partition
		if head.batch {
			id.BatchIndex, id.BatchSize = int32(i), int32(len(head.msgs))
		} else {
			id.BatchIndex, id.BatchSize = -1, 0
		}
		<-p.sem
		m.cb(id, m.msg, nil)
	}
	return nil
}

func (p *partitionProducer) onSendError(e *clientpb.SendError) {
	p.mu.Lock()
	if len(p.mu.pending) == 0 || p.mu.pending[0].seqFirst != e.SequenceId {
		p.mu.Unlock()
		return
	}
	head := p.mu.pending[0]
	err := &ServerError{Code: e.Error, Message: e.Message}
	if head.numMessages > 0 {
		// An encoded entry: nothing after it may be stored before it.
		p.mu.Unlock()
		p.fail(fmt.Errorf("producer %s: %w", p.topic, err))
		return
	}
	p.popLocked()
	p.mu.callbacks++
	p.mu.Unlock()
	defer p.callbacksDone()
	p.failEntry(head, err)
}

// popLocked removes the head of the pending entries; the caller counts
// itself in p.mu.callbacks while it runs their callbacks.
func (p *partitionProducer) popLocked() {
	p.mu.pending[0] = nil
	p.mu.pending = p.mu.pending[1:]
}

// callbacksDone is called by a goroutine that counted itself in
// p.mu.callbacks once it has run the callbacks.
func (p *partitionProducer) callbacksDone() {
	p.mu.Lock()
	p.mu.callbacks--
	p.checkDrainedLocked()
	p.mu.Unlock()
}

// flushWaiter is a Flush waiting until last (the newest entry when it was
// called) has left the pending entries and its callbacks have returned.
// Messages sent after the Flush do not hold it up.
type flushWaiter struct {
	last *pendingEntry
	ch   chan struct{}
}

// checkDrainedLocked releases the flushes whose entries have completed,
// callbacks included.
func (p *partitionProducer) checkDrainedLocked() {
	if p.mu.callbacks != 0 {
		return
	}
	kept := p.mu.drained[:0]
	for _, w := range p.mu.drained {
		if slices.Contains(p.mu.pending, w.last) {
			kept = append(kept, w)
		} else {
			close(w.ch)
		}
	}
	clear(p.mu.drained[len(kept):])
	p.mu.drained = kept
}

// storeMax raises v to n.
func storeMax(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if n <= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}

func (p *partitionProducer) failEntry(pe *pendingEntry, err error) {
	for _, m := range pe.msgs {
		<-p.sem
		m.cb(MessageID{}, m.msg, err)
	}
}

// fail puts the producer in a terminal state.
func (p *partitionProducer) fail(err error) {
	p.mu.Lock()
	if p.mu.err == nil {
		p.mu.err = err
	}
	p.mu.closed = true
	pending, batch := p.mu.pending, p.mu.batch
	p.mu.pending, p.mu.batch = nil, nil
	p.mu.callbacks++
	if pc := p.mu.conn; pc != nil {
		pc.cancel()
	}
	p.mu.Unlock()
	defer p.callbacksDone()
	for _, pe := range pending {
		p.failEntry(pe, err)
	}
	p.failEntry(&pendingEntry{msgs: batch}, err)
}

// admit takes a slot of the pending queue for a send and locks p.mu, or
// returns why the send fails (p.mu not held then): the queue is full, or
// the producer is closed.
func (p *partitionProducer) admit(ctx context.Context) error {
	if err := p.acquire(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	if !p.mu.closed {
		return nil
	}
	err := p.mu.err
	p.mu.Unlock()
	<-p.sem
	if err == nil {
		err = ErrClosed
	}
	return err
}

// acquire takes a slot of the pending queue, waiting for one when the
// producer blocks while the queue is full.
//
// A send whose context has ended fails even when a slot is free (select
// alone would pick at random): a caller that pipelines sends under one
// context, as the geo-replicator does, must never see a later send go out
// after an earlier one failed for its context, or the remote would store
// the later one and drop the earlier as already seen when it is resent.
func (p *partitionProducer) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !p.opts.blockIfQueueFull {
		select {
		case p.sem <- struct{}{}:
			return nil
		default:
			return ErrProducerQueueFull
		}
	}
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return ErrClosed
	}
}

func (p *partitionProducer) sendAsync(ctx context.Context, msg *ProducerMessage, cb func(MessageID, *ProducerMessage, error)) {
	if cb == nil {
		cb = func(MessageID, *ProducerMessage, error) {}
	}
	if limit := p.maxSize.Load(); int64(len(msg.Payload)) > limit {
		cb(MessageID{}, msg, fmt.Errorf("%w: %d bytes (the broker's maximum is %d)", ErrMessageTooLarge, len(msg.Payload), limit))
		return
	}
	if err := p.admit(ctx); err != nil {
		cb(MessageID{}, msg, err)
		return
	}
	seq := p.mu.seq
	if msg.SequenceID != nil {
		seq = *msg.SequenceID
	}
	p.mu.seq = max(p.mu.seq, seq+1) // an explicit old id does not move the sequence back
	pm := &pendingMsg{msg: msg, cb: cb, seq: seq}
	key := msg.OrderingKey
	if key == "" {
		key = msg.Key
	}
	delayed := !msg.DeliverAt.IsZero() || msg.DeliverAfter > 0
	// A message as large as a whole batch goes alone and unbatched: the
	// batch framing would push a message at the size limit over it.
	if !p.opts.batching || delayed || len(msg.Payload) >= p.opts.batchMaxBytes || msg.replicateTo() != nil {
		p.flushBatchLocked()
		p.enqueueLocked([]*pendingMsg{pm}, false)
		p.mu.Unlock()
		return
	}
	// A batch holds one key, so Key_Shared routing stays per key.
	if len(p.mu.batch) > 0 && key != p.mu.batchKey {
		p.flushBatchLocked()
	}
	p.mu.batch = append(p.mu.batch, pm)
	p.mu.batchKey = key
	p.mu.batchBytes += len(msg.Payload)
	if len(p.mu.batch) >= p.opts.batchMaxMessages || p.mu.batchBytes >= p.opts.batchMaxBytes {
		p.flushBatchLocked()
	} else if len(p.mu.batch) == 1 {
		p.mu.timer = time.AfterFunc(p.opts.batchMaxDelay, func() {
			p.mu.Lock()
			p.flushBatchLocked()
			p.mu.Unlock()
		})
	}
	p.mu.Unlock()
}

func (p *partitionProducer) sendEntryAsync(ctx context.Context, entry []byte, cb func(MessageID, error)) {
	md, payload, err := pulsarpb.DecodeEntry(entry)
	if err != nil {
		cb(MessageID{}, fmt.Errorf("strata: not an encoded entry: %w", err))
		return
	}
	if limit := p.maxSize.Load(); int64(len(payload)) > limit {
		cb(MessageID{}, fmt.Errorf("%w: %d bytes (the broker's maximum is %d)", ErrMessageTooLarge, len(payload), limit))
		return
	}
	if err := p.admit(ctx); err != nil {
		cb(MessageID{}, err)
		return
	}
	p.flushBatchLocked() // after what was sent before it
	seq := p.mu.seq
	p.mu.seq++
	n := md.NumMessages()
	pm := &pendingMsg{seq: seq, cb: func(id MessageID, _ *ProducerMessage, err error) {
		if err == nil {
			id.BatchIndex, id.BatchSize = -1, int32(n)
		}
		cb(id, err)
	}}
	pe := &pendingEntry{seqFirst: seq, seqLast: seq, entry: entry, msgs: []*pendingMsg{pm}, numMessages: int32(n), sentAt: time.Now()}
	p.mu.pending = append(p.mu.pending, pe)
	if pc := p.mu.conn; pc != nil {
		pc.queue = append(pc.queue, pe)
		pc.signal()
	}
	p.mu.Unlock()
}

func (p *partitionProducer) flushBatchLocked() {
	if p.mu.timer != nil {
		p.mu.timer.Stop()
		p.mu.timer = nil
	}
	if len(p.mu.batch) == 0 {
		return
	}
	msgs := p.mu.batch
	p.mu.batch, p.mu.batchBytes = nil, 0
	p.enqueueLocked(msgs, true)
}

// enqueueLocked builds an entry from msgs and sends it if connected.
func (p *partitionProducer) enqueueLocked(msgs []*pendingMsg, batch bool) {
	entry, err := buildEntry(p.mu.name, p.mu.schemaVersion, msgs, batch)
	if err != nil {
		p.mu.Unlock()
		p.failEntry(&pendingEntry{msgs: msgs}, err)
		p.mu.Lock()
		return
	}
	pe := &pendingEntry{seqFirst: msgs[0].seq, seqLast: msgs[len(msgs)-1].seq, entry: entry, msgs: msgs, batch: batch, sentAt: time.Now()}
	p.mu.pending = append(p.mu.pending, pe)
	if pc := p.mu.conn; pc != nil {
		pc.queue = append(pc.queue, pe)
		pc.signal()
	}
}

// buildEntry encodes messages as a stored entry in Pulsar's layout.
func buildEntry(producer string, schemaVersion []byte, msgs []*pendingMsg, batch bool) ([]byte, error) {
	now := uint64(time.Now().UnixMilli())
	first := msgs[0].msg
	md := &pulsarpb.MessageMetadata{ProducerName: proto.String(producer), SequenceId: proto.Uint64(uint64(msgs[0].seq)), PublishTime: proto.Uint64(now),
		SchemaVersion: schemaVersion}
	if first.Key != "" {
		md.PartitionKey = proto.String(first.Key)
	}
	if first.OrderingKey != "" {
		md.OrderingKey = []byte(first.OrderingKey)
	}
	if !batch {
		md.Properties = kvs(first.Properties)
		if !first.EventTime.IsZero() {
			md.EventTime = proto.Uint64(uint64(first.EventTime.UnixMilli()))
		}
		if at := deliverAt(first); at > 0 {
			md.DeliverAtTime = proto.Int64(at)
		}
		md.ReplicateTo = first.replicateTo()
		md.UncompressedSize = proto.Uint32(uint32(len(first.Payload)))
		return pulsarpb.EncodeEntry(md, first.Payload)
	}
	bm := make([]pulsarpb.BatchMessage, len(msgs))
	for i, m := range msgs {
		smm := &pulsarpb.SingleMessageMetadata{Properties: kvs(m.msg.Properties), SequenceId: proto.Uint64(uint64(m.seq))}
		if m.msg.Key != "" {
			smm.PartitionKey = proto.String(m.msg.Key)
		}
		if m.msg.OrderingKey != "" {
			smm.OrderingKey = []byte(m.msg.OrderingKey)
		}
		if !m.msg.EventTime.IsZero() {
			smm.EventTime = proto.Uint64(uint64(m.msg.EventTime.UnixMilli()))
		}
		bm[i] = pulsarpb.BatchMessage{Meta: smm, Payload: m.msg.Payload}
	}
	payload, err := pulsarpb.EncodeBatch(bm)
	if err != nil {
		return nil, err
	}
	md.NumMessagesInBatch = proto.Int32(int32(len(msgs)))
	md.HighestSequenceId = proto.Uint64(uint64(msgs[len(msgs)-1].seq))
	md.UncompressedSize = proto.Uint32(uint32(len(payload)))
	return pulsarpb.EncodeEntry(md, payload)
}

func deliverAt(m *ProducerMessage) int64 {
	switch {
	case !m.DeliverAt.IsZero():
		return m.DeliverAt.UnixMilli()
	case m.DeliverAfter > 0:
		return time.Now().Add(m.DeliverAfter).UnixMilli()
	}
	return 0
}

func kvs(m map[string]string) []*pulsarpb.KeyValue {
	out := make([]*pulsarpb.KeyValue, 0, len(m))
	for k, v := range m {
		out = append(out, &pulsarpb.KeyValue{Key: proto.String(k), Value: proto.String(v)})
	}
	return out
}

// flush sends the batch and waits until nothing is pending.
func (p *partitionProducer) flush(ctx context.Context) error {
	p.mu.Lock()
	p.flushBatchLocked()
	if len(p.mu.pending) == 0 && p.mu.callbacks == 0 {
		err := p.mu.err
		p.mu.Unlock()
		return err
	}
	w := flushWaiter{ch: make(chan struct{})}
	if n := len(p.mu.pending); n > 0 {
		w.last = p.mu.pending[n-1]
	}
	p.mu.drained = append(p.mu.drained, w)
	p.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// timeouts fails entries pending longer than the send timeout.
func (p *partitionProducer) timeouts() {
	t := time.NewTicker(max(p.opts.sendTimeout/10, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-p.done:
			return
		}
		var expired []*pendingEntry
		p.mu.Lock()
		now := time.Now()
		for len(p.mu.pending) > 0 && now.Sub(p.mu.pending[0].sentAt) > p.opts.sendTimeout {
			expired = append(expired, p.mu.pending[0])
			p.popLocked()
		}
		if len(expired) == 0 {
			p.mu.Unlock()
			continue
		}
		p.mu.callbacks++
		p.mu.Unlock()
		for _, pe := range expired {
			p.failEntry(pe, fmt.Errorf("%w after %v (sequence %d)", ErrSendTimeout, p.opts.sendTimeout, pe.seqFirst))
		}
		p.callbacksDone()
	}
}

func (p *partitionProducer) close() {
	// End the stream from this side and wait until the broker has ended it
	// too (bounded by the operation timeout): the broker then no longer
	// counts this producer on the topic, as after Pulsar's CloseProducer.
	p.mu.Lock()
	pc := p.mu.conn
	if pc != nil && !p.mu.closed {
		p.mu.closing = true
		pc.ending = true
		pc.signal()
	}
	p.mu.Unlock()
	if pc != nil {
		t := time.NewTimer(p.c.opts.operationTimeout)
		select {
		case <-p.exited:
		case <-t.C:
		}
		t.Stop()
	}
	p.fail(ErrClosed)
	p.mu.Lock()
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.mu.Unlock()
}
