package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

func newInitClusterCmd() *cobra.Command {
	var (
		cluster, endpoints, cfgStore, root string
		serviceURL, brokerServiceURL       string
		timeout                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "init-cluster",
		Short: "Initialize cluster metadata (like pulsar initialize-cluster-metadata); idempotent",
		Long: `Register the cluster and create tenant "public" and namespace "public/default".
Running it again is harmless. It waits for etcd to answer (up to --timeout).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cluster == "" {
				return errors.New("--cluster is required")
			}
			ctx, cancel := signalContext()
			defer cancel()
			ctx, cancel2 := context.WithTimeout(ctx, timeout)
			defer cancel2()
			eps := endpoints
			if cfgStore != "" {
				eps = cfgStore // cluster, tenant and namespace live in the configuration store
			}
			store, err := openStoreWaiting(ctx, eps, root, timeout)
			if err != nil {
				return err
			}
			defer store.Close()
			data := tenants.ClusterData{ServiceURL: serviceURL, BrokerServiceURL: brokerServiceURL}
			for {
				err := tenants.InitializeCluster(ctx, store, cluster, data)
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "cluster %q initialized (tenant public, namespace public/default)\n", cluster)
					return nil
				}
				if ctx.Err() != nil {
					return fmt.Errorf("initialize cluster %q: %w", cluster, err)
				}
				slog.Warn("initializing cluster failed; retrying", "err", err)
				time.Sleep(2 * time.Second)
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "cluster name (required)")
	f.StringVar(&endpoints, "etcd-endpoints", "127.0.0.1:2379", "etcd endpoints, comma separated")
	f.StringVar(&cfgStore, "config-store-endpoints", "", "etcd endpoints of the configuration store (default: --etcd-endpoints)")
	f.StringVar(&root, "metadata-root", metadata.DefaultRoot, "key prefix of this cluster's metadata in etcd")
	f.StringVar(&serviceURL, "service-url", "", "the cluster's HTTP service URL, e.g. http://broker:8080")
	f.StringVar(&brokerServiceURL, "broker-service-url", "", "the cluster's broker service URL, e.g. pulsar://broker:6650 (clients and other clusters' replicators dial it)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}
