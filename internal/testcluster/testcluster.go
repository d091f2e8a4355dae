// Package testcluster runs Strata components in-process for tests: an
// embedded etcd (shared per test binary, a unique key root per cluster) and
// bookies on loopback ports in temporary directories, each of which can be
// killed, stopped and restarted on the same address and data.
package testcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/auth"
)

// Config describes a cluster.
type Config struct {
	// Bookies to start.
	Bookies int
	// BookieOptions adjusts the options of bookie i before it starts (each
	// start, including restarts).
	BookieOptions func(i int, o *bookie.Options)
	// Brokers to start (the cluster is initialized first).
	Brokers int
	// BrokerOptions adjusts the options of broker i before each start.
	BrokerOptions func(i int, o *broker.Options)

	// Name is the cluster's name; default ClusterName.
	Name string
	// OwnEtcd starts an embedded etcd of the cluster's own for its local
	// store, instead of a key root on the test binary's shared one (for
	// geo-replication tests: each cluster its own local store).
	OwnEtcd bool
	// ConfigStore is the configuration store (clusters, tenants,
	// namespaces), shared by clusters that replicate to each other;
	// default the local store.
	ConfigStore metadata.Store
}

// ClusterName is the default name of a test cluster.
const ClusterName = "test"

// Cluster is a running test cluster. Close is registered with t.Cleanup.
type Cluster struct {
	t     testing.TB
	cfg   Config
	Store metadata.Store
	Etcd  metadata.EtcdConfig
	Log   *slog.Logger

	root    string // data directories; removed after Close
	mu      sync.Mutex
	bookies []*BookieNode
	brokers []*BrokerNode
}

// BrokerNode is one broker of the cluster.
type BrokerNode struct {
	Index    int
	GRPCAddr string
	HTTPAddr string
	B        *broker.Broker // nil while stopped
}

// BookieNode is one bookie of the cluster.
type BookieNode struct {
	Index int
	Dir   string
	Addr  string
	B     *bookie.Bookie // nil while stopped
}

// New starts a cluster.
func New(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = ClusterName
	}
	root := t.TempDir()
	var store metadata.Store
	var ecfg metadata.EtcdConfig
	if cfg.OwnEtcd {
		store, ecfg = OwnEtcd(t, filepath.Join(root, "etcd"))
	} else {
		store, ecfg = testutil.Store(t)
	}
	if cfg.ConfigStore == nil {
		cfg.ConfigStore = store
	}
	// TempDir before Cleanup(Close): cleanups run in reverse, so components
	// stop before their directories are removed.
	c := &Cluster{t: t, cfg: cfg, Store: store, Etcd: ecfg, Log: TestLogger(t), root: root}
	t.Cleanup(c.Close)
	for i := 0; i < cfg.Bookies; i++ {
		c.AddBookie()
	}
	if cfg.Brokers > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The brokers' addresses are chosen now, so the cluster registers
		// its real URLs (replicators of other clusters dial them).
		for i := 0; i < cfg.Brokers; i++ {
			c.brokers = append(c.brokers, &BrokerNode{Index: i, GRPCAddr: testutil.FreeAddr(t), HTTPAddr: testutil.FreeAddr(t)})
		}
		var grpcs []string
		for _, n := range c.brokers {
			grpcs = append(grpcs, n.GRPCAddr)
		}
		if err := tenants.InitializeCluster(ctx, cfg.ConfigStore, cfg.Name, tenants.ClusterData{
			ServiceURL: "http://" + c.brokers[0].HTTPAddr, BrokerServiceURL: "pulsar://" + strings.Join(grpcs, ","),
		}); err != nil {
			t.Fatalf("initialize cluster: %v", err)
		}
		for i := 0; i < cfg.Brokers; i++ {
			if err := c.StartBroker(i); err != nil {
				t.Fatalf("start broker %d: %v", i, err)
			}
		}
	}
	return c
}

// OwnEtcd starts an embedded etcd in dir for one cluster, stopped when the
// test ends.
func OwnEtcd(t testing.TB, dir string) (metadata.Store, metadata.EtcdConfig) {
	t.Helper()
	e, err := metadata.StartEmbedded(metadata.EmbedConfig{Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true, LogLevel: "panic"})
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	cfg := metadata.EtcdConfig{Endpoints: e.Endpoints()}
	s, err := metadata.NewEtcdStore(cfg)
	if err != nil {
		t.Fatalf("metadata store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.cfg.Name }

// ConfigStore returns the cluster's configuration store.
func (c *Cluster) ConfigStore() metadata.Store { return c.cfg.ConfigStore }

// AddBroker starts one more broker and returns its index.
func (c *Cluster) AddBroker() int {
	c.t.Helper()
	c.mu.Lock()
	n := &BrokerNode{Index: len(c.brokers), GRPCAddr: testutil.FreeAddr(c.t), HTTPAddr: testutil.FreeAddr(c.t)}
	c.brokers = append(c.brokers, n)
	c.mu.Unlock()
	if err := c.StartBroker(n.Index); err != nil {
		c.t.Fatalf("start broker %d: %v", n.Index, err)
	}
	return n.Index
}

// BrokerOptions returns the options broker i starts with.
func (c *Cluster) BrokerOptions(i int) broker.Options {
	n := c.brokerNode(i)
	o := broker.Options{
		Cluster: c.cfg.Name, GRPCAddr: n.GRPCAddr, HTTPAddr: n.HTTPAddr, Metadata: c.Store, ConfigStore: c.cfg.ConfigStore, Logger: c.Log,
		SessionTTL: 2 * time.Second, CursorPersistInterval: 100 * time.Millisecond,
	}
	if c.cfg.BrokerOptions != nil {
		c.cfg.BrokerOptions(i, &o)
	}
	return o
}

// StartBroker starts (or restarts) broker i on its addresses and waits
// until it is ready.
func (c *Cluster) StartBroker(i int) error {
	n := c.brokerNode(i)
	if n.B != nil {
		return fmt.Errorf("broker %d already running", i)
	}
	b, err := broker.New(c.BrokerOptions(i))
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		b.Close()
		return err
	}
	c.mu.Lock()
	n.B = b
	c.mu.Unlock()
	testutil.WaitFor(c.t, 30*time.Second, func() error {
		if !b.Ready() {
			return fmt.Errorf("broker %d not ready", i)
		}
		return nil
	})
	return nil
}

// KillBroker stops broker i abruptly (its ownership expires after the TTL).
func (c *Cluster) KillBroker(i int) {
	n := c.brokerNode(i)
	if n.B != nil {
		n.B.Kill()
		c.mu.Lock()
		n.B = nil
		c.mu.Unlock()
	}
}

// StopBroker stops broker i gracefully.
func (c *Cluster) StopBroker(i int) {
	n := c.brokerNode(i)
	if n.B != nil {
		n.B.Close()
		c.mu.Lock()
		n.B = nil
		c.mu.Unlock()
	}
}

// Broker returns broker node i.
func (c *Cluster) Broker(i int) *BrokerNode { return c.brokerNode(i) }

// BrokerIndex returns the index of the broker with the gRPC address addr.
func (c *Cluster) BrokerIndex(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.brokers {
		if n.GRPCAddr == addr {
			return n.Index
		}
	}
	return -1
}

func (c *Cluster) brokerNode(i int) *BrokerNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.brokers[i]
}

// ServiceURL returns the gRPC addresses of every broker, comma-separated.
func (c *Cluster) ServiceURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var addrs []string
	for _, n := range c.brokers {
		addrs = append(addrs, n.GRPCAddr)
	}
	return strings.Join(addrs, ",")
}

// TestLogger logs to the test log at warn level (set STRATA_TEST_LOG=debug
// for everything).
func TestLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("STRATA_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { recover() }() // the test may have ended
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// AddBookie starts one more bookie and returns its index.
func (c *Cluster) AddBookie() int {
	c.t.Helper()
	c.mu.Lock()
	n := &BookieNode{Index: len(c.bookies), Dir: filepath.Join(c.root, fmt.Sprintf("bookie-%d", len(c.bookies))), Addr: testutil.FreeAddr(c.t)}
	c.bookies = append(c.bookies, n)
	c.mu.Unlock()
	if err := c.StartBookie(n.Index); err != nil {
		c.t.Fatalf("start bookie %d: %v", n.Index, err)
	}
	return n.Index
}

// BookieOptions returns the options bookie i starts with.
func (c *Cluster) BookieOptions(i int) bookie.Options {
	n := c.node(i)
	o := bookie.Options{
		ListenAddr: n.Addr, DataDir: n.Dir, Metadata: c.Store, Logger: c.Log,
		SessionTTL: 2 * time.Second, DiskCheckInterval: 100 * time.Millisecond, GCInterval: time.Hour,
	}
	if c.cfg.BookieOptions != nil {
		c.cfg.BookieOptions(i, &o)
	}
	return o
}

// StartBookie starts (or restarts) bookie i on its address and directory.
func (c *Cluster) StartBookie(i int) error {
	n := c.node(i)
	if n.B != nil {
		return fmt.Errorf("bookie %d already running", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bookie.New(ctx, c.BookieOptions(i))
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		b.Close()
		return err
	}
	c.mu.Lock()
	n.B = b
	c.mu.Unlock()
	c.WaitBookieRegistered(i)
	return nil
}

// WaitBookieRegistered waits until bookie i is registered in metadata.
func (c *Cluster) WaitBookieRegistered(i int) {
	id := c.node(i).Addr
	testutil.WaitFor(c.t, 15*time.Second, func() error {
		_, err := c.Store.Get(context.Background(), metadata.BookieKey(id))
		return err
	})
}

// KillBookie stops bookie i abruptly: connections drop and its registration
// expires only after the session TTL, as after a crash.
func (c *Cluster) KillBookie(i int) {
	n := c.node(i)
	if n.B != nil {
		n.B.Kill()
		c.mu.Lock()
		n.B = nil
		c.mu.Unlock()
	}
}

// CrashBookie stops bookie i as a power failure would: besides what
// KillBookie does, every write it had not synced is lost (bookie.Crash; the
// bookie needs Hooks.CrashTest).
func (c *Cluster) CrashBookie(i int) {
	c.t.Helper()
	n := c.node(i)
	if n.B != nil {
		if err := n.B.Crash(); err != nil {
			c.t.Fatalf("crash bookie %d: %v", i, err)
		}
		c.mu.Lock()
		n.B = nil
		c.mu.Unlock()
	}
}

// StopBookie stops bookie i gracefully.
func (c *Cluster) StopBookie(i int) {
	n := c.node(i)
	if n.B != nil {
		n.B.Close()
		c.mu.Lock()
		n.B = nil
		c.mu.Unlock()
	}
}

// RestartBookie kills and restarts bookie i.
func (c *Cluster) RestartBookie(i int) {
	c.t.Helper()
	c.KillBookie(i)
	if err := c.StartBookie(i); err != nil {
		c.t.Fatalf("restart bookie %d: %v", i, err)
	}
}

// Bookie returns node i.
func (c *Cluster) Bookie(i int) *BookieNode { return c.node(i) }

// BookieIndex returns the index of the bookie with the given id (address).
func (c *Cluster) BookieIndex(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.bookies {
		if n.Addr == id {
			return n.Index
		}
	}
	return -1
}

func (c *Cluster) node(i int) *BookieNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bookies[i]
}

// LedgerClient returns a ledger client on the cluster, closed at cleanup.
func (c *Cluster) LedgerClient(adjust ...func(*ledger.ClientOptions)) *ledger.Client {
	opts := ledger.ClientOptions{Metadata: c.Store, Logger: c.Log, AddTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second}
	for _, a := range adjust {
		a(&opts)
	}
	lc, err := ledger.NewClient(opts)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { lc.Close() })
	return lc
}

// Close stops every component.
func (c *Cluster) Close() {
	c.mu.Lock()
	nodes := append([]*BookieNode(nil), c.bookies...)
	brokers := append([]*BrokerNode(nil), c.brokers...)
	c.mu.Unlock()
	for _, n := range brokers {
		if n.B != nil {
			n.B.Close()
			n.B = nil
		}
	}
	for _, n := range nodes {
		if n.B != nil {
			n.B.Close()
			n.B = nil
		}
	}
}

// StartSecureStandalone starts a standalone (one process: etcd, a bookie,
// a broker) whose broker authenticates with authn and authorizes every
// request; role "admin" is the superuser. It closes when the test ends.
func StartSecureStandalone(t testing.TB, authn *auth.Authenticator) *standalone.Standalone {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := standalone.Start(ctx, standalone.Options{
		DataDir: t.TempDir(), EtcdClientAddr: testutil.FreeAddr(t), EtcdPeerAddr: testutil.FreeAddr(t), BookieAddr: testutil.FreeAddr(t),
		Broker: broker.Options{GRPCAddr: testutil.FreeAddr(t), HTTPAddr: testutil.FreeAddr(t), SessionTTL: 2 * time.Second,
			Authentication: authn, AuthorizationEnabled: true, SuperUserRoles: []string{"admin"}},
		Logger: TestLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
