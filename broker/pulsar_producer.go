package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/ledger/managed"
)

// Producers over Pulsar's protocol: PRODUCER, SEND, CLOSE_PRODUCER.

func (pc *pulsarConn) producer(m *pulsarpb.CommandProducer) {
	reqID := m.GetRequestId()
	pc.mu.Lock()
	existing := pc.mu.producers[m.GetProducerId()]
	_, waiting := pc.mu.waiting[m.GetProducerId()]
	pc.mu.Unlock()
	if waiting {
		pc.replyError(reqID, pulsarpb.ServerError_ProducerBusy, fmt.Sprintf("producer id %d is waiting for exclusive access", m.GetProducerId()))
		return
	}
	if existing == nil && !pc.room() {
		pc.replyError(reqID, pulsarpb.ServerError_NotAllowedError, pc.roomMessage())
		return
	}
	if existing != nil {
		// The client attached again without closing (as Pulsar's broker
		// does, the producer it has is confirmed).
		if existing.p.t.name.String() != canonicalTopic(m.GetTopic()) {
			pc.replyError(reqID, pulsarpb.ServerError_ProducerBusy, fmt.Sprintf("producer id %d is in use on this connection", m.GetProducerId()))
			return
		}
		pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: &pulsarpb.CommandProducerSuccess{
			RequestId: proto.Uint64(reqID), ProducerName: proto.String(existing.p.name),
			LastSequenceId: proto.Int64(existing.p.t.dedup.lastSequence(existing.p.name)), SchemaVersion: existing.schemaVersion,
		}})
		return
	}
	open := &clientpb.ProducerOpen{Topic: m.GetTopic(), Metadata: kvMap(m.GetMetadata()), Schema: wireSchema(m.GetSchema())}
	if m.GetUserProvidedProducerName() {
		open.ProducerName = m.GetProducerName()
	}
	wait := false
	switch m.GetProducerAccessMode() {
	case pulsarpb.ProducerAccessMode_Shared:
	case pulsarpb.ProducerAccessMode_Exclusive:
		open.AccessMode = clientpb.ProducerAccessMode_ACCESS_EXCLUSIVE
	case pulsarpb.ProducerAccessMode_ExclusiveWithFencing:
		open.AccessMode = clientpb.ProducerAccessMode_ACCESS_EXCLUSIVE_WITH_FENCING
	case pulsarpb.ProducerAccessMode_WaitForExclusive:
		open.AccessMode, wait = clientpb.ProducerAccessMode_ACCESS_EXCLUSIVE, true
	default:
		pc.replyError(reqID, pulsarpb.ServerError_NotAllowedError, fmt.Sprintf("producer access mode %s is not supported", m.GetProducerAccessMode()))
		return
	}
	t, p, version, err := pc.b.openProducer(pc.ctx, open, pc.conn())
	if wait && errors.Is(err, ErrProducerBusy) {
		pc.waitForExclusive(m, open)
		return
	}
	if err != nil {
		if open.AccessMode == clientpb.ProducerAccessMode_ACCESS_EXCLUSIVE && errors.Is(err, ErrProducerBusy) {
			// Pulsar's name for an exclusive producer that cannot have
			// the topic to itself.
			pc.replyError(reqID, pulsarpb.ServerError_ProducerFenced, err.Error())
			return
		}
		pc.replyErr(reqID, err)
		return
	}
	pc.attachProducer(m, t, p, version)
}

// attachProducer finishes a PRODUCER whose producer joined its topic (with
// its schema's version): the initial subscription, then PRODUCER_SUCCESS
// and the producer's goroutines.
func (pc *pulsarConn) attachProducer(m *pulsarpb.CommandProducer, t *Topic, p *Producer, version []byte) {
	reqID := m.GetRequestId()
	if name := m.GetInitialSubscriptionName(); name != "" {
		if err := pc.b.initialSubscription(pc.ctx, t, name, pc.role); err != nil {
			t.removeProducer(p)
			pc.replyErr(reqID, err)
			return
		}
	}
	pp := &pulsarProducer{id: m.GetProducerId(), p: p, schemaVersion: version, done: make(chan struct{})}
	pc.mu.Lock()
	pc.mu.producers[pp.id] = pp
	pc.mu.Unlock()
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: &pulsarpb.CommandProducerSuccess{
		RequestId: proto.Uint64(reqID), ProducerName: proto.String(p.name), LastSequenceId: proto.Int64(t.dedup.lastSequence(p.name)),
		SchemaVersion: version,
	}})
	pc.wg.Add(2)
	go func() {
		defer pc.wg.Done()
		p.out.run(pp.done, func(r *clientpb.ProduceResponse) error { return pc.write(pp.produceResponse(r), nil) })
	}()
	go func() {
		defer pc.wg.Done()
		select {
		case err := <-p.killed:
			// The topic moved or closed: the client looks it up again.
			pc.log.Debug("closing pulsar producer", "topic", t.name, "producer", p.name, "reason", err)
			if pc.dropProducer(pp.id, pp) {
				pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_CLOSE_PRODUCER.Enum(), CloseProducer: &pulsarpb.CommandCloseProducer{
					ProducerId: proto.Uint64(pp.id), RequestId: proto.Uint64(pulsarCloseRequestID)}})
			}
		case <-pp.done:
		}
	}()
}

// exclusiveRetry is how often a WaitForExclusive producer tries again.
const exclusiveRetry = 100 * time.Millisecond

// waitForExclusive answers a WaitForExclusive producer that cannot have
// its topic yet with PRODUCER_SUCCESS not ready, then keeps trying; once it
// has the topic a second PRODUCER_SUCCESS (the same request id) says it is
// ready. CLOSE_PRODUCER or the connection's end stops the wait.
func (pc *pulsarConn) waitForExclusive(m *pulsarpb.CommandProducer, open *clientpb.ProducerOpen) {
	id, reqID := m.GetProducerId(), m.GetRequestId()
	cancel := make(chan struct{})
	pc.mu.Lock()
	pc.mu.waiting[id] = cancel
	pc.mu.Unlock()
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: &pulsarpb.CommandProducerSuccess{
		RequestId: proto.Uint64(reqID), ProducerName: proto.String(open.ProducerName), ProducerReady: proto.Bool(false)}})
	pc.wg.Add(1)
	go func() {
		defer pc.wg.Done()
		tick := time.NewTicker(exclusiveRetry)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
			case <-cancel:
				return
			case <-pc.ctx.Done():
				return
			}
			t, p, version, err := pc.b.openProducer(pc.ctx, open, pc.conn())
			if errors.Is(err, ErrProducerBusy) {
				continue
			}
			pc.mu.Lock()
			still := pc.mu.waiting[id] == cancel
			delete(pc.mu.waiting, id)
			pc.mu.Unlock()
			switch {
			case !still: // closed meanwhile
				if err == nil {
					t.removeProducer(p)
				}
			case err != nil:
				pc.replyErr(reqID, err)
			default:
				pc.attachProducer(m, t, p, version)
			}
			return
		}
	}()
}

// openProducer checks a producer's permission, attaches it to its topic
// and registers the schema it declares (open.Schema), returning the
// schema's version (nil without one). gRPC and Pulsar producers both come
// through here.
func (b *Broker) openProducer(ctx context.Context, open *clientpb.ProducerOpen, cc clientConn) (*Topic, *Producer, []byte, error) {
	name, err := naming.ParseTopic(open.Topic)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := b.authz.CanProduce(ctx, cc.role, name); err != nil {
		return nil, nil, nil, err
	}
	t, err := b.getTopic(ctx, name)
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := t.addProducer(open, cc)
	if err != nil {
		return nil, nil, nil, err
	}
	if isReplicatorName(p.name) {
		// Another cluster's replicator: its entries are deduplicated by
		// their source position, whatever the policy.
		if err := t.dedup.load(ctx); err != nil {
			t.removeProducer(p)
			return nil, nil, nil, err
		}
	}
	version, err := b.schemaForProducer(ctx, name, grpcSchema(open.Schema))
	if err != nil {
		t.removeProducer(p)
		return nil, nil, nil, err
	}
	return t, p, version, nil
}

func (pp *pulsarProducer) produceResponse(r *clientpb.ProduceResponse) *pulsarpb.BaseCommand {
	switch x := r.Cmd.(type) {
	case *clientpb.ProduceResponse_Receipt:
		rc := x.Receipt
		return &pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_SEND_RECEIPT.Enum(), SendReceipt: &pulsarpb.CommandSendReceipt{
			ProducerId: proto.Uint64(pp.id), SequenceId: proto.Uint64(uint64(rc.SequenceId)),
			HighestSequenceId: proto.Uint64(uint64(max(rc.HighestSequenceId, rc.SequenceId))),
			MessageId:         &pulsarpb.MessageIdData{LedgerId: proto.Uint64(uint64(rc.MessageId.GetLedgerId())), EntryId: proto.Uint64(uint64(rc.MessageId.GetEntryId()))},
		}}
	case *clientpb.ProduceResponse_SendError:
		se := x.SendError
		return &pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_SEND_ERROR.Enum(), SendError: &pulsarpb.CommandSendError{
			ProducerId: proto.Uint64(pp.id), SequenceId: proto.Uint64(uint64(se.SequenceId)),
			Error: pulsarCode(se.Error).Enum(), Message: proto.String(se.Message),
		}}
	}
	panic(fmt.Sprintf("unexpected produce response %T", r.Cmd))
}

func (pc *pulsarConn) send(m *pulsarpb.CommandSend, entry []byte) error {
	pc.mu.Lock()
	pp := pc.mu.producers[m.GetProducerId()]
	pc.mu.Unlock()
	if pp == nil {
		// A producer the broker closed: the client sends again once it
		// re-attached, so nothing is answered.
		return nil
	}
	if m.GetTxnidMostBits() != 0 || m.GetTxnidLeastBits() != 0 {
		pc.reply(pp.produceResponse(&clientpb.ProduceResponse{Cmd: &clientpb.ProduceResponse_SendError{SendError: &clientpb.SendError{
			SequenceId: int64(m.GetSequenceId()), Error: clientpb.ServerError_NOT_ALLOWED, Message: "transactions are not supported"}}}))
		return nil
	}
	p := pp.p
	// Like Pulsar's broker, stop reading the connection while the producer
	// has its share of sends pending or the publish buffer is full.
	for room := p.readyForSend(); room != nil; room = p.readyForSend() {
		select {
		case <-room:
		case <-pp.done:
			return nil
		case <-pc.ctx.Done():
			return pc.ctx.Err()
		}
	}
	seq := int64(m.GetSequenceId())
	highest := max(int64(m.GetHighestSequenceId()), seq)
	return p.publish(pc.ctx, &clientpb.Send{SequenceId: seq, HighestSequenceId: highest, NumMessages: m.GetNumMessages(), Entry: entry})
}

// dropProducer forgets producer id if it is still pp and detaches it from
// its topic; false if it was already gone.
func (pc *pulsarConn) dropProducer(id uint64, pp *pulsarProducer) bool {
	pc.mu.Lock()
	cur, ok := pc.mu.producers[id]
	if ok && (pp == nil || cur == pp) {
		delete(pc.mu.producers, id)
	} else {
		ok = false
	}
	pc.mu.Unlock()
	if ok {
		cur.p.t.removeProducer(cur.p)
		close(cur.done)
	}
	return ok
}

func (pc *pulsarConn) closeProducer(m *pulsarpb.CommandCloseProducer) {
	pc.mu.Lock()
	if cancel, ok := pc.mu.waiting[m.GetProducerId()]; ok {
		delete(pc.mu.waiting, m.GetProducerId())
		close(cancel)
	}
	pc.mu.Unlock()
	pc.dropProducer(m.GetProducerId(), nil)
	pc.success(m.GetRequestId())
}

// initialSubscription creates a producer's initial subscription (Pulsar's
// initial_subscription_name, which dead-letter producers use so that
// nothing sent before a consumer comes is lost) unless it exists. The
// producer's role must be allowed to consume with it.
func (b *Broker) initialSubscription(ctx context.Context, t *Topic, name, role string) error {
	if err := validSubscription(name); err != nil {
		return err
	}
	if err := b.authz.CanConsume(ctx, role, t.name, name); err != nil {
		return err
	}
	t.mu.Lock()
	_, exists := t.mu.subs[name]
	t.mu.Unlock()
	if exists {
		return nil
	}
	if err := t.checkSubscriptionLimit(); err != nil {
		return err
	}
	_, err := t.ml.OpenCursor(ctx, name, managed.Latest)
	return err
}
