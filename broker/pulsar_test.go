package broker_test

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/pulsarwire"
	"github.com/strata-mq/strata/internal/testcluster"
)

// These tests speak Pulsar's binary protocol frame by frame, for what an
// official client never sends: missing tokens, broken frames. The official
// client itself runs in compat/pulsar.

type wireConn struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	req uint64
}

func dialWire(t *testing.T, addr string, cfg *tls.Config) *wireConn {
	t.Helper()
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.Dial("tcp", addr, cfg)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &wireConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (w *wireConn) send(cmd *pulsarpb.BaseCommand, entry []byte) {
	w.t.Helper()
	b, err := pulsarwire.Append(nil, cmd, entry)
	if err != nil {
		w.t.Fatal(err)
	}
	w.raw(b)
}

func (w *wireConn) raw(b []byte) {
	w.t.Helper()
	if _, err := w.c.Write(b); err != nil {
		w.t.Fatal(err)
	}
}

// recv returns the next command, or the error that ended the connection.
func (w *wireConn) recv() (pulsarwire.Frame, error) {
	w.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	return pulsarwire.Read(w.r, 16<<20)
}

func (w *wireConn) must() *pulsarpb.BaseCommand {
	w.t.Helper()
	f, err := w.recv()
	if err != nil {
		w.t.Fatal(err)
	}
	return f.Cmd
}

// closed asserts that the broker closed the connection.
func (w *wireConn) closed() {
	w.t.Helper()
	for {
		f, err := w.recv()
		if err == nil {
			if f.Cmd.GetType() == pulsarpb.BaseCommand_ERROR {
				continue // a reason may come first
			}
			w.t.Fatalf("connection still open: got %s", f.Cmd.GetType())
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
			return
		}
		w.t.Fatalf("connection not closed: %v", err)
	}
}

func (w *wireConn) connect(token string) *pulsarpb.BaseCommand {
	w.t.Helper()
	c := &pulsarpb.CommandConnect{ClientVersion: proto.String("wire-test"), ProtocolVersion: proto.Int32(20)}
	if token != "" {
		c.AuthMethodName, c.AuthData = proto.String("token"), []byte(token)
	}
	w.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_CONNECT.Enum(), Connect: c}, nil)
	return w.must()
}

func (w *wireConn) nextReq() uint64 { w.req++; return w.req }

func (w *wireConn) producer(topic string, id uint64) *pulsarpb.BaseCommand {
	w.t.Helper()
	w.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PRODUCER.Enum(), Producer: &pulsarpb.CommandProducer{
		Topic: proto.String(topic), ProducerId: proto.Uint64(id), RequestId: proto.Uint64(w.nextReq()), UserProvidedProducerName: proto.Bool(false)}}, nil)
	return w.must()
}

func (w *wireConn) subscribe(topic, sub string, id uint64) *pulsarpb.BaseCommand {
	w.t.Helper()
	w.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pulsarpb.CommandSubscribe{
		Topic: proto.String(topic), Subscription: proto.String(sub), SubType: pulsarpb.CommandSubscribe_Exclusive.Enum(),
		ConsumerId: proto.Uint64(id), RequestId: proto.Uint64(w.nextReq()), InitialPosition: pulsarpb.CommandSubscribe_Earliest.Enum()}}, nil)
	return w.must()
}

func wireEntry(t *testing.T, payload string, seq uint64) []byte {
	t.Helper()
	e, err := pulsarpb.EncodeEntry(&pulsarpb.MessageMetadata{ProducerName: proto.String("wire"), SequenceId: proto.Uint64(seq), PublishTime: proto.Uint64(uint64(time.Now().UnixMilli()))}, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sendCmd(producer, seq uint64) *pulsarpb.BaseCommand {
	return &pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_SEND.Enum(), Send: &pulsarpb.CommandSend{ProducerId: proto.Uint64(producer), SequenceId: proto.Uint64(seq)}}
}

// sendOK sends one message and waits for its receipt.
func (w *wireConn) sendOK(producer, seq uint64, payload string) {
	w.t.Helper()
	w.send(sendCmd(producer, seq), wireEntry(w.t, payload, seq))
	if cmd := w.must(); cmd.GetType() != pulsarpb.BaseCommand_SEND_RECEIPT || cmd.GetSendReceipt().GetSequenceId() != seq {
		w.t.Fatalf("send %d: %v", seq, cmd)
	}
}

// TestPulsarWireBadFrames: a frame that breaks the protocol closes only the
// connection that sent it, with nothing stored; the broker keeps serving the
// other Pulsar connections and gRPC clients.
func TestPulsarWireBadFrames(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	addr := c.Broker(0).GRPCAddr
	topic := "persistent://public/default/wire-bad"
	good := dialWire(t, addr, nil)
	if cmd := good.connect(""); cmd.GetType() != pulsarpb.BaseCommand_CONNECTED {
		t.Fatalf("connect: %v", cmd)
	}
	if cmd := good.producer(topic, 1); cmd.GetType() != pulsarpb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("producer: %v", cmd)
	}
	seq := uint64(0)
	good.sendOK(1, seq, "good-0")

	entry := wireEntry(t, "bad", 99)
	frame := func(cmd *pulsarpb.BaseCommand, e []byte) []byte {
		b, err := pulsarwire.Append(nil, cmd, e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	badMagic := append([]byte{0x0f, 0x01}, entry[2:]...)
	badCRC := append([]byte(nil), entry...)
	badCRC[len(badCRC)-1] ^= 0xff
	partial, _ := proto.MarshalOptions{AllowPartial: true}.Marshal(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PRODUCER.Enum(),
		Producer: &pulsarpb.CommandProducer{Topic: proto.String(topic)}})
	rawFrame := func(cmd []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(4+len(cmd)))
		b = binary.BigEndian.AppendUint32(b, uint32(len(cmd)))
		return append(b, cmd...)
	}
	cases := []struct {
		name    string
		connect bool // send CONNECT and a producer first
		frame   []byte
	}{
		{"oversize frame", true, binary.BigEndian.AppendUint32(nil, 1<<30)},
		{"wrong magic", true, frame(sendCmd(1, 99), badMagic)},
		{"bad checksum", true, frame(sendCmd(1, 99), badCRC)},
		{"missing required field", true, rawFrame(partial)},
		{"unknown command type", true, rawFrame([]byte{0x08, 0x63})},
		{"unsupported command", true, frame(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_SUCCESS.Enum(), Success: &pulsarpb.CommandSuccess{RequestId: proto.Uint64(1)}}, nil)},
		{"no CONNECT first", false, frame(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PING.Enum(), Ping: &pulsarpb.CommandPing{}}, nil)},
		{"not Pulsar at all", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
	}
	for _, tc := range cases {
		w := dialWire(t, addr, nil)
		if tc.connect {
			w.connect("")
			if cmd := w.producer(topic, 1); cmd.GetType() != pulsarpb.BaseCommand_PRODUCER_SUCCESS {
				t.Fatalf("%s: producer: %v", tc.name, cmd)
			}
		}
		w.raw(tc.frame)
		w.closed()
		// The other connection and its producer still work.
		seq++
		good.sendOK(1, seq, fmt.Sprintf("good-%d", seq))
	}
	// gRPC on the same port still works, and the topic holds exactly the
	// good messages.
	ctx := ctxT(t, time.Minute)
	cl := newClient(t, c)
	r, err := cl.CreateReader(ctx, topic, client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := uint64(0); i <= seq; i++ {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("good-%d", i); string(m.Payload) != want {
			t.Fatalf("message %d: %q, want %q", i, m.Payload, want)
		}
	}
	if r.HasNext(500 * time.Millisecond) {
		t.Fatal("the topic holds more than the good messages")
	}
}

// TestPulsarWireAuth: with authentication on, CONNECT needs a valid token
// (method "token"), and the role it names is authorized per command.
func TestPulsarWireAuth(t *testing.T) {
	s := newSecured(t)
	addr := s.c.Broker(0).GRPCAddr
	for _, who := range []string{"none", "badsig", "expired", "nobody"} {
		w := dialWire(t, addr, nil)
		cmd := w.connect(s.tokens[who])
		if who == "nobody" {
			// A valid token of a role without permissions connects, and
			// is refused per command.
			if cmd.GetType() != pulsarpb.BaseCommand_CONNECTED {
				t.Fatalf("%s: connect: %v", who, cmd)
			}
			if cmd := w.producer("persistent://ta/ns/t", 1); cmd.GetError().GetError() != pulsarpb.ServerError_AuthorizationError {
				t.Fatalf("%s: producer: %v, want AuthorizationError", who, cmd)
			}
			continue
		}
		if cmd.GetType() != pulsarpb.BaseCommand_ERROR || cmd.GetError().GetError() != pulsarpb.ServerError_AuthenticationError {
			t.Fatalf("%s: connect: %v, want an AuthenticationError", who, cmd)
		}
		w.closed()
	}
	app := dialWire(t, addr, nil)
	if cmd := app.connect(s.tokens["app"]); cmd.GetType() != pulsarpb.BaseCommand_CONNECTED {
		t.Fatalf("app: connect: %v", cmd)
	}
	if cmd := app.producer("persistent://ta/ns/t", 1); cmd.GetType() != pulsarpb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("app: producer: %v", cmd)
	}
	app.sendOK(1, 0, "hello")
	if cmd := app.subscribe("persistent://ta/ns/t", "s", 1); cmd.GetError().GetError() != pulsarpb.ServerError_AuthorizationError {
		t.Fatalf("app (produce only): subscribe: %v, want AuthorizationError", cmd)
	}
	reader := dialWire(t, addr, nil)
	reader.connect(s.tokens["reader"])
	if cmd := reader.producer("persistent://ta/ns/t", 1); cmd.GetError().GetError() != pulsarpb.ServerError_AuthorizationError {
		t.Fatalf("reader (consume only): producer: %v, want AuthorizationError", cmd)
	}
	if cmd := reader.subscribe("persistent://ta/ns/t", "s", 1); cmd.GetType() != pulsarpb.BaseCommand_SUCCESS {
		t.Fatalf("reader: subscribe: %v", cmd)
	}
	reader.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_FLOW.Enum(), Flow: &pulsarpb.CommandFlow{ConsumerId: proto.Uint64(1), MessagePermits: proto.Uint32(10)}}, nil)
	f, err := reader.recv()
	if err != nil {
		t.Fatal(err)
	}
	if _, payload, err := pulsarpb.DecodeEntry(f.Entry); f.Cmd.GetType() != pulsarpb.BaseCommand_MESSAGE || err != nil || string(payload) != "hello" {
		t.Fatalf("reader: %v %q %v", f.Cmd, payload, err)
	}
}

// TestPulsarWireTLSAndLookup: with TLS on, Pulsar clients connect over TLS
// to the same port as gRPC clients, and a lookup at any broker answers the
// owner's pulsar+ssl:// URL.
func TestPulsarWireTLSAndLookup(t *testing.T) {
	pki := newTestPKI(t)
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) { o.TLS = pki.brokerTLS(t, false) }})
	topic := "persistent://public/default/wire-tls"
	cfg := &tls.Config{RootCAs: pki.ca, MinVersion: tls.VersionTLS12}
	// lookup asks broker i, following redirects as Pulsar clients do.
	lookup := func(i int) string {
		addr, authoritative := c.Broker(i).GRPCAddr, false
		for range 5 {
			w := dialWire(t, addr, cfg)
			if cmd := w.connect(""); cmd.GetType() != pulsarpb.BaseCommand_CONNECTED {
				t.Fatalf("%s: connect over TLS: %v", addr, cmd)
			}
			w.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_LOOKUP.Enum(), LookupTopic: &pulsarpb.CommandLookupTopic{
				Topic: proto.String(topic), RequestId: proto.Uint64(1), Authoritative: proto.Bool(authoritative)}}, nil)
			resp := w.must().GetLookupTopicResponse()
			url := resp.GetBrokerServiceUrlTls()
			if !strings.HasPrefix(url, "pulsar+ssl://") || resp.GetBrokerServiceUrl() != "" {
				t.Fatalf("%s: lookup: %v, want only a pulsar+ssl:// URL", addr, resp)
			}
			switch resp.GetResponse() {
			case pulsarpb.CommandLookupTopicResponse_Connect:
				return url
			case pulsarpb.CommandLookupTopicResponse_Redirect:
				addr, authoritative = strings.TrimPrefix(url, "pulsar+ssl://"), resp.GetAuthoritative()
			default:
				t.Fatalf("%s: lookup: %v", addr, resp)
			}
		}
		t.Fatal("lookup redirected 5 times")
		return ""
	}
	urls := []string{lookup(0), lookup(1)}
	if urls[0] != urls[1] {
		t.Fatalf("the brokers name different owners: %v", urls)
	}
	owner := c.BrokerIndex(strings.TrimPrefix(urls[0], "pulsar+ssl://"))
	if owner < 0 {
		t.Fatalf("lookup answered %s, not a broker", urls[0])
	}
	w := dialWire(t, c.Broker(owner).GRPCAddr, cfg)
	w.connect("")
	if cmd := w.producer(topic, 7); cmd.GetType() != pulsarpb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("producer at the owner: %v", cmd)
	}
	w.sendOK(7, 0, "over tls")
	// Plain text on a TLS port is no protocol at all.
	plain := dialWire(t, c.Broker(owner).GRPCAddr, nil)
	plain.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_CONNECT.Enum(), Connect: &pulsarpb.CommandConnect{ClientVersion: proto.String("x")}}, nil)
	plain.closed()
	// gRPC over TLS shares the port.
	cl := tlsClient(t, c, 30*time.Second, pki.caFile, "", "")
	ctx := ctxT(t, time.Minute)
	r, err := cl.CreateReader(ctx, topic, client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if m, err := r.Next(ctx); err != nil || string(m.Payload) != "over tls" {
		t.Fatalf("gRPC reader over TLS: %v %v", m, err)
	}
}

// TestPulsarWireTopicsOfNamespace: GET_TOPICS_OF_NAMESPACE lists the
// namespace's persistent topics (what regex and namespace consumers ask).
func TestPulsarWireTopicsOfNamespace(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	w := dialWire(t, c.Broker(0).GRPCAddr, nil)
	w.connect("")
	for i, name := range []string{"t1", "t2"} {
		if cmd := w.producer("persistent://public/default/"+name, uint64(i)); cmd.GetType() != pulsarpb.BaseCommand_PRODUCER_SUCCESS {
			t.Fatalf("producer on %s: %v", name, cmd)
		}
	}
	w.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_GET_TOPICS_OF_NAMESPACE.Enum(), GetTopicsOfNamespace: &pulsarpb.CommandGetTopicsOfNamespace{
		RequestId: proto.Uint64(9), Namespace: proto.String("public/default"), Mode: pulsarpb.CommandGetTopicsOfNamespace_PERSISTENT.Enum()}}, nil)
	resp := w.must()
	got := resp.GetGetTopicsOfNamespaceResponse().GetTopics()
	if resp.GetType() != pulsarpb.BaseCommand_GET_TOPICS_OF_NAMESPACE_RESPONSE || strings.Join(got, ",") != "persistent://public/default/t1,persistent://public/default/t2" {
		t.Fatalf("topics of public/default: %v", resp)
	}
}

// TestPulsarWireSameIDAgain: a client that sends PRODUCER or SUBSCRIBE
// again for an id it has open (a reconnect without a close) gets the one
// it has confirmed, as from Pulsar's broker; the id on another topic is
// busy.
func TestPulsarWireSameIDAgain(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	w := dialWire(t, c.Broker(0).GRPCAddr, nil)
	w.connect("")
	topic := "persistent://public/default/again"
	first := w.producer(topic, 1).GetProducerSuccess().GetProducerName()
	if again := w.producer(topic, 1); again.GetProducerSuccess().GetProducerName() != first || first == "" {
		t.Fatalf("the same producer id again: %v (first %q)", again, first)
	}
	if other := w.producer(topic+"-other", 1); other.GetError().GetError() != pulsarpb.ServerError_ProducerBusy {
		t.Fatalf("the producer id on another topic: %v", other)
	}
	if cmd := w.subscribe(topic, "s", 1); cmd.GetType() != pulsarpb.BaseCommand_SUCCESS {
		t.Fatalf("subscribe: %v", cmd)
	}
	if cmd := w.subscribe(topic, "s", 1); cmd.GetType() != pulsarpb.BaseCommand_SUCCESS {
		t.Fatalf("the same consumer id again: %v", cmd)
	}
	if cmd := w.subscribe(topic, "other", 1); cmd.GetError().GetError() != pulsarpb.ServerError_ConsumerBusy {
		t.Fatalf("the consumer id on another subscription: %v", cmd)
	}
}

// TestPulsarWireConnectionLimit: one connection opens at most
// MaxConcurrentStreamsPerConnection producers and consumers; beyond, a
// precise error, and the connection keeps serving what it has.
func TestPulsarWireConnectionLimit(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxConcurrentStreamsPerConnection = 3
	}})
	w := dialWire(t, c.Broker(0).GRPCAddr, nil)
	w.connect("")
	for i := range 2 {
		if cmd := w.producer(fmt.Sprintf("persistent://public/default/lim-%d", i), uint64(i)); cmd.GetType() != pulsarpb.BaseCommand_PRODUCER_SUCCESS {
			t.Fatalf("producer %d: %v", i, cmd)
		}
	}
	if cmd := w.subscribe("persistent://public/default/lim-0", "s", 1); cmd.GetType() != pulsarpb.BaseCommand_SUCCESS {
		t.Fatalf("consumer: %v", cmd)
	}
	if cmd := w.producer("persistent://public/default/lim-9", 9); cmd.GetError().GetError() != pulsarpb.ServerError_NotAllowedError ||
		!strings.Contains(cmd.GetError().GetMessage(), "max-concurrent-streams-per-connection") {
		t.Fatalf("a fourth producer or consumer: %v", cmd)
	}
	if cmd := w.subscribe("persistent://public/default/lim-1", "s", 2); cmd.GetError().GetError() != pulsarpb.ServerError_NotAllowedError {
		t.Fatalf("a fourth producer or consumer: %v", cmd)
	}
	w.sendOK(0, 0, "still serving")
}

// TestPulsarWireExclusiveModes: ExclusiveWithFencing closes the producers a
// topic has (they are refused when they come back); WaitForExclusive gets a
// not-ready answer while another producer holds the topic and a ready one,
// with the same request id, once it is gone.
func TestPulsarWireExclusiveModes(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	addr := c.Broker(0).GRPCAddr
	topic := "persistent://public/default/exclusive"
	producerWith := func(w *wireConn, id uint64, mode pulsarpb.ProducerAccessMode) uint64 {
		req := w.nextReq()
		w.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PRODUCER.Enum(), Producer: &pulsarpb.CommandProducer{
			Topic: proto.String(topic), ProducerId: proto.Uint64(id), RequestId: proto.Uint64(req),
			UserProvidedProducerName: proto.Bool(false), ProducerAccessMode: mode.Enum()}}, nil)
		return req
	}
	shared := dialWire(t, addr, nil)
	shared.connect("")
	if cmd := shared.producer(topic, 1); cmd.GetType() != pulsarpb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("shared producer: %v", cmd)
	}
	fencer := dialWire(t, addr, nil)
	fencer.connect("")
	producerWith(fencer, 1, pulsarpb.ProducerAccessMode_ExclusiveWithFencing)
	if cmd := fencer.must(); cmd.GetType() != pulsarpb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("fencing producer: %v", cmd)
	}
	if cmd := shared.must(); cmd.GetType() != pulsarpb.BaseCommand_CLOSE_PRODUCER {
		t.Fatalf("the fenced producer got %v, want CLOSE_PRODUCER", cmd)
	}
	if cmd := shared.producer(topic, 1); cmd.GetError().GetError() != pulsarpb.ServerError_ProducerBusy {
		t.Fatalf("the fenced producer coming back: %v", cmd)
	}
	producerWith(shared, 2, pulsarpb.ProducerAccessMode_Exclusive)
	if cmd := shared.must(); cmd.GetError().GetError() != pulsarpb.ServerError_ProducerFenced {
		t.Fatalf("an Exclusive producer while another holds the topic: %v, want ProducerFenced", cmd)
	}
	waiter := dialWire(t, addr, nil)
	waiter.connect("")
	req := producerWith(waiter, 5, pulsarpb.ProducerAccessMode_WaitForExclusive)
	if cmd := waiter.must().GetProducerSuccess(); cmd == nil || cmd.GetProducerReady() || cmd.GetRequestId() != req {
		t.Fatalf("waiting producer: %v, want not ready", cmd)
	}
	fencer.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_CLOSE_PRODUCER.Enum(), CloseProducer: &pulsarpb.CommandCloseProducer{
		ProducerId: proto.Uint64(1), RequestId: proto.Uint64(fencer.nextReq())}}, nil)
	fencer.must()
	if cmd := waiter.must().GetProducerSuccess(); cmd == nil || !cmd.GetProducerReady() || cmd.GetRequestId() != req {
		t.Fatalf("waiting producer after the holder closed: %v, want ready", cmd)
	}
	waiter.sendOK(5, 0, "mine now")
}

// TestPulsarWireClientMetadataBound: a producer or consumer whose own
// properties exceed 64 KiB is refused with the reason (the broker keeps
// them while it is connected).
func TestPulsarWireClientMetadataBound(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	w := dialWire(t, c.Broker(0).GRPCAddr, nil)
	w.connect("")
	big := []*pulsarpb.KeyValue{{Key: proto.String("k"), Value: proto.String(strings.Repeat("x", 65<<10))}}
	topic := "persistent://public/default/meta"
	w.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PRODUCER.Enum(), Producer: &pulsarpb.CommandProducer{
		Topic: proto.String(topic), ProducerId: proto.Uint64(1), RequestId: proto.Uint64(w.nextReq()), Metadata: big}}, nil)
	if e := w.must().GetError(); e.GetError() != pulsarpb.ServerError_NotAllowedError || !strings.Contains(e.GetMessage(), "properties of") {
		t.Fatalf("producer with 65 KiB of properties: %v", e)
	}
	w.send(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pulsarpb.CommandSubscribe{
		Topic: proto.String(topic), Subscription: proto.String("s"), SubType: pulsarpb.CommandSubscribe_Exclusive.Enum(),
		ConsumerId: proto.Uint64(1), RequestId: proto.Uint64(w.nextReq()), Metadata: big}}, nil)
	if e := w.must().GetError(); e.GetError() != pulsarpb.ServerError_NotAllowedError || !strings.Contains(e.GetMessage(), "properties of") {
		t.Fatalf("consumer with 65 KiB of properties: %v", e)
	}
	if cmd := w.producer(topic, 2); cmd.GetType() != pulsarpb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("an ordinary producer after: %v", cmd)
	}
}
