package client_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
)

// TestMaxMessageSizeFromBroker: the producer learns the broker's
// --max-message-size when it connects. Against a 1 MiB broker a 1.5 MiB
// message fails before it is sent (the callback runs inside SendAsync, with
// the SDK's ErrMessageTooLarge, not a broker error) while a message of
// exactly 1 MiB goes through.
func TestMaxMessageSizeFromBroker(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1,
		BrokerOptions: func(_ int, o *broker.Options) { o.MaxMessageSize = 1 << 20 }})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "maxsize")
	cons := subscribe(t, cl, topic, "s")
	big := bytes.Repeat([]byte("x"), 3<<19) // 1.5 MiB

	for _, batching := range []bool{true, false} {
		var opts []client.ProducerOption
		if !batching {
			opts = append(opts, client.WithoutBatching())
		}
		p := newProducer(t, cl, topic, opts...)

		var asyncErr error
		called := false
		p.SendAsync(ctxT(t, time.Minute), &client.ProducerMessage{Payload: big}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
			called, asyncErr = true, err
		})
		if !called {
			t.Fatalf("batching=%v: SendAsync of 1.5 MiB returned before its callback ran: not refused locally", batching)
		}
		checkTooLarge(t, asyncErr)
		_, err := p.Send(ctxT(t, time.Minute), &client.ProducerMessage{Payload: big})
		checkTooLarge(t, err)

		// The limit is inclusive.
		exact := bytes.Repeat([]byte{'b'}, 1<<20)
		if batching {
			exact[0] = 'a'
		}
		if _, err := p.Send(ctxT(t, time.Minute), &client.ProducerMessage{Payload: exact}); err != nil {
			t.Fatalf("batching=%v: send of exactly 1 MiB to a 1 MiB broker: %v", batching, err)
		}
		m := receive(t, cons, 30*time.Second)
		if !bytes.Equal(m.Payload, exact) {
			t.Fatalf("batching=%v: received %d bytes starting %q, want the 1 MiB message", batching, len(m.Payload), m.Payload[:1])
		}
		cons.Ack(m)
		p.Close()
	}
}

func checkTooLarge(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, client.ErrMessageTooLarge) {
		t.Fatalf("send of 1.5 MiB to a 1 MiB broker: %v, want ErrMessageTooLarge", err)
	}
	var se *client.ServerError
	if errors.As(err, &se) {
		t.Fatalf("send of 1.5 MiB: the broker refused it (%v); the SDK should have", se)
	}
}

// TestLargeMessageAboveDefaultLimit: a broker started with an 8 MiB limit
// (bookies sized for it) takes a 6 MiB message end to end, above the
// SDK's 5 MiB default.
func TestLargeMessageAboveDefaultLimit(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1,
		BookieOptions: func(_ int, o *bookie.Options) { o.MaxEntrySize = 8<<20 + 128<<10 },
		BrokerOptions: func(_ int, o *broker.Options) { o.MaxMessageSize = 8 << 20 }})
	cl := newClient(t, c)
	topic := uniqueTopic(t, "large")
	cons := subscribe(t, cl, topic, "s")
	p := newProducer(t, cl, topic)
	payload := make([]byte, 6<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	if _, err := p.Send(ctxT(t, time.Minute), &client.ProducerMessage{Payload: payload}); err != nil {
		t.Fatalf("send 6 MiB to an 8 MiB broker: %v", err)
	}
	m := receive(t, cons, 30*time.Second)
	if !bytes.Equal(m.Payload, payload) {
		t.Fatalf("received %d bytes, want the 6 MiB payload intact", len(m.Payload))
	}
}

// oldBroker is a broker that answers a producer's open without a maximum
// message size (max_message_size 0) and acknowledges every send.
type oldBroker struct {
	clientpb.UnimplementedBrokerServer
	addr  string
	sends atomic.Int64
}

func (b *oldBroker) Lookup(context.Context, *clientpb.LookupRequest) (*clientpb.LookupResponse, error) {
	return &clientpb.LookupResponse{Kind: clientpb.LookupResponse_CONNECT, BrokerUrl: b.addr}, nil
}

func (b *oldBroker) PartitionedMetadata(context.Context, *clientpb.PartitionedMetadataRequest) (*clientpb.PartitionedMetadataResponse, error) {
	return &clientpb.PartitionedMetadataResponse{}, nil
}

func (b *oldBroker) Produce(stream clientpb.Broker_ProduceServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.Send(&clientpb.ProduceResponse{Cmd: &clientpb.ProduceResponse_Opened{Opened: &clientpb.ProducerOpened{
		ProducerName: "old", LastSequenceId: -1}}}); err != nil {
		return err
	}
	for entry := int64(0); ; entry++ {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		s := req.GetSend()
		b.sends.Add(1)
		if err := stream.Send(&clientpb.ProduceResponse{Cmd: &clientpb.ProduceResponse_Receipt{Receipt: &clientpb.Receipt{
			SequenceId: s.SequenceId, HighestSequenceId: s.HighestSequenceId, MessageId: &clientpb.MessageId{LedgerId: 1, EntryId: entry}}}}); err != nil {
			return err
		}
	}
}

// TestMaxMessageSizeOlderBroker: a broker that does not announce its limit
// gets the 5 MiB default.
func TestMaxMessageSizeOlderBroker(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(16 << 20))
	b := &oldBroker{addr: lis.Addr().String()}
	clientpb.RegisterBrokerServer(srv, b)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	cl, err := client.New(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	p, err := cl.CreateProducer(ctxT(t, time.Minute), "old-broker")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	called := false
	p.SendAsync(ctxT(t, time.Minute), &client.ProducerMessage{Payload: make([]byte, 5<<20+1)}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
		called = true
		if !errors.Is(err, client.ErrMessageTooLarge) {
			t.Errorf("5 MiB + 1 byte to a broker without a limit: %v, want ErrMessageTooLarge", err)
		}
	})
	if !called {
		t.Fatal("5 MiB + 1 byte was not refused locally")
	}
	if _, err := p.Send(ctxT(t, time.Minute), &client.ProducerMessage{Payload: make([]byte, 5<<20)}); err != nil {
		t.Fatalf("5 MiB to a broker without a limit: %v", err)
	}
	if n := b.sends.Load(); n != 1 {
		t.Fatalf("the broker got %d sends, want 1 (the 5 MiB message)", n)
	}
}
