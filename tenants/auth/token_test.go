package auth

import (
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/strata-mq/strata/tenants"
)

type keys struct {
	secret      []byte
	secretURL   string
	rsaPriv     any
	rsaPubURL   string
	ecPriv      any
	ecPubURL    string
	otherSecret []byte
}

func newKeys(t *testing.T) keys {
	t.Helper()
	dir := t.TempDir()
	var k keys
	var err error
	if k.secret, err = GenerateSecretKey(); err != nil {
		t.Fatal(err)
	}
	if k.otherSecret, err = GenerateSecretKey(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "secret.key")
	os.WriteFile(path, k.secret, 0o600)
	k.secretURL = "file://" + path
	for _, alg := range []string{RS256, ES256} {
		priv, pub, err := GenerateKeyPair(alg)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := LoadPrivateKey(string(priv))
		if err != nil {
			t.Fatal(err)
		}
		pubURL := "data:;base64," + base64.StdEncoding.EncodeToString(pub)
		if alg == RS256 {
			k.rsaPriv, k.rsaPubURL = sk, pubURL
		} else {
			k.ecPriv, k.ecPubURL = sk, pubURL
		}
	}
	return k
}

func mustToken(t *testing.T, key any, opts TokenOptions) string {
	t.Helper()
	tok, err := CreateToken(key, opts)
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	return tok
}

func TestAuthenticate(t *testing.T) {
	k := newKeys(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	hs, err := NewAuthenticator(AuthenticatorOptions{SecretKey: k.secretURL, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewAuthenticator(AuthenticatorOptions{PublicKey: k.rsaPubURL, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewAuthenticator(AuthenticatorOptions{PublicKey: k.ecPubURL, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	custom, err := NewAuthenticator(AuthenticatorOptions{SecretKey: k.secretURL, RoleClaim: "role", Audience: "strata", AudienceClaim: "aud", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := NewAuthenticator(AuthenticatorOptions{SecretKey: k.secretURL, AnonymousRole: "guest", Now: clock})
	if err != nil {
		t.Fatal(err)
	}

	past := func() time.Time { return now.Add(-2 * time.Hour) }
	valid := mustToken(t, k.secret, TokenOptions{Subject: "app"})
	tests := []struct {
		name  string
		a     *Authenticator
		token string
		role  string
		kind  error
	}{
		{"HS256 valid", hs, valid, "app", nil},
		{"HS256 with expiry", hs, mustToken(t, k.secret, TokenOptions{Subject: "app", ExpiresIn: time.Hour, Now: clock}), "app", nil},
		{"RS256 valid", rs, mustToken(t, k.rsaPriv, TokenOptions{Subject: "svc"}), "svc", nil},
		{"PS256 valid", rs, mustToken(t, k.rsaPriv, TokenOptions{Subject: "svc", Algorithm: "PS256"}), "svc", nil},
		{"ES256 valid", es, mustToken(t, k.ecPriv, TokenOptions{Subject: "edge"}), "edge", nil},
		{"no token", hs, "", "", ErrNoToken},
		{"anonymous role", anon, " ", "guest", nil},
		{"garbage", hs, "not-a-jwt", "", ErrMalformedToken},
		{"bad base64", hs, "a.b.c", "", ErrMalformedToken},
		{"wrong secret", hs, mustToken(t, k.otherSecret, TokenOptions{Subject: "app"}), "", ErrBadSignature},
		{"tampered payload", hs, tamper(valid), "", ErrBadSignature},
		{"expired", hs, mustToken(t, k.secret, TokenOptions{Subject: "app", ExpiresIn: time.Hour, Now: past}), "", ErrTokenExpired},
		{"exp 0", hs, signedClaims(t, k.secret, jwt.MapClaims{"sub": "app", "exp": 0}), "", ErrTokenExpired},
		{"exp negative", hs, signedClaims(t, k.secret, jwt.MapClaims{"sub": "app", "exp": -1}), "", ErrTokenExpired},
		{"exp not a number", hs, signedClaims(t, k.secret, jwt.MapClaims{"sub": "app", "exp": "never"}), "", ErrMalformedToken},
		{"HS256 against public key", rs, valid, "", ErrWrongAlgorithm},
		{"RS256 against secret", hs, mustToken(t, k.rsaPriv, TokenOptions{Subject: "svc"}), "", ErrWrongAlgorithm},
		{"ES256 against RSA key", rs, mustToken(t, k.ecPriv, TokenOptions{Subject: "svc"}), "", ErrWrongAlgorithm},
		{"alg none", hs, unsignedToken(`{"sub":"root"}`), "", ErrWrongAlgorithm},
		{"no sub", hs, mustToken(t, k.secret, TokenOptions{Subject: "x", RoleClaim: "other"}), "", ErrNoRole},
		{"custom claim and audience", custom, mustToken(t, k.secret, TokenOptions{Subject: "r", RoleClaim: "role", Audience: "strata"}), "r", nil},
		{"wrong audience", custom, mustToken(t, k.secret, TokenOptions{Subject: "r", RoleClaim: "role", Audience: "other"}), "", ErrBadAudience},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			role, err := tc.a.Authenticate(tc.token)
			if tc.kind == nil {
				if err != nil || role != tc.role {
					t.Fatalf("Authenticate = %q, %v; want %q", role, err, tc.role)
				}
				return
			}
			if !errors.Is(err, tc.kind) || !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, tenants.ErrUnauthenticated) {
				t.Fatalf("Authenticate = %q, %v; want %v (and ErrUnauthenticated)", role, err, tc.kind)
			}
			if role != "" {
				t.Fatalf("role %q returned with an error", role)
			}
		})
	}
}

// signedClaims signs claims as they are with HS256.
func signedClaims(t *testing.T, secret []byte, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tamper changes the token's payload, keeping its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"root"}`))
	return strings.Join(parts, ".")
}

func unsignedToken(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims)) + "."
}

func TestNewAuthenticatorErrors(t *testing.T) {
	k := newKeys(t)
	if _, err := NewAuthenticator(AuthenticatorOptions{}); !errors.Is(err, ErrBadKey) {
		t.Errorf("no key: %v", err)
	}
	if _, err := NewAuthenticator(AuthenticatorOptions{SecretKey: k.secretURL, PublicKey: k.rsaPubURL}); !errors.Is(err, ErrBadKey) {
		t.Errorf("both keys: %v", err)
	}
	if _, err := NewAuthenticator(AuthenticatorOptions{PublicKey: k.secretURL}); !errors.Is(err, ErrBadKey) {
		t.Errorf("secret as public key: %v", err)
	}
}

func TestCreateTokenErrors(t *testing.T) {
	k := newKeys(t)
	if _, err := CreateToken(k.secret, TokenOptions{}); err == nil {
		t.Error("token without subject")
	}
	if _, err := CreateToken(k.secret, TokenOptions{Subject: "a", Algorithm: "RS256"}); !errors.Is(err, ErrWrongAlgorithm) {
		t.Errorf("RS256 with a secret: %v", err)
	}
	if _, err := CreateToken(k.secret[:8], TokenOptions{Subject: "a"}); !errors.Is(err, ErrBadKey) {
		t.Errorf("short secret: %v", err)
	}
	if _, err := CreateToken("string key", TokenOptions{Subject: "a"}); !errors.Is(err, ErrBadKey) {
		t.Errorf("string key: %v", err)
	}
	if _, err := CreateToken(k.secret, TokenOptions{Subject: "a", ExpiresIn: -time.Second}); err == nil {
		t.Error("negative expiry accepted")
	}
}

func TestBearerAndHTTP(t *testing.T) {
	k := newKeys(t)
	a, err := NewAuthenticator(AuthenticatorOptions{SecretKey: k.secretURL})
	if err != nil {
		t.Fatal(err)
	}
	tok := mustToken(t, k.secret, TokenOptions{Subject: "app"})
	tests := []struct {
		header string
		role   string
		kind   error
	}{
		{"Bearer " + tok, "app", nil},
		{"bearer  " + tok, "app", nil},
		{"", "", ErrNoToken},
		{"Basic dXNlcjpwYXNz", "", ErrMalformedToken},
		{"Bearer", "", ErrMalformedToken},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/admin/v2/tenants", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		role, err := a.AuthenticateHTTP(r)
		if tc.kind == nil && (err != nil || role != tc.role) || tc.kind != nil && !errors.Is(err, tc.kind) {
			t.Errorf("header %.20q: role %q, err %v; want %q, %v", tc.header, role, err, tc.role, tc.kind)
		}
	}
}
