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
		// waiting: WaitForExclusive producers not attached yet, by id.
		waiting map[uint64]chan struct{}
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
func (b *Broker) servePulsar(nc net.Conn, r *bufio.Reader) {
	ctx, cancel := context.WithCancel(b.ctx)
	pc := &pulsarConn{b: b, nc: nc, r: r, ctx: ctx, cancel: cancel,
		log: b.log.With("client", nc.RemoteAddr().String(), "protocol", "pulsar")}
	pc.mu.producers = map[uint64]*pulsarProducer{}
	pc.mu.consumers = map[uint64]*pulsarConsumer{}
	pc.mu.resume = map[uint64]managed.Position{}
	pc.mu.waiting = map[uint64]chan struct{}{}
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
	return len(pc.mu.producers)+len(pc.mu.waiting)+len(pc.mu.consumers) < pc.b.opts.MaxConcurrentStreamsPerConnection
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

func (pc *pulsarConn) partitionedMetadata(m *pulsarpb.CommandPartitionedTopicMetadata) {
	resp := &pulsarpb.CommandPartitionedTopicMetadataResponse{RequestId: proto.Uint64(m.GetRequestId())}
	t, err := naming.ParseTopic(m.GetTopic())
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

// pulsarURL returns a broker's Pulsar service URL: its client port (both
// protocols share it), pulsar+ssl:// when TLS is on (then the only way in).
func (b *Broker) pulsarURL(bi brokerInfo) string {
	if b.opts.TLS != nil {
		return "pulsar+ssl://" + bi.GRPCURL
	}
	return "pulsar://" + bi.GRPCURL
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
	t, err := naming.ParseTopic(m.GetTopic())
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
		if u := pc.b.pulsarURL(bi); pc.b.opts.TLS != nil {
			resp.BrokerServiceUrlTls = proto.String(u)
		} else {
			resp.BrokerServiceUrl = proto.String(u)
		}
		resp.Response = pulsarpb.CommandLookupTopicResponse_Connect.Enum()
		resp.Authoritative = proto.Bool(true)
		if redirect {
			resp.Response = pulsarpb.CommandLookupTopicResponse_Redirect.Enum()
		}
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: resp})
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
	return &clientpb.MessageId{LedgerId: int64(id.GetLedgerId()), EntryId: int64(id.GetEntryId()), BatchIndex: id.GetBatchIndex(), Partition: id.GetPartition(), BatchSize: id.GetBatchSize()}
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

// canonicalTopic returns a topic's full name ("" if it does not parse).
func canonicalTopic(s string) string {
	t, err := naming.ParseTopic(s)
	if err != nil {
		return ""
	}
	return t.String()
}
