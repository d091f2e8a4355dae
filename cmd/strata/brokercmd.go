package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/metadata"
)

// brokerFlags registers the broker tuning flags shared by `strata broker`
// and `strata standalone`.
func brokerFlags(f *pflag.FlagSet, o *broker.Options) {
	f.StringVar(&o.GRPCAddr, "grpc-addr", "0.0.0.0:6650", "client API (gRPC) listen address")
	f.StringVar(&o.HTTPAddr, "http-addr", "0.0.0.0:8080", "HTTP listen address: admin API, lookup, /metrics, /healthz, /readyz")
	f.StringVar(&o.AdvertisedAddr, "advertised-address", "", "host clients reach this broker at (default: 127.0.0.1 when listening on all interfaces)")
	f.DurationVar(&o.SessionTTL, "session-ttl", 10*time.Second, "lease TTL of bundle ownership and registration")
	f.IntVar(&o.DefaultEnsembleSize, "default-ensemble-size", 1, "bookies per ledger for namespaces without a persistence policy")
	f.IntVar(&o.DefaultWriteQuorum, "default-write-quorum", 1, "copies of each entry for namespaces without a persistence policy")
	f.IntVar(&o.DefaultAckQuorum, "default-ack-quorum", 1, "acknowledgements needed per entry for namespaces without a persistence policy")
	f.Int64Var(&o.MaxEntriesPerLedger, "max-entries-per-ledger", 50000, "roll a topic's ledger over after this many entries")
	f.DurationVar(&o.MaxLedgerRolloverTime, "max-ledger-rollover-time", 4*time.Hour, "roll a topic's ledger over after this long")
	f.IntVar(&o.MaxMessageSize, "max-message-size", 5<<20, "largest message (entry) accepted, in bytes")
	f.DurationVar(&o.RetentionCheckInterval, "retention-check-interval", 2*time.Minute, "how often consumed ledgers are trimmed")
}

func newBrokerCmd() *cobra.Command {
	var (
		o          broker.Options
		endpoints  string
		cfgStore   string
		root       string
		waitForEtd time.Duration
	)
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run a broker: the stateless serving layer (topics, subscriptions, admin API)",
		Long: `Run a broker. It owns namespace bundles through leases in etcd, serves producers
and consumers over gRPC, and the admin API, lookups and metrics over HTTP.
Before serving it waits until the cluster is initialized (strata init-cluster).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			if o.Cluster == "" {
				return errors.New("--cluster is required")
			}
			local, err := openStoreWaiting(ctx, endpoints, root, waitForEtd)
			if err != nil {
				return err
			}
			defer local.Close()
			o.Metadata, o.Logger = local, slog.Default()
			if cfgStore != "" && cfgStore != endpoints {
				cs, err := openStoreWaiting(ctx, cfgStore, root, waitForEtd)
				if err != nil {
					return err
				}
				defer cs.Close()
				o.ConfigStore = cs
			}
			b, err := broker.New(o)
			if err != nil {
				return err
			}
			if err := b.Start(); err != nil {
				return err
			}
			<-ctx.Done()
			slog.Info("shutting down broker")
			return b.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoints, "etcd-endpoints", "127.0.0.1:2379", "etcd endpoints of the local metadata store, comma separated")
	f.StringVar(&cfgStore, "config-store-endpoints", "", "etcd endpoints of the configuration store (default: the local store)")
	f.StringVar(&root, "metadata-root", metadata.DefaultRoot, "key prefix of this cluster's metadata in etcd")
	f.StringVar(&o.Cluster, "cluster", "", "name of the cluster this broker serves (required)")
	f.DurationVar(&waitForEtd, "etcd-wait", 5*time.Minute, "how long to wait for etcd at start-up")
	brokerFlags(f, &o)
	return cmd
}

// openStoreWaiting connects to etcd, retrying until it answers or wait passes.
func openStoreWaiting(ctx context.Context, endpoints, root string, wait time.Duration) (metadata.Store, error) {
	deadline := time.Now().Add(wait)
	for {
		s, err := openStore(ctx, endpoints, root)
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		slog.Warn("waiting for etcd", "endpoints", endpoints, "err", err)
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted while waiting for etcd: %w", err)
		}
	}
}
