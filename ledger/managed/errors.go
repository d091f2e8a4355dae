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
)
