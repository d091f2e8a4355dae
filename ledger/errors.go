package ledger

import (
	"errors"

	"github.com/strata-mq/strata/api/bookiepb"
)

// Errors returned by the ledger client.
var (
	// ErrFenced: the ledger was fenced by a recovering client; this writer
	// must stop. An add that failed with ErrFenced may or may not be in the
	// ledger (like a timeout), but it was never acknowledged.
	ErrFenced = errors.New("ledger: fenced")
	// ErrClosed: the ledger (or the handle) is closed.
	ErrClosed = errors.New("ledger: closed")
	// ErrNotFound: no such ledger in metadata.
	ErrNotFound = errors.New("ledger: not found")
	// ErrNoEntry: the entry does not exist (beyond the last entry, or
	// confirmed missing on enough replicas).
	ErrNoEntry = errors.New("ledger: no such entry")
	// ErrCorrupt: every replica that answered returned an entry failing its
	// digest check. Never returned as data.
	ErrCorrupt = errors.New("ledger: entry corrupt on every replica")
	// ErrNotEnoughBookies: fewer writable bookies than the ensemble needs.
	ErrNotEnoughBookies = errors.New("ledger: not enough writable bookies")
	// ErrUnauthorized: wrong password (master key) for the ledger.
	ErrUnauthorized = errors.New("ledger: unauthorized (wrong password)")
	// ErrInvalid: invalid arguments (quorums, ranges, sizes).
	ErrInvalid = errors.New("ledger: invalid argument")
	// ErrRecovery: recovery could not decide the ledger's end (too many
	// bookies unreachable); retry later.
	ErrRecovery = errors.New("ledger: recovery failed")
	// ErrUnavailable: no replica of an entry could be reached.
	ErrUnavailable = errors.New("ledger: replicas unavailable")
	// ErrTooLarge: an entry exceeds the maximum entry size.
	ErrTooLarge = errors.New("ledger: entry too large")
)

// IsDigestMismatch reports whether err is a per-replica corruption.
func IsDigestMismatch(err error) bool { return errors.Is(err, bookiepb.ErrDigestMismatch) }
