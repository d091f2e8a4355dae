package broker

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
)

type service struct {
	clientpb.UnimplementedBrokerServer
	b *Broker
}

func parseTopic(s string) (naming.Topic, error) {
	t, err := naming.ParseTopic(s)
	if err != nil {
		return naming.Topic{}, clientpb.Error(clientpb.ServerError_INVALID_TOPIC_NAME, "%v", err)
	}
	return t, nil
}

func (s *service) Lookup(ctx context.Context, req *clientpb.LookupRequest) (*clientpb.LookupResponse, error) {
	t, err := parseTopic(req.Topic)
	if err != nil {
		return nil, err
	}
	if err := s.b.authz.CanLookup(ctx, roleOf(ctx), t); err != nil {
		return nil, statusError(err)
	}
	bi, redirect, err := s.b.lookup(ctx, t, req.Authoritative)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &clientpb.LookupResponse{BrokerUrl: bi.GRPCURL, HttpUrl: bi.HTTPURL}
	if redirect {
		resp.Kind, resp.Authoritative = clientpb.LookupResponse_REDIRECT, true
	}
	return resp, nil
}

func (s *service) PartitionedMetadata(ctx context.Context, req *clientpb.PartitionedMetadataRequest) (*clientpb.PartitionedMetadataResponse, error) {
	t, err := parseTopic(req.Topic)
	if err != nil {
		return nil, err
	}
	n, err := s.b.partitions(ctx, roleOf(ctx), t)
	if err != nil {
		return nil, statusError(err)
	}
	return &clientpb.PartitionedMetadataResponse{Partitions: uint32(n)}, nil
}

// partitions returns how many partitions topic t has (0: not partitioned),
// for a role allowed to look it up.
func (b *Broker) partitions(ctx context.Context, role string, t naming.Topic) (int, error) {
	if !b.ready.Load() {
		return 0, ErrNotReady
	}
	if _, err := b.policies(t.NamespaceName()); err != nil {
		return 0, err
	}
	if err := b.authz.CanLookup(ctx, role, t); err != nil {
		return 0, err
	}
	pm, err := b.cfg.GetPartitionedTopic(ctx, t)
	if errors.Is(err, tenants.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return pm.Partitions, nil
}

func (s *service) LastMessageId(ctx context.Context, req *clientpb.LastMessageIdRequest) (*clientpb.LastMessageIdResponse, error) {
	t, err := parseTopic(req.Topic)
	if err != nil {
		return nil, err
	}
	if err := s.b.authz.CanConsume(ctx, roleOf(ctx), t, ""); err != nil {
		return nil, statusError(err)
	}
	topic, err := s.b.getTopic(ctx, t)
	if err != nil {
		return nil, statusError(err)
	}
	return &clientpb.LastMessageIdResponse{MessageId: topic.lastMessageID(ctx)}, nil
}

// lastMessageID returns the id of the topic's last message: entry -1 when
// it has none, and the last index of the batch when the last entry is one.
func (t *Topic) lastMessageID(ctx context.Context) *clientpb.MessageId {
	lc := t.ml.LastConfirmed()
	id := &clientpb.MessageId{LedgerId: lc.LedgerID, EntryId: lc.EntryID, BatchIndex: -1, Partition: t.partition}
	if lc.EntryID >= 0 {
		if es, _, err := t.ml.Read(ctx, lc, 1, 1); err == nil && len(es) == 1 {
			if md, err := pulsarpb.DecodeMetadata(es[0].Data); err == nil && md.IsBatch() {
				n := md.MessagesIn(len(es[0].Data))
				id.BatchIndex, id.BatchSize = int32(n-1), int32(n)
			}
		}
	}
	return id
}

// grpcConn describes a gRPC call's connection: the peer's address and its
// user agent as the client version.
func grpcConn(ctx context.Context, role string) clientConn {
	cc := clientConn{role: role}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		cc.address = p.Addr.String()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if ua := md.Get("user-agent"); len(ua) > 0 {
			cc.version = ua[0]
		}
	}
	return cc
}

// recvLoop reads a stream in a goroutine so the handler can also react to
// server-side closes. The goroutine ends with the stream's context (the
// handler returned): it never stays blocked handing over a request nobody
// takes.
func recvLoop[T any](ctx context.Context, recv func() (T, error)) (<-chan T, <-chan error) {
	ch := make(chan T)
	errc := make(chan error, 1)
	go func() {
		for {
			v, err := recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case ch <- v:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, errc
}

func (s *service) Produce(stream clientpb.Broker_ProduceServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil {
		return clientpb.Error(clientpb.ServerError_BAD_REQUEST, "a produce stream must start with open")
	}
	t, p, version, err := s.b.openProducer(ctx, open, grpcConn(ctx, roleOf(ctx)))
	if err != nil {
		return statusError(err)
	}
	defer t.removeProducer(p)
	if err := stream.Send(&clientpb.ProduceResponse{Cmd: &clientpb.ProduceResponse_Opened{Opened: &clientpb.ProducerOpened{
		ProducerName: p.name, LastSequenceId: t.dedup.lastSequence(p.name), MaxMessageSize: int64(s.b.opts.MaxMessageSize), Topic: t.name.String(),
		SchemaVersion: version,
	}}}); err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	sendErr := make(chan error, 1)
	go func() { sendErr <- p.out.run(done, stream.Send) }()
	reqs, recvErr := recvLoop(ctx, stream.Recv)
	for {
		// While the producer has its share of sends pending, or the broker
		// its publish buffer full, the next send is not read: gRPC flow
		// control then stops the client.
		next, room := reqs, p.readyForSend()
		if room != nil {
			next = nil
		}
		select {
		case <-room:
		case req := <-next:
			send := req.GetSend()
			if send == nil {
				return clientpb.Error(clientpb.ServerError_BAD_REQUEST, "unexpected command on a produce stream")
			}
			// Quotas hold and rate limits slow the producer here: while
			// this loop waits, gRPC flow control pushes back on the client.
			if err := p.publish(ctx, send); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil // the client closed the producer
			}
			return err
		case err := <-sendErr:
			return err
		case err := <-p.killed:
			return statusError(err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *service) Consume(stream clientpb.Broker_ConsumeServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	req := first.GetSubscribe()
	if req == nil {
		return clientpb.Error(clientpb.ServerError_BAD_REQUEST, "a consume stream must start with subscribe")
	}
	t, sub, c, err := s.b.openConsumer(ctx, req, grpcConn(ctx, roleOf(ctx)))
	if err != nil {
		return statusError(err)
	}
	defer sub.removeConsumer(c)
	if err := stream.Send(&clientpb.ConsumeResponse{Cmd: &clientpb.ConsumeResponse_Subscribed{Subscribed: &clientpb.Subscribed{
		ConsumerName: c.name, Topic: t.name.String()}}}); err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	sendErr := make(chan error, 1)
	go func() { sendErr <- c.out.run(done, stream.Send) }()
	reqs, recvErr := recvLoop(ctx, stream.Recv)
	result := func(id uint64, err error) {
		r := &clientpb.CommandResult{RequestId: id}
		if err != nil {
			r.Error, r.Message = serverError(err), err.Error()
		}
		c.out.push(&clientpb.ConsumeResponse{Cmd: &clientpb.ConsumeResponse_Result{Result: r}})
	}
	for {
		// A client that sends requests without reading the answers stops
		// being read once its outbox is twice over its bound.
		next, room := reqs, c.out.overloaded()
		if room != nil {
			next = nil
		}
		select {
		case <-room:
		case req := <-next:
			switch cmd := req.Cmd.(type) {
			case *clientpb.ConsumeRequest_Flow:
				sub.flow(c, cmd.Flow.Permits)
			case *clientpb.ConsumeRequest_Ack:
				result(cmd.Ack.RequestId, sub.ack(c, cmd.Ack.MessageIds, cmd.Ack.Cumulative))
			case *clientpb.ConsumeRequest_Redeliver:
				sub.redeliver(c, cmd.Redeliver.MessageIds)
			case *clientpb.ConsumeRequest_Seek:
				result(cmd.Seek.RequestId, sub.seek(ctx, c, cmd.Seek))
			case *clientpb.ConsumeRequest_Unsubscribe:
				err := sub.unsubscribe(ctx, c)
				result(cmd.Unsubscribe.RequestId, err)
				if err == nil {
					c.out.drain() // the answer goes out before the stream ends
					return <-sendErr
				}
			default:
				return clientpb.Error(clientpb.ServerError_BAD_REQUEST, "unexpected command %T on a consume stream", req.Cmd)
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil // the client closed: every request before it is handled
			}
			return err
		case err := <-sendErr:
			return err
		case err := <-c.killed:
			if err == nil {
				return nil
			}
			return statusError(err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
