package offload

import "errors"

// Sentinel errors. Every error the package returns wraps at most one of
// these (and sometimes the underlying I/O error too), so callers test them
// with errors.Is. A checksum or layout mismatch is always ErrCorrupt, never
// ErrNotFound.
var (
	// ErrNotFound: the object (or the index of an offloaded ledger) does
	// not exist in the blob store.
	ErrNotFound = errors.New("offload: object not found")

	// ErrCorrupt: an object exists but its bytes do not match the format:
	// bad magic, checksum mismatch, unexpected entry id, an object shorter
	// than its index says (truncated), or an inconsistent index.
	ErrCorrupt = errors.New("offload: corrupt object")

	// ErrUnsupportedVersion: the object was written in a format version
	// this reader does not understand (object metadata or index header).
	ErrUnsupportedVersion = errors.New("offload: unsupported format version")

	// ErrInvalidArgument: a caller passed an invalid key, metadata, option,
	// ledger descriptor or entry range.
	ErrInvalidArgument = errors.New("offload: invalid argument")

	// ErrInvalidRange: a ranged read starts at or beyond the end of the
	// object.
	ErrInvalidRange = errors.New("offload: range not satisfiable")

	// ErrEntryOutOfRange: LedgerReader.Read was asked for entries outside
	// [0, LastEntryID].
	ErrEntryOutOfRange = errors.New("offload: entry id out of range")

	// ErrSourceMismatch: the LedgerSource returned entries that disagree
	// with the LedgerDescriptor (wrong ids, wrong count, or payload bytes
	// that do not add up to Length). Nothing is left in the store.
	ErrSourceMismatch = errors.New("offload: ledger source does not match descriptor")

	// ErrBucketNotFound: the S3 bucket does not exist and the store was not
	// allowed to (or could not) create it.
	ErrBucketNotFound = errors.New("offload: bucket not found")

	// ErrClosed: the LedgerReader was closed.
	ErrClosed = errors.New("offload: reader closed")
)
