package broker

import (
	"context"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/naming"
)

// Consumers over Pulsar's protocol: SUBSCRIBE, FLOW, MESSAGE, ACK, SEEK,
// GET_LAST_MESSAGE_ID, UNSUBSCRIBE, CLOSE_CONSUMER.

func (pc *pulsarConn) subscribe(m *pulsarpb.CommandSubscribe) {
	reqID := m.GetRequestId()
	pc.mu.Lock()
	existing := pc.mu.consumers[m.GetConsumerId()]
	pc.mu.Unlock()
	if existing == nil && !pc.room() {
		pc.replyError(reqID, pulsarpb.ServerError_NotAllowedError, pc.roomMessage())
		return
	}
	if existing != nil {
		// The client subscribed again without closing (as Pulsar's
		// broker does, the consumer it has is confirmed).
		if existing.sub.t.name.String() != canonicalTopic(m.GetTopic()) || existing.sub.name != m.GetSubscription() {
			pc.replyError(reqID, pulsarpb.ServerError_ConsumerBusy, fmt.Sprintf("consumer id %d is in use on this connection", m.GetConsumerId()))
			return
		}
		pc.success(reqID)
		return
	}
	req := &clientpb.Subscribe{
		Topic: m.GetTopic(), Subscription: m.GetSubscription(), ConsumerName: m.GetConsumerName(),
		PriorityLevel: m.GetPriorityLevel(), Durable: m.GetDurable(), Metadata: kvMap(m.GetMetadata()),
		ReplicateSubscriptionState: m.GetReplicateSubscriptionState(), Schema: wireSchema(m.GetSchema()),
	}
	switch m.GetSubType() {
	case pulsarpb.CommandSubscribe_Exclusive:
		req.Type = clientpb.SubscriptionType_EXCLUSIVE
	case pulsarpb.CommandSubscribe_Shared:
		req.Type = clientpb.SubscriptionType_SHARED
	case pulsarpb.CommandSubscribe_Failover:
		req.Type = clientpb.SubscriptionType_FAILOVER
	case pulsarpb.CommandSubscribe_Key_Shared:
		req.Type = clientpb.SubscriptionType_KEY_SHARED
	}
	if m.GetInitialPosition() == pulsarpb.CommandSubscribe_Earliest {
		req.InitialPosition = clientpb.InitialPosition_EARLIEST
	}
	if !req.Durable {
		pc.mu.Lock()
		resume, seeked := pc.mu.resume[m.GetConsumerId()]
		delete(pc.mu.resume, m.GetConsumerId())
		pc.mu.Unlock()
		switch id := m.GetStartMessageId(); {
		case seeked:
			req.StartMessageId = &clientpb.MessageId{LedgerId: resume.LedgerID, EntryId: resume.EntryID}
			req.StartInclusive = true
		case id != nil:
			// A reader starts at the entry of its start id, inclusive
			// (the client drops what it must not see, batch messages
			// included); the latest id means after the last entry.
			req.StartMessageId = fromPulsarID(id)
			req.StartInclusive = req.StartMessageId.LedgerId != LatestLedgerID
		case req.InitialPosition == clientpb.InitialPosition_LATEST:
			// A non-durable consumer without a start id starts where its
			// initial position says.
			req.StartMessageId = &clientpb.MessageId{LedgerId: LatestLedgerID, EntryId: LatestLedgerID}
		}
	}
	t, sub, c, err := pc.b.openConsumer(pc.ctx, req, pc.conn())
	if err != nil {
		pc.replyErr(reqID, err)
		return
	}
	pcs := &pulsarConsumer{id: m.GetConsumerId(), c: c, sub: sub, done: make(chan struct{})}
	pc.mu.Lock()
	pc.mu.consumers[pcs.id] = pcs
	pc.mu.Unlock()
	pc.success(reqID)
	pc.wg.Add(2)
	go func() {
		defer pc.wg.Done()
		c.out.run(pcs.done, func(r *clientpb.ConsumeResponse) error { return pcs.deliver(pc, r) })
	}()
	go func() {
		defer pc.wg.Done()
		select {
		case err := <-c.killed:
			pc.log.Debug("closing pulsar consumer", "topic", t.name, "subscription", sub.name, "reason", err)
			pc.kickConsumer(pcs)
		case <-pcs.done:
		}
	}()
}

// kickConsumer detaches a consumer the broker closed and tells the client,
// which subscribes again (after a seek, an unload, a topic move).
func (pc *pulsarConn) kickConsumer(pcs *pulsarConsumer) {
	if pc.dropConsumer(pcs.id, pcs) {
		pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_CLOSE_CONSUMER.Enum(), CloseConsumer: &pulsarpb.CommandCloseConsumer{
			ConsumerId: proto.Uint64(pcs.id), RequestId: proto.Uint64(pulsarCloseRequestID)}})
	}
}

// openConsumer checks a consumer's permission, attaches it to its
// subscription and checks the schema it declares (req.Schema). gRPC and
// Pulsar consumers both come through here.
func (b *Broker) openConsumer(ctx context.Context, req *clientpb.Subscribe, cc clientConn) (*Topic, *Subscription, *Consumer, error) {
	name, err := naming.ParseTopic(req.Topic)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := b.authz.CanConsume(ctx, cc.role, name, req.Subscription); err != nil {
		return nil, nil, nil, err
	}
	t, err := b.getTopic(ctx, name)
	if err != nil {
		return nil, nil, nil, err
	}
	sub, c, err := t.subscribe(ctx, req, cc)
	if err != nil {
		return nil, nil, nil, err
	}
	if sc := grpcSchema(req.Schema); sc != nil {
		if err := b.checkConsumerSchema(ctx, name, *sc); err != nil {
			sub.removeConsumer(c)
			return nil, nil, nil, err
		}
	}
	return t, sub, c, nil
}

func (pcs *pulsarConsumer) deliver(pc *pulsarConn, r *clientpb.ConsumeResponse) error {
	switch x := r.Cmd.(type) {
	case *clientpb.ConsumeResponse_Message:
		m := x.Message
		return pc.write(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_MESSAGE.Enum(), Message: &pulsarpb.CommandMessage{
			ConsumerId: proto.Uint64(pcs.id), RedeliveryCount: proto.Uint32(m.RedeliveryCount), AckSet: m.AckSet,
			MessageId: &pulsarpb.MessageIdData{LedgerId: proto.Uint64(uint64(m.MessageId.GetLedgerId())), EntryId: proto.Uint64(uint64(m.MessageId.GetEntryId()))},
		}}, m.Entry)
	case *clientpb.ConsumeResponse_ActiveChange:
		return pc.write(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_ACTIVE_CONSUMER_CHANGE.Enum(), ActiveConsumerChange: &pulsarpb.CommandActiveConsumerChange{
			ConsumerId: proto.Uint64(pcs.id), IsActive: proto.Bool(x.ActiveChange.IsActive)}}, nil)
	}
	// Results are answered where their requests are handled, and Pulsar's
	// Go client closes the connection on REACHED_END_OF_TOPIC: a reader of
	// a terminated topic simply has no more messages.
	return nil
}

func (pc *pulsarConn) consumer(id uint64) *pulsarConsumer {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.mu.consumers[id]
}

// dropConsumer forgets consumer id if it is still pcs (any, for nil) and
// detaches it from its subscription; false if it was already gone.
func (pc *pulsarConn) dropConsumer(id uint64, pcs *pulsarConsumer) bool {
	pc.mu.Lock()
	cur, ok := pc.mu.consumers[id]
	if ok && (pcs == nil || cur == pcs) {
		delete(pc.mu.consumers, id)
	} else {
		ok = false
	}
	pc.mu.Unlock()
	if ok {
		cur.sub.removeConsumer(cur.c)
		close(cur.done)
	}
	return ok
}

func (pc *pulsarConn) ack(m *pulsarpb.CommandAck) {
	pcs := pc.consumer(m.GetConsumerId())
	var err error
	switch {
	case pcs == nil:
		// Acks for a consumer the broker just closed: the client acks
		// again, or the messages come back, once it re-attached.
	case m.ValidationError != nil:
		// The client could not read these messages; Pulsar drops them
		// like an acknowledgement would, so they do not come back forever.
		pc.log.Warn("client rejected messages", "validationError", m.GetValidationError(), "ids", len(m.GetMessageId()))
		err = pcs.sub.ack(pcs.c, entryIDs(m.GetMessageId()), false)
	case m.GetAckType() == pulsarpb.CommandAck_Cumulative:
		ids := entryIDs(m.GetMessageId())
		if len(ids) == 1 && ids[0].EntryId < 0 && len(ids[0].AckSet) == 0 {
			break // "everything before entry 0 of a ledger": nothing more to record
		}
		err = pcs.sub.ack(pcs.c, ids, true)
	default:
		err = pcs.sub.ack(pcs.c, entryIDs(m.GetMessageId()), false)
	}
	if m.RequestId == nil {
		if err != nil {
			pc.log.Debug("pulsar ack failed", "err", err)
		}
		return
	}
	resp := &pulsarpb.CommandAckResponse{ConsumerId: proto.Uint64(m.GetConsumerId()), RequestId: proto.Uint64(m.GetRequestId())}
	if err != nil {
		resp.Error, resp.Message = pulsarError(err).Enum(), proto.String(err.Error())
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_ACK_RESPONSE.Enum(), AckResponse: resp})
}

// entryIDs converts acknowledged ids; an id whose ack set still has bits
// set acknowledges part of a batch (batch-index acknowledgement), one with
// an all-clear set the whole entry.
func entryIDs(ids []*pulsarpb.MessageIdData) []*clientpb.MessageId {
	out := make([]*clientpb.MessageId, len(ids))
	for i, id := range ids {
		out[i] = fromPulsarID(id)
		if set := id.GetAckSet(); !ackSetEmpty(set) {
			out[i].AckSet = set
		}
	}
	return out
}

// ackSetEmpty reports whether no bit is set: every message of the batch is
// acknowledged.
func ackSetEmpty(words []int64) bool {
	for _, w := range words {
		if w != 0 {
			return false
		}
	}
	return true
}

func (pc *pulsarConn) seek(m *pulsarpb.CommandSeek) {
	pcs := pc.consumer(m.GetConsumerId())
	if pcs == nil {
		pc.replyError(m.GetRequestId(), pulsarpb.ServerError_ConsumerNotFound, fmt.Sprintf("no consumer %d on this connection", m.GetConsumerId()))
		return
	}
	req := &clientpb.Seek{RequestId: m.GetRequestId()}
	switch {
	case m.MessageId != nil:
		req.Target = &clientpb.Seek_MessageId{MessageId: fromPulsarID(m.GetMessageId())}
	case m.MessagePublishTime != nil:
		if m.GetMessagePublishTime() > math.MaxInt64 {
			pc.replyError(m.GetRequestId(), pulsarpb.ServerError_NotAllowedError, "publish time out of range")
			return
		}
		req.Target = &clientpb.Seek_PublishTime{PublishTime: int64(m.GetMessagePublishTime())}
	default:
		pc.replyError(m.GetRequestId(), pulsarpb.ServerError_NotAllowedError, "seek without a message id or a publish time")
		return
	}
	if err := pcs.sub.seek(pc.ctx, pcs.c, req); err != nil {
		pc.replyErr(m.GetRequestId(), err)
		return
	}
	if !pcs.sub.durable {
		pc.mu.Lock()
		pc.mu.resume[pcs.id] = pcs.sub.cursor.ReadPosition()
		pc.mu.Unlock()
	}
	// As Pulsar's broker does, the seeking consumer is disconnected too:
	// the client subscribes again from the new position, with its permits
	// counted afresh.
	pc.success(m.GetRequestId())
	pc.kickConsumer(pcs)
}

func (pc *pulsarConn) lastMessageID(m *pulsarpb.CommandGetLastMessageId) {
	pcs := pc.consumer(m.GetConsumerId())
	if pcs == nil {
		pc.replyError(m.GetRequestId(), pulsarpb.ServerError_ConsumerNotFound, fmt.Sprintf("no consumer %d on this connection", m.GetConsumerId()))
		return
	}
	id := pcs.sub.t.lastMessageID(pc.ctx)
	last := toPulsarID(id)
	last.BatchIndex = proto.Int32(id.BatchIndex)
	if id.Partition >= 0 {
		last.Partition = proto.Int32(id.Partition)
	}
	resp := &pulsarpb.CommandGetLastMessageIdResponse{RequestId: proto.Uint64(m.GetRequestId()), LastMessageId: last}
	if md := pcs.sub.cursor.MarkDeletePosition(); md.LedgerID >= 0 {
		resp.ConsumerMarkDeletePosition = &pulsarpb.MessageIdData{LedgerId: proto.Uint64(uint64(md.LedgerID)), EntryId: proto.Uint64(uint64(md.EntryID))}
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_GET_LAST_MESSAGE_ID_RESPONSE.Enum(), GetLastMessageIdResponse: resp})
}

func (pc *pulsarConn) unsubscribe(m *pulsarpb.CommandUnsubscribe) {
	pcs := pc.consumer(m.GetConsumerId())
	if pcs == nil {
		pc.replyError(m.GetRequestId(), pulsarpb.ServerError_ConsumerNotFound, fmt.Sprintf("no consumer %d on this connection", m.GetConsumerId()))
		return
	}
	if err := pcs.sub.unsubscribe(pc.ctx, pcs.c); err != nil {
		pc.replyErr(m.GetRequestId(), err)
		return
	}
	pc.dropConsumer(pcs.id, pcs)
	pc.success(m.GetRequestId())
}

func (pc *pulsarConn) closeConsumer(m *pulsarpb.CommandCloseConsumer) {
	pc.dropConsumer(m.GetConsumerId(), nil)
	pc.success(m.GetRequestId())
}
