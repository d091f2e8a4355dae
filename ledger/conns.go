package ledger

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/internal/grpcbuf"
)

// connPool holds one gRPC connection per bookie address.
type connPool struct {
	maxMsg int
	mu     struct {
		sync.Mutex
		conns  map[string]*grpc.ClientConn
		closed bool
	}
}

func newConnPool(maxEntry int) *connPool {
	p := &connPool{maxMsg: maxEntry + (2 << 20)}
	p.mu.conns = make(map[string]*grpc.ClientConn)
	return p
}

func (p *connPool) get(addr string) (bookiepb.BookieClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil, ErrClosed
	}
	if cc, ok := p.mu.conns[addr]; ok {
		return bookiepb.NewBookieClient(cc), nil
	}
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpcbuf.DialOption(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(p.maxMsg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, err
	}
	p.mu.conns[addr] = cc
	return bookiepb.NewBookieClient(cc), nil
}

func (p *connPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.closed = true
	for _, cc := range p.mu.conns {
		cc.Close()
	}
	p.mu.conns = nil
	return nil
}

// bookie returns a client for a bookie id.
func (c *Client) bookie(ctx context.Context, id string) (bookiepb.BookieClient, error) {
	return c.conns.get(c.addr(ctx, id))
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// withTimeout bounds one bookie request.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.ReadTimeout)
}
