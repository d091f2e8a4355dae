// Package metadata is Strata's metadata store: a small interface over etcd v3
// (get, create, compare-and-swap on ModRevision, delete, paged list, watch,
// lease-bound keys) plus the key layout and an embedded etcd for standalone
// mode and tests.
//
// Every key passed to a Store is relative to the store's root prefix (by
// default "/strata"), so several independent Strata clusters — or tests — can
// share one etcd.
package metadata

import (
	"context"
	"time"
)

// AnyVersion passed as the expected revision to Put or Delete skips the
// compare-and-swap check.
const AnyVersion int64 = -1

// KV is a key with its value and etcd revisions.
type KV struct {
	Key   string // relative to the store root
	Value []byte
	// ModRevision is the etcd revision of the last modification; pass it back
	// to Put/Delete as the expected version for a compare-and-swap.
	ModRevision int64
	// CreateRevision is the etcd revision at which the key was created.
	CreateRevision int64
	// Lease is the id of the lease the key is bound to, 0 if none.
	Lease int64
}

// ListOptions controls a List call.
type ListOptions struct {
	// After lists keys strictly greater than this key (for paging); "" starts at the prefix.
	After string
	// Limit is the page size; 0 means DefaultListLimit.
	Limit int
	// KeysOnly omits values.
	KeysOnly bool
}

// DefaultListLimit is the page size used when ListOptions.Limit is 0.
const DefaultListLimit = 1000

// ListPage is one page of a List result, in key order.
type ListPage struct {
	KVs []KV
	// More is true when keys beyond the last returned one exist; pass the last
	// key as ListOptions.After to get them.
	More bool
}

// EventType says what happened to a watched key.
type EventType int

const (
	// EventPut: the key was created or updated.
	EventPut EventType = iota + 1
	// EventDelete: the key was deleted (or its lease expired).
	EventDelete
)

// Event is one change to a key under a watched prefix.
type Event struct {
	Type EventType
	KV   KV // for EventDelete only Key and ModRevision are set
}

// WatchResponse carries a group of events from one etcd revision, or an error.
// After an error (for example a compacted start revision) the channel is
// closed and the watcher should re-list and watch again.
type WatchResponse struct {
	Events []Event
	Err    error
}

// PutOption modifies Create, Put and Delete.
type PutOption func(*putOptions)

type putOptions struct {
	session *Session
	guards  []guard
}

type guard struct {
	key string
	rev int64
}

// WithSession binds the key to the session's lease: it is deleted when the
// session ends or expires. (Delete ignores it.)
func WithSession(s *Session) PutOption { return func(o *putOptions) { o.session = s } }

// WithGuard makes the write conditional on another key: it happens only if
// key's ModRevision is rev, atomically with the write's own condition, and
// fails with ErrGuardFailed otherwise. An owner that guards its writes with
// a key every new owner rewrites cannot write after being replaced.
func WithGuard(key string, rev int64) PutOption {
	return func(o *putOptions) { o.guards = append(o.guards, guard{key, rev}) }
}

// Store is the metadata store. Implementations are safe for concurrent use.
type Store interface {
	// Get returns the key, or ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// Create stores a new key and returns its revision; ErrExists if present.
	Create(ctx context.Context, key string, value []byte, opts ...PutOption) (int64, error)
	// Put replaces the key's value if its ModRevision equals expected
	// (AnyVersion: unconditionally, creating the key if needed) and returns the
	// new revision. ErrBadVersion on a mismatch, ErrNotFound if expected > 0
	// and the key is gone.
	Put(ctx context.Context, key string, value []byte, expected int64, opts ...PutOption) (int64, error)
	// Delete removes the key if its ModRevision equals expected (or
	// unconditionally with AnyVersion). ErrNotFound if the key is absent.
	Delete(ctx context.Context, key string, expected int64, opts ...PutOption) error
	// DeletePrefix removes every key under prefix and returns how many.
	DeletePrefix(ctx context.Context, prefix string) (int64, error)
	// List returns one page of keys under prefix, in key order.
	List(ctx context.Context, prefix string, opts ListOptions) (ListPage, error)
	// Watch streams changes under prefix after revision fromRev (0: from now)
	// until ctx is done.
	Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse
	// NewSession creates a lease with the given TTL, kept alive in the
	// background until Close or until the store loses contact for longer
	// than the TTL.
	NewSession(ctx context.Context, ttl time.Duration) (*Session, error)
	// Close releases the store's connections.
	Close() error
}

// ListAll pages through every key under prefix.
func ListAll(ctx context.Context, s Store, prefix string, keysOnly bool) ([]KV, error) {
	var all []KV
	opts := ListOptions{KeysOnly: keysOnly}
	for {
		page, err := s.List(ctx, prefix, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page.KVs...)
		if !page.More || len(page.KVs) == 0 {
			return all, nil
		}
		opts.After = page.KVs[len(page.KVs)-1].Key
	}
}
