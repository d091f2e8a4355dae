package bookie

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/strata-mq/strata/internal/testfault"
	"github.com/strata-mq/strata/metadata"
)

// Options configures a Bookie. Zero values take the defaults documented on
// each field (EnsureDefaults).
type Options struct {
	// ListenAddr is the gRPC listen address; default "0.0.0.0:3181".
	ListenAddr string
	// AdvertisedAddr is the address clients dial, registered in the metadata
	// store; default: ListenAddr with the actual port, host 127.0.0.1 when
	// listening on all interfaces.
	AdvertisedAddr string
	// ID identifies the bookie in metadata (registration, cookie, ensembles);
	// default AdvertisedAddr, as in BookKeeper.
	ID string
	// HTTPAddr, when set, serves GET /healthz, /readyz and /metrics.
	HTTPAddr string
	// DataDir holds the Badger database and the cookie. Required.
	DataDir string
	// Metadata is the metadata store (registration, cookies, GC). Required.
	Metadata metadata.Store

	// JournalSync makes every group of adds durable (fsync of the entry
	// log) before its acks; default true. Turning it off trades durability
	// for latency: acknowledged entries can be lost in a crash.
	JournalSync *bool
	// GroupWait is how long the journal waits for more adds before committing
	// a group when the queue runs dry; 0 (default) commits at once — adds
	// arriving during a commit form the next group.
	GroupWait time.Duration
	// GroupBytes caps the payload bytes of one group commit; default 4 MiB,
	// at most 64 MiB.
	GroupBytes int
	// MaxEntrySize is the largest accepted entry envelope; default 5 MiB +
	// 128 KiB: a broker with the default 5 MiB message limit sends entries of
	// up to 5 MiB + 64 KiB of payload plus the envelope.
	MaxEntrySize int
	// SegmentSize is the size at which the entry log starts a new segment
	// file; default 128 MiB (1 MiB to 1 GiB). Compaction reclaims space a
	// segment at a time; every segment stays open while it exists.
	SegmentSize int64
	// CheckpointInterval and CheckpointBytes: the index is made durable
	// (and the records a restart replays bounded) after this long or this
	// many bytes of records, whichever comes first; defaults 30 s and 256 MiB.
	CheckpointInterval time.Duration
	CheckpointBytes    int64
	// CompactionThreshold: a segment whose live entries make up less than
	// this fraction of its entry bytes is compacted (live entries moved, the
	// segment deleted) at garbage collection; default 0.5. Negative only
	// deletes segments with no live entry.
	CompactionThreshold float64
	// CloseTimeout bounds how long Close waits for storage to close; default
	// 10 s.
	CloseTimeout time.Duration

	// SessionTTL is the lease TTL of the registration; default 10 s.
	SessionTTL time.Duration
	// DiskUsageThreshold: above this used fraction of the data dir's
	// filesystem the bookie turns read-only; default 0.95.
	DiskUsageThreshold float64
	// DiskUsageLowWater: below this fraction a read-only bookie turns
	// writable again; default 0.90 (never above DiskUsageThreshold).
	DiskUsageLowWater float64
	// DiskCheckInterval is how often disk usage is checked; default 10 s.
	DiskCheckInterval time.Duration
	// DiskUsage reports used and total bytes of the data dir's filesystem;
	// default statfs. Tests inject their own.
	DiskUsage func(dir string) (used, total uint64, err error)
	// GCInterval is how often ledgers deleted from metadata are removed from
	// disk; default 5 min.
	GCInterval time.Duration

	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Hooks are test seams; nil in production.
	Hooks *Hooks
}

// Hooks let tests observe and perturb the durability path.
type Hooks struct {
	// Commit wraps each group commit (entry-log write + fsync); it must call
	// commit and may delay it or return an error instead.
	Commit func(commit func() error) error
	// JournalFile wraps each entry-log segment file (to fail writes or
	// syncs as a bad or full disk would).
	JournalFile func(f JournalFile) JournalFile
	// CrashTest keeps a copy of the index at every checkpoint so that Crash
	// can drop everything not synced.
	CrashTest bool
	// AfterCommit is called with the entries of a group after its commit
	// returned successfully, before any of them is acknowledged.
	AfterCommit func(entries []EntryRef)
	// OnAck is called just before an add's success reply is sent.
	OnAck func(ref EntryRef)
	// ReplyDelay, when it returns > 0, delays one add reply (out of order
	// with the others) by that long.
	ReplyDelay func(ref EntryRef) time.Duration
	// DropAdd, when it returns true, loses an add on its way in: it is
	// neither applied nor answered.
	DropAdd func(ref EntryRef) bool
	// ReadDelay, when it returns > 0, delays a ReadEntry reply (after a
	// recovery read's fence) by that long.
	ReadDelay func(ref EntryRef) time.Duration
}

// EntryRef names one entry.
type EntryRef struct{ LedgerID, EntryID int64 }

// EnsureDefaults fills zero fields with defaults.
func (o *Options) EnsureDefaults() {
	if o.ListenAddr == "" {
		o.ListenAddr = "0.0.0.0:3181"
	}
	if o.JournalSync == nil {
		t := true
		o.JournalSync = &t
	}
	if o.GroupBytes <= 0 {
		o.GroupBytes = 4 << 20
	}
	if o.MaxEntrySize <= 0 {
		o.MaxEntrySize = 5<<20 + 128<<10
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = 128 << 20
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 30 * time.Second
	}
	if o.CheckpointBytes <= 0 {
		o.CheckpointBytes = 256 << 20
	}
	if o.CompactionThreshold == 0 {
		o.CompactionThreshold = 0.5
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 10 * time.Second
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 10 * time.Second
	}
	if o.DiskUsageThreshold <= 0 {
		o.DiskUsageThreshold = 0.95
	}
	if o.DiskUsageLowWater <= 0 {
		o.DiskUsageLowWater = 0.90
	}
	if o.DiskUsageLowWater > o.DiskUsageThreshold {
		o.DiskUsageLowWater = o.DiskUsageThreshold
	}
	if o.DiskCheckInterval <= 0 {
		o.DiskCheckInterval = 10 * time.Second
	}
	if o.DiskUsage == nil {
		o.DiskUsage = statfsUsage
		if testfault.On(testfault.DiskFullFile) {
			o.DiskUsage = diskFullSeam
		}
	}
	if o.GCInterval <= 0 {
		o.GCInterval = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Hooks == nil {
		o.Hooks = &Hooks{}
	}
}

// Validate reports the first invalid option.
func (o *Options) Validate() error {
	switch {
	case o.DataDir == "":
		return errors.New("bookie: DataDir is required")
	case o.Metadata == nil:
		return errors.New("bookie: Metadata store is required")
	case o.DiskUsageThreshold > 1:
		return fmt.Errorf("bookie: DiskUsageThreshold %.2f must be within (0, 1]", o.DiskUsageThreshold)
	case o.MaxEntrySize > 64<<20:
		return fmt.Errorf("bookie: MaxEntrySize %d above the 64 MiB limit", o.MaxEntrySize)
	case o.GroupBytes > 64<<20:
		return fmt.Errorf("bookie: GroupBytes %d above the 64 MiB limit", o.GroupBytes)
	case o.SegmentSize < 1<<20 || o.SegmentSize > 1<<30:
		return fmt.Errorf("bookie: SegmentSize %d outside 1 MiB..1 GiB", o.SegmentSize)
	case o.CompactionThreshold > 1:
		return fmt.Errorf("bookie: CompactionThreshold %.2f above 1", o.CompactionThreshold)
	}
	return nil
}
