package admin

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a request the admin API refused or failed: the HTTP status and
// the server's reason (the "reason" of its JSON error body).
type Error struct {
	// Status is the HTTP status code, e.g. 404.
	Status int
	// Reason is the server's explanation, e.g. `namespace acme/x does not exist`.
	Reason string
	// Method and Path identify the request (the first one, before any
	// redirect); empty when unknown.
	Method, Path string
}

// Error returns the reason, as the command line prints it.
func (e *Error) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Reason
}

// StatusCode returns the HTTP status of an *Error in err's chain, or 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409 answer (it already exists, or it
// is not empty).
func IsConflict(err error) bool { return StatusCode(err) == http.StatusConflict }
