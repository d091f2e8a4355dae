package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/strata-mq/strata/tenants"
)

// DefaultRoleClaim is the claim holding the role (Pulsar's tokenAuthClaim default).
const DefaultRoleClaim = "sub"

// DefaultAudienceClaim is the claim checked against AuthenticatorOptions.Audience.
const DefaultAudienceClaim = "aud"

// AuthenticatorOptions configures an Authenticator. Exactly one of SecretKey
// and PublicKey must be set.
type AuthenticatorOptions struct {
	// SecretKey verifies HS256/HS384/HS512 tokens: "file:///path",
	// "data:;base64,..." or base64 text (see ReadKeyData).
	SecretKey string
	// PublicKey verifies RS256/RS384/RS512/PS256/PS384/PS512 tokens (RSA
	// key) or ES256/ES384/ES512 tokens (ECDSA key, algorithm matching its
	// curve), PEM or DER, in the same forms.
	PublicKey string
	// RoleClaim is the claim holding the role; DefaultRoleClaim ("sub") when empty.
	RoleClaim string
	// Audience, when set, must appear in the token's AudienceClaim (a string
	// or a list of strings), like Pulsar's tokenAudience.
	Audience string
	// AudienceClaim is the claim checked against Audience; "aud" when empty.
	AudienceClaim string
	// AnonymousRole, when set, is the role of requests without a token
	// (Pulsar's anonymousUserRole); when empty such requests fail with ErrNoToken.
	AnonymousRole string
	// Leeway tolerates clock skew when checking exp and nbf.
	Leeway time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Authenticator verifies JWTs and extracts the caller's role. It is safe for
// concurrent use.
type Authenticator struct {
	opts    AuthenticatorOptions
	key     any // []byte, *rsa.PublicKey or *ecdsa.PublicKey
	methods []string
	parser  *jwt.Parser
}

// NewAuthenticator loads the configured key.
func NewAuthenticator(opts AuthenticatorOptions) (*Authenticator, error) {
	if (opts.SecretKey == "") == (opts.PublicKey == "") {
		return nil, fmt.Errorf("%w: configure exactly one of a token secret key and a token public key", ErrBadKey)
	}
	if opts.RoleClaim == "" {
		opts.RoleClaim = DefaultRoleClaim
	}
	if opts.AudienceClaim == "" {
		opts.AudienceClaim = DefaultAudienceClaim
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authenticator{opts: opts}
	if opts.SecretKey != "" {
		k, err := LoadSecretKey(opts.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("token secret key: %w", err)
		}
		a.key = k
	} else {
		k, err := LoadPublicKey(opts.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("token public key: %w", err)
		}
		a.key = k
	}
	a.methods = verifyMethods(a.key)
	a.parser = jwt.NewParser(jwt.WithTimeFunc(opts.Now), jwt.WithLeeway(opts.Leeway))
	return a, nil
}

// verifyMethods lists the JWT algorithms a key verifies.
func verifyMethods(key any) []string {
	switch k := key.(type) {
	case []byte:
		return []string{"HS256", "HS384", "HS512"}
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return []string{"ES256"}
		case 384:
			return []string{"ES384"}
		case 521:
			return []string{"ES512"}
		}
	}
	return nil
}

// authError is an authentication failure of one kind; it wraps the kind,
// ErrUnauthenticated and tenants.ErrUnauthenticated (so tenants.HTTPStatus
// maps it to 401).
type authError struct {
	kind error
	msg  string
}

func (e *authError) Error() string { return e.msg }
func (e *authError) Unwrap() []error {
	return []error{e.kind, ErrUnauthenticated, tenants.ErrUnauthenticated}
}

func authErr(kind error, format string, args ...any) error {
	return &authError{kind: kind, msg: "auth: " + fmt.Sprintf(format, args...)}
}

// Authenticate verifies a token (without the "Bearer " prefix) and returns
// its role. Errors wrap ErrUnauthenticated and one of ErrNoToken,
// ErrMalformedToken, ErrBadSignature, ErrTokenExpired, ErrTokenNotYetValid,
// ErrWrongAlgorithm, ErrBadAudience or ErrNoRole.
func (a *Authenticator) Authenticate(token string) (string, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		if a.opts.AnonymousRole != "" {
			return a.opts.AnonymousRole, nil
		}
		return "", authErr(ErrNoToken, "no token given")
	}
	claims := jwt.MapClaims{}
	_, err := a.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if !slices.Contains(a.methods, t.Method.Alg()) {
			return nil, authErr(ErrWrongAlgorithm, "token is signed with %s, the configured key accepts %s",
				t.Method.Alg(), strings.Join(a.methods, ", "))
		}
		return a.key, nil
	})
	if err != nil {
		return "", classify(err, claims)
	}
	// The jwt library reads "exp": 0 as "no expiry"; it is the epoch, as
	// Pulsar's broker reads it: such a token expired in 1970.
	if exp, ok := claims["exp"].(float64); ok && exp == 0 {
		return "", authErr(ErrTokenExpired, "token expired at %s (its exp claim is 0)", time.Unix(0, 0).UTC().Format(time.RFC3339))
	}
	if a.opts.Audience != "" && !hasAudience(claims[a.opts.AudienceClaim], a.opts.Audience) {
		return "", authErr(ErrBadAudience, "token's %q claim does not include audience %q", a.opts.AudienceClaim, a.opts.Audience)
	}
	role, _ := claims[a.opts.RoleClaim].(string)
	if role == "" {
		return "", authErr(ErrNoRole, "token has no string %q claim to take the role from", a.opts.RoleClaim)
	}
	return role, nil
}

// classify turns a jwt parse error into one of the package's errors.
func classify(err error, claims jwt.MapClaims) error {
	var ae *authError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, jwt.ErrTokenMalformed):
		return authErr(ErrMalformedToken, "malformed token: %v", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The alg header is missing or names an algorithm nobody implements.
		return authErr(ErrWrongAlgorithm, "token algorithm cannot be verified: %v", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return authErr(ErrBadSignature, "token signature does not verify with the configured key")
	case errors.Is(err, jwt.ErrTokenExpired):
		if exp, e := claims.GetExpirationTime(); e == nil && exp != nil {
			return authErr(ErrTokenExpired, "token expired at %s", exp.UTC().Format(time.RFC3339))
		}
		return authErr(ErrTokenExpired, "token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return authErr(ErrTokenNotYetValid, "token is not valid yet: %v", err)
	default:
		return authErr(ErrMalformedToken, "invalid token: %v", err)
	}
}

func hasAudience(claim any, want string) bool {
	switch v := claim.(type) {
	case string:
		return v == want
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// BearerToken extracts the token from an Authorization header value
// ("Bearer <token>", scheme case-insensitive). An empty header gives "" and
// no error; any other scheme is ErrMalformedToken.
func BearerToken(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", nil
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", authErr(ErrMalformedToken, "Authorization header must be \"Bearer <token>\"")
	}
	return strings.TrimSpace(token), nil
}

// AuthenticateHTTP authenticates the request's "Authorization: Bearer"
// header. It has the signature tenants.AdminOptions.Role expects.
func (a *Authenticator) AuthenticateHTTP(r *http.Request) (string, error) {
	tok, err := BearerToken(r.Header.Get("Authorization"))
	if err != nil {
		return "", err
	}
	return a.Authenticate(tok)
}

// TokenOptions describes a token to create.
type TokenOptions struct {
	// Subject is the role the token grants (required).
	Subject string
	// ExpiresIn sets the exp claim relative to now; 0 makes a token that
	// never expires (Pulsar's default).
	ExpiresIn time.Duration
	// Algorithm defaults from the key: HS256 for a secret, RS256 for an RSA
	// key, ES256/ES384/ES512 for an ECDSA key by its curve.
	Algorithm string
	// RoleClaim is where Subject goes; "sub" when empty.
	RoleClaim string
	// Audience, when set, goes into AudienceClaim ("aud" when empty).
	Audience string
	// AudienceClaim names the audience claim.
	AudienceClaim string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// CreateToken signs a token for opts.Subject with key: a secret ([]byte, see
// LoadSecretKey) or a private key (crypto.Signer, see LoadPrivateKey).
func CreateToken(key any, opts TokenOptions) (string, error) {
	if opts.Subject == "" {
		return "", errors.New("auth: create token: subject (role) is required")
	}
	if opts.ExpiresIn < 0 {
		return "", fmt.Errorf("auth: create token: negative expiry %v", opts.ExpiresIn)
	}
	if opts.RoleClaim == "" {
		opts.RoleClaim = DefaultRoleClaim
	}
	if opts.AudienceClaim == "" {
		opts.AudienceClaim = DefaultAudienceClaim
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var allowed []string
	switch k := key.(type) {
	case []byte:
		if len(k) < SecretKeySize {
			return "", fmt.Errorf("%w: secret key has %d bytes, need at least %d", ErrBadKey, len(k), SecretKeySize)
		}
		allowed = verifyMethods(k)
	case *rsa.PrivateKey:
		allowed = verifyMethods(&k.PublicKey)
	case *ecdsa.PrivateKey:
		allowed = verifyMethods(&k.PublicKey)
	case crypto.Signer:
		allowed = verifyMethods(k.Public())
	default:
		return "", fmt.Errorf("%w: cannot sign with a %T", ErrBadKey, key)
	}
	if len(allowed) == 0 {
		return "", fmt.Errorf("%w: unsupported signing key %T", ErrBadKey, key)
	}
	alg := opts.Algorithm
	if alg == "" {
		alg = allowed[0]
	}
	if !slices.Contains(allowed, alg) {
		return "", fmt.Errorf("%w: algorithm %s does not fit the key (use %s)", ErrWrongAlgorithm, alg, strings.Join(allowed, ", "))
	}
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return "", fmt.Errorf("%w: unknown algorithm %s", ErrWrongAlgorithm, alg)
	}
	claims := jwt.MapClaims{opts.RoleClaim: opts.Subject}
	if opts.ExpiresIn > 0 {
		claims["exp"] = opts.Now().Add(opts.ExpiresIn).Unix()
	}
	if opts.Audience != "" {
		claims[opts.AudienceClaim] = opts.Audience
	}
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}
