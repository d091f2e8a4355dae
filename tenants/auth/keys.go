package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// SecretKeySize is the size in bytes of secret keys made by GenerateSecretKey.
const SecretKeySize = 32

// ReadKeyData loads key material given the way Pulsar's configuration does:
//
//	file:///path/to/key     the file's bytes
//	data:;base64,AAAA...    the base64-decoded data
//	data:,raw text          the raw data
//	-----BEGIN ...          PEM text given inline, used as is
//	anything else           base64-decoded (standard or URL alphabet)
func ReadKeyData(s string) ([]byte, error) {
	switch {
	case s == "":
		return nil, fmt.Errorf("%w: empty key", ErrBadKey)
	case strings.HasPrefix(s, "file:"):
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: key URL %q: %v", ErrBadKey, s, err)
		}
		path := u.Path
		if path == "" {
			path = u.Opaque // file:relative/path
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: read key file: %v", ErrBadKey, err)
		}
		return b, nil
	case strings.HasPrefix(s, "data:"):
		meta, data, ok := strings.Cut(strings.TrimPrefix(s, "data:"), ",")
		if !ok {
			return nil, fmt.Errorf("%w: data URL without ',' separator", ErrBadKey)
		}
		if strings.HasSuffix(meta, ";base64") {
			b, err := decodeBase64(data)
			if err != nil {
				return nil, fmt.Errorf("%w: data URL is not valid base64: %v", ErrBadKey, err)
			}
			return b, nil
		}
		d, err := url.PathUnescape(data)
		if err != nil {
			return nil, fmt.Errorf("%w: data URL: %v", ErrBadKey, err)
		}
		return []byte(d), nil
	case strings.HasPrefix(strings.TrimSpace(s), "-----BEGIN"):
		return []byte(s), nil
	default:
		b, err := decodeBase64(s)
		if err != nil {
			return nil, fmt.Errorf("%w: key is neither file:// nor data: nor base64: %v", ErrBadKey, err)
		}
		return b, nil
	}
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return nil, err
}

// LoadSecretKey loads an HMAC secret of at least SecretKeySize bytes (see
// ReadKeyData for the forms). As in Pulsar, a file:// key is used byte for
// byte: `strata tokens create-secret-key --output FILE` writes raw bytes,
// while its --base64 text is meant for data:;base64, URLs.
func LoadSecretKey(s string) ([]byte, error) {
	b, err := ReadKeyData(s)
	if err != nil {
		return nil, err
	}
	if len(b) < SecretKeySize {
		return nil, fmt.Errorf("%w: secret key has %d bytes, need at least %d", ErrBadKey, len(b), SecretKeySize)
	}
	return b, nil
}

// LoadPublicKey loads an RSA or ECDSA public key, PEM ("PUBLIC KEY",
// "RSA PUBLIC KEY") or DER (PKIX), in any form ReadKeyData accepts.
func LoadPublicKey(s string) (crypto.PublicKey, error) {
	b, err := ReadKeyData(s)
	if err != nil {
		return nil, err
	}
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		der = blk.Bytes
		if blk.Type == "RSA PUBLIC KEY" {
			k, err := x509.ParsePKCS1PublicKey(der)
			if err != nil {
				return nil, fmt.Errorf("%w: RSA public key: %v", ErrBadKey, err)
			}
			return k, nil
		}
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrBadKey, err)
	}
	switch k.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return k, nil
	}
	return nil, fmt.Errorf("%w: public key of type %T is not RSA or ECDSA", ErrBadKey, k)
}

// LoadPrivateKey loads an RSA or ECDSA private key, PEM or DER (PKCS#8,
// PKCS#1 or SEC 1), in any form ReadKeyData accepts.
func LoadPrivateKey(s string) (crypto.Signer, error) {
	b, err := ReadKeyData(s)
	if err != nil {
		return nil, err
	}
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		der = blk.Bytes
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("%w: private key of type %T is not RSA or ECDSA", ErrBadKey, k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("%w: not an RSA or ECDSA private key in PKCS#8, PKCS#1 or SEC 1 form", ErrBadKey)
}

// GenerateSecretKey returns SecretKeySize random bytes for HS256 tokens.
func GenerateSecretKey() ([]byte, error) {
	b := make([]byte, SecretKeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// EncodeSecretKey returns key as standard base64 text, the form of
// `create-secret-key --base64` and of data:;base64, URLs.
func EncodeSecretKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// Key pair algorithms GenerateKeyPair accepts.
const (
	// RS256: RSA 2048-bit keys, RSASSA-PKCS1-v1_5 with SHA-256.
	RS256 = "RS256"
	// ES256: ECDSA on P-256 with SHA-256.
	ES256 = "ES256"
	// HS256: HMAC with SHA-256 over a secret key.
	HS256 = "HS256"
)

// GenerateKeyPair creates a key pair for alg (RS256 or ES256) and returns
// the private key as PKCS#8 PEM and the public key as PKIX PEM.
func GenerateKeyPair(alg string) (privatePEM, publicPEM []byte, err error) {
	var priv crypto.Signer
	switch alg {
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("%w: unsupported key pair algorithm %q (use %s or %s)", ErrBadKey, alg, RS256, ES256)
	}
	if err != nil {
		return nil, nil, err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	privatePEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	publicPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	return privatePEM, publicPEM, nil
}
