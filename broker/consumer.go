package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/ledger/managed"
)

// Consumer is one consumer session on a subscription. Its permits, unacked
// count and deliveries are guarded by the subscription's mu.
type Consumer struct {
	sub      *Subscription
	id       uint64
	name     string
	role     string // authenticated role, re-checked when permissions change
	conn     clientConn
	metadata map[string]string // the consumer's own properties
	since    time.Time
	priority int32
	out      *outbox[*clientpb.ConsumeResponse]
	killed   chan error

	permits int64 // messages the consumer can still take
	unacked int   // messages delivered and not acknowledged

	sent meter // messages and bytes delivered
}

var consumerSeq atomic.Uint64

// canTake reports whether the consumer may be sent an entry now: it has
// permits and its outbox is not full. The subscription's mu must be held.
func (c *Consumer) canTake() bool { return c.permits > 0 && !c.out.full() }

// responseSize is what a reply to a consumer holds in its outbox: the entry
// of a message, plus a small allowance for the envelope and other replies.
func responseSize(r *clientpb.ConsumeResponse) int {
	return len(r.GetMessage().GetEntry()) + 64
}

// deliver queues one entry for the consumer. s.mu must be held.
// ackSet, when not nil, names the messages of a partly acknowledged batch
// still to deliver.
func (c *Consumer) deliver(pos managed.Position, entry []byte, n int, redeliveries uint32, ackSet []int64) {
	t := c.sub.t
	c.out.push(&clientpb.ConsumeResponse{Cmd: &clientpb.ConsumeResponse_Message{Message: &clientpb.Message{
		MessageId:       &clientpb.MessageId{LedgerId: pos.LedgerID, EntryId: pos.EntryID, BatchIndex: -1, Partition: t.partition, BatchSize: int32(n)},
		RedeliveryCount: redeliveries,
		Entry:           entry,
		AckSet:          ackSet,
	}}})
	c.sent.add(n, len(entry))
	t.stats.dispatched(n, len(entry))
}

func (c *Consumer) kill(err error) {
	select {
	case c.killed <- err:
	default:
	}
}

// subscribe attaches a consumer, creating the subscription when needed.
func (t *Topic) subscribe(ctx context.Context, req *clientpb.Subscribe, cc clientConn) (*Subscription, *Consumer, error) {
	if err := t.checkUsable(); err != nil {
		return nil, nil, err
	}
	if err := checkClientMetadata(req.Metadata); err != nil {
		return nil, nil, err
	}
	var sub *Subscription
	if req.Durable {
		if err := validSubscription(req.Subscription); err != nil {
			return nil, nil, err
		}
		t.mu.Lock()
		sub = t.mu.subs[req.Subscription]
		t.mu.Unlock()
		if sub == nil {
			initial := managed.Latest
			if req.InitialPosition == clientpb.InitialPosition_EARLIEST {
				initial = managed.Earliest
			}
			if err := t.checkSubscriptionLimit(); err != nil {
				return nil, nil, err
			}
			cur, err := t.ml.OpenCursor(ctx, req.Subscription, initial)
			if err != nil {
				return nil, nil, err
			}
			t.mu.Lock()
			if sub = t.mu.subs[req.Subscription]; sub == nil {
				sub = newSubscription(t, cur)
				t.mu.subs[req.Subscription] = sub
			}
			t.mu.Unlock()
		}
	} else {
		start := t.readerStart(req.StartMessageId, req.StartInclusive)
		sub = newSubscription(t, t.ml.NewNonDurableCursor(start))
		sub.name = req.Subscription
		if sub.name == "" {
			sub.name = fmt.Sprintf("reader-%d", consumerSeq.Add(1))
		}
		// Tracked so that an unload closes the reader too (its client then
		// reconnects after its last message).
		t.mu.Lock()
		closed := t.mu.closed
		if !closed {
			t.mu.readers[sub] = true
		}
		t.mu.Unlock()
		if closed {
			err := fmt.Errorf("%w: %s", ErrTopicClosed, t.name)
			sub.close(err)
			return nil, nil, err
		}
	}
	if err := t.checkConsumerLimit(sub); err != nil {
		if !req.Durable {
			sub.close(err)
		}
		return nil, nil, err
	}
	if req.ReplicateSubscriptionState && req.Durable {
		sub.setReplicated()
	}
	c := &Consumer{sub: sub, id: consumerSeq.Add(1), name: req.ConsumerName, priority: req.PriorityLevel, role: cc.role, conn: cc, metadata: req.Metadata, since: time.Now(),
		out: newBoundedOutbox(t.b.opts.MaxConsumerOutboxBytes, responseSize, sub.signal), killed: make(chan error, 1)}
	if c.name == "" {
		c.name = fmt.Sprintf("consumer-%d", c.id)
	}
	if err := sub.addConsumer(c, req.Type); err != nil {
		if !req.Durable {
			sub.close(err)
		}
		return nil, nil, err
	}
	return sub, c, nil
}

// readerStart resolves a reader's start message id to a position.
func (t *Topic) readerStart(id *clientpb.MessageId, inclusive bool) managed.Position {
	switch {
	case id == nil || id.LedgerId < 0:
		return t.ml.FirstPosition()
	case id.LedgerId == LatestLedgerID:
		lc := t.ml.LastConfirmed()
		if inclusive && lc.EntryID >= 0 {
			return lc
		}
		return managed.Position{LedgerID: lc.LedgerID, EntryID: lc.EntryID + 1}
	case inclusive || (id.BatchIndex >= 0 && id.BatchIndex < id.BatchSize-1):
		// Inclusive, or exclusive of a message inside a batch: start at the
		// entry; the client skips the batch's earlier messages.
		return managed.Position{LedgerID: id.LedgerId, EntryID: id.EntryId}
	default:
		return managed.Position{LedgerID: id.LedgerId, EntryID: id.EntryId + 1}
	}
}

// LatestLedgerID in a start message id means "after the last message".
const LatestLedgerID = 1<<63 - 1

var errBadRequest = errors.New("broker: bad request")

// addConsumer checks the subscription type rules and attaches c.
func (s *Subscription) addConsumer(c *Consumer, typ clientpb.SubscriptionType) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return fmt.Errorf("%w: subscription %s", ErrTopicClosed, s.name)
	}
	if len(s.mu.consumers) > 0 {
		if s.mu.subType != typ {
			return fmt.Errorf("%w: subscription %s is %s, not %s", ErrConsumerBusy, s.name, s.mu.subType, typ)
		}
		if typ == clientpb.SubscriptionType_EXCLUSIVE {
			return fmt.Errorf("%w: exclusive subscription %s already has a consumer", ErrConsumerBusy, s.name)
		}
	}
	s.mu.subType, s.mu.typeSet = typ, true
	s.mu.consumers = append(s.mu.consumers, c)
	s.cursor.SetActive(true)
	switch typ {
	case clientpb.SubscriptionType_KEY_SHARED:
		s.rebuildRingLocked()
	case clientpb.SubscriptionType_EXCLUSIVE, clientpb.SubscriptionType_FAILOVER:
		s.electLocked()
	}
	s.signal()
	return nil
}

// electLocked picks the active consumer of an Exclusive/Failover
// subscription: consumers sorted by priority level then name; partition i
// goes to the (i mod n)-th of the n consumers at the highest priority
// level. A change hands every unacknowledged entry to the new active
// consumer.
func (s *Subscription) electLocked() {
	var next *Consumer
	if n := len(s.mu.consumers); n > 0 {
		sorted := append([]*Consumer(nil), s.mu.consumers...)
		sort.SliceStable(sorted, func(i, j int) bool {
			if sorted[i].priority != sorted[j].priority {
				return sorted[i].priority < sorted[j].priority
			}
			return sorted[i].name < sorted[j].name
		})
		// Only the consumers of the highest priority (lowest level) share
		// the partitions; the others stand by.
		top := 1
		for top < n && sorted[top].priority == sorted[0].priority {
			top++
		}
		idx := 0
		if p := s.t.partition; p > 0 {
			idx = int(p) % top
		}
		next = sorted[idx]
	}
	prev := s.mu.active
	if next == prev {
		return
	}
	s.mu.active = next
	// Everything the previous active consumer holds unacknowledged goes to
	// the new one, before any newer entry.
	for p := range s.mu.pending {
		s.redeliverLocked(p)
	}
	if prev != nil {
		prev.out.push(&clientpb.ConsumeResponse{Cmd: &clientpb.ConsumeResponse_ActiveChange{ActiveChange: &clientpb.ActiveConsumerChange{IsActive: false}}})
	}
	if next != nil && s.mu.subType == clientpb.SubscriptionType_FAILOVER {
		next.out.push(&clientpb.ConsumeResponse{Cmd: &clientpb.ConsumeResponse_ActiveChange{ActiveChange: &clientpb.ActiveConsumerChange{IsActive: true}}})
	}
}

// removeConsumer detaches c; its unacknowledged entries go back for
// redelivery to the remaining consumers.
func (s *Subscription) removeConsumer(c *Consumer) {
	s.mu.Lock()
	i := -1
	for j, x := range s.mu.consumers {
		if x == c {
			i = j
		}
	}
	if i < 0 {
		s.mu.Unlock()
		return
	}
	s.mu.consumers = append(s.mu.consumers[:i], s.mu.consumers[i+1:]...)
	for p, d := range s.mu.pending {
		if d.c == c {
			s.redeliverLocked(p)
		}
	}
	switch s.mu.subType {
	case clientpb.SubscriptionType_KEY_SHARED:
		s.rebuildRingLocked()
	case clientpb.SubscriptionType_EXCLUSIVE, clientpb.SubscriptionType_FAILOVER:
		s.electLocked()
	}
	empty := len(s.mu.consumers) == 0
	if empty {
		s.mu.typeSet = false
		s.cursor.SetActive(false)
	}
	s.mu.Unlock()
	c.out.close()
	if empty && !s.durable {
		s.close(nil) // a reader's cursor goes with it
		return
	}
	s.signal()
}

// flow adds permits.
func (s *Subscription) flow(c *Consumer, n uint32) {
	s.mu.Lock()
	c.permits += int64(n)
	s.mu.Unlock()
	s.signal()
}

// ack acknowledges entries individually or cumulatively. An id with an
// ack set acknowledges part of a batch entry (its set names the messages
// still unacknowledged); cumulatively, everything before that entry too.
func (s *Subscription) ack(c *Consumer, ids []*clientpb.MessageId, cumulative bool) error {
	if len(ids) == 0 {
		return nil
	}
	positions := make([]managed.Position, 0, len(ids))
	var partial []*clientpb.MessageId
	for _, id := range ids {
		if id == nil || id.LedgerId < 0 || id.EntryId < 0 {
			return fmt.Errorf("%w: invalid message id %v", managed.ErrInvalidPosition, id)
		}
		if len(id.AckSet) > 0 {
			if len(id.AckSet) > maxAckSetWords {
				return fmt.Errorf("%w: ack set of %d words (at most %d)", errBadRequest, len(id.AckSet), maxAckSetWords)
			}
			partial = append(partial, id)
			continue
		}
		positions = append(positions, managed.Position{LedgerID: id.LedgerId, EntryID: id.EntryId})
	}
	s.mu.Lock()
	typ := s.mu.subType
	s.mu.Unlock()
	if cumulative {
		if typ == clientpb.SubscriptionType_SHARED || typ == clientpb.SubscriptionType_KEY_SHARED {
			return fmt.Errorf("%w: cumulative acknowledgement on a %s subscription", ErrNotAllowed, typ)
		}
		if len(ids) != 1 {
			return fmt.Errorf("%w: a cumulative acknowledgement names one message", errBadRequest)
		}
		if len(partial) == 1 {
			// Part of a batch: everything before its entry, then the
			// messages of the entry.
			p := managed.Position{LedgerID: partial[0].LedgerId, EntryID: partial[0].EntryId}
			if p.EntryID > 0 {
				if err := s.ackCumulative(managed.Position{LedgerID: p.LedgerID, EntryID: p.EntryID - 1}); err != nil {
					return err
				}
			}
			complete, err := s.cursor.AckBatchIndexes(p, partial[0].AckSet)
			if err != nil || !complete {
				return err
			}
			positions = append(positions, p)
		}
		if err := s.ackCumulative(positions[0]); err != nil {
			return err
		}
	} else {
		for _, id := range partial {
			p := managed.Position{LedgerID: id.LedgerId, EntryID: id.EntryId}
			complete, err := s.cursor.AckBatchIndexes(p, id.AckSet)
			if err != nil {
				return err
			}
			if complete {
				positions = append(positions, p)
			}
		}
		if len(positions) == 0 {
			return nil
		}
		if err := s.cursor.Ack(positions...); err != nil {
			return err
		}
		s.mu.Lock()
		for _, p := range positions {
			s.settleLocked(p)
			s.removeReplayLocked(p)
			delete(s.mu.redeliveries, p)
		}
		s.mu.Unlock()
	}
	s.t.stats.acked(len(positions))
	s.signal()
	s.syncReplicated()
	return nil
}

// maxAckSetWords bounds a batch-index ack set: 64 words cover batches of
// up to 4096 messages (clients batch 1000 by default). A larger set is
// refused; its messages are then acknowledged with their whole entry.
const maxAckSetWords = 64

// ackCumulative acknowledges every entry up to and including p.
func (s *Subscription) ackCumulative(p managed.Position) error {
	if err := s.cursor.AckCumulative(p); err != nil {
		return err
	}
	s.mu.Lock()
	for q := range s.mu.pending {
		if !p.Less(q) {
			s.settleLocked(q)
			delete(s.mu.redeliveries, q)
		}
	}
	for len(s.mu.replay) > 0 && !p.Less(s.mu.replay[0].pos) {
		s.removeReplayLocked(s.mu.replay[0].pos)
	}
	s.mu.Unlock()
	return nil
}

// redeliver puts c's unacknowledged entries (all, or the given ones) back
// for redelivery.
func (s *Subscription) redeliver(c *Consumer, ids []*clientpb.MessageId) {
	s.mu.Lock()
	if len(ids) == 0 {
		for p, d := range s.mu.pending {
			if d.c == c {
				s.redeliverLocked(p)
			}
		}
	} else {
		for _, id := range ids {
			p := managed.Position{LedgerID: id.GetLedgerId(), EntryID: id.GetEntryId()}
			if d, ok := s.mu.pending[p]; ok && d.c == c {
				s.redeliverLocked(p)
			}
		}
	}
	s.mu.Unlock()
	s.signal()
}

// seek moves the subscription so that the next message delivered is the
// one at (or first published at or after) the target. Other consumers of the
// subscription are disconnected and reconnect from the new position.
func (s *Subscription) seek(ctx context.Context, c *Consumer, req *clientpb.Seek) error {
	var pos managed.Position
	switch tgt := req.Target.(type) {
	case *clientpb.Seek_MessageId:
		id := tgt.MessageId
		switch {
		case id == nil:
			return fmt.Errorf("%w: seek without a target", errBadRequest)
		case id.LedgerId < 0:
			pos = s.t.ml.FirstPosition()
		case id.LedgerId == LatestLedgerID:
			lc := s.t.ml.LastConfirmed()
			pos = managed.Position{LedgerID: lc.LedgerID, EntryID: lc.EntryID + 1}
		default:
			pos = managed.Position{LedgerID: id.LedgerId, EntryID: id.EntryId}
		}
	case *clientpb.Seek_PublishTime:
		p, err := s.t.ml.FindByTime(ctx, tgt.PublishTime)
		if err != nil {
			return err
		}
		pos = p
	default:
		return fmt.Errorf("%w: seek without a target", errBadRequest)
	}
	s.mu.Lock()
	others := make([]*Consumer, 0, len(s.mu.consumers))
	for _, x := range s.mu.consumers {
		if x != c {
			others = append(others, x)
		}
		x.permits = 0 // consumers flow again after dropping what they hold
		x.unacked = 0
	}
	clear(s.mu.pending)
	s.mu.replay = nil
	clear(s.mu.replayKeys)
	clear(s.mu.redeliveries)
	clear(s.mu.flights)
	s.mu.delayed, s.mu.nextDue = nil, time.Time{}
	s.cursor.Reset(pos)
	s.mu.Unlock()
	for _, x := range others {
		x.kill(fmt.Errorf("%w: subscription %s was reset", ErrTopicClosed, s.name))
	}
	s.signal()
	return nil
}

// unsubscribe deletes the subscription; only its last consumer may.
func (s *Subscription) unsubscribe(ctx context.Context, c *Consumer) error {
	s.mu.Lock()
	if len(s.mu.consumers) != 1 || s.mu.consumers[0] != c {
		n := len(s.mu.consumers)
		s.mu.Unlock()
		return fmt.Errorf("%w: subscription %s has %d other consumers connected", ErrConsumerBusy, s.name, n-1)
	}
	s.mu.Unlock()
	t := s.t
	if s.durable {
		if err := t.ml.DeleteCursor(ctx, s.name); err != nil {
			return err
		}
	}
	t.mu.Lock()
	if t.mu.subs[s.name] == s {
		delete(t.mu.subs, s.name)
	}
	t.mu.Unlock()
	s.stopDispatcher()
	return nil
}
