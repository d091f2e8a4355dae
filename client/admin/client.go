// Package admin is a Go client for Strata's admin REST API, which follows
// Pulsar's /admin/v2 paths, verbs and JSON field names (like Pulsar's
// pulsaradmin package):
//
//	c, err := admin.New("http://127.0.0.1:8080", admin.WithToken(tok))
//	err = c.Tenants().Create(ctx, "acme", tenants.TenantInfo{AllowedClusters: []string{"standalone"}})
//	err = c.Namespaces().Create(ctx, "acme/orders", nil)
//	err = c.Topics().CreatePartitioned(ctx, "acme/orders/events", 4)
//	st, err := c.Topics().PartitionedStats(ctx, "acme/orders/events", false)
//
// Methods are grouped by resource: Clusters, Tenants, Namespaces and Topics.
// Topic names take any form Strata accepts ("t", "tenant/ns/t",
// "persistent://tenant/ns/t"); namespaces are "tenant/ns". A failed request
// returns an *Error holding the HTTP status and the server's reason.
// Requests redirected to another broker (307) are repeated there with the
// same method, body and headers, Authorization included.
package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// MaxRedirects is how many redirects a request follows before failing.
const MaxRedirects = 10

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Client talks to one broker's admin API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
}

// Option configures a Client.
type Option func(*config)

type config struct {
	token    string
	hc       *http.Client
	tls      bool
	caFile   string
	certFile string
	keyFile  string
}

// WithToken authenticates every request with a JWT, sent as
// "Authorization: Bearer <token>".
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithTLS trusts the CA certificates in caFile (PEM; the system roots when
// empty) and, when certFile and keyFile are set, presents that client
// certificate. A base URL without a scheme then defaults to https.
func WithTLS(caFile, certFile, keyFile string) Option {
	return func(c *config) {
		c.tls, c.caFile, c.certFile, c.keyFile = true, caFile, certFile, keyFile
	}
}

// WithHTTPClient sends requests through hc instead of a client of its own.
// Redirects are still followed by this package (hc's CheckRedirect is not
// used). Combined with WithTLS, hc's Transport must be nil or an
// *http.Transport, whose copy gets the TLS settings.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.hc = hc } }

// New returns a client for the admin API at baseURL, e.g.
// "http://127.0.0.1:8080" ("127.0.0.1:8080" is read as http://, or https://
// with WithTLS). A path in baseURL is kept as a prefix of every request.
func New(baseURL string, opts ...Option) (*Client, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	raw := strings.TrimSpace(baseURL)
	if raw == "" {
		return nil, errors.New("admin: empty admin URL")
	}
	if !strings.Contains(raw, "://") {
		if cfg.tls {
			raw = "https://" + raw
		} else {
			raw = "http://" + raw
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("admin: admin URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("admin: admin URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("admin: admin URL %q has no host", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""

	hc, err := httpClient(&cfg)
	if err != nil {
		return nil, err
	}
	return &Client{base: u, hc: hc, token: cfg.token}, nil
}

// httpClient builds the *http.Client requests go through; it never follows
// redirects itself (see Client.send).
func httpClient(cfg *config) (*http.Client, error) {
	var hc http.Client
	if cfg.hc != nil {
		hc = *cfg.hc
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if !cfg.tls {
		return &hc, nil
	}
	tc, err := tlsConfig(cfg.caFile, cfg.certFile, cfg.keyFile)
	if err != nil {
		return nil, err
	}
	var tr *http.Transport
	switch t := hc.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return nil, fmt.Errorf("admin: WithTLS needs an *http.Transport, the HTTP client has a %T", t)
	}
	tr.TLSClientConfig = tc
	hc.Transport = tr
	return &hc, nil
}

func tlsConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("admin: TLS trust certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("admin: TLS trust certificates file %s holds no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("admin: a TLS client certificate needs both a certificate and a key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("admin: TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// BaseURL returns the URL requests are sent to (scheme, host and path prefix).
func (c *Client) BaseURL() string { return c.base.String() }

// Do sends one request to path (e.g. "/admin/v2/tenants", already escaped),
// with query parameters q, in encoded as the JSON body (none when nil) and
// the JSON answer decoded into out (ignored when nil). It reports whether the
// answer had a body: a GET of an unset policy answers 204 with none. It is
// the building block of the typed methods, for paths they do not cover.
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, in, out any) (bool, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return false, fmt.Errorf("admin: encode %s %s body: %w", method, path, err)
		}
	}
	target := c.base.String() + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	resp, err := c.send(ctx, method, target, body)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, readError(method, path, resp)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, fmt.Errorf("admin: %s %s: read answer: %w", method, path, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return false, nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return true, fmt.Errorf("admin: %s %s: decode answer: %w", method, path, err)
		}
	}
	return true, nil
}

// send performs the request, following redirects itself so that the
// method, body and every header (Authorization included, even to another
// host) are kept, as brokers redirect topic requests to the topic's owner.
func (c *Client) send(ctx context.Context, method, target string, body []byte) (*http.Response, error) {
	for hop := 0; ; hop++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, target, rd)
		if err != nil {
			return nil, fmt.Errorf("admin: %s %s: %w", method, target, err)
		}
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // it repeats the method and URL
			}
			return nil, fmt.Errorf("admin: %s %s: %w", method, req.URL.Redacted(), err)
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			return resp, nil
		}
		loc := resp.Header.Get("Location")
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if loc == "" {
			return nil, &Error{Status: resp.StatusCode, Reason: fmt.Sprintf("%s %s: redirect without a Location", method, req.URL.Path)}
		}
		if hop >= MaxRedirects {
			return nil, fmt.Errorf("admin: %s %s: more than %d redirects", method, req.URL.Path, MaxRedirects)
		}
		next, err := req.URL.Parse(loc)
		if err != nil {
			return nil, fmt.Errorf("admin: %s %s: bad redirect location %q: %w", method, req.URL.Path, loc, err)
		}
		if next.Scheme != "http" && next.Scheme != "https" {
			return nil, fmt.Errorf("admin: %s %s: redirect to unsupported URL %s", method, req.URL.Path, next.Redacted())
		}
		target = next.String()
	}
}

// readError turns a non-2xx answer into an *Error.
func readError(method, path string, resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{Status: resp.StatusCode, Method: method, Path: path}
	var body struct {
		Reason  *string `json:"reason"`
		Message *string `json:"message"`
	}
	switch {
	case json.Unmarshal(data, &body) == nil && body.Reason != nil:
		e.Reason = *body.Reason
	case body.Message != nil:
		e.Reason = *body.Message
	default:
		e.Reason = strings.TrimSpace(string(data))
	}
	if e.Reason == "" {
		e.Reason = http.StatusText(resp.StatusCode)
	}
	return e
}
