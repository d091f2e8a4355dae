package broker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/pulsarwire"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/schema"
)

// Pulsar's binary protocol, served on the client port beside gRPC (see
// listen.go): each connection carries any number of producers and consumers
// named by client-chosen ids. They are the broker's own producers and
// consumers, the ones the gRPC streams use, so both protocols share one
// storage format (the entry a Pulsar SEND carries is what is stored and what
// a MESSAGE hands back) and one set of rules.

// pulsarProtocolVersion is the highest protocol version announced.
const pulsarProtocolVersion = 20

// pulsarIdleTimeout closes a connection that sent nothing for this long
// (clients ping every 30 s).
const pulsarIdleTimeout = 90 * time.Second

// pulsarWriteTimeout bounds one write to a client that stopped reading.
const pulsarWriteTimeout = time.Minute

// pulsarCloseRequestID is the request id of closes the broker starts (the
// field is required; clients ignore it).
const pulsarCloseRequestID = math.MaxUint64

type pulsarConn struct {
	b      *Broker
	nc     net.Conn
	r      *bufio.Reader
	log    *slog.Logger
	tls    bool
	ctx    context.Context
	cancel context.CancelFunc
	role   string
	// version is the client library and version CONNECT named.
	version string

	wmu  sync.Mutex
	wbuf []byte

	mu struct {
		sync.Mutex
		producers map[uint64]*pulsarProducer
		consumers map[uint64]*pulsarConsumer
		// resume: where a reader that seeked continues when its client
		// subscribes again (by consumer id). Seeking closes the consumer,
		// and with it the reader's cursor; the client comes back with the
		// start id it had, which after a seek by time is the wrong one.
		resume map[uint64]managed.Position
	}
	wg sync.WaitGroup
}

type pulsarProducer struct {
	id            uint64
	p             *Producer
	schemaVersion []byte
	done          chan struct{}
}

type pulsarConsumer struct {
	id   uint64
	c    *Consumer
	sub  *Subscription
	done chan struct{}
}

// servePulsar runs one Pulsar client connection until it ends.
func (b *Broker) servePulsar(nc net.Conn, r *bufio.Reader, tls bool) {
	ctx, cancel := context.WithCancel(b.ctx)
	pc := &pulsarConn{b: b, nc: nc, r: r, tls: tls, ctx: ctx, cancel: cancel,
		log: b.log.With("client", nc.RemoteAddr().String(), "protocol", "pulsar")}
	pc.mu.producers = map[uint64]*pulsarProducer{}
	pc.mu.consumers = map[uint64]*pulsarConsumer{}
	pc.mu.resume = map[uint64]managed.Position{}
	if !b.trackConn(nc) {
		nc.Close()
		return
	}
	defer b.untrackConn(nc)
	err := pc.run()
	cancel()
	nc.Close()
	pc.closeAll()
	pc.wg.Wait()
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		pc.log.Debug("pulsar connection closed")
	default:
		pc.log.Warn("pulsar connection closed", "reason", err)
	}
}

func (pc *pulsarConn) conn() clientConn {
	return clientConn{role: pc.role, address: pc.nc.RemoteAddr().String(), version: pc.version}
}

// room reports whether the connection may open one more producer or
// consumer: as many as a gRPC connection may have streams
// (--max-concurrent-streams-per-connection).
func (pc *pulsarConn) room() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return len(pc.mu.producers)+len(pc.mu.consumers) < pc.b.opts.MaxConcurrentStreamsPerConnection
}

func (pc *pulsarConn) roomMessage() string {
	return fmt.Sprintf("this connection has %d producers and consumers open, the most one connection may have (--max-concurrent-streams-per-connection)",
		pc.b.opts.MaxConcurrentStreamsPerConnection)
}

func (pc *pulsarConn) maxFrame() int {
	return maxEntrySize(pc.b.opts.MaxMessageSize) + pulsarwire.FrameOverhead
}

func (pc *pulsarConn) read() (pulsarwire.Frame, error) {
	pc.nc.SetReadDeadline(time.Now().Add(pulsarIdleTimeout))
	return pulsarwire.Read(pc.r, pc.maxFrame())
}

// write sends one frame; writers on other goroutines wait their turn.
func (pc *pulsarConn) write(cmd *pulsarpb.BaseCommand, entry []byte) error {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	buf, err := pulsarwire.Append(pc.wbuf[:0], cmd, entry)
	if err != nil {
		return err
	}
	pc.wbuf = buf
	if cap(pc.wbuf) > 1<<20 {
		pc.wbuf = nil // do not keep a large message's buffer
	}
	pc.nc.SetWriteDeadline(time.Now().Add(pulsarWriteTimeout))
	if _, err := pc.nc.Write(buf); err != nil {
		pc.cancel()
		pc.nc.Close()
		return err
	}
	return nil
}

// reply writes a response; a failed write ends the connection (the read
// loop sees it closed).
func (pc *pulsarConn) reply(cmd *pulsarpb.BaseCommand) {
	if err := pc.write(cmd, nil); err != nil {
		pc.log.Debug("pulsar write failed", "err", err)
	}
}

func (pc *pulsarConn) run() error {
	first, err := pc.read()
	if err != nil {
		return err
	}
	if err := pc.connect(first.Cmd); err != nil {
		return err
	}
	for {
		f, err := pc.read()
		if err != nil {
			return err
		}
		if err := pc.handle(f); err != nil {
			return err
		}
	}
}

// connect answers the CONNECT that must open the connection.
func (pc *pulsarConn) connect(cmd *pulsarpb.BaseCommand) error {
	c := cmd.GetConnect()
	if c == nil {
		return fmt.Errorf("%w: the first command is %s, not CONNECT", pulsarwire.ErrMalformed, cmd.GetType())
	}
	if c.GetProxyToBrokerUrl() != "" || c.GetOriginalPrincipal() != "" {
		pc.replyError(0, pulsarpb.ServerError_NotAllowedError, "connections through a proxy are not supported")
		return errors.New("client asked for a proxied connection")
	}
	if auth := pc.b.opts.Authentication; auth != nil {
		if m := c.GetAuthMethodName(); m != "token" {
			pc.replyError(0, pulsarpb.ServerError_AuthenticationError, fmt.Sprintf("authentication method %q is not supported; use token", m))
			return fmt.Errorf("authentication method %q", m)
		}
		role, err := auth.Authenticate(string(c.GetAuthData()))
		if err != nil {
			pc.replyError(0, pulsarpb.ServerError_AuthenticationError, err.Error())
			return fmt.Errorf("authentication failed: %w", err)
		}
		pc.role = role
	}
	pc.version = c.GetClientVersion()
	pc.log = pc.log.With("clientVersion", pc.version)
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_CONNECTED.Enum(), Connected: &pulsarpb.CommandConnected{
		ServerVersion:   proto.String("Strata"),
		ProtocolVersion: proto.Int32(min(c.GetProtocolVersion(), pulsarProtocolVersion)),
		MaxMessageSize:  proto.Int32(int32(min(pc.b.opts.MaxMessageSize, math.MaxInt32))),
	}})
	return nil
}

func (pc *pulsarConn) replyError(reqID uint64, code pulsarpb.ServerError, msg string) {
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_ERROR.Enum(), Error: &pulsarpb.CommandError{
		RequestId: proto.Uint64(reqID), Error: code.Enum(), Message: proto.String(msg)}})
}

func (pc *pulsarConn) replyErr(reqID uint64, err error) {
	pc.replyError(reqID, pulsarError(err), err.Error())
}

func (pc *pulsarConn) success(reqID uint64) {
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_SUCCESS.Enum(), Success: &pulsarpb.CommandSuccess{RequestId: proto.Uint64(reqID)}})
}

// handle runs one command. An error ends the connection.
func (pc *pulsarConn) handle(f pulsarwire.Frame) error {
	cmd := f.Cmd
	switch cmd.GetType() {
	case pulsarpb.BaseCommand_PING:
		pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PONG.Enum(), Pong: &pulsarpb.CommandPong{}})
	case pulsarpb.BaseCommand_PONG:
	case pulsarpb.BaseCommand_PARTITIONED_METADATA:
		pc.partitionedMetadata(cmd.GetPartitionMetadata())
	case pulsarpb.BaseCommand_LOOKUP:
		pc.lookup(cmd.GetLookupTopic())
	case pulsarpb.BaseCommand_PRODUCER:
		pc.producer(cmd.GetProducer())
	case pulsarpb.BaseCommand_SEND:
		return pc.send(cmd.GetSend(), f.Entry)
	case pulsarpb.BaseCommand_CLOSE_PRODUCER:
		pc.closeProducer(cmd.GetCloseProducer())
	case pulsarpb.BaseCommand_SUBSCRIBE:
		pc.subscribe(cmd.GetSubscribe())
	case pulsarpb.BaseCommand_FLOW:
		if c := pc.consumer(cmd.GetFlow().GetConsumerId()); c != nil {
			c.sub.flow(c.c, cmd.GetFlow().GetMessagePermits())
		}
	case pulsarpb.BaseCommand_ACK:
		pc.ack(cmd.GetAck())
	case pulsarpb.BaseCommand_REDELIVER_UNACKNOWLEDGED_MESSAGES:
		r := cmd.GetRedeliverUnacknowledgedMessages()
		if c := pc.consumer(r.GetConsumerId()); c != nil {
			c.sub.redeliver(c.c, fromPulsarIDs(r.GetMessageIds()))
		}
	case pulsarpb.BaseCommand_SEEK:
		pc.seek(cmd.GetSeek())
	case pulsarpb.BaseCommand_GET_LAST_MESSAGE_ID:
		pc.lastMessageID(cmd.GetGetLastMessageId())
	case pulsarpb.BaseCommand_UNSUBSCRIBE:
		pc.unsubscribe(cmd.GetUnsubscribe())
	case pulsarpb.BaseCommand_CLOSE_CONSUMER:
		pc.closeConsumer(cmd.GetCloseConsumer())
	case pulsarpb.BaseCommand_GET_TOPICS_OF_NAMESPACE:
		pc.topicsOfNamespace(cmd.GetGetTopicsOfNamespace())
	case pulsarpb.BaseCommand_GET_SCHEMA:
		pc.getSchema(cmd.GetGetSchema())
	case pulsarpb.BaseCommand_GET_OR_CREATE_SCHEMA:
		pc.getOrCreateSchema(cmd.GetGetOrCreateSchema())
	default:
		return fmt.Errorf("%w: unsupported command %s", pulsarwire.ErrMalformed, cmd.GetType())
	}
	return nil
}

func (pc *pulsarConn) topicName(s string) (naming.Topic, error) {
	t, err := naming.ParseTopic(s)
	if err != nil {
		return naming.Topic{}, fmt.Errorf("%w: %v", naming.ErrInvalidName, err)
	}
	return t, nil
}

func (pc *pulsarConn) partitionedMetadata(m *pulsarpb.CommandPartitionedTopicMetadata) {
	resp := &pulsarpb.CommandPartitionedTopicMetadataResponse{RequestId: proto.Uint64(m.GetRequestId())}
	t, err := pc.topicName(m.GetTopic())
	n := 0
	if err == nil {
		n, err = pc.b.partitions(pc.ctx, pc.role, t)
	}
	if err != nil {
		resp.Response = pulsarpb.CommandPartitionedTopicMetadataResponse_Failed.Enum()
		resp.Error, resp.Message = pulsarError(err).Enum(), proto.String(err.Error())
	} else {
		resp.Response = pulsarpb.CommandPartitionedTopicMetadataResponse_Success.Enum()
		resp.Partitions = proto.Uint32(uint32(n))
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PARTITIONED_METADATA_RESPONSE.Enum(), PartitionMetadataResponse: resp})
}

// pulsarURLs returns a broker's Pulsar service URLs (plain and TLS) from
// its gRPC address: both protocols share the port.
func pulsarURLs(grpcAddr string, tls bool) (plain, secure string) {
	if tls {
		return "", "pulsar+ssl://" + grpcAddr
	}
	return "pulsar://" + grpcAddr, ""
}

// hostPort returns the host:port of a pulsar:// or pulsar+ssl:// URL (a
// bare host:port as is).
func hostPort(u string) string {
	for _, scheme := range []string{"pulsar://", "pulsar+ssl://"} {
		if strings.HasPrefix(u, scheme) {
			return strings.TrimSuffix(u[len(scheme):], "/")
		}
	}
	return u
}

func (pc *pulsarConn) lookup(m *pulsarpb.CommandLookupTopic) {
	resp := &pulsarpb.CommandLookupTopicResponse{RequestId: proto.Uint64(m.GetRequestId())}
	t, err := pc.topicName(m.GetTopic())
	if err == nil {
		err = pc.b.authz.CanLookup(pc.ctx, pc.role, t)
	}
	var bi brokerInfo
	var redirect bool
	if err == nil {
		bi, redirect, err = pc.b.lookup(pc.ctx, t, m.GetAuthoritative())
	}
	if err != nil {
		resp.Response = pulsarpb.CommandLookupTopicResponse_Failed.Enum()
		resp.Error, resp.Message = pulsarError(err).Enum(), proto.String(err.Error())
	} else {
		plain, secure := pulsarURLs(bi.GRPCURL, pc.b.opts.TLS != nil)
		if plain != "" {
			resp.BrokerServiceUrl = proto.String(plain)
		}
		if secure != "" {
			resp.BrokerServiceUrlTls = proto.String(secure)
		}
		resp.Response = pulsarpb.CommandLookupTopicResponse_Connect.Enum()
		resp.Authoritative = proto.Bool(true)
		if redirect {
			resp.Response = pulsarpb.CommandLookupTopicResponse_Redirect.Enum()
		}
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: resp})
}

func (pc *pulsarConn) producer(m *pulsarpb.CommandProducer) {
	reqID := m.GetRequestId()
	pc.mu.Lock()
	existing := pc.mu.producers[m.GetProducerId()]
	pc.mu.Unlock()
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
	declared, err := wireSchema(m.GetSchema())
	if err != nil {
		pc.replyErr(reqID, err)
		return
	}
	open := &clientpb.ProducerOpen{Topic: m.GetTopic(), Metadata: kvMap(m.GetMetadata())}
	if m.GetUserProvidedProducerName() {
		open.ProducerName = m.GetProducerName()
	}
	switch m.GetProducerAccessMode() {
	case pulsarpb.ProducerAccessMode_Shared:
	case pulsarpb.ProducerAccessMode_Exclusive:
		open.AccessMode = clientpb.ProducerAccessMode_ACCESS_EXCLUSIVE
	default:
		pc.replyError(reqID, pulsarpb.ServerError_NotAllowedError, fmt.Sprintf("producer access mode %s is not supported", m.GetProducerAccessMode()))
		return
	}
	t, p, err := pc.b.openProducer(pc.ctx, open, pc.conn())
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
	version, err := pc.b.schemaForProducer(pc.ctx, t.name, declared)
	if err == nil && m.GetInitialSubscriptionName() != "" {
		err = pc.b.initialSubscription(pc.ctx, t, m.GetInitialSubscriptionName(), pc.role)
	}
	if err != nil {
		t.removeProducer(p)
		pc.replyErr(reqID, err)
		return
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

// openProducer checks a producer's permission and attaches it to its topic.
func (b *Broker) openProducer(ctx context.Context, open *clientpb.ProducerOpen, cc clientConn) (*Topic, *Producer, error) {
	name, err := naming.ParseTopic(open.Topic)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", naming.ErrInvalidName, err)
	}
	if err := b.authz.CanProduce(ctx, cc.role, name); err != nil {
		return nil, nil, err
	}
	t, err := b.getTopic(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	p, err := t.addProducer(open, cc)
	if err != nil {
		return nil, nil, err
	}
	if isReplicatorName(p.name) {
		if err := t.dedup.load(ctx); err != nil {
			t.removeProducer(p)
			return nil, nil, err
		}
	}
	return t, p, nil
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
	t := p.t
	n := max(m.GetNumMessages(), 1)
	err := t.admitSend(pc.ctx, pc.b.opts.BacklogQuotaHoldTimeout)
	if err == nil {
		err = t.throttlePublish(pc.ctx, int(n), len(entry))
	}
	if pc.ctx.Err() != nil {
		return pc.ctx.Err()
	}
	seq := int64(m.GetSequenceId())
	highest := int64(m.GetHighestSequenceId())
	if highest < seq {
		highest = seq
	}
	p.send(&clientpb.Send{SequenceId: seq, HighestSequenceId: highest, NumMessages: n, Entry: entry}, err)
	return nil
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
	pc.dropProducer(m.GetProducerId(), nil)
	pc.success(m.GetRequestId())
}

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
		ReplicateSubscriptionState: m.GetReplicateSubscriptionState(),
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
	declared, err := wireSchema(m.GetSchema())
	if err != nil {
		pc.replyErr(reqID, err)
		return
	}
	t, sub, c, err := pc.b.openConsumer(pc.ctx, req, pc.conn())
	if err != nil {
		pc.replyErr(reqID, err)
		return
	}
	if declared != nil {
		if err := pc.b.checkConsumerSchema(pc.ctx, t.name, *declared); err != nil {
			sub.removeConsumer(c)
			pc.replyErr(reqID, err)
			return
		}
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

// openConsumer checks a consumer's permission and attaches it to its
// subscription.
func (b *Broker) openConsumer(ctx context.Context, req *clientpb.Subscribe, cc clientConn) (*Topic, *Subscription, *Consumer, error) {
	name, err := naming.ParseTopic(req.Topic)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", naming.ErrInvalidName, err)
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

func (pc *pulsarConn) topicsOfNamespace(m *pulsarpb.CommandGetTopicsOfNamespace) {
	ns, err := naming.ParseNamespace(m.GetNamespace())
	var topics []string
	if err == nil {
		err = pc.b.authz.CanListTopics(pc.ctx, pc.role, ns)
	}
	if err == nil && m.GetMode() != pulsarpb.CommandGetTopicsOfNamespace_NON_PERSISTENT {
		topics, err = pc.b.ListTopics(pc.ctx, ns)
	}
	if err != nil {
		pc.replyErr(m.GetRequestId(), err)
		return
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_GET_TOPICS_OF_NAMESPACE_RESPONSE.Enum(), GetTopicsOfNamespaceResponse: &pulsarpb.CommandGetTopicsOfNamespaceResponse{
		RequestId: proto.Uint64(m.GetRequestId()), Topics: topics, Filtered: proto.Bool(false), Changed: proto.Bool(true)}})
}

// closeAll detaches every producer and consumer of a closed connection.
func (pc *pulsarConn) closeAll() {
	pc.mu.Lock()
	var pids, cids []uint64
	for id := range pc.mu.producers {
		pids = append(pids, id)
	}
	for id := range pc.mu.consumers {
		cids = append(cids, id)
	}
	pc.mu.Unlock()
	for _, id := range pids {
		pc.dropProducer(id, nil)
	}
	for _, id := range cids {
		pc.dropConsumer(id, nil)
	}
}

func kvMap(kvs []*pulsarpb.KeyValue) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

// fromPulsarID converts a wire id: ledger and entry are unsigned on the
// wire, with 2^64-1 for -1.
func fromPulsarID(id *pulsarpb.MessageIdData) *clientpb.MessageId {
	out := &clientpb.MessageId{LedgerId: int64(id.GetLedgerId()), EntryId: int64(id.GetEntryId()), BatchIndex: id.GetBatchIndex(), Partition: id.GetPartition(), BatchSize: id.GetBatchSize()}
	return out
}

func fromPulsarIDs(ids []*pulsarpb.MessageIdData) []*clientpb.MessageId {
	out := make([]*clientpb.MessageId, len(ids))
	for i, id := range ids {
		out[i] = fromPulsarID(id)
	}
	return out
}

func toPulsarID(id *clientpb.MessageId) *pulsarpb.MessageIdData {
	return &pulsarpb.MessageIdData{LedgerId: proto.Uint64(uint64(id.GetLedgerId())), EntryId: proto.Uint64(uint64(id.GetEntryId()))}
}

// pulsarError maps a broker error to the code Pulsar clients act on.
func pulsarError(err error) pulsarpb.ServerError {
	switch {
	case errors.Is(err, tenants.ErrNotFound), errors.Is(err, schema.ErrNotFound):
		return pulsarpb.ServerError_TopicNotFound
	case errors.Is(err, errSchemaRefused), errors.Is(err, schema.ErrIncompatible), errors.Is(err, schema.ErrInvalid):
		return pulsarpb.ServerError_IncompatibleSchema
	}
	return pulsarCode(serverError(err))
}

func pulsarCode(e clientpb.ServerError) pulsarpb.ServerError {
	switch e {
	case clientpb.ServerError_METADATA_ERROR:
		return pulsarpb.ServerError_MetadataError
	case clientpb.ServerError_PERSISTENCE_ERROR:
		return pulsarpb.ServerError_PersistenceError
	case clientpb.ServerError_AUTHENTICATION_ERROR:
		return pulsarpb.ServerError_AuthenticationError
	case clientpb.ServerError_AUTHORIZATION_ERROR:
		return pulsarpb.ServerError_AuthorizationError
	case clientpb.ServerError_CONSUMER_BUSY:
		return pulsarpb.ServerError_ConsumerBusy
	case clientpb.ServerError_SERVICE_NOT_READY, clientpb.ServerError_TOPIC_MOVED:
		// Pulsar clients look the topic up again and retry.
		return pulsarpb.ServerError_ServiceNotReady
	case clientpb.ServerError_PRODUCER_BLOCKED_QUOTA_EXCEEDED:
		return pulsarpb.ServerError_ProducerBlockedQuotaExceededError
	case clientpb.ServerError_CHECKSUM_ERROR:
		return pulsarpb.ServerError_ChecksumError
	case clientpb.ServerError_TOPIC_NOT_FOUND, clientpb.ServerError_NAMESPACE_NOT_FOUND:
		return pulsarpb.ServerError_TopicNotFound
	case clientpb.ServerError_SUBSCRIPTION_NOT_FOUND:
		return pulsarpb.ServerError_SubscriptionNotFound
	case clientpb.ServerError_CONSUMER_NOT_FOUND:
		return pulsarpb.ServerError_ConsumerNotFound
	case clientpb.ServerError_TOO_MANY_REQUESTS:
		return pulsarpb.ServerError_TooManyRequests
	case clientpb.ServerError_TOPIC_TERMINATED:
		return pulsarpb.ServerError_TopicTerminatedError
	case clientpb.ServerError_PRODUCER_BUSY:
		return pulsarpb.ServerError_ProducerBusy
	case clientpb.ServerError_INVALID_TOPIC_NAME:
		return pulsarpb.ServerError_InvalidTopicName
	case clientpb.ServerError_INCOMPATIBLE_SCHEMA:
		return pulsarpb.ServerError_IncompatibleSchema
	case clientpb.ServerError_NOT_ALLOWED, clientpb.ServerError_MESSAGE_TOO_LARGE, clientpb.ServerError_INVALID_MESSAGE,
		clientpb.ServerError_INVALID_MESSAGE_ID, clientpb.ServerError_BAD_REQUEST:
		return pulsarpb.ServerError_NotAllowedError
	}
	return pulsarpb.ServerError_UnknownError
}

// wireSchema converts a declared schema; nil for none (or type None: raw
// bytes).
func wireSchema(s *pulsarpb.Schema) (*schema.Schema, error) {
	if s == nil || s.GetType() == pulsarpb.Schema_None {
		return nil, nil
	}
	name, ok := schema.TypeName(int32(s.GetType()))
	if !ok {
		return nil, fmt.Errorf("%w: unknown schema type %d", errSchemaRefused, s.GetType())
	}
	return &schema.Schema{Type: name, Data: s.GetSchemaData(), Properties: kvMap(s.GetProperties())}, nil
}

// toWireSchema converts a stored version for GET_SCHEMA.
func toWireSchema(topic naming.Topic, v schema.Version) *pulsarpb.Schema {
	code, _ := schema.TypeCode(v.Type)
	out := &pulsarpb.Schema{Name: proto.String(topic.LocalName()), SchemaData: v.Data, Type: pulsarpb.Schema_Type(code).Enum()}
	if out.SchemaData == nil {
		out.SchemaData = []byte{}
	}
	for k, val := range v.Properties {
		out.Properties = append(out.Properties, &pulsarpb.KeyValue{Key: proto.String(k), Value: proto.String(val)})
	}
	return out
}

func (pc *pulsarConn) getSchema(g *pulsarpb.CommandGetSchema) {
	resp := &pulsarpb.CommandGetSchemaResponse{RequestId: proto.Uint64(g.GetRequestId())}
	t, err := pc.topicName(g.GetTopic())
	var v schema.Version
	if err == nil {
		err = pc.b.authz.CanLookup(pc.ctx, pc.role, t)
	}
	var version int64
	if err == nil {
		version, err = parseVersion(g.GetSchemaVersion())
	}
	if err == nil {
		if version < 0 {
			v, err = pc.b.schemas.Latest(pc.ctx, schemaTopic(t))
		} else {
			v, err = pc.b.schemas.Get(pc.ctx, schemaTopic(t), version)
		}
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = pulsarError(err).Enum(), proto.String(err.Error())
	} else {
		resp.Schema, resp.SchemaVersion = toWireSchema(t, v), versionBytes(v.Version)
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: resp})
}

func (pc *pulsarConn) getOrCreateSchema(g *pulsarpb.CommandGetOrCreateSchema) {
	resp := &pulsarpb.CommandGetOrCreateSchemaResponse{RequestId: proto.Uint64(g.GetRequestId())}
	t, err := pc.topicName(g.GetTopic())
	if err == nil {
		err = pc.b.authz.CanProduce(pc.ctx, pc.role, t)
	}
	var declared *schema.Schema
	if err == nil {
		declared, err = wireSchema(g.GetSchema())
	}
	var version []byte
	if err == nil {
		version, err = pc.b.schemaForProducer(pc.ctx, t, declared)
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = pulsarError(err).Enum(), proto.String(err.Error())
	} else {
		resp.SchemaVersion = version
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_GET_OR_CREATE_SCHEMA_RESPONSE.Enum(), GetOrCreateSchemaResponse: resp})
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

// canonicalTopic returns a topic's full name ("" if it does not parse).
func canonicalTopic(s string) string {
	t, err := naming.ParseTopic(s)
	if err != nil {
		return ""
	}
	return t.String()
}
