// Package client is the Go SDK for Strata: producers (batching, async
// sends, ordered receipts, backpressure), consumers (flow control,
// individual/cumulative acks, the four subscription types), readers and
// partitioned topics, all reconnecting on their own when brokers move or
// fail.
//
//	c, _ := client.New("127.0.0.1:6650")
//	p, _ := c.CreateProducer(ctx, "my-topic")
//	p.Send(ctx, &client.ProducerMessage{Payload: []byte("hi")})
//	cons, _ := c.Subscribe(ctx, "my-topic", "my-sub", client.WithSubscriptionType(client.Shared))
//	msg, _ := cons.Receive(ctx)
//	cons.Ack(msg)
package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/internal/grpcbuf"
)

// Client connects to a Strata cluster. It is safe for concurrent use; close
// it when done.
type Client struct {
	urls []string // service URLs: any broker answers lookups
	next atomic.Uint32
	opts clientOptions
	log  *slog.Logger

	mu struct {
		sync.Mutex
		conns  map[string]*grpc.ClientConn
		closed bool
	}
}

// New returns a client for the cluster reachable at url: host:port of a
// broker's listener, or several comma-separated (lookups go to any of
// them, moving on when one is unreachable), in Pulsar's forms too:
// pulsar://host:6650, pulsar://a:6650,b:6650, pulsar+ssl://host:6651 (TLS,
// trusting the system's roots unless WithTLS says otherwise). No
// connection is made until first use.
func New(url string, opts ...ClientOption) (*Client, error) {
	u, err := parseServiceURL(url)
	if err != nil {
		return nil, err
	}
	o := defaultClientOptions()
	for _, f := range opts {
		f(&o)
	}
	if u.tls && o.creds == nil {
		o.creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	c := &Client{urls: u.hosts, opts: o, log: o.logger}
	c.mu.conns = make(map[string]*grpc.ClientConn)
	return c, nil
}

// Close closes every connection. Producers and consumers stop working.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.closed = true
	for _, cc := range c.mu.conns {
		cc.Close()
	}
	c.mu.conns = nil
	return nil
}

// conn returns the connection to a broker address.
func (c *Client) conn(addr string) (clientpb.BrokerClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	if cc, ok := c.mu.conns[addr]; ok {
		return clientpb.NewBrokerClient(cc), nil
	}
	dial := []grpc.DialOption{
		grpcbuf.DialOption(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}
	if c.opts.creds != nil {
		dial = append(dial, grpc.WithTransportCredentials(c.opts.creds))
	} else {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if c.opts.token != nil {
		dial = append(dial, grpc.WithPerRPCCredentials(tokenCreds{token: c.opts.token, secure: c.opts.creds != nil}))
	}
	cc, err := grpc.NewClient(addr, dial...)
	if err != nil {
		return nil, fmt.Errorf("strata: connect %s: %w", addr, err)
	}
	c.mu.conns[addr] = cc
	return clientpb.NewBrokerClient(cc), nil
}

// serviceURL returns the service URL to try; a failure moves to the next.
func (c *Client) serviceURL() string { return c.urls[int(c.next.Load())%len(c.urls)] }

func (c *Client) serviceFailed(url string) {
	if cur := c.next.Load(); c.urls[int(cur)%len(c.urls)] == url {
		c.next.CompareAndSwap(cur, cur+1)
	}
}

// lookup returns the gRPC address of the broker serving topic, following
// redirects.
func (c *Client) lookup(ctx context.Context, topic string) (string, error) {
	addr, authoritative := c.serviceURL(), false
	for hop := 0; hop < 8; hop++ {
		cli, err := c.conn(addr)
		if err != nil {
			return "", err
		}
		lctx, cancel := context.WithTimeout(ctx, c.opts.operationTimeout)
		resp, err := cli.Lookup(lctx, &clientpb.LookupRequest{Topic: topic, Authoritative: authoritative})
		cancel()
		if err != nil {
			e, retryable := brokerError(err)
			if retryable {
				c.serviceFailed(addr)
			}
			return "", fmt.Errorf("lookup %s at %s: %w", topic, addr, e)
		}
		if resp.Kind == clientpb.LookupResponse_CONNECT {
			return resp.BrokerUrl, nil
		}
		addr, authoritative = resp.BrokerUrl, resp.Authoritative
	}
	return "", fmt.Errorf("lookup %s: too many redirects", topic)
}

// partitions returns the number of partitions of topic (0: not partitioned).
func (c *Client) partitions(ctx context.Context, topic string) (int, error) {
	var n int
	err := c.retry(ctx, func(ctx context.Context) error {
		url := c.serviceURL()
		cli, err := c.conn(url)
		if err != nil {
			return err
		}
		resp, err := cli.PartitionedMetadata(ctx, &clientpb.PartitionedMetadataRequest{Topic: topic})
		if err != nil {
			if _, retryable := brokerError(err); retryable {
				c.serviceFailed(url)
			}
			return err
		}
		n = int(resp.Partitions)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	return n, nil
}

// LastMessageID returns the id of the last message of a (non-partitioned)
// topic, or of one partition.
func (c *Client) LastMessageID(ctx context.Context, topic string) (MessageID, error) {
	var id MessageID
	err := c.retry(ctx, func(ctx context.Context) error {
		addr, err := c.lookup(ctx, topic)
		if err != nil {
			return err
		}
		cli, err := c.conn(addr)
		if err != nil {
			return err
		}
		resp, err := cli.LastMessageId(ctx, &clientpb.LastMessageIdRequest{Topic: topic})
		if err != nil {
			return err
		}
		id = messageIDFromPB(resp.MessageId)
		return nil
	})
	return id, err
}

// retry runs op, retrying retryable failures with backoff until ctx ends
// or the operation timeout passes.
func (c *Client) retry(ctx context.Context, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.operationTimeout)
	defer cancel()
	b := newBackoff()
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		e, retryable := brokerError(err)
		if !retryable {
			return e
		}
		select {
		case <-time.After(b.next()):
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), e)
		}
	}
}

func statusMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// backoff is exponential with jitter-free doubling from 100 ms to 5 s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) next() time.Duration {
	b.d = min(2*b.d, 5*time.Second)
	return b.d
}

func (b *backoff) reset() { b.d = 50 * time.Millisecond }
