package admin_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
)

// recorded is one request seen by a fake server.
type recorded struct {
	method, path, query, body, auth, contentType string
}

type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

func (r *recorder) record(req *http.Request) recorded {
	b, _ := io.ReadAll(req.Body)
	rec := recorded{req.Method, req.URL.EscapedPath(), req.URL.RawQuery, string(b), req.Header.Get("Authorization"), req.Header.Get("Content-Type")}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return rec
}

func (r *recorder) last(t *testing.T) recorded {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request recorded")
	}
	return r.reqs[len(r.reqs)-1]
}

// TestRedirectKeepsMethodBodyAndHeaders: a 307 from one broker to another
// (another host:port) is followed with the same method, body, query and
// Authorization header, as brokers redirect topic requests to the owner.
func TestRedirectKeepsMethodBodyAndHeaders(t *testing.T) {
	var owner recorder
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		owner.record(r)
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/terminate") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ledgerId":7,"entryId":9,"partitionIndex":-1}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer target.Close()
	// The owner under another host name, so that Go's own redirect policy
	// would drop the Authorization header.
	ownerURL := strings.Replace(target.URL, "127.0.0.1", "localhost", 1)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, ownerURL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer front.Close()

	c, err := admin.New(front.URL, admin.WithToken("tok"))
	check(t, "new", err)
	ctx := context.Background()
	check(t, "create partitioned", c.Topics().CreatePartitioned(ctx, "acme/ns/t", 3))
	got := owner.last(t)
	want := recorded{method: "PUT", path: "/admin/v2/persistent/acme/ns/t/partitions", body: "3", auth: "Bearer tok", contentType: "application/json"}
	testutil.Equal(t, "redirected request", got, want)

	check(t, "delete", c.Topics().Delete(ctx, "t", true))
	got = owner.last(t)
	testutil.Equal(t, "redirected delete", [3]string{got.method, got.path, got.query}, [3]string{"DELETE", "/admin/v2/persistent/public/default/t", "force=true"})

	id, err := c.Topics().Terminate(ctx, "persistent://acme/ns/t")
	check(t, "terminate", err)
	testutil.Equal(t, "terminate answer", id, admin.MessageID{LedgerID: 7, EntryID: 9, PartitionIndex: -1, BatchIndex: -1})

	check(t, "reset cursor", c.Topics().ResetCursorToMessageID(ctx, "acme/ns/t", "my sub", admin.MessageID{LedgerID: 3, EntryID: 4, PartitionIndex: -1, BatchIndex: -1}))
	got = owner.last(t)
	testutil.Equal(t, "reset path", got.path, "/admin/v2/persistent/acme/ns/t/subscription/my%20sub/resetcursor")
	var body map[string]int64
	check(t, "reset body", json.Unmarshal([]byte(got.body), &body))
	testutil.Equal(t, "reset body", body, map[string]int64{"ledgerId": 3, "entryId": 4, "partitionIndex": -1, "batchIndex": -1})
}

func TestRedirectLoopFails(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := admin.New(srv.URL)
	check(t, "new", err)
	if err := c.Topics().Unload(context.Background(), "t"); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("redirect loop: %v", err)
	}
}

// TestErrorAnswers: JSON reasons, plain-text bodies and empty bodies all
// become an *admin.Error with the status.
func TestErrorAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/admin/v2/tenants/json":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"reason":"tenant json already exists"}`)
		case "/admin/v2/tenants/text":
			http.Error(w, "upstream broke", http.StatusBadGateway)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c, err := admin.New(strings.TrimPrefix(srv.URL, "http://")) // no scheme: http
	check(t, "new", err)
	ctx := context.Background()
	wantErr(t, "json", c.Tenants().Create(ctx, "json", tenants.TenantInfo{}), http.StatusConflict, "tenant json already exists")
	wantErr(t, "text", c.Tenants().Delete(ctx, "text"), http.StatusBadGateway, "upstream broke")
	_, err = c.Tenants().Get(ctx, "empty")
	wantErr(t, "empty", err, http.StatusServiceUnavailable, "Service Unavailable")
	if !admin.IsConflict(c.Tenants().Create(ctx, "json", tenants.TenantInfo{})) || admin.IsNotFound(err) || admin.StatusCode(io.EOF) != 0 {
		t.Fatal("IsConflict / IsNotFound / StatusCode")
	}
}

// TestOffloadShape: Offload and OffloadStatus follow Pulsar's
// PUT/GET .../offload with a MessageId body and an OffloadProcessStatus answer.
func TestOffloadShape(t *testing.T) {
	var rec recorder
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		if r.Method == http.MethodGet {
			io.WriteString(w, `{"status":"SUCCESS","lastError":"","firstUnoffloadedMessage":{"ledgerId":12,"entryId":0,"partitionIndex":-1}}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := admin.New(srv.URL)
	check(t, "new", err)
	ctx := context.Background()
	check(t, "offload", c.Topics().Offload(ctx, "acme/ns/t", admin.MessageID{LedgerID: 12, EntryID: 0, PartitionIndex: -1, BatchIndex: -1}))
	got := rec.last(t)
	testutil.Equal(t, "offload request", [2]string{got.method, got.path}, [2]string{"PUT", "/admin/v2/persistent/acme/ns/t/offload"})
	var body map[string]int64
	check(t, "offload body", json.Unmarshal([]byte(got.body), &body))
	testutil.Equal(t, "offload body", body, map[string]int64{"ledgerId": 12, "entryId": 0, "partitionIndex": -1, "batchIndex": -1})
	st, err := c.Topics().OffloadStatus(ctx, "acme/ns/t")
	check(t, "offload status", err)
	if st.Status != admin.OffloadSuccess || st.FirstUnoffloadedMessage == nil || *st.FirstUnoffloadedMessage != (admin.MessageID{LedgerID: 12, PartitionIndex: -1, BatchIndex: -1}) {
		t.Fatalf("offload status %+v", st)
	}
}

// TestTLS: WithTLS trusts the given CA; without it the server's
// self-signed certificate is refused.
func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `["public"]`)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	check(t, "write CA", os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	ctx := context.Background()

	c, err := admin.New(strings.TrimPrefix(srv.URL, "https://"), admin.WithTLS(ca, "", ""))
	check(t, "new", err)
	if !strings.HasPrefix(c.BaseURL(), "https://") {
		t.Fatalf("base URL %s, want https with WithTLS", c.BaseURL())
	}
	list, err := c.Tenants().List(ctx)
	check(t, "list over TLS", err)
	testutil.Equal(t, "tenants", list, []string{"public"})

	plain, err := admin.New(srv.URL)
	check(t, "new", err)
	if _, err := plain.Tenants().List(ctx); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
	if _, err := admin.New(srv.URL, admin.WithTLS(filepath.Join(t.TempDir(), "missing.pem"), "", "")); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
	if _, err := admin.New(srv.URL, admin.WithTLS("", "cert.pem", "")); err == nil {
		t.Fatal("a certificate without a key was accepted")
	}
	custom, err := admin.New(srv.URL, admin.WithHTTPClient(&http.Client{}), admin.WithTLS(ca, "", ""))
	check(t, "new with a custom client", err)
	_, err = custom.Tenants().List(ctx)
	check(t, "list through a custom client", err)
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "ftp://host:21", "http://", "http://[::1"} {
		if _, err := admin.New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	c, err := admin.New("http://proxy:8080/strata/")
	check(t, "new with a path", err)
	testutil.Equal(t, "base URL", c.BaseURL(), "http://proxy:8080/strata")
}

func TestMessageID(t *testing.T) {
	for in, want := range map[string]admin.MessageID{
		"earliest": admin.Earliest,
		"LATEST":   admin.Latest,
		"5:7":      {LedgerID: 5, EntryID: 7, PartitionIndex: -1, BatchIndex: -1},
		"5:7:2":    {LedgerID: 5, EntryID: 7, PartitionIndex: 2, BatchIndex: -1},
		"5:7:2:1":  {LedgerID: 5, EntryID: 7, PartitionIndex: 2, BatchIndex: 1},
	} {
		got, err := admin.ParseMessageID(in)
		check(t, in, err)
		testutil.Equal(t, in, got, want)
		if back, err := admin.ParseMessageID(got.String()); err != nil || back != got {
			t.Errorf("%q: String %q parses back as %v, %v", in, got.String(), back, err)
		}
	}
	for _, bad := range []string{"", "5", "a:b", "-1:0", "1:2:3:4:5", "1:99999999999999999999"} {
		if _, err := admin.ParseMessageID(bad); err == nil {
			t.Errorf("ParseMessageID(%q) accepted", bad)
		}
	}
	var id admin.MessageID
	check(t, "unmarshal", json.Unmarshal([]byte(`{"ledgerId":1,"entryId":2}`), &id))
	testutil.Equal(t, "defaults", id, admin.MessageID{LedgerID: 1, EntryID: 2, PartitionIndex: -1, BatchIndex: -1})
}
