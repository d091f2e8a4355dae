// Package standalone runs a complete single-node Strata in one process: an
// embedded etcd, one bookie and one broker in cluster "standalone", with
// tenant "public" and namespace "public/default". `strata standalone` and
// end-to-end tests use it.
package standalone

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// Cluster is the default cluster name of a standalone deployment.
const Cluster = "standalone"

// Options configures a standalone instance.
type Options struct {
	// DataDir holds etcd's and the bookie's data. Required.
	DataDir string
	// EtcdClientAddr / EtcdPeerAddr are the embedded etcd's listen
	// addresses; defaults 127.0.0.1:2379 / 127.0.0.1:2380.
	EtcdClientAddr, EtcdPeerAddr string
	// BookieAddr is the bookie's listen address; default 127.0.0.1:3181.
	BookieAddr string
	// Cluster names the cluster; default "standalone". Two standalones
	// with different names can replicate to each other.
	Cluster string
	// Broker configures the broker; Cluster, Metadata and Logger are set here.
	Broker broker.Options
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Standalone is a running instance.
type Standalone struct {
	Etcd   *metadata.Embedded
	Store  metadata.Store
	Bookie *bookie.Bookie
	Broker *broker.Broker
}

// Start starts etcd, the bookie and the broker and waits until the broker
// is ready (or ctx ends).
func Start(ctx context.Context, o Options) (s *Standalone, err error) {
	if o.DataDir == "" {
		return nil, fmt.Errorf("standalone: DataDir is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Cluster = or(o.Cluster, Cluster)
	if err := naming.ValidateCluster(o.Cluster); err != nil {
		return nil, fmt.Errorf("standalone: cluster name: %w", err)
	}
	s = &Standalone{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Etcd, err = metadata.StartEmbedded(metadata.EmbedConfig{Dir: filepath.Join(o.DataDir, "etcd"),
		ClientAddr: or(o.EtcdClientAddr, "127.0.0.1:2379"), PeerAddr: or(o.EtcdPeerAddr, "127.0.0.1:2380")}); err != nil {
		return s, err
	}
	if s.Store, err = metadata.NewEtcdStore(metadata.EtcdConfig{Endpoints: s.Etcd.Endpoints()}); err != nil {
		return s, err
	}
	bo := o.Broker
	bo.EnsureDefaults()
	host := advertisedHost(bo)
	_, gport, _ := net.SplitHostPort(bo.GRPCAddr)
	_, hport, _ := net.SplitHostPort(bo.HTTPAddr)
	if err = tenants.InitializeCluster(ctx, s.Store, o.Cluster, tenants.ClusterData{
		ServiceURL: "http://" + net.JoinHostPort(host, hport), BrokerServiceURL: "pulsar://" + net.JoinHostPort(host, gport),
	}); err != nil {
		return s, fmt.Errorf("standalone: initialize cluster: %w", err)
	}
	// The bookie keeps the id its data directory was created with, so the
	// standalone may move to other ports (ids default to the address).
	bookieDir := filepath.Join(o.DataDir, "bookie")
	bookieID, _, err := bookie.DataDirID(bookieDir)
	if err != nil {
		return s, err
	}
	if s.Bookie, err = bookie.New(ctx, bookie.Options{
		ID: bookieID, ListenAddr: or(o.BookieAddr, "127.0.0.1:3181"), DataDir: bookieDir,
		Metadata: s.Store, Logger: o.Logger, SessionTTL: bo.SessionTTL,
		// Room for the broker's largest entry (message, metadata, envelope).
		MaxEntrySize: max(5<<20+128<<10, bo.MaxMessageSize+128<<10),
	}); err != nil {
		return s, err
	}
	if err = s.Bookie.Start(); err != nil {
		return s, err
	}
	bo.Cluster, bo.Metadata, bo.Logger = o.Cluster, s.Store, o.Logger
	if s.Broker, err = broker.New(bo); err != nil {
		return s, err
	}
	if err = s.Broker.Start(); err != nil {
		return s, err
	}
	for !s.Broker.Ready() {
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return s, ctx.Err()
		case err := <-s.Etcd.Err():
			return s, fmt.Errorf("standalone: embedded etcd: %w", err)
		}
	}
	return s, nil
}

func advertisedHost(o broker.Options) string {
	if o.AdvertisedAddr != "" {
		return o.AdvertisedAddr
	}
	host, _, _ := net.SplitHostPort(o.GRPCAddr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		return "127.0.0.1"
	}
	return host
}

// Close stops the broker (gracefully), the bookie and etcd.
func (s *Standalone) Close() error {
	if s.Broker != nil {
		s.Broker.Close()
	}
	if s.Bookie != nil {
		s.Bookie.Close()
	}
	if s.Store != nil {
		s.Store.Close()
	}
	if s.Etcd != nil {
		s.Etcd.Close()
	}
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
