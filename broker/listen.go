package broker

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// clientListener shares the client port between gRPC and Pulsar's binary
// protocol. Each connection (after the TLS handshake, when TLS is on) is
// told apart by its first bytes: gRPC clients open with the HTTP/2 preface
// ("PRI * HTTP/2.0..."), Pulsar clients with a frame size, which can never
// read as "PRI " (that would be a 1.3 GB frame). gRPC connections are handed
// to the gRPC server through Accept; the others are served here.
type clientListener struct {
	b      *Broker
	raw    net.Listener
	tls    *tls.Config // nil: plain text
	grpc   chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// sniffTimeout bounds the TLS handshake and the wait for a connection's
// first bytes.
const sniffTimeout = 10 * time.Second

// http2Preface is how every gRPC connection starts.
const http2Preface = "PRI "

func newClientListener(b *Broker, raw net.Listener, cfg *tls.Config) *clientListener {
	l := &clientListener{b: b, raw: raw, grpc: make(chan net.Conn), closed: make(chan struct{})}
	if cfg != nil {
		l.tls = cfg.Clone()
		// gRPC clients insist on negotiating HTTP/2; Pulsar clients ask
		// for no protocol.
		l.tls.NextProtos = []string{"h2"}
	}
	return l
}

// Accept returns the next gRPC connection.
func (l *clientListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.grpc:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting connections of both protocols.
func (l *clientListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		err = l.raw.Close()
	})
	return err
}

func (l *clientListener) Addr() net.Addr { return l.raw.Addr() }

// serve accepts connections until the listener closes.
func (l *clientListener) serve() {
	for {
		c, err := l.raw.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			l.Close()
			return
		}
		go l.classify(c)
	}
}

func (l *clientListener) classify(c net.Conn) {
	c.SetDeadline(time.Now().Add(sniffTimeout))
	if l.tls != nil {
		tc := tls.Server(c, l.tls)
		if err := tc.Handshake(); err != nil {
			l.b.log.Debug("client TLS handshake failed", "client", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		c = tc
	}
	r := bufio.NewReaderSize(c, 64<<10)
	head, err := r.Peek(len(http2Preface))
	if err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	if string(head) == http2Preface {
		select {
		case l.grpc <- &peekedConn{Conn: c, r: r}:
		case <-l.closed:
			c.Close()
		}
		return
	}
	l.b.servePulsar(c, r)
}

// peekedConn is a connection whose first bytes were read ahead into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// handshakenTLS gives gRPC connections whose TLS handshake the listener
// already did: it reports their TLS state (client certificates included)
// as the usual TLS credentials would.
type handshakenTLS struct {
	credentials.TransportCredentials
}

func (h handshakenTLS) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	pc, ok := c.(*peekedConn)
	if !ok {
		return nil, nil, errors.New("broker: connection did not come through the client listener")
	}
	tc, ok := pc.Conn.(*tls.Conn)
	if !ok {
		return nil, nil, errors.New("broker: a plain-text connection on a TLS listener")
	}
	return c, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (h handshakenTLS) Clone() credentials.TransportCredentials {
	return handshakenTLS{h.TransportCredentials.Clone()}
}

// trackConn records a Pulsar connection so that closing the broker closes
// it; false when the broker is closing.
func (b *Broker) trackConn(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closing && b.mu.connsClosed {
		return false
	}
	if b.mu.conns == nil {
		b.mu.conns = map[net.Conn]struct{}{}
	}
	b.mu.conns[c] = struct{}{}
	return true
}

func (b *Broker) untrackConn(c net.Conn) {
	b.mu.Lock()
	delete(b.mu.conns, c)
	b.mu.Unlock()
}

// closeConns closes every Pulsar connection and refuses new ones.
func (b *Broker) closeConns() {
	b.mu.Lock()
	b.mu.connsClosed = true
	conns := make([]net.Conn, 0, len(b.mu.conns))
	for c := range b.mu.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
