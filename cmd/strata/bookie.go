package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/metadata"
)

func newBookieCmd() *cobra.Command {
	var (
		o         bookie.Options
		endpoints string
		root      string
		sync      bool
	)
	cmd := &cobra.Command{
		Use:   "bookie",
		Short: "Run a bookie: the storage server holding replicated ledger entries",
		Long: `Run a bookie. It stores ledger entries in Badger under --data-dir, fsyncs every
group of adds before acknowledging them, registers itself in etcd under a lease,
and refuses to start on a data directory that does not match its cookie.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			setMemoryLimit()
			ctx, cancel := signalContext()
			defer cancel()
			store, err := openStore(ctx, endpoints, root)
			if err != nil {
				return err
			}
			defer store.Close()
			o.Metadata = store
			o.JournalSync = &sync
			o.Logger = slog.Default()
			b, err := bookie.New(ctx, o)
			if err != nil {
				return err
			}
			if err := b.Start(); err != nil {
				b.Close()
				return err
			}
			<-ctx.Done()
			slog.Info("shutting down bookie")
			return b.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoints, "etcd-endpoints", "127.0.0.1:2379", "etcd endpoints, comma separated")
	f.StringVar(&root, "metadata-root", metadata.DefaultRoot, "key prefix of this cluster's metadata in etcd")
	f.StringVar(&o.ListenAddr, "addr", "0.0.0.0:3181", "gRPC listen address")
	f.StringVar(&o.AdvertisedAddr, "advertised-address", "", "address clients dial (default: the listen address, 127.0.0.1 for 0.0.0.0)")
	f.StringVar(&o.ID, "bookie-id", "", "bookie id in metadata (default: the advertised address)")
	f.StringVar(&o.HTTPAddr, "http-addr", "0.0.0.0:8000", "HTTP address for /healthz, /readyz and /metrics (empty: off)")
	f.StringVar(&o.DataDir, "data-dir", "data/bookie", "data directory")
	f.BoolVar(&sync, "journal-sync", true, "fsync every group of adds before acknowledging them")
	f.DurationVar(&o.SessionTTL, "session-ttl", 10*time.Second, "lease TTL of the bookie's registration")
	f.Float64Var(&o.DiskUsageThreshold, "disk-usage-threshold", 0.95, "turn read-only above this used fraction of the disk")
	f.Float64Var(&o.DiskUsageLowWater, "disk-usage-lwm", 0.90, "turn writable again below this used fraction")
	f.DurationVar(&o.DiskCheckInterval, "disk-check-interval", 10*time.Second, "how often disk usage is checked (and the registration refreshed)")
	f.DurationVar(&o.GCInterval, "gc-interval", 5*time.Minute, "how often ledgers deleted from metadata are removed")
	f.DurationVar(&o.GroupWait, "journal-group-wait", 0, "extra wait to grow a group commit when the queue runs dry (0: commit at once)")
	f.IntVar(&o.MaxEntrySize, "max-entry-size", 5<<20+128<<10, "largest entry accepted, in bytes (at least the brokers' --max-message-size + 128 KiB)")
	f.Int64Var(&o.SegmentSize, "segment-size", 128<<20, "size in bytes at which the entry log starts a new segment file (1 MiB..1 GiB)")
	f.DurationVar(&o.CheckpointInterval, "checkpoint-interval", 30*time.Second, "how often the index is made durable (bounds what a restart replays)")
	f.Float64Var(&o.CompactionThreshold, "compaction-threshold", 0.5, "compact entry-log segments whose live share of entry bytes is below this (negative: only delete fully dead segments)")
	return cmd
}

// openStore connects to etcd and checks it answers.
func openStore(ctx context.Context, endpoints, root string) (metadata.Store, error) {
	eps := splitList(endpoints)
	store, err := metadata.NewEtcdStore(metadata.EtcdConfig{Endpoints: eps, Root: root})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := store.List(cctx, "/", metadata.ListOptions{Limit: 1, KeysOnly: true}); err != nil {
		store.Close()
		return nil, fmt.Errorf("etcd at %v is not answering: %w", eps, err)
	}
	return store, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
