package auth

import "errors"

// Authentication errors. Every one of them also wraps ErrUnauthenticated, so
// a server can map the whole family to HTTP 401 / gRPC Unauthenticated.
var (
	// ErrUnauthenticated is wrapped by every authentication failure.
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	// ErrNoToken: the request carries no token.
	ErrNoToken = errors.New("auth: no token")
	// ErrMalformedToken: the token is not a well-formed JWT.
	ErrMalformedToken = errors.New("auth: malformed token")
	// ErrBadSignature: the token's signature does not verify with the configured key.
	ErrBadSignature = errors.New("auth: bad token signature")
	// ErrTokenExpired: the token's exp claim is in the past.
	ErrTokenExpired = errors.New("auth: token expired")
	// ErrTokenNotYetValid: the token's nbf or iat claim is in the future.
	ErrTokenNotYetValid = errors.New("auth: token not valid yet")
	// ErrWrongAlgorithm: the token is signed with an algorithm the
	// configured key cannot verify (e.g. HS256 when a public key is
	// configured, or "none").
	ErrWrongAlgorithm = errors.New("auth: wrong token algorithm")
	// ErrBadAudience: the token is not meant for the configured audience.
	ErrBadAudience = errors.New("auth: wrong token audience")
	// ErrNoRole: the token has no (string) role claim.
	ErrNoRole = errors.New("auth: token has no role claim")
)

// Authorization errors.
var (
	// ErrForbidden: the role may not perform the operation.
	ErrForbidden = errors.New("auth: forbidden")
)

// Configuration errors.
var (
	// ErrBadKey: a key could not be loaded or has the wrong type.
	ErrBadKey = errors.New("auth: bad key")
)
