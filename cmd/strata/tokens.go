package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/internal/units"
	"github.com/strata-mq/strata/tenants/auth"
)

// `strata tokens`: keys and JWTs for token authentication, like
// `pulsar tokens`; thin wrappers over package tenants/auth.

func newTokensCmd() *cobra.Command {
	cmd := group("tokens", "Create keys and tokens for token authentication (like pulsar tokens)")
	cmd.Long = `Create the keys brokers verify tokens with and the tokens (JWTs) clients
authenticate with; the role is the token's "sub" claim.

Keys are given as file:///path, data:;base64,..., inline PEM or base64 text;
a plain path to an existing file is read as file://.`
	cmd.AddCommand(newCreateSecretKeyCmd(), newCreateKeyPairCmd(), newCreateTokenCmd(), newShowTokenCmd(), newValidateTokenCmd())
	return cmd
}

func newCreateSecretKeyCmd() *cobra.Command {
	var (
		output string
		b64    bool
	)
	cmd := &cobra.Command{
		Use:   "create-secret-key",
		Short: "Create a random secret key for HS256 tokens",
		Long: `Create 32 random bytes for HS256 tokens, written raw to --output (mode 0600) or
stdout. --base64 writes base64 text instead, for data:;base64,TEXT references.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := auth.GenerateSecretKey()
			if err != nil {
				return err
			}
			data := key
			if b64 {
				data = []byte(auth.EncodeSecretKey(key))
			}
			if output != "" {
				return writeKeyFile(output, data, 0o600)
			}
			if b64 {
				data = append(data, '\n')
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write the key to (default: stdout)")
	cmd.Flags().BoolVarP(&b64, "base64", "e", false, "write the key as base64 text")
	return cmd
}

func newCreateKeyPairCmd() *cobra.Command {
	var alg, privOut, pubOut string
	cmd := &cobra.Command{
		Use:   "create-key-pair",
		Short: "Create a private/public key pair for RS256 or ES256 tokens",
		Long: `Create a key pair: brokers verify tokens with the public key
(--token-public-key), whoever creates tokens keeps the private key (mode 0600).
Keys are PEM: PKCS#8 private key, PKIX public key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			priv, pub, err := auth.GenerateKeyPair(strings.ToUpper(alg))
			if err != nil {
				return err
			}
			if err := writeKeyFile(privOut, priv, 0o600); err != nil {
				return err
			}
			return writeKeyFile(pubOut, pub, 0o644)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&alg, "algorithm", "a", auth.RS256, "RS256 (RSA 2048) or ES256 (ECDSA P-256)")
	f.StringVar(&privOut, "output-private-key", "", "file to write the private key to")
	f.StringVar(&pubOut, "output-public-key", "", "file to write the public key to")
	cmd.MarkFlagRequired("output-private-key")
	cmd.MarkFlagRequired("output-public-key")
	return cmd
}

func writeKeyFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

// keyRef turns a plain path to an existing file into a file:// reference;
// other forms (file:, data:, PEM, base64) and "" pass unchanged.
func keyRef(s string) string {
	if strings.HasPrefix(s, "file:") || strings.HasPrefix(s, "data:") || strings.HasPrefix(strings.TrimSpace(s), "-----BEGIN") {
		return s
	}
	if st, err := os.Stat(s); err == nil && st.Mode().IsRegular() {
		if abs, err := filepath.Abs(s); err == nil {
			return "file://" + filepath.ToSlash(abs)
		}
	}
	return s
}

func newCreateTokenCmd() *cobra.Command {
	var (
		secretKey, privateKey string
		opts                  auth.TokenOptions
		expiry                string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a token for a role, signed with a secret key or a private key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (secretKey == "") == (privateKey == "") {
				return errors.New("give exactly one of --secret-key and --private-key")
			}
			if expiry != "" {
				d, err := units.ParseRelativeTime(expiry)
				if err != nil {
					return fmt.Errorf("--expiry-time: %w", err)
				}
				if d > 0 {
					opts.ExpiresIn = d
				}
			}
			var key any
			var err error
			if secretKey != "" {
				key, err = auth.LoadSecretKey(keyRef(secretKey))
			} else {
				key, err = auth.LoadPrivateKey(keyRef(privateKey))
			}
			if err != nil {
				return err
			}
			tok, err := auth.CreateToken(key, opts)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Subject, "subject", "s", "", "the role the token grants (its sub claim)")
	f.StringVarP(&expiry, "expiry-time", "e", "", "lifetime, e.g. 1h, 30d, 1y (default: never expires)")
	f.StringVar(&secretKey, "secret-key", "", "HS256 secret key: file:///PATH, data:;base64,... or a path")
	f.StringVar(&privateKey, "private-key", "", "RS256/ES256 private key: file:///PATH or a path")
	f.StringVarP(&opts.Algorithm, "signature-algorithm", "a", "", "signature algorithm (default from the key: HS256, RS256 or ES256)")
	cmd.MarkFlagRequired("subject")
	return cmd
}

// tokenArg reads the token from the argument, "-" meaning stdin.
func tokenArg(cmd *cobra.Command, arg string) (string, error) {
	if arg == "-" {
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
		if err != nil {
			return "", err
		}
		arg = string(b)
	}
	tok := strings.TrimSpace(arg)
	if len(tok) > 7 && strings.EqualFold(tok[:7], "bearer ") {
		tok = strings.TrimSpace(tok[7:])
	}
	if tok == "" {
		return "", errors.New("empty token")
	}
	return tok, nil
}

// decodedToken is what `tokens show` and `tokens validate` print.
type decodedToken struct {
	Header    map[string]any `json:"header"`
	Claims    map[string]any `json:"claims"`
	ExpiresAt string         `json:"expiresAt,omitempty"`
}

// decodeToken decodes a JWT's header and claims without verifying it.
func decodeToken(tok string) (decodedToken, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return decodedToken{}, fmt.Errorf("malformed token: want 3 dot-separated parts, got %d", len(parts))
	}
	var out decodedToken
	for i, dst := range []*map[string]any{&out.Header, &out.Claims} {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[i], "="))
		if err != nil {
			return decodedToken{}, fmt.Errorf("malformed token: part %d is not base64url: %v", i+1, err)
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil {
			return decodedToken{}, fmt.Errorf("malformed token: part %d is not a JSON object: %v", i+1, err)
		}
	}
	if exp, ok := out.Claims["exp"].(json.Number); ok {
		if secs, err := exp.Int64(); err == nil {
			out.ExpiresAt = time.Unix(secs, 0).UTC().Format(time.RFC3339)
		}
	}
	return out, nil
}

func printToken(cmd *cobra.Command, d decodedToken) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return err
}

func newShowTokenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show TOKEN",
		Short: "Print a token's header and claims, without verifying it (- reads stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := tokenArg(cmd, args[0])
			if err != nil {
				return err
			}
			d, err := decodeToken(tok)
			if err != nil {
				return err
			}
			return printToken(cmd, d)
		},
	}
}

func newValidateTokenCmd() *cobra.Command {
	var secretKey, publicKey string
	cmd := &cobra.Command{
		Use:   "validate TOKEN",
		Short: "Verify a token's signature and expiry with a secret or public key; prints its claims (- reads stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (secretKey == "") == (publicKey == "") {
				return errors.New("give exactly one of --secret-key and --public-key")
			}
			tok, err := tokenArg(cmd, args[0])
			if err != nil {
				return err
			}
			a, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: keyRef(secretKey), PublicKey: keyRef(publicKey)})
			if err != nil {
				return err
			}
			if _, err := a.Authenticate(tok); err != nil {
				return fmt.Errorf("invalid token: %w", err)
			}
			d, err := decodeToken(tok)
			if err != nil {
				return err
			}
			return printToken(cmd, d)
		},
	}
	cmd.Flags().StringVar(&secretKey, "secret-key", "", "HS256 secret key: file:///PATH, data:;base64,... or a path")
	cmd.Flags().StringVar(&publicKey, "public-key", "", "RS256/ES256 public key: file:///PATH or a path")
	return cmd
}
