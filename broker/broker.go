// Package broker is Strata's serving layer: stateless brokers that own
// namespace bundles through lease-bound etcd keys, load topics (managed
// ledgers) on demand, accept producers and consumers over the native gRPC
// API, dispatch messages to subscriptions with Pulsar's semantics, and serve
// health, metrics and admin endpoints over HTTP.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/internal/grpcbuf"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/autorecovery"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/auth"
	"github.com/strata-mq/strata/tenants/schema"
)

// Broker serves topics.
type Broker struct {
	opts    Options
	id      string
	log     *slog.Logger
	md      metadata.Store
	cfg     *tenants.Store
	ledgers *ledger.Client
	metrics *metrics

	grpcLis net.Listener
	httpLis net.Listener
	grpcSrv *grpc.Server
	httpSrv *http.Server
	// httpRoutes lists httpSrv's routes (HTTPRoutes).
	httpRoutes []string
	grpcURL    string // advertised host:port
	httpURL    string // advertised http://host:port
	ownsLedg   bool   // the ledger client was created here
	recovery   *autorecovery.Service

	cache atomic.Pointer[tenants.Cache]
	ready atomic.Bool
	// initErr explains why the broker is not ready (for /readyz).
	initErr atomic.Pointer[string]

	own   *ownership
	authz *auth.Authorizer
	pub   *publishBuffer // bytes of sends held (MaxMessagePublishBufferBytes)

	remotes *remoteClients // clients of other clusters, for replicators
	schemas *schema.Registry

	// adminClient calls other brokers' admin API (partitioned topics).
	adminClientOnce sync.Once
	adminClient     *http.Client

	mu struct {
		sync.Mutex
		topics  map[string]*topicLoad // by full topic name
		closing bool
		// Pulsar protocol connections (listen.go); connsClosed once
		// the broker closed them and takes no more.
		conns       map[net.Conn]struct{}
		connsClosed bool
	}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// topicLoad is a topic being loaded or loaded; waiters block on done.
type topicLoad struct {
	done chan struct{}
	t    *Topic
	err  error
}

// offloadCheckTimeout bounds the start-up check of the offload store.
const offloadCheckTimeout = 30 * time.Second

// New validates options, checks the offload store and binds the listeners.
// Call Start to serve.
func New(opts Options) (*Broker, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	b := &Broker{opts: opts, log: opts.Logger, md: opts.Metadata, pub: newPublishBuffer(opts.MaxMessagePublishBufferBytes)}
	var err error
	if opts.Offload.Store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), offloadCheckTimeout)
		err = opts.Offload.Store.Check(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("broker: offload store (%s driver) unusable: %w", opts.Offload.Driver, err)
		}
	}
	if b.grpcLis, err = net.Listen("tcp", opts.GRPCAddr); err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", opts.GRPCAddr, err)
	}
	if b.httpLis, err = net.Listen("tcp", opts.HTTPAddr); err != nil {
		b.grpcLis.Close()
		return nil, fmt.Errorf("broker: listen %s: %w", opts.HTTPAddr, err)
	}
	host := opts.AdvertisedAddr
	if host == "" {
		host = "127.0.0.1"
		if ip := b.grpcLis.Addr().(*net.TCPAddr).IP; !ip.IsUnspecified() {
			host = ip.String()
		}
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h // an advertised host:port keeps only the host
	}
	b.grpcURL = net.JoinHostPort(host, strconv.Itoa(b.grpcLis.Addr().(*net.TCPAddr).Port))
	scheme := "http://"
	if opts.TLS != nil {
		scheme = "https://"
	}
	b.httpURL = scheme + net.JoinHostPort(host, strconv.Itoa(b.httpLis.Addr().(*net.TCPAddr).Port))
	b.id = opts.ID
	if b.id == "" {
		b.id = b.grpcURL
	}
	b.log = b.log.With("broker", b.id)
	b.cfg = tenants.NewStore(opts.ConfigStore, tenants.StoreOptions{LocalCluster: opts.Cluster})
	b.remotes = newRemoteClients(b)
	b.schemas = schema.NewRegistry(b.md)
	b.ledgers = opts.Ledgers
	if b.ledgers == nil {
		// Entries are a message plus its metadata: as large as the
		// producers' check in send allows.
		lopts := ledger.ClientOptions{Metadata: opts.Metadata, Logger: b.log, MaxEntrySize: maxEntrySize(opts.MaxMessageSize)}
		if b.ledgers, err = ledger.NewClient(lopts); err != nil {
			b.grpcLis.Close()
			b.httpLis.Close()
			return nil, err
		}
		b.ownsLedg = true
	}
	b.mu.topics = make(map[string]*topicLoad)
	b.metrics = newMetrics(b)
	b.own = newOwnership(b)
	if b.authz, err = newAuthorizer(b); err != nil {
		b.grpcLis.Close()
		b.httpLis.Close()
		return nil, err
	}
	reason := "starting"
	b.initErr.Store(&reason)
	return b, nil
}

// ID returns the broker id.
func (b *Broker) ID() string { return b.id }

// GRPCAddr returns the advertised gRPC address.
func (b *Broker) GRPCAddr() string { return b.grpcURL }

// HTTPURL returns the advertised HTTP base URL.
func (b *Broker) HTTPURL() string { return b.httpURL }

// Ready reports whether the broker serves topics.
func (b *Broker) Ready() bool { return b.ready.Load() }

// Start serves gRPC and HTTP at once and, in the background, waits for the
// cluster to be initialized, loads the configuration cache and registers
// the broker; until then requests get SERVICE_NOT_READY and /readyz fails.
func (b *Broker) Start() error {
	b.ctx, b.cancel = context.WithCancel(context.Background())
	gopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(b.opts.MaxMessageSize + (1 << 20)),
		grpc.MaxSendMsgSize(b.opts.MaxMessageSize + (1 << 20)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.MaxConcurrentStreams(uint32(b.opts.MaxConcurrentStreamsPerConnection)),
		grpc.ChainUnaryInterceptor(b.unaryAuth),
		grpc.ChainStreamInterceptor(b.streamAuth),
		grpcbuf.ServerOption(),
	}
	if b.opts.TLS != nil {
		// The client listener does the TLS handshake for both protocols.
		gopts = append(gopts, grpc.Creds(handshakenTLS{credentials.NewTLS(b.opts.TLS)}))
	}
	b.grpcSrv = grpc.NewServer(gopts...)
	clientpb.RegisterBrokerServer(b.grpcSrv, &service{b: b})
	mux := b.httpHandler()
	b.httpRoutes = mux.routes
	// Slow or idle clients are not held forever (admin requests and
	// responses are small; nothing streams).
	b.httpSrv = &http.Server{Handler: b.requireClientCert(mux), ReadHeaderTimeout: min(10*time.Second, b.opts.HTTPReadTimeout),
		ReadTimeout: b.opts.HTTPReadTimeout, WriteTimeout: 2 * time.Minute, IdleTimeout: b.opts.HTTPIdleTimeout, MaxHeaderBytes: 64 << 10}
	httpLis := b.httpLis
	if b.opts.TLS != nil {
		httpLis = tls.NewListener(httpLis, b.httpTLS())
	}
	clients := newClientListener(b, b.grpcLis, b.opts.TLS)
	b.goFn(clients.serve)
	b.goFn(func() { b.grpcSrv.Serve(clients) })
	b.goFn(func() { b.httpSrv.Serve(httpLis) })
	b.goFn(b.initLoop)
	b.goFn(b.maintenanceLoop)
	if err := b.startAutoRecovery(); err != nil {
		return err
	}
	b.log.Info("broker listening", "grpc", b.grpcURL, "http", b.httpURL, "cluster", b.opts.Cluster,
		"tls", describeTLS(b.opts.TLS), "authentication", b.opts.Authentication != nil, "authorization", b.opts.AuthorizationEnabled)
	return nil
}

func (b *Broker) goFn(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

func (b *Broker) setNotReady(reason string) {
	b.ready.Store(false)
	b.initErr.Store(&reason)
}

// initLoop waits for the cluster metadata, then keeps the broker registered
// (re-registering after a lost session).
func (b *Broker) initLoop() {
	backoff := 500 * time.Millisecond
	for b.ctx.Err() == nil {
		_, err := b.cfg.GetCluster(b.ctx, b.opts.Cluster)
		if err == nil {
			break
		}
		msg := fmt.Sprintf("cluster %q is not initialized in the metadata store (%v); run: strata init-cluster --cluster %s --etcd-endpoints ...", b.opts.Cluster, err, b.opts.Cluster)
		if !errors.Is(err, tenants.ErrNotFound) {
			msg = fmt.Sprintf("metadata store unavailable: %v", err)
		}
		b.setNotReady(msg)
		b.log.Warn("waiting before serving: " + msg)
		select {
		case <-time.After(backoff):
		case <-b.ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	cache, err := b.newCacheRetrying()
	if err != nil {
		return
	}
	b.cache.Store(cache)
	cache.Subscribe(b.checkAccess)
	cache.Subscribe(b.replicationChanged)
	b.own.run() // returns when the broker stops
}

func (b *Broker) newCacheRetrying() (*tenants.Cache, error) {
	for {
		cache, err := tenants.NewCache(b.ctx, b.opts.ConfigStore, tenants.CacheOptions{Logger: b.log})
		if err == nil {
			return cache, nil
		}
		b.setNotReady(fmt.Sprintf("loading configuration: %v", err))
		select {
		case <-time.After(time.Second):
		case <-b.ctx.Done():
			return nil, b.ctx.Err()
		}
	}
}

// policies returns the namespace's policies, or ErrNamespaceNotFound.
func (b *Broker) policies(ns naming.Namespace) (tenants.Policies, error) {
	c := b.cache.Load()
	if c == nil {
		return tenants.Policies{}, ErrNotReady
	}
	p, ok := c.Policies(ns)
	if !ok {
		return tenants.Policies{}, fmt.Errorf("%w: %s", ErrNamespaceNotFound, ns)
	}
	return p, nil
}

// Close shuts down gracefully: it stops taking new sessions, unloads every
// topic (closing producers and consumers, which reconnect elsewhere, and
// persisting cursors), releases bundle ownership and unregisters.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.mu.closing {
		b.mu.Unlock()
		return nil
	}
	b.mu.closing = true
	b.mu.Unlock()
	b.ready.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Order matters: leave the broker list (no new lookups land here),
	// unload topics (clients reconnect; cursors persist), then release the
	// bundles so another broker takes them at once.
	b.own.unregister(ctx)
	b.unloadAll(ctx)
	b.closeConns()
	b.own.releaseAll(ctx)
	if b.cancel != nil {
		b.cancel()
	}
	if b.grpcSrv != nil {
		stopped := make(chan struct{})
		go func() { b.grpcSrv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			b.grpcSrv.Stop()
		}
	}
	if b.httpSrv != nil {
		b.httpSrv.Close()
	} else {
		b.httpLis.Close()
	}
	b.wg.Wait()
	b.stopAutoRecovery()
	b.remotes.close()
	if c := b.cache.Load(); c != nil {
		c.Close()
	}
	if b.ownsLedg {
		b.ledgers.Close()
	}
	b.log.Info("broker stopped")
	return nil
}

// Kill stops the broker abruptly, like a crash: no topic is closed and no
// ownership released (leases expire after the session TTL). For tests.
func (b *Broker) Kill() {
	b.mu.Lock()
	b.mu.closing = true
	b.mu.Unlock()
	b.ready.Store(false)
	b.own.orphan()
	if b.cancel != nil {
		b.cancel()
	}
	if b.grpcSrv != nil {
		b.grpcSrv.Stop()
	}
	b.closeConns()
	if b.httpSrv != nil {
		b.httpSrv.Close()
	}
	b.mu.Lock()
	loads := b.mu.topics
	b.mu.topics = map[string]*topicLoad{}
	b.mu.Unlock()
	for _, l := range loads {
		<-l.done
		if l.t != nil {
			l.t.abandon()
		}
	}
	b.wg.Wait()
	b.stopAutoRecovery()
	b.remotes.close()
	if b.ownsLedg {
		b.ledgers.Close()
	}
}

// OwnsTopic reports whether this broker currently serves the topic's bundle.
func (b *Broker) OwnsTopic(topic string) bool {
	t, err := naming.ParseTopic(topic)
	if err != nil {
		return false
	}
	key, err := b.bundleKey(t)
	return err == nil && b.own.owns(key)
}

// TopicStatsSnapshot is a small view of a loaded topic's state, for tests
// and operators.
type TopicStatsSnapshot struct {
	CacheBytes int64
	Unacked    int // messages delivered and not acknowledged, all subscriptions
	Pending    int // entries awaiting redelivery, all subscriptions
}

// TopicStats returns a snapshot of a loaded topic.
func (b *Broker) TopicStats(topic string) (TopicStatsSnapshot, bool) {
	t, err := naming.ParseTopic(topic)
	if err != nil {
		return TopicStatsSnapshot{}, false
	}
	tp, ok := b.loadedTopic(t.String())
	if !ok {
		return TopicStatsSnapshot{}, false
	}
	st := TopicStatsSnapshot{CacheBytes: tp.ml.Stats().Cache.Bytes}
	tp.mu.Lock()
	subs := make([]*Subscription, 0, len(tp.mu.subs))
	for _, s := range tp.mu.subs {
		subs = append(subs, s)
	}
	tp.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		for _, c := range s.mu.consumers {
			st.Unacked += c.unacked
		}
		st.Pending += len(s.mu.replay)
		s.mu.Unlock()
	}
	return st, true
}
