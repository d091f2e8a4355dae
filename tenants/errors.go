package tenants

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/strata-mq/strata/metadata"
)

// Error kinds. Every error returned by this package for a request problem
// wraps exactly one of them; test with errors.Is. Other errors (etcd
// unreachable, a corrupt stored value) are internal failures.
var (
	// ErrInvalid: the request is malformed or a value is out of range (HTTP 400).
	ErrInvalid = errors.New("tenants: invalid request")
	// ErrUnauthenticated: the caller's identity could not be established (HTTP 401).
	ErrUnauthenticated = errors.New("tenants: unauthenticated")
	// ErrForbidden: the caller's role may not perform the operation (HTTP 403).
	ErrForbidden = errors.New("tenants: forbidden")
	// ErrNotFound: the cluster, tenant, namespace or topic does not exist (HTTP 404).
	ErrNotFound = errors.New("tenants: not found")
	// ErrExists: the object to create already exists (HTTP 409).
	ErrExists = errors.New("tenants: already exists")
	// ErrConflict: the operation conflicts with the current state, for
	// example removing a tenant's allowed cluster that a namespace replicates
	// to, or too many concurrent updates (HTTP 409).
	ErrConflict = errors.New("tenants: conflict")
	// ErrNotEmpty: a tenant still has namespaces, or a namespace still has
	// topics, so it cannot be deleted (HTTP 409, as in Pulsar).
	ErrNotEmpty = errors.New("tenants: not empty")
	// ErrPrecondition: the request refers to something that does not allow it,
	// for example a replication cluster the tenant is not allowed to use, a
	// cluster that does not exist, or deleting a cluster still in use (HTTP 412).
	ErrPrecondition = errors.New("tenants: precondition failed")
)

// Error is a request error: a kind (one of the sentinels above) and a
// message meant for the caller, e.g. `tenant "acme" does not exist`.
type Error struct {
	// Kind is the sentinel the error wraps.
	Kind error
	// Msg describes what failed, without the kind's prefix.
	Msg string
}

// Error returns the message.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the kind, so errors.Is(err, ErrNotFound) works.
func (e *Error) Unwrap() error { return e.Kind }

// errorf builds an *Error of the given kind.
func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// HTTPStatus maps an error to the HTTP status the admin API answers with:
// the one table that decides which failure gets which code.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists), errors.Is(err, ErrConflict), errors.Is(err, ErrNotEmpty):
		return http.StatusConflict
	case errors.Is(err, ErrPrecondition):
		return http.StatusPreconditionFailed
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	case errors.Is(err, metadata.ErrClosed):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
