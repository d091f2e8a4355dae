package managed

import "errors"

// Errors of the managed ledger.
var (
	// ErrFenced: another owner opened this managed ledger; this instance
	// must stop serving it.
	ErrFenced = errors.New("managed ledger: fenced by another owner")
	// ErrClosed: the managed ledger or cursor is closed.
	ErrClosed = errors.New("managed ledger: closed")
	// ErrTerminated: the managed ledger was terminated; no more appends.
	ErrTerminated = errors.New("managed ledger: terminated")
	// ErrInvalidPosition: a position that does not exist in the log, or is
	// not ackable (already deleted, beyond the last entry).
	ErrInvalidPosition = errors.New("managed ledger: invalid position")
	// ErrCursorNotFound: no such durable cursor.
	ErrCursorNotFound = errors.New("managed ledger: cursor not found")
	// ErrCursorExists: a cursor with that name is already open.
	ErrCursorExists = errors.New("managed ledger: cursor already exists")
	// ErrNoLedger: no ledger is available for writing (bookies missing);
	// appends are retried with a new ledger on the next attempt.
	ErrNoLedger = errors.New("managed ledger: no writable ledger")
	// ErrOffloadDisabled: no offload store is configured (Options.Offload),
	// or an offloaded ledger cannot be read through the configured one.
	ErrOffloadDisabled = errors.New("managed ledger: offload not configured")
	// ErrOffloadConflict: the ledger's offload record changed during an
	// offload (the ledger was trimmed, or another owner took over); the
	// attempt's objects were deleted.
	ErrOffloadConflict = errors.New("managed ledger: offload conflict")
	// ErrLedgerOrder: a ledger would be added to the list with an id not
	// above the ids already used; it is refused, as positions order by
	// ledger id.
	ErrLedgerOrder = errors.New("managed ledger: ledger ids out of order")
	// ErrOffloadInProgress: a manual offload is already queued or running.
	ErrOffloadInProgress = errors.New("managed ledger: offload already running")
)
