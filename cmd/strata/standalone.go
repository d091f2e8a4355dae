package main

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/internal/standalone"
)

func newStandaloneCmd() *cobra.Command {
	var (
		o   standalone.Options
		b   broker.Options
		sec securityFlags
		off offloadFlags
	)
	cmd := &cobra.Command{
		Use:   "standalone",
		Short: "Run etcd, a bookie and a broker in one process (cluster \"standalone\" unless --cluster names another)",
		Long: `Run a complete single-node Strata: an embedded etcd (its client port stays open
so extra bookies and brokers can join), one bookie and one broker, with tenant
"public" and namespace "public/default". Data under --data-dir survives restarts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			setMemoryLimit()
			ctx, cancel := signalContext()
			defer cancel()
			start := time.Now()
			if err := sec.apply(&b); err != nil {
				return err
			}
			if off.driver == "filesystem" && off.fsDir == "" {
				off.fsDir = filepath.Join(o.DataDir, "offload")
			}
			if err := off.apply(&b); err != nil {
				return err
			}
			o.Broker = b
			s, err := standalone.Start(ctx, o)
			if err != nil {
				return err
			}
			defer s.Close()
			slog.Info("standalone ready", "grpc", s.Broker.GRPCAddr(), "http", s.Broker.HTTPURL(),
				"etcd", s.Etcd.Endpoints(), "bookie", s.Bookie.Addr(), "startup", time.Since(start).Round(time.Millisecond))
			select {
			case <-ctx.Done():
			case err := <-s.Etcd.Err():
				slog.Error("embedded etcd failed", "err", err)
			}
			slog.Info("shutting down standalone")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", "data/standalone", "data directory (etcd, bookie, and offloaded ledgers unless --offload-fs-dir is given)")
	f.StringVar(&o.EtcdClientAddr, "etcd-client-addr", "127.0.0.1:2379", "embedded etcd client listen address")
	f.StringVar(&o.EtcdPeerAddr, "etcd-peer-addr", "127.0.0.1:2380", "embedded etcd peer listen address")
	f.StringVar(&o.BookieAddr, "bookie-addr", "127.0.0.1:3181", "bookie gRPC listen address")
	f.StringVar(&o.Cluster, "cluster", standalone.Cluster, "name of this cluster (two standalones with different names can replicate to each other)")
	brokerFlags(f, &b)
	sec.register(f)
	off.register(f, "filesystem", "")
	return cmd
}
