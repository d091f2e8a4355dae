package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
)

// Consumer receives messages of a subscription (on every partition of a
// partitioned topic).
type Consumer struct {
	c     *Client
	topic string
	sub   string
	opts  consumerOptions
	parts []*partitionConsumer // the topic's, then the retry topic's
	main  int                  // how many of parts belong to the topic itself
	queue *msgQueue

	letters *letters // dead-letter and retry publishing, nil if off

	chOnce sync.Once
	ch     chan Message
}

// Subscribe creates a consumer and waits until it is subscribed.
func (c *Client) Subscribe(ctx context.Context, topic, subscription string, opts ...ConsumerOption) (*Consumer, error) {
	o := defaultConsumerOptions()
	for _, f := range opts {
		f(&o)
	}
	if subscription == "" {
		return nil, fmt.Errorf("strata: subscription name is required")
	}
	n, err := c.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	cons := &Consumer{c: c, topic: topic, sub: subscription, opts: o, queue: newMsgQueue()}
	if o.dlq != nil || o.retry {
		cons.letters = &letters{c: c, dlqTopic: topic + "-" + subscription + "-DLQ"}
		if o.dlq != nil {
			cons.letters.policy = *o.dlq
			if o.dlq.Topic != "" {
				cons.letters.dlqTopic = o.dlq.Topic
			}
		}
		if o.retry {
			cons.letters.retryTopic = o.retryTopic
			if cons.letters.retryTopic == "" {
				cons.letters.retryTopic = topic + "-" + subscription + "-RETRY"
			}
		}
	}
	add := func(topic string, n int) error {
		names := []string{topic}
		if n > 0 {
			names = partitionNames(topic, n)
		}
		for i, name := range names {
			part := int32(-1)
			if n > 0 {
				part = int32(i)
			}
			pc := newPartitionConsumer(c, name, part, cons.queue, partitionConsumerConfig{sub: subscription, durable: true, opts: o})
			if err := pc.waitReady(ctx); err != nil {
				pc.close()
				return err
			}
			cons.parts = append(cons.parts, pc)
		}
		return nil
	}
	if err := add(topic, n); err != nil {
		cons.Close()
		return nil, err
	}
	cons.main = len(cons.parts)
	if o.retry {
		if err := add(cons.letters.retryTopic, 0); err != nil {
			cons.Close()
			return nil, err
		}
	}
	return cons, nil
}

// Topic returns the consumer's topic.
func (cs *Consumer) Topic() string { return cs.topic }

// Subscription returns the subscription name.
func (cs *Consumer) Subscription() string { return cs.sub }

// Receive waits for the next message. With a dead-letter policy, a message
// redelivered more than MaxRedeliveries times is published to the
// dead-letter topic and acknowledged instead of being returned. An entry
// that cannot be decoded is returned with an error wrapping ErrUndecodable
// (and the message, to acknowledge it); with a dead-letter policy it is
// dead-lettered at once instead.
func (cs *Consumer) Receive(ctx context.Context) (Message, error) {
	for {
		m, err := cs.queue.pop(ctx)
		if err != nil {
			return Message{}, err
		}
		if !m.consumer.accept(m) {
			continue
		}
		if m.DecodeError != nil {
			if cs.opts.dlq == nil {
				return m, m.DecodeError
			}
			// Redelivering a broken entry cannot help: dead-letter it now.
			if err := cs.deadLetter(ctx, m); err != nil {
				cs.c.log.Warn("dead letter failed; the entry will be redelivered", "topic", m.Topic, "id", m.ID, "err", err)
				cs.Nack(m)
			}
			continue
		}
		if d := cs.opts.dlq; d != nil && int(m.RedeliveryCount) > d.MaxRedeliveries {
			if err := cs.deadLetter(ctx, m); err != nil {
				cs.c.log.Warn("dead letter failed; the message will be redelivered", "topic", m.Topic, "id", m.ID, "err", err)
				cs.Nack(m)
			}
			continue
		}
		return m, nil
	}
}

// Chan returns a channel of received messages (an alternative to Receive);
// it is closed when the consumer closes.
func (cs *Consumer) Chan() <-chan Message {
	cs.chOnce.Do(func() {
		cs.ch = make(chan Message)
		go func() {
			defer close(cs.ch)
			for {
				m, err := cs.Receive(context.Background())
				if err != nil && m.DecodeError == nil {
					return
				}
				cs.ch <- m // an undecodable entry carries its DecodeError
			}
		}()
	})
	return cs.ch
}

func (cs *Consumer) part(id MessageID) (*partitionConsumer, error) {
	i := 0
	if cs.main > 1 {
		i = int(id.Partition)
	}
	if i < 0 || i >= cs.main {
		return nil, fmt.Errorf("%w: partition %d of %s", ErrInvalidMessageID, id.Partition, cs.topic)
	}
	return cs.parts[i], nil
}

// Ack acknowledges one message.
func (cs *Consumer) Ack(m Message) error {
	if m.consumer != nil {
		return m.consumer.ack(m.ID, false)
	}
	return cs.AckID(m.ID)
}

// partOf returns the partition consumer a message came from.
func (cs *Consumer) partOf(m Message) (*partitionConsumer, error) {
	if m.consumer != nil {
		return m.consumer, nil
	}
	return cs.part(m.ID)
}

// AckID acknowledges a message by id.
func (cs *Consumer) AckID(id MessageID) error {
	pc, err := cs.part(id)
	if err != nil {
		return err
	}
	return pc.ack(id, false)
}

// AckCumulative acknowledges the message and everything before it on its
// partition. On Shared and Key_Shared subscriptions it fails with
// ErrCumulativeAckNotAllowed and acknowledges nothing.
func (cs *Consumer) AckCumulative(m Message) error {
	if t := cs.opts.subType; t == Shared || t == KeyShared {
		return fmt.Errorf("%w (subscription %s is %s)", ErrCumulativeAckNotAllowed, cs.sub, t)
	}
	pc, err := cs.partOf(m)
	if err != nil {
		return err
	}
	return pc.ack(m.ID, true)
}

// AckWithResponse acknowledges a message and waits for the broker's answer.
func (cs *Consumer) AckWithResponse(ctx context.Context, m Message) error {
	pc, err := cs.partOf(m)
	if err != nil {
		return err
	}
	return pc.ackSync(ctx, m.ID)
}

// Nack asks for the message to be redelivered after the nack delay.
func (cs *Consumer) Nack(m Message) {
	if pc, err := cs.partOf(m); err == nil {
		pc.nack(m.ID, m.RedeliveryCount)
	}
}

// Seek moves the subscription to a message id (of one partition): the
// next message received is that one.
func (cs *Consumer) Seek(ctx context.Context, id MessageID) error {
	if cs.main > 1 && id.LedgerID >= 0 && id.LedgerID != LatestMessageID.LedgerID {
		pc, err := cs.part(id)
		if err != nil {
			return err
		}
		return pc.seek(ctx, &clientpb.Seek{Target: &clientpb.Seek_MessageId{MessageId: id.pb()}})
	}
	for _, pc := range cs.parts[:cs.main] {
		if err := pc.seek(ctx, &clientpb.Seek{Target: &clientpb.Seek_MessageId{MessageId: id.pb()}}); err != nil {
			return err
		}
	}
	return nil
}

// SeekByTime moves the subscription to the first message published at or
// after t, on every partition.
func (cs *Consumer) SeekByTime(ctx context.Context, t time.Time) error {
	for _, pc := range cs.parts[:cs.main] {
		if err := pc.seek(ctx, &clientpb.Seek{Target: &clientpb.Seek_PublishTime{PublishTime: t.UnixMilli()}}); err != nil {
			return err
		}
	}
	return nil
}

// Unsubscribe deletes the subscription (this must be its only consumer)
// and closes the consumer.
func (cs *Consumer) Unsubscribe(ctx context.Context) error {
	for _, pc := range cs.parts {
		if err := pc.unsubscribe(ctx); err != nil {
			return err
		}
	}
	return cs.Close()
}

// Close disconnects; unacknowledged messages are redelivered to other
// consumers (or on the next subscribe).
func (cs *Consumer) Close() error {
	for _, pc := range cs.parts {
		pc.close()
	}
	cs.queue.close(ErrClosed)
	if cs.letters != nil {
		cs.letters.close()
	}
	return nil
}

type partitionConsumerConfig struct {
	sub       string
	durable   bool
	opts      consumerOptions
	start     MessageID // readers
	inclusive bool
}

// partitionConsumer is a consumer session on one topic (or partition).
type partitionConsumer struct {
	c         *Client
	topic     string
	partition int32
	cfg       partitionConsumerConfig
	queue     *msgQueue
	ready     chan struct{}
	done      chan struct{}
	exited    chan struct{} // closed when run returns

	mu struct {
		sync.Mutex
		stream   clientpb.Broker_ConsumeClient
		cancel   context.CancelFunc
		gen      int // connection generation; messages of older ones are stale
		consumed int // received by the application since the last Flow
		closed   bool
		err      error
		reqID    uint64
		waiting  map[uint64]chan error
		batches  map[[2]int64][]bool // partly acknowledged batch entries
		last     *MessageID          // last message handed out (readers resume after it)
		nacks    map[[2]int64]time.Time
		unacked  map[[2]int64]time.Time // for the ack timeout
		active   bool
	}
	sendMu sync.Mutex
}

func newPartitionConsumer(c *Client, topic string, partition int32, q *msgQueue, cfg partitionConsumerConfig) *partitionConsumer {
	pc := &partitionConsumer{c: c, topic: topic, partition: partition, cfg: cfg, queue: q, ready: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{})}
	pc.mu.waiting = make(map[uint64]chan error)
	pc.mu.batches = make(map[[2]int64][]bool)
	pc.mu.nacks = make(map[[2]int64]time.Time)
	pc.mu.unacked = make(map[[2]int64]time.Time)
	go pc.run()
	go pc.timers()
	return pc
}

func (pc *partitionConsumer) waitReady(ctx context.Context) error {
	select {
	case <-pc.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.mu.err
}

func (pc *partitionConsumer) run() {
	defer close(pc.exited)
	b := newBackoff()
	first := true
	var deadline time.Time
	for {
		if pc.isClosed() {
			return
		}
		stream, err := pc.connect()
		if err == nil {
			b.reset()
			if first {
				first = false
				close(pc.ready)
			}
			err = pc.receive(stream)
		}
		e, retryable := brokerError(err)
		pc.mu.Lock()
		pc.mu.stream = nil
		for id, ch := range pc.mu.waiting {
			ch <- fmt.Errorf("connection lost: %w", e)
			delete(pc.mu.waiting, id)
		}
		closed := pc.mu.closed
		pc.mu.Unlock()
		if closed {
			return
		}
		if errors.Is(e, ErrSubscriptionClosed) {
			retryable = true
		}
		if first && deadline.IsZero() {
			deadline = time.Now().Add(pc.c.opts.operationTimeout)
		}
		if !retryable || (first && time.Now().After(deadline)) {
			pc.mu.Lock()
			pc.mu.err, pc.mu.closed = fmt.Errorf("consumer %s/%s: %w", pc.topic, pc.cfg.sub, e), true
			err := pc.mu.err
			pc.mu.Unlock()
			if first {
				close(pc.ready)
			} else {
				pc.queue.close(err)
			}
			return
		}
		pc.c.log.Debug("consumer reconnecting", "topic", pc.topic, "subscription", pc.cfg.sub, "err", e)
		select {
		case <-time.After(b.next()):
		case <-pc.done:
			return
		}
	}
}

func (pc *partitionConsumer) isClosed() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.mu.closed
}

func (pc *partitionConsumer) connect() (clientpb.Broker_ConsumeClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pc.c.opts.operationTimeout)
	addr, err := pc.c.lookup(ctx, pc.topic)
	cancel()
	if err != nil {
		return nil, err
	}
	cli, err := pc.c.conn(addr)
	if err != nil {
		return nil, err
	}
	sctx, scancel := context.WithCancel(context.Background())
	stream, err := cli.Consume(sctx)
	if err != nil {
		scancel()
		return nil, err
	}
	o := pc.cfg.opts
	sub := &clientpb.Subscribe{Topic: pc.topic, Subscription: pc.cfg.sub, Type: clientpb.SubscriptionType(o.subType),
		ConsumerName: o.name, PriorityLevel: o.priority, InitialPosition: clientpb.InitialPosition(o.initial), Durable: pc.cfg.durable,
		ReplicateSubscriptionState: o.replicated, Schema: o.schema.pb()}
	if !pc.cfg.durable {
		start, inclusive := pc.cfg.start, pc.cfg.inclusive
		pc.mu.Lock()
		if pc.mu.last != nil { // resume after the last message handed out
			start, inclusive = *pc.mu.last, false
		}
		pc.mu.Unlock()
		sub.StartMessageId, sub.StartInclusive = start.pb(), inclusive
	}
	if err := stream.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Subscribe{Subscribe: sub}}); err != nil {
		scancel()
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		scancel()
		return nil, err
	}
	if resp.GetSubscribed() == nil {
		scancel()
		return nil, fmt.Errorf("strata: unexpected first reply %T", resp.Cmd)
	}
	pc.mu.Lock()
	if pc.mu.closed {
		pc.mu.Unlock()
		scancel()
		return nil, ErrClosed
	}
	pc.mu.gen++
	pc.mu.consumed = 0
	pc.mu.stream, pc.mu.cancel = stream, scancel
	clear(pc.mu.batches)
	pc.mu.Unlock()
	// Messages queued from the previous connection are redelivered.
	pc.queue.drop(pc)
	if err := pc.send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Flow{Flow: &clientpb.Flow{Permits: uint32(o.receiverQueueSize)}}}); err != nil {
		scancel()
		return nil, err
	}
	return stream, nil
}

func (pc *partitionConsumer) send(req *clientpb.ConsumeRequest) error {
	pc.mu.Lock()
	s := pc.mu.stream
	pc.mu.Unlock()
	if s == nil {
		return fmt.Errorf("strata: consumer %s not connected", pc.topic)
	}
	pc.sendMu.Lock()
	defer pc.sendMu.Unlock()
	return s.Send(req)
}

func (pc *partitionConsumer) receive(stream clientpb.Broker_ConsumeClient) error {
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		switch cmd := resp.Cmd.(type) {
		case *clientpb.ConsumeResponse_Message:
			// A seek resets the broker's permits; messages after it arrive
			// only once the new window is open, under the new generation.
			pc.mu.Lock()
			gen := pc.mu.gen
			pc.mu.Unlock()
			msgs, err := pc.decode(cmd.Message, gen)
			if err != nil {
				// Handed to the application (or the dead-letter topic) as
				// is: dropping it would leave it unacknowledged forever.
				pc.c.log.Warn("undecodable entry", "topic", pc.topic, "id", messageIDFromPB(cmd.Message.MessageId), "err", err)
				id := messageIDFromPB(cmd.Message.MessageId)
				id.BatchIndex, id.BatchSize, id.Partition = -1, 0, pc.partition
				msgs = []Message{{ID: id, Payload: cmd.Message.Entry, RedeliveryCount: cmd.Message.RedeliveryCount, Topic: pc.topic,
					DecodeError: fmt.Errorf("%w: %v", ErrUndecodable, err), consumer: pc, gen: gen}}
			}
			pc.queue.push(msgs...)
		case *clientpb.ConsumeResponse_Result:
			pc.mu.Lock()
			ch := pc.mu.waiting[cmd.Result.RequestId]
			delete(pc.mu.waiting, cmd.Result.RequestId)
			pc.mu.Unlock()
			var rerr error
			if cmd.Result.Error != clientpb.ServerError_NONE_ERROR {
				rerr = &ServerError{Code: cmd.Result.Error, Message: cmd.Result.Message}
			}
			if ch != nil {
				ch <- rerr
			} else if rerr != nil {
				pc.c.log.Warn("broker rejected acknowledgement", "topic", pc.topic, "err", rerr)
			}
		case *clientpb.ConsumeResponse_ActiveChange:
			pc.mu.Lock()
			pc.mu.active = cmd.ActiveChange.IsActive
			pc.mu.Unlock()
		}
	}
}

// maxUncompressedSize bounds what a compressed entry may expand to. Brokers
// refuse entries claiming more than 16 times their maximum message size.
const maxUncompressedSize = 256 << 20

// decode splits an entry into messages.
func (pc *partitionConsumer) decode(m *clientpb.Message, gen int) ([]Message, error) {
	md, payload, err := pulsarpb.DecodeEntry(m.Entry)
	if err != nil {
		return nil, err
	}
	// Pulsar clients may compress what they produce.
	if payload, err = pulsarpb.Decompress(md, payload, maxUncompressedSize); err != nil {
		return nil, err
	}
	base := messageIDFromPB(m.MessageId)
	base.Partition = pc.partition
	mk := func(id MessageID, p []byte) Message {
		return Message{ID: id, Payload: p, ProducerName: md.GetProducerName(), PublishTime: time.UnixMilli(int64(md.GetPublishTime())),
			RedeliveryCount: m.RedeliveryCount, Topic: pc.topic, ReplicatedFrom: md.GetReplicatedFrom(), consumer: pc, gen: gen}
	}
	if !md.IsBatch() {
		msg := mk(MessageID{LedgerID: base.LedgerID, EntryID: base.EntryID, BatchIndex: -1, Partition: base.Partition}, payload)
		msg.Key, msg.OrderingKey = md.GetPartitionKey(), string(md.OrderingKey)
		msg.Properties = props(md.Properties)
		msg.SequenceID = int64(md.GetSequenceId())
		if et := md.GetEventTime(); et > 0 {
			msg.EventTime = time.UnixMilli(int64(et))
		}
		return []Message{msg}, nil
	}
	n := md.NumMessages()
	batch, err := pulsarpb.DecodeBatch(payload, n)
	if err != nil {
		return nil, err
	}
	skip := int32(-1)
	if !pc.cfg.durable && !pc.cfg.inclusive && base.LedgerID == pc.cfg.start.LedgerID && base.EntryID == pc.cfg.start.EntryID {
		skip = pc.cfg.start.BatchIndex // a reader started after a message inside this batch
	}
	pc.mu.Lock()
	if last := pc.mu.last; last != nil && !pc.cfg.durable && last.LedgerID == base.LedgerID && last.EntryID == base.EntryID {
		skip = last.BatchIndex
	}
	pc.mu.Unlock()
	out := make([]Message, 0, n)
	if len(m.AckSet) > 0 {
		// Some messages of the batch were acknowledged by index (a Pulsar
		// client's batch-index acknowledgement): they are skipped, count
		// as acknowledged here, and give their permits back.
		acked := make([]bool, n)
		skipped := 0
		for i := range acked {
			if acked[i] = !bitSet(m.AckSet, i); acked[i] {
				skipped++
			}
		}
		pc.mu.Lock()
		pc.mu.batches[[2]int64{base.LedgerID, base.EntryID}] = acked
		var permits int
		if gen == pc.mu.gen {
			permits = pc.consumedLocked(skipped)
		}
		pc.mu.Unlock()
		pc.flow(permits)
	}
	for i, b := range batch {
		if int32(i) <= skip || len(m.AckSet) > 0 && !bitSet(m.AckSet, i) {
			continue
		}
		msg := mk(MessageID{LedgerID: base.LedgerID, EntryID: base.EntryID, BatchIndex: int32(i), BatchSize: int32(n), Partition: base.Partition}, b.Payload)
		msg.Key, msg.OrderingKey = b.Meta.GetPartitionKey(), string(b.Meta.OrderingKey)
		msg.Properties = props(b.Meta.Properties)
		msg.SequenceID = int64(b.Meta.GetSequenceId())
		if et := b.Meta.GetEventTime(); et > 0 {
			msg.EventTime = time.UnixMilli(int64(et))
		}
		out = append(out, msg)
	}
	return out, nil
}

// bitSet reports whether bit i of a bitset in 64-bit words is set.
func bitSet(words []int64, i int) bool {
	return i/64 < len(words) && uint64(words[i/64])&(1<<(i%64)) != 0
}

func props(kv []*pulsarpb.KeyValue) map[string]string {
	if len(kv) == 0 {
		return nil
	}
	m := make(map[string]string, len(kv))
	for _, p := range kv {
		m[p.GetKey()] = p.GetValue()
	}
	return m
}

// accept is called when the application takes a message: it drops stale
// ones (from a previous connection) and returns permits in halves of the
// receiver queue.
func (pc *partitionConsumer) accept(m Message) bool {
	pc.mu.Lock()
	if m.gen != pc.mu.gen || pc.mu.closed {
		pc.mu.Unlock()
		return false
	}
	id := m.ID
	pc.mu.last = &id
	if pc.cfg.opts.ackTimeout > 0 && pc.cfg.durable {
		pc.mu.unacked[[2]int64{id.LedgerID, id.EntryID}] = time.Now()
	}
	permits := pc.consumedLocked(1)
	pc.mu.Unlock()
	pc.flow(permits)
	return true
}

// consumedLocked counts n messages as consumed and returns the permits to
// send back: none until half of the receiver queue was consumed. pc.mu
// must be held.
func (pc *partitionConsumer) consumedLocked(n int) int {
	pc.mu.consumed += n
	if q := pc.cfg.opts.receiverQueueSize; pc.mu.consumed >= max(q/2, 1) {
		permits := pc.mu.consumed
		pc.mu.consumed = 0
		return permits
	}
	return 0
}

// flow gives the broker permits for more messages.
func (pc *partitionConsumer) flow(permits int) {
	if permits > 0 {
		pc.send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Flow{Flow: &clientpb.Flow{Permits: uint32(permits)}}})
	}
}

// ack acknowledges a message; a batch entry is acknowledged once all its
// messages are.
func (pc *partitionConsumer) ack(id MessageID, cumulative bool) error {
	if !pc.cfg.durable {
		return nil // readers do not acknowledge
	}
	pc.mu.Lock()
	if pc.mu.closed {
		pc.mu.Unlock()
		return ErrClosed
	}
	if cumulative {
		if id.BatchSize > 1 && id.BatchIndex < id.BatchSize-1 {
			// Part of a batch: everything before the entry is done.
			if id.EntryID == 0 {
				pc.mu.Unlock()
				return nil
			}
			id.EntryID--
		}
		for k := range pc.mu.unacked {
			if k[0] < id.LedgerID || (k[0] == id.LedgerID && k[1] <= id.EntryID) {
				delete(pc.mu.unacked, k)
			}
		}
		pc.mu.Unlock()
		return pc.send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Ack{Ack: &clientpb.Ack{
			MessageIds: []*clientpb.MessageId{{LedgerId: id.LedgerID, EntryId: id.EntryID}}, Cumulative: true}}})
	}
	done := pc.entryDoneLocked(id)
	pc.mu.Unlock()
	if !done {
		return nil
	}
	return pc.send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Ack{Ack: &clientpb.Ack{
		MessageIds: []*clientpb.MessageId{{LedgerId: id.LedgerID, EntryId: id.EntryID}}}}})
}

// entryDoneLocked records that message id is acknowledged and reports
// whether its entry now is as a whole: a batch entry once all its messages
// are, so that the broker is told no sooner. pc.mu must be held.
func (pc *partitionConsumer) entryDoneLocked(id MessageID) bool {
	key := [2]int64{id.LedgerID, id.EntryID}
	if id.BatchSize > 1 {
		acked := pc.mu.batches[key]
		if acked == nil {
			acked = make([]bool, id.BatchSize)
			pc.mu.batches[key] = acked
		}
		if id.BatchIndex >= 0 && int(id.BatchIndex) < len(acked) {
			acked[id.BatchIndex] = true
		}
		for _, a := range acked {
			if !a {
				return false
			}
		}
		delete(pc.mu.batches, key)
	}
	delete(pc.mu.unacked, key)
	return true
}

// request sends a command with a request id and waits for its result.
func (pc *partitionConsumer) request(ctx context.Context, build func(id uint64) *clientpb.ConsumeRequest) error {
	pc.mu.Lock()
	pc.mu.reqID++
	id := pc.mu.reqID
	ch := make(chan error, 1)
	pc.mu.waiting[id] = ch
	pc.mu.Unlock()
	if err := pc.send(build(id)); err != nil {
		pc.mu.Lock()
		delete(pc.mu.waiting, id)
		pc.mu.Unlock()
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ackSync acknowledges a message and, when that completes its entry,
// waits for the broker's answer.
func (pc *partitionConsumer) ackSync(ctx context.Context, id MessageID) error {
	if !pc.cfg.durable {
		return nil // readers do not acknowledge
	}
	pc.mu.Lock()
	if pc.mu.closed {
		pc.mu.Unlock()
		return ErrClosed
	}
	done := pc.entryDoneLocked(id)
	pc.mu.Unlock()
	if !done {
		return nil
	}
	return pc.request(ctx, func(rid uint64) *clientpb.ConsumeRequest {
		return &clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Ack{Ack: &clientpb.Ack{
			RequestId: rid, MessageIds: []*clientpb.MessageId{{LedgerId: id.LedgerID, EntryId: id.EntryID}}}}}
	})
}

func (pc *partitionConsumer) nack(id MessageID, redeliveries uint32) {
	key := [2]int64{id.LedgerID, id.EntryID}
	delay := pc.cfg.opts.nackDelay
	if f := pc.cfg.opts.nackBackoff; f != nil {
		delay = f(redeliveries)
	}
	pc.mu.Lock()
	pc.mu.nacks[key] = time.Now().Add(delay)
	delete(pc.mu.batches, key) // the whole entry comes again
	delete(pc.mu.unacked, key)
	pc.mu.Unlock()
}

// timers sends redelivery requests for due negative acks and expired ack
// timeouts.
func (pc *partitionConsumer) timers() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-pc.done:
			return
		}
		now := time.Now()
		var ids []*clientpb.MessageId
		pc.mu.Lock()
		for k, at := range pc.mu.nacks {
			if !now.Before(at) {
				ids = append(ids, &clientpb.MessageId{LedgerId: k[0], EntryId: k[1]})
				delete(pc.mu.nacks, k)
			}
		}
		if to := pc.cfg.opts.ackTimeout; to > 0 {
			for k, at := range pc.mu.unacked {
				if now.Sub(at) >= to {
					ids = append(ids, &clientpb.MessageId{LedgerId: k[0], EntryId: k[1]})
					delete(pc.mu.unacked, k)
					delete(pc.mu.batches, k)
				}
			}
		}
		pc.mu.Unlock()
		if len(ids) > 0 {
			pc.send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Redeliver{Redeliver: &clientpb.Redeliver{MessageIds: ids}}})
		}
	}
}

func (pc *partitionConsumer) seek(ctx context.Context, s *clientpb.Seek) error {
	err := pc.request(ctx, func(id uint64) *clientpb.ConsumeRequest {
		s.RequestId = id
		return &clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Seek{Seek: s}}
	})
	if err != nil {
		return err
	}
	// Everything received before the seek is void; start a new window.
	pc.mu.Lock()
	pc.mu.gen++
	pc.mu.consumed = 0
	pc.mu.last = nil
	clear(pc.mu.batches)
	clear(pc.mu.unacked)
	clear(pc.mu.nacks)
	pc.mu.Unlock()
	pc.queue.drop(pc)
	return pc.send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Flow{Flow: &clientpb.Flow{Permits: uint32(pc.cfg.opts.receiverQueueSize)}}})
}

func (pc *partitionConsumer) unsubscribe(ctx context.Context) error {
	return pc.request(ctx, func(id uint64) *clientpb.ConsumeRequest {
		return &clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Unsubscribe{Unsubscribe: &clientpb.Unsubscribe{RequestId: id}}}
	})
}

func (pc *partitionConsumer) close() {
	pc.mu.Lock()
	if pc.mu.closed && pc.mu.stream == nil {
		pc.mu.Unlock()
		select {
		case <-pc.done:
		default:
			close(pc.done)
		}
		return
	}
	pc.mu.closed = true
	s, cancel := pc.mu.stream, pc.mu.cancel
	pc.mu.Unlock()
	if s != nil {
		// End the stream from this side and let the broker finish it, so
		// that every acknowledgement sent before reaches the broker;
		// cancelling at once could drop acknowledgements still in flight.
		pc.sendMu.Lock()
		s.CloseSend()
		pc.sendMu.Unlock()
		t := time.NewTimer(pc.c.opts.operationTimeout)
		select {
		case <-pc.exited:
		case <-t.C:
		}
		t.Stop()
		cancel()
	}
	select {
	case <-pc.done:
	default:
		close(pc.done)
	}
}
