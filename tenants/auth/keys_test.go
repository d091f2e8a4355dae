package auth

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadKeyData(t *testing.T) {
	dir := t.TempDir()
	raw := []byte("0123456789abcdef0123456789abcdef")
	path := filepath.Join(dir, "k.key")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	tests := []struct {
		in   string
		want string
		err  string
	}{
		{in: "file://" + path, want: string(raw)},
		{in: "data:;base64," + b64, want: string(raw)},
		{in: "data:application/octet-stream;base64," + b64, want: string(raw)},
		{in: "data:,plain%20text", want: "plain text"},
		{in: b64, want: string(raw)},
		{in: base64.RawURLEncoding.EncodeToString(raw), want: string(raw)},
		{in: "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n", want: "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n"},
		{in: "", err: "empty key"},
		{in: "file://" + filepath.Join(dir, "missing"), err: "read key file"},
		{in: "data:;base64", err: "without ','"},
		{in: "data:;base64,***", err: "not valid base64"},
		{in: "not base64 !", err: "neither file:// nor data: nor base64"},
	}
	for _, tc := range tests {
		got, err := ReadKeyData(tc.in)
		if tc.err != "" {
			if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ReadKeyData(%.40q) = %v, want ErrBadKey mentioning %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("ReadKeyData(%.40q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestLoadSecretKey(t *testing.T) {
	k, err := GenerateSecretKey()
	if err != nil || len(k) != SecretKeySize {
		t.Fatalf("GenerateSecretKey = %d bytes, %v", len(k), err)
	}
	got, err := LoadSecretKey("data:;base64," + EncodeSecretKey(k))
	if err != nil || string(got) != string(k) {
		t.Fatalf("LoadSecretKey round trip: %v", err)
	}
	if _, err := LoadSecretKey("data:;base64," + EncodeSecretKey(k[:16])); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "16 bytes") {
		t.Fatalf("short key: %v", err)
	}
}

func TestKeyPairs(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{RS256, ES256} {
		priv, pub, err := GenerateKeyPair(alg)
		if err != nil {
			t.Fatalf("GenerateKeyPair(%s): %v", alg, err)
		}
		privPath, pubPath := filepath.Join(dir, alg+".key"), filepath.Join(dir, alg+".pub")
		os.WriteFile(privPath, priv, 0o600)
		os.WriteFile(pubPath, pub, 0o600)
		sk, err := LoadPrivateKey("file://" + privPath)
		if err != nil {
			t.Fatalf("LoadPrivateKey(%s): %v", alg, err)
		}
		pk, err := LoadPublicKey("file://" + pubPath)
		if err != nil {
			t.Fatalf("LoadPublicKey(%s): %v", alg, err)
		}
		switch alg {
		case RS256:
			if _, ok := sk.(*rsa.PrivateKey); !ok {
				t.Errorf("private key type %T", sk)
			}
			if _, ok := pk.(*rsa.PublicKey); !ok {
				t.Errorf("public key type %T", pk)
			}
		case ES256:
			if _, ok := sk.(*ecdsa.PrivateKey); !ok {
				t.Errorf("private key type %T", sk)
			}
		}
		// Inline PEM works as well.
		if _, err := LoadPublicKey(string(pub)); err != nil {
			t.Errorf("inline PEM public key: %v", err)
		}
	}
	if _, _, err := GenerateKeyPair("HS999"); !errors.Is(err, ErrBadKey) {
		t.Errorf("unknown algorithm: %v", err)
	}
	if _, err := LoadPublicKey("data:;base64," + base64.StdEncoding.EncodeToString([]byte("junk"))); !errors.Is(err, ErrBadKey) {
		t.Errorf("junk public key: %v", err)
	}
	if _, err := LoadPrivateKey("data:;base64," + base64.StdEncoding.EncodeToString([]byte("junk"))); !errors.Is(err, ErrBadKey) {
		t.Errorf("junk private key: %v", err)
	}
}
