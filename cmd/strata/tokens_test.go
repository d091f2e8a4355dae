package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/tenants/auth"
)

// strata runs the strata command line with args (stdin as given) and
// returns its stdout; admin and tokens are added when main has not
// registered them yet.
func strata(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	have := map[string]bool{}
	for _, c := range root.Commands() {
		have[c.Name()] = true
	}
	for _, c := range []*cobra.Command{newAdminCmd(), newTokensCmd()} {
		if !have[c.Name()] {
			root.AddCommand(c)
		}
	}
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	err := root.Execute()
	return out.String(), err
}

// mustStrata is strata failing the test on error.
func mustStrata(t *testing.T, args ...string) string {
	t.Helper()
	out, err := strata(t, "", args...)
	if err != nil {
		t.Fatalf("strata %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// failStrata runs a command that must fail with a message containing substr.
func failStrata(t *testing.T, substr string, args ...string) {
	t.Helper()
	out, err := strata(t, "", args...)
	if err == nil {
		t.Fatalf("strata %s succeeded (output %q), want an error with %q", strings.Join(args, " "), out, substr)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("strata %s: error %q lacks %q", strings.Join(args, " "), err, substr)
	}
}

// claims decodes the output of tokens show / validate.
func claims(t *testing.T, out string) decodedToken {
	t.Helper()
	var d decodedToken
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return d
}

// TestTokensSecretKeyRoundTrip: create-secret-key → create --subject →
// validate and show, with the key as a raw file and as base64 text.
func TestTokensSecretKeyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	if out := mustStrata(t, "tokens", "create-secret-key", "--output", keyFile); out != "" {
		t.Fatalf("create-secret-key --output printed %q", out)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil || len(key) != auth.SecretKeySize {
		t.Fatalf("secret key file: %d bytes, %v", len(key), err)
	}
	if st, _ := os.Stat(keyFile); st.Mode().Perm() != 0o600 {
		t.Fatalf("secret key file mode %v, want 0600", st.Mode().Perm())
	}

	tok := strings.TrimSpace(mustStrata(t, "tokens", "create", "--subject", "app1", "--secret-key", "file://"+keyFile))
	d := claims(t, mustStrata(t, "tokens", "validate", tok, "--secret-key", "file://"+keyFile))
	if d.Claims["sub"] != "app1" || d.Header["alg"] != "HS256" || d.ExpiresAt != "" {
		t.Fatalf("validated token %+v", d)
	}
	// A plain path works too, and so does the token on stdin.
	out, err := strata(t, tok+"\n", "tokens", "validate", "-", "--secret-key", keyFile)
	if err != nil || claims(t, out).Claims["sub"] != "app1" {
		t.Fatalf("validate from stdin: %q, %v", out, err)
	}

	// The token is what the broker accepts.
	a, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: "file://" + keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if role, err := a.Authenticate(tok); err != nil || role != "app1" {
		t.Fatalf("broker authenticator: %q, %v", role, err)
	}

	// Base64 text, used as data:;base64,TEXT.
	text := strings.TrimSpace(mustStrata(t, "tokens", "create-secret-key", "--base64"))
	if raw, err := base64.StdEncoding.DecodeString(text); err != nil || len(raw) != auth.SecretKeySize {
		t.Fatalf("--base64 printed %q (%d bytes, %v)", text, len(raw), err)
	}
	b64tok := strings.TrimSpace(mustStrata(t, "tokens", "create", "-s", "app2", "-e", "1h", "--secret-key", "data:;base64,"+text))
	d = claims(t, mustStrata(t, "tokens", "validate", b64tok, "--secret-key", "data:;base64,"+text))
	exp, err := time.Parse(time.RFC3339, d.ExpiresAt)
	if err != nil || d.Claims["sub"] != "app2" || time.Until(exp) < 59*time.Minute || time.Until(exp) > 61*time.Minute {
		t.Fatalf("token with --expiry-time 1h: %+v (%v)", d, err)
	}

	// Wrong key, expired token, garbage.
	failStrata(t, "signature", "tokens", "validate", b64tok, "--secret-key", "file://"+keyFile)
	expired, err := auth.CreateToken(key, auth.TokenOptions{Subject: "old", ExpiresIn: time.Minute, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	failStrata(t, "expired", "tokens", "validate", expired, "--secret-key", keyFile)
	if d := claims(t, mustStrata(t, "tokens", "show", expired)); d.Claims["sub"] != "old" || d.ExpiresAt == "" {
		t.Fatalf("show of an expired token: %+v", d)
	}
	failStrata(t, "malformed", "tokens", "show", "not-a-token")
	failStrata(t, "malformed", "tokens", "validate", "a.b.c", "--secret-key", keyFile)
	failStrata(t, "exactly one", "tokens", "create", "--subject", "x")
	failStrata(t, "exactly one", "tokens", "validate", tok)
	failStrata(t, "subject", "tokens", "create", "--secret-key", keyFile)
	failStrata(t, "units", "tokens", "create", "--subject", "x", "--secret-key", keyFile, "--expiry-time", "soon")
}

// TestTokensKeyPairs: create-key-pair for RS256 and ES256, tokens signed
// with the private key validate with the public key only.
func TestTokensKeyPairs(t *testing.T) {
	dir := t.TempDir()
	toks := map[string]string{}
	for _, alg := range []string{"RS256", "ES256"} {
		priv := filepath.Join(dir, alg+"-private.key")
		pub := filepath.Join(dir, alg+"-public.key")
		if out := mustStrata(t, "tokens", "create-key-pair", "--algorithm", alg, "--output-private-key", priv, "--output-public-key", pub); out != "" {
			t.Fatalf("create-key-pair printed %q", out)
		}
		if st, _ := os.Stat(priv); st.Mode().Perm() != 0o600 {
			t.Fatalf("%s private key mode %v", alg, st.Mode().Perm())
		}
		tok := strings.TrimSpace(mustStrata(t, "tokens", "create", "--subject", "admin", "--private-key", "file://"+priv))
		d := claims(t, mustStrata(t, "tokens", "validate", tok, "--public-key", "file://"+pub))
		if d.Claims["sub"] != "admin" || d.Header["alg"] != alg {
			t.Fatalf("%s token %+v", alg, d)
		}
		toks[alg] = tok
	}
	failStrata(t, "", "tokens", "validate", toks["RS256"], "--public-key", filepath.Join(dir, "ES256-public.key"))
	failStrata(t, "", "tokens", "validate", toks["ES256"], "--public-key", filepath.Join(dir, "RS256-public.key"))
	failStrata(t, "unsupported", "tokens", "create-key-pair", "--algorithm", "HS999",
		"--output-private-key", filepath.Join(dir, "x"), "--output-public-key", filepath.Join(dir, "y"))
	failStrata(t, "output-public-key", "tokens", "create-key-pair", "--output-private-key", filepath.Join(dir, "x"))
}
