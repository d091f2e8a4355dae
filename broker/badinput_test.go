package broker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/testcluster"
)

func rawClient(t *testing.T, addr string) clientpb.BrokerClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return clientpb.NewBrokerClient(cc)
}

func entry(t *testing.T, payload []byte) []byte {
	e, err := pulsarpb.EncodeEntry(&pulsarpb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(0), PublishTime: proto.Uint64(uint64(time.Now().UnixMilli()))}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func wantCode(t *testing.T, what string, err error, want clientpb.ServerError, grpcCode codes.Code) {
	t.Helper()
	got, _ := clientpb.ErrorOf(err)
	if got != want || status.Code(err) != grpcCode {
		t.Errorf("%s: %v (code %v), want %v / %v", what, err, got, want, grpcCode)
	}
}

func openProducer(t *testing.T, cli clientpb.BrokerClient, topic string) (clientpb.Broker_ProduceClient, error) {
	s, err := cli.Produce(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Open{Open: &clientpb.ProducerOpen{Topic: topic}}})
	resp, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if resp.GetOpened() == nil {
		t.Fatalf("unexpected %v", resp)
	}
	return s, nil
}

func subscribeRaw(t *testing.T, cli clientpb.BrokerClient, sub *clientpb.Subscribe) (clientpb.Broker_ConsumeClient, error) {
	s, err := cli.Consume(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Subscribe{Subscribe: sub}})
	resp, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if resp.GetSubscribed() == nil {
		t.Fatalf("unexpected %v", resp)
	}
	return s, nil
}

func TestBadInput(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	addr := c.Broker(0).GRPCAddr
	cli := rawClient(t, addr)
	ctx := ctxT(t, time.Minute)

	for _, name := range []string{"persistent://public/default/bad/extra", "non-persistent://public/default/x", "persistent://public/default/", "a\x01b", "persistent://pub lic/default/x"} {
		_, err := cli.Lookup(ctx, &clientpb.LookupRequest{Topic: name})
		wantCode(t, "lookup "+name, err, clientpb.ServerError_INVALID_TOPIC_NAME, codes.InvalidArgument)
		_, err = openProducer(t, cli, name)
		wantCode(t, "produce "+name, err, clientpb.ServerError_INVALID_TOPIC_NAME, codes.InvalidArgument)
	}
	_, err := openProducer(t, cli, "persistent://nosuchtenant/ns/t")
	wantCode(t, "unknown tenant/namespace", err, clientpb.ServerError_NAMESPACE_NOT_FOUND, codes.NotFound)
	_, err = subscribeRaw(t, cli, &clientpb.Subscribe{Topic: "persistent://public/nosuchns/t", Subscription: "s", Durable: true})
	wantCode(t, "subscribe unknown namespace", err, clientpb.ServerError_NAMESPACE_NOT_FOUND, codes.NotFound)

	// Sends: oversize, corrupt checksum, garbage; each answered in order and
	// the stream keeps working.
	p, err := openProducer(t, cli, "bad-sends")
	if err != nil {
		t.Fatal(err)
	}
	big := entry(t, bytes.Repeat([]byte("x"), 5<<20+1))
	corrupt := entry(t, []byte("payload"))
	corrupt[len(corrupt)-1] ^= 1
	sends := []struct {
		entry []byte
		want  clientpb.ServerError
	}{
		{entry(t, []byte("ok-1")), clientpb.ServerError_NONE_ERROR},
		{big, clientpb.ServerError_MESSAGE_TOO_LARGE},
		{corrupt, clientpb.ServerError_CHECKSUM_ERROR},
		{[]byte("garbage"), clientpb.ServerError_INVALID_MESSAGE},
		{entry(t, []byte("ok-2")), clientpb.ServerError_NONE_ERROR},
	}
	for i, s := range sends {
		if err := p.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Send{Send: &clientpb.Send{SequenceId: int64(i), Entry: s.entry}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range sends {
		resp, err := p.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got := clientpb.ServerError_NONE_ERROR
		seq := resp.GetReceipt().GetSequenceId()
		if e := resp.GetSendError(); e != nil {
			got, seq = e.Error, e.SequenceId
		}
		if got != s.want || seq != int64(i) {
			t.Errorf("send %d: reply for sequence %d with %v, want %v", i, seq, got, s.want)
		}
	}

	// Consumers: a second Exclusive one, cumulative acks on Shared, acks of
	// unknown ids.
	if _, err := subscribeRaw(t, cli, &clientpb.Subscribe{Topic: "bad-sends", Subscription: "x", Durable: true}); err != nil {
		t.Fatal(err)
	}
	_, err = subscribeRaw(t, cli, &clientpb.Subscribe{Topic: "bad-sends", Subscription: "x", Durable: true})
	wantCode(t, "second exclusive consumer", err, clientpb.ServerError_CONSUMER_BUSY, codes.AlreadyExists)
	_, err = subscribeRaw(t, cli, &clientpb.Subscribe{Topic: "bad-sends", Durable: true})
	wantCode(t, "subscription without a name", err, clientpb.ServerError_BAD_REQUEST, codes.InvalidArgument)
	for _, name := range []string{"a/b", "x\x00y", "tab\there", "..", "pulsar.dedup", "pulsar.mine", strings.Repeat("s", 1025)} {
		_, err = subscribeRaw(t, cli, &clientpb.Subscribe{Topic: "bad-sends", Subscription: name, Durable: true})
		wantCode(t, fmt.Sprintf("subscription %.40q", name), err, clientpb.ServerError_BAD_REQUEST, codes.InvalidArgument)
	}
	var internal struct {
		Cursors map[string]json.RawMessage `json:"cursors"`
	}
	getJSON(t, "http://"+c.Broker(0).HTTPAddr+"/admin/v2/persistent/public/default/bad-sends/internalStats", &internal)
	if len(internal.Cursors) != 1 || internal.Cursors["x"] == nil {
		t.Errorf("after the refused subscriptions the topic has cursors %v, want only x", slices.Sorted(maps.Keys(internal.Cursors)))
	}

	sh, err := subscribeRaw(t, cli, &clientpb.Subscribe{Topic: "bad-sends", Subscription: "sh", Type: clientpb.SubscriptionType_SHARED, Durable: true, InitialPosition: clientpb.InitialPosition_EARLIEST})
	if err != nil {
		t.Fatal(err)
	}
	ackCases := []struct {
		name string
		ack  *clientpb.Ack
		want clientpb.ServerError
	}{
		{"cumulative on Shared", &clientpb.Ack{RequestId: 1, Cumulative: true, MessageIds: []*clientpb.MessageId{{LedgerId: 1, EntryId: 0}}}, clientpb.ServerError_NOT_ALLOWED},
		{"unknown entry", &clientpb.Ack{RequestId: 2, MessageIds: []*clientpb.MessageId{{LedgerId: 1, EntryId: 999}}}, clientpb.ServerError_INVALID_MESSAGE_ID},
		{"unknown ledger", &clientpb.Ack{RequestId: 3, MessageIds: []*clientpb.MessageId{{LedgerId: 777, EntryId: 0}}}, clientpb.ServerError_INVALID_MESSAGE_ID},
		{"negative id", &clientpb.Ack{RequestId: 4, MessageIds: []*clientpb.MessageId{{LedgerId: -5, EntryId: 0}}}, clientpb.ServerError_INVALID_MESSAGE_ID},
	}
	for _, ac := range ackCases {
		sh.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Ack{Ack: ac.ack}})
		resp, err := sh.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.GetResult(); r == nil || r.RequestId != ac.ack.RequestId || r.Error != ac.want {
			t.Errorf("%s: %v, want %v", ac.name, resp, ac.want)
		}
	}
	// The consumer still works: permits bring the two valid messages.
	sh.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Flow{Flow: &clientpb.Flow{Permits: 10}}})
	for i := 0; i < 2; i++ {
		resp, err := sh.Recv()
		if err != nil || resp.GetMessage() == nil {
			t.Fatalf("message %d after bad acks: %v %v", i, resp, err)
		}
	}

	// A stream starting with the wrong command.
	s, _ := cli.Consume(ctx)
	s.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Flow{Flow: &clientpb.Flow{Permits: 1}}})
	_, err = s.Recv()
	wantCode(t, "consume stream without subscribe", err, clientpb.ServerError_BAD_REQUEST, codes.InvalidArgument)

	// Garbage on the gRPC port; the broker keeps serving.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(bytes.Repeat([]byte("\x00\xffGARBAGE"), 1000))
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, conn)
	conn.Close()
	if _, err := openProducer(t, cli, "still-serving"); err != nil {
		t.Fatalf("broker not serving after garbage: %v", err)
	}
}

// TestFlowControl: a consumer with 10 permits never holds more than 10
// unacknowledged messages, and a stalled consumer does not make the broker
// buffer what a fast producer writes.
func TestFlowControl(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cli := rawClient(t, c.Broker(0).GRPCAddr)
	s, err := subscribeRaw(t, cli, &clientpb.Subscribe{Topic: "flow", Subscription: "s", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Flow{Flow: &clientpb.Flow{Permits: 10}}})
	p, err := openProducer(t, cli, "flow")
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("z"), 100<<10)
	const n = 400 // 40 MiB
	go func() {
		for i := 0; i < n; i++ {
			p.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Send{Send: &clientpb.Send{SequenceId: int64(i), Entry: entry(t, payload)}}})
		}
	}()
	for i := 0; i < n; i++ {
		if r, err := p.Recv(); err != nil || r.GetReceipt() == nil {
			t.Fatalf("receipt %d: %v %v", i, r, err)
		}
	}
	got := 0
	msgs := make(chan *clientpb.ConsumeResponse, 100)
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				close(msgs)
				return
			}
			msgs <- r
		}
	}()
	timeout := time.After(time.Second)
wait:
	for {
		select {
		case m := <-msgs:
			if m.GetMessage() != nil {
				got++
			}
		case <-timeout:
			break wait
		}
	}
	if got != 10 {
		t.Fatalf("consumer with 10 permits received %d messages", got)
	}
	st, ok := c.Broker(0).B.TopicStats("flow")
	if !ok {
		t.Fatal("topic flow not loaded")
	}
	if st.CacheBytes > 16<<20 {
		t.Fatalf("entry cache holds %d bytes for a stalled consumer, over its bound", st.CacheBytes)
	}
	if st.Unacked != 10 {
		t.Fatalf("broker tracks %d unacked messages, want 10", st.Unacked)
	}
	// Five more permits: exactly five more messages.
	s.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Flow{Flow: &clientpb.Flow{Permits: 5}}})
	timeout = time.After(time.Second)
	for done := false; !done; {
		select {
		case m := <-msgs:
			if m.GetMessage() != nil {
				got++
			}
		case <-timeout:
			done = true
		}
	}
	if got != 15 {
		t.Fatalf("after 5 more permits: %d messages, want 15", got)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
