package metadata

import "errors"

// Sentinel errors returned by Store implementations. Callers test them with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("metadata: key not found")
	// ErrExists: Create found the key already present.
	ErrExists = errors.New("metadata: key already exists")
	// ErrBadVersion: a compare-and-swap saw a different ModRevision than expected,
	// i.e. someone else changed the key since it was read.
	ErrBadVersion = errors.New("metadata: bad version (concurrent modification)")
	// ErrGuardFailed: a write's guard key (WithGuard) has another
	// ModRevision than required — typically another owner took over what
	// the guard stands for — so nothing was written.
	ErrGuardFailed = errors.New("metadata: guard failed (the guard key changed)")
	// ErrSessionExpired: the session (lease) a key was to be bound to has expired.
	ErrSessionExpired = errors.New("metadata: session expired")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("metadata: store closed")
)
