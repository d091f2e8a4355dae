package main

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// StandaloneCluster is the cluster name of `strata standalone`.
const StandaloneCluster = "standalone"

func newStandaloneCmd() *cobra.Command {
	var (
		dataDir                          string
		etcdClient, etcdPeer, bookieAddr string
		o                                broker.Options
	)
	cmd := &cobra.Command{
		Use:   "standalone",
		Short: "Run etcd, a bookie and a broker in one process (cluster \"standalone\")",
		Long: `Run a complete single-node Strata: an embedded etcd (its client port stays open
so extra bookies and brokers can join), one bookie and one broker, with tenant
"public" and namespace "public/default". Data under --data-dir survives restarts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			start := time.Now()
			etcd, err := metadata.StartEmbedded(metadata.EmbedConfig{Dir: filepath.Join(dataDir, "etcd"), ClientAddr: etcdClient, PeerAddr: etcdPeer})
			if err != nil {
				return err
			}
			defer etcd.Close()
			store, err := metadata.NewEtcdStore(metadata.EtcdConfig{Endpoints: etcd.Endpoints()})
			if err != nil {
				return err
			}
			defer store.Close()
			host, _, _ := net.SplitHostPort(o.GRPCAddr)
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			if o.AdvertisedAddr != "" {
				host = o.AdvertisedAddr
			}
			_, gport, _ := net.SplitHostPort(o.GRPCAddr)
			_, hport, _ := net.SplitHostPort(o.HTTPAddr)
			if err := tenants.InitializeCluster(ctx, store, StandaloneCluster, tenants.ClusterData{
				ServiceURL: "http://" + net.JoinHostPort(host, hport), BrokerServiceURL: net.JoinHostPort(host, gport),
			}); err != nil {
				return fmt.Errorf("initialize standalone cluster: %w", err)
			}
			bk, err := bookie.New(ctx, bookie.Options{
				ListenAddr: bookieAddr, DataDir: filepath.Join(dataDir, "bookie"), Metadata: store, Logger: slog.Default(),
				SessionTTL: o.SessionTTL,
			})
			if err != nil {
				return err
			}
			if err := bk.Start(); err != nil {
				bk.Close()
				return err
			}
			defer bk.Close()
			o.Cluster, o.Metadata, o.Logger = StandaloneCluster, store, slog.Default()
			b, err := broker.New(o)
			if err != nil {
				return err
			}
			if err := b.Start(); err != nil {
				return err
			}
			go func() {
				for !b.Ready() && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
				if ctx.Err() == nil {
					slog.Info("standalone ready", "grpc", b.GRPCAddr(), "http", b.HTTPURL(), "etcd", etcd.Endpoints(), "bookie", bk.Addr(), "startup", time.Since(start).Round(time.Millisecond))
				}
			}()
			select {
			case <-ctx.Done():
			case err := <-etcd.Err():
				slog.Error("embedded etcd failed", "err", err)
			}
			slog.Info("shutting down standalone")
			return b.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "data/standalone", "data directory (etcd, bookie)")
	f.StringVar(&etcdClient, "etcd-client-addr", "127.0.0.1:2379", "embedded etcd client listen address")
	f.StringVar(&etcdPeer, "etcd-peer-addr", "127.0.0.1:2380", "embedded etcd peer listen address")
	f.StringVar(&bookieAddr, "bookie-addr", "127.0.0.1:3181", "bookie gRPC listen address")
	brokerFlags(f, &o)
	return cmd
}
