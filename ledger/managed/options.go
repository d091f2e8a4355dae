package managed

import (
	"errors"
	"log/slog"
	"time"

	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/metadata"
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
}

// Validate reports missing dependencies.
func (o *Options) Validate() error {
	switch {
	case o.Ledgers == nil:
		return errors.New("managed: Options.Ledgers is required")
	case o.Metadata == nil:
		return errors.New("managed: Options.Metadata is required")
	}
	return nil
}
