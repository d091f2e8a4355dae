package managed

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/offload"
)

// Retention says how long acknowledged data is kept. Negative means
// unlimited; zero means delete as soon as every durable cursor consumed it.
// A ledger is deleted once it is consumed and either limit is exceeded.
type Retention struct {
	Time time.Duration
	Size int64
}

// Options configures a managed ledger. Zero values take the documented
// defaults (EnsureDefaults).
type Options struct {
	// Ledgers creates and opens the underlying ledgers. Required.
	Ledgers *ledger.Client
	// Metadata stores the ledger list and cursors. Required.
	Metadata metadata.Store

	// EnsembleSize, WriteQuorum, AckQuorum of new ledgers; default 1/1/1.
	EnsembleSize, WriteQuorum, AckQuorum int
	// Password of the ledgers; empty by default.
	Password []byte

	// MaxEntriesPerLedger rolls the ledger over after this many entries;
	// default 50,000.
	MaxEntriesPerLedger int64
	// MaxSizePerLedger rolls over after this many payload bytes; default 2 GiB.
	MaxSizePerLedger int64
	// MaxLedgerAge rolls over a non-empty ledger this old; default 4 h.
	MaxLedgerAge time.Duration
	// MinLedgerAge: no rollover (other than by age) before this age; default 0.
	MinLedgerAge time.Duration

	// AddTimeout fails appends that waited this long for a writable ledger
	// (bookies lost); until then ledger creation is retried. Default 30 s.
	AddTimeout time.Duration

	// Retention returns the current retention policy (read on every trim, so
	// policy changes apply live); default {0, 0}.
	Retention func() Retention
	// TrimInterval: how often the background trimmer runs; default 1 min.
	TrimInterval time.Duration

	// CacheMaxBytes bounds the entry cache for tailing readers; default 16 MiB.
	CacheMaxBytes int64

	// CursorPersistInterval rate-limits cursor persistence: dirty cursors are
	// written at most this often (and on close); default 1 s.
	CursorPersistInterval time.Duration
	// MaxUnackedRangesToPersist caps the individually acknowledged ranges
	// stored per cursor; ranges beyond the cap (the highest) are kept in
	// memory only and redelivered after a crash. Default 10,000.
	MaxUnackedRangesToPersist int

	// PublishTime extracts the publish time (Unix ms) from an entry; it
	// enables seek by time and per-ledger publish times. Optional.
	PublishTime func(entry []byte) (int64, error)

	// Offload configures tiered storage: offloading closed ledgers to an
	// object store and reading them back. Disabled while Offload.Store is nil.
	Offload OffloadOptions

	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.EnsembleSize == 0 {
		o.EnsembleSize, o.WriteQuorum, o.AckQuorum = 1, 1, 1
	}
	if o.WriteQuorum == 0 {
		o.WriteQuorum = o.EnsembleSize
	}
	if o.AckQuorum == 0 {
		o.AckQuorum = o.WriteQuorum
	}
	if o.MaxEntriesPerLedger <= 0 {
		o.MaxEntriesPerLedger = 50000
	}
	if o.MaxSizePerLedger <= 0 {
		o.MaxSizePerLedger = 2 << 30
	}
	if o.MaxLedgerAge <= 0 {
		o.MaxLedgerAge = 4 * time.Hour
	}
	if o.AddTimeout <= 0 {
		o.AddTimeout = 30 * time.Second
	}
	if o.Retention == nil {
		o.Retention = func() Retention { return Retention{} }
	}
	if o.TrimInterval <= 0 {
		o.TrimInterval = time.Minute
	}
	if o.CacheMaxBytes <= 0 {
		o.CacheMaxBytes = 16 << 20
	}
	if o.CursorPersistInterval <= 0 {
		o.CursorPersistInterval = time.Second
	}
	if o.MaxUnackedRangesToPersist <= 0 {
		o.MaxUnackedRangesToPersist = 10000
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Offload.EnsureDefaults()
}

// Validate reports missing dependencies.
func (o *Options) Validate() error {
	switch {
	case o.Ledgers == nil:
		return errors.New("managed: Options.Ledgers is required")
	case o.Metadata == nil:
		return errors.New("managed: Options.Metadata is required")
	}
	return o.Offload.Validate()
}

// OffloadPolicy says when closed ledgers move to the object store and when
// their bookie copies go. It is a namespace policy: OffloadOptions.Policy is
// read on every check, so changes apply live.
type OffloadPolicy struct {
	// ThresholdBytes is how many bytes of the log to keep on bookies only.
	// While the bytes not offloaded (every ledger without a complete
	// offload, the current ledger included) exceed it, the oldest closed
	// ledgers are offloaded. 0 offloads every closed ledger as soon as it
	// is closed; negative turns the size trigger off. Pulsar's
	// offload_threshold, default -1.
	ThresholdBytes int64
	// ThresholdSeconds offloads closed ledgers closed at least this many
	// seconds ago; negative turns the time trigger off. Pulsar's
	// offload_threshold_in_seconds, default -1.
	ThresholdSeconds int64
	// DeletionLag is how long after its offload completed a ledger's bookie
	// copy is deleted; 0 deletes it at the next check, negative never.
	// Pulsar's offload_deletion_lag_ms, default 4 h.
	DeletionLag time.Duration
}

// DefaultOffloadPolicy is Pulsar's default: no automatic offload (manual
// offloads only), bookie copies deleted 4 hours after an offload.
func DefaultOffloadPolicy() OffloadPolicy {
	return OffloadPolicy{ThresholdBytes: -1, ThresholdSeconds: -1, DeletionLag: 4 * time.Hour}
}

// OffloadOptions configures tiered storage of a managed ledger.
type OffloadOptions struct {
	// Store receives offloaded ledgers. Nil disables offloading; ledgers
	// offloaded earlier are then read from their bookie copy while it
	// exists.
	Store offload.BlobStore
	// KeyPrefix is the object key prefix; a ledger's objects are
	// offload.ObjectKeys(KeyPrefix, name, ledgerID, uuid) with name the
	// managed ledger's name ("tenant/namespace/topic"). Empty is allowed.
	KeyPrefix string
	// Driver names the store ("s3", "filesystem"); it is recorded in each
	// ledger's OffloadContext, and a ledger offloaded with another driver is
	// not read through this one.
	Driver string
	// Write tunes uploads (block size, read batch); offload defaults.
	Write offload.WriteOptions
	// Read tunes readers of offloaded ledgers (read-ahead); offload
	// defaults.
	Read offload.ReaderOptions
	// Policy returns the current policy; default DefaultOffloadPolicy.
	Policy func() OffloadPolicy

	// CheckInterval is how often the offloader checks the policy, the
	// deletion lag and idle readers (it also checks after every rollover);
	// default 1 min.
	CheckInterval time.Duration
	// RetryMin and RetryMax bound the backoff after a failed automatic
	// offload: the wait starts at RetryMin and doubles up to RetryMax.
	// Defaults 1 s and 5 min.
	RetryMin, RetryMax time.Duration
	// ReaderIdleTimeout closes the reader of an offloaded ledger (and frees
	// its read-ahead) after this long without reads; default 10 min.
	ReaderIdleTimeout time.Duration
}

// EnsureDefaults fills zero fields.
func (o *OffloadOptions) EnsureDefaults() {
	if o.Policy == nil {
		o.Policy = DefaultOffloadPolicy
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = time.Minute
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Minute
	}
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.ReaderIdleTimeout <= 0 {
		o.ReaderIdleTimeout = 10 * time.Minute
	}
	o.Write.EnsureDefaults()
	o.Read.EnsureDefaults()
}

// Validate reports invalid write or read options.
func (o *OffloadOptions) Validate() error {
	if o.Store == nil {
		return nil
	}
	if err := o.Write.Validate(); err != nil {
		return fmt.Errorf("managed: Options.Offload.Write: %w", err)
	}
	if err := o.Read.Validate(); err != nil {
		return fmt.Errorf("managed: Options.Offload.Read: %w", err)
	}
	return nil
}
