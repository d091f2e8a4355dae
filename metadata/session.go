package metadata

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// Session is an etcd lease kept alive in the background. Keys created with
// WithSession(s) disappear when the session ends: on Close, or when the
// process dies or loses etcd for longer than the TTL. Registration and
// ownership claims are session-bound so that a dead process's claims expire
// on their own.
type Session struct {
	s *concurrency.Session
}

// NewSession implements Store.
func (s *etcdStore) NewSession(ctx context.Context, ttl time.Duration) (*Session, error) {
	secs := int(ttl.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	cs, err := concurrency.NewSession(s.cli, concurrency.WithTTL(secs), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, s.wrap("new session", fmt.Sprintf("ttl=%ds", secs), err)
	}
	return &Session{s: cs}, nil
}

// Lease returns the etcd lease id.
func (s *Session) Lease() int64 { return int64(s.s.Lease()) }

// Done is closed when the session has ended (closed, expired or revoked).
func (s *Session) Done() <-chan struct{} { return s.s.Done() }

// Close revokes the lease, deleting every key bound to it.
func (s *Session) Close() error { return s.s.Close() }

// Orphan stops keeping the lease alive without revoking it, so its keys
// expire after the TTL as if the process had died. Tests use it to simulate a
// crash.
func (s *Session) Orphan() { s.s.Orphan() }
