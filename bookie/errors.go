package bookie

import "errors"

// Errors returned by the bookie's start-up and storage layer. Request-level
// outcomes travel as bookiepb.Code values instead.
var (
	// ErrCookieMismatch: the data directory's cookie does not match the one
	// registered in the metadata store (wrong disk, wrong cluster).
	ErrCookieMismatch = errors.New("bookie: cookie mismatch")
	// ErrCookieMissing: the bookie is registered in the metadata store but its
	// data directory has no cookie — the directory was wiped or replaced, and
	// starting would silently lose this bookie's replicas.
	ErrCookieMissing = errors.New("bookie: data directory has no cookie but the bookie is registered")
	// ErrDirNotEmpty: a new bookie's data directory holds unknown files.
	ErrDirNotEmpty = errors.New("bookie: data directory not empty")
	// ErrClosed: the bookie is shut down.
	ErrClosed = errors.New("bookie: closed")
)
