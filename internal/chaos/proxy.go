package chaos

import (
	"net"
	"sync"
	"time"
)

// linkState is what a fault proxy does to the bytes of each direction:
// up is client to server, down is server to client.
type linkState struct {
	holdUp, holdDown   bool          // held bytes flow again when healed, as TCP would retransmit them
	delayUp, delayDown time.Duration // latency added to every chunk
}

var pass = linkState{}

func (s linkState) hold(up bool) bool {
	if up {
		return s.holdUp
	}
	return s.holdDown
}

func (s linkState) delay(up bool) time.Duration {
	if up {
		return s.delayUp
	}
	return s.delayDown
}

// faultProxy forwards TCP connections from its listener to target and
// injects faults: latency, a blackhole in either or both directions, and
// resets of every connection.
type faultProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cond  *sync.Cond
	state linkState
	conns map[net.Conn]bool
}

func newFaultProxy(target string) (*faultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	return p, nil
}

// addr is the address clients dial.
func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) close() {
	p.ln.Close()
	p.reset()
	p.set(pass)
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *faultProxy) handle(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.conns[client], p.conns[server] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pump(server, client, true); done <- struct{}{} }()
	go func() { p.pump(client, server, false); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// chunk is bytes read from one side and when they were read.
type chunk struct {
	b    []byte
	read time.Time
}

// pump copies src to dst; up is the client-to-server direction. A reader
// stamps each chunk as it arrives and a writer delivers it once the
// direction is not held and its delay since arrival has passed, so a delay
// is latency, not a throughput limit.
func (p *faultProxy) pump(dst, src net.Conn, up bool) {
	chunks := make(chan chunk, 256)
	go func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{b: append([]byte(nil), buf[:n]...), read: time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		if d := time.Until(c.read.Add(p.wait(up))); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			for range chunks {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// wait blocks while the direction is held (a reset connection's writer
// stays held until the proxy heals) and returns its delay.
func (p *faultProxy) wait(up bool) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.state.hold(up) {
		p.cond.Wait()
	}
	return p.state.delay(up)
}

// set changes what the proxy does; pass heals.
func (p *faultProxy) set(s linkState) {
	p.mu.Lock()
	p.state = s
	p.cond.Broadcast()
	p.mu.Unlock()
}

// reset closes every connection going through the proxy (clients see a
// dropped connection and dial again).
func (p *faultProxy) reset() {
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
