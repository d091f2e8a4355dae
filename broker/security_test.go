package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/auth"
)

type secured struct {
	c      *testcluster.Cluster
	tokens map[string]string // identity -> token ("" = none)
}

// newSecured starts a cluster with JWT authentication and authorization:
// superuser "admin"; tenant ta administered by "alice", tb by "bob"; on
// ta/ns role "app" may produce and "reader" may consume.
func newSecured(t *testing.T) (s *secured) {
	t.Helper()
	secret, err := auth.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: "data:;base64," + auth.EncodeSecretKey(secret)})
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.Authentication, o.AuthorizationEnabled, o.SuperUserRoles = authn, true, []string{"admin"}
	}})
	ctx := ctxT(t, time.Minute)
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	for tn, admin := range map[string]string{"ta": "alice", "tb": "bob"} {
		if err := st.CreateTenant(ctx, tn, tenants.TenantInfo{AdminRoles: []string{admin}, AllowedClusters: []string{testcluster.ClusterName}}); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateNamespace(ctx, naming.MustParseNamespace(tn+"/ns"), tenants.Policies{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.UpdatePolicies(ctx, naming.MustParseNamespace("ta/ns"), func(p *tenants.Policies) error {
		p.AuthPolicies.NamespaceAuth = map[string][]tenants.AuthAction{"app": {tenants.ActionProduce}, "reader": {tenants.ActionConsume}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	other, _ := auth.GenerateSecretKey()
	tok := func(key []byte, sub string, exp time.Duration, now func() time.Time) string {
		s, err := auth.CreateToken(key, auth.TokenOptions{Subject: sub, ExpiresIn: exp, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	past := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	// The broker learns configuration through a watch: wait until it sees
	// the permissions just granted.
	waitVisible := func(appToken string) {
		cc, err := grpc.NewClient(c.Broker(0).GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cli := clientpb.NewBrokerClient(cc)
		testutil.WaitFor(t, 10*time.Second, func() error {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+appToken)
			_, err := cli.PartitionedMetadata(ctx, &clientpb.PartitionedMetadataRequest{Topic: "persistent://ta/ns/probe"})
			return err
		})
	}
	defer func() { waitVisible(s.tokens["app"]) }()
	s = &secured{c: c, tokens: map[string]string{
		"none":      "",
		"badsig":    tok(other, "admin", 0, nil),
		"expired":   tok(secret, "admin", time.Hour, past),
		"nobody":    tok(secret, "nobody", 0, nil),
		"bob":       tok(secret, "bob", 0, nil),
		"alice":     tok(secret, "alice", 0, nil),
		"app":       tok(secret, "app", 0, nil),
		"reader":    tok(secret, "reader", 0, nil),
		"superuser": tok(secret, "admin", 0, nil),
	}}
	return s
}

func (s *secured) http(t *testing.T, who, method, path, body string) (int, string) {
	t.Helper()
	code, _, out := s.call(t, who, method, path, body)
	return code, out
}

// call sends an HTTP request as who and returns the answer's status,
// header and body.
func (s *secured) call(t *testing.T, who, method, path, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.c.Broker(0).B.HTTPURL()+path, strings.NewReader(body))
	if tok := s.tokens[who]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestIsolationMatrixREST: every identity gets exactly 401, 403 or success
// on each admin path of tenant ta.
func TestIsolationMatrixREST(t *testing.T) {
	s := newSecured(t)
	// Make the topic exist (as the superuser).
	if code, body := s.http(t, "superuser", "PUT", "/admin/v2/persistent/ta/ns/t1", ""); code != 204 {
		t.Fatalf("create topic: %d %s", code, body)
	}
	paths := []struct{ method, path, body string }{
		{"GET", "/admin/v2/tenants/ta", ""},
		{"GET", "/admin/v2/namespaces/ta", ""},
		{"GET", "/admin/v2/namespaces/ta/ns", ""},
		{"POST", "/admin/v2/namespaces/ta/ns/retention", `{"retentionTimeInMinutes":60,"retentionSizeInMB":10}`},
		{"GET", "/admin/v2/namespaces/ta/ns/retention", ""},
		{"GET", "/admin/v2/namespaces/ta/ns/permissions", ""},
		{"GET", "/admin/v2/persistent/ta/ns", ""},
		{"GET", "/admin/v2/persistent/ta/ns/t1/stats", ""},
		{"GET", "/admin/v2/persistent/ta/ns/t1/internalStats", ""},
		{"GET", "/admin/v2/persistent/ta/ns/t1/subscriptions", ""},
		{"PUT", "/admin/v2/persistent/ta/ns/t1/subscription/sub-{who}", ""},
		{"DELETE", "/admin/v2/persistent/ta/ns/t1/subscription/sub-{who}", ""},
		{"GET", "/admin/v2/persistent/ta/ns/t1/lastMessageId", ""},
		{"GET", "/admin/v2/persistent/ta/ns/t1/permissions", ""},
		{"PUT", "/admin/v2/persistent/ta/ns/t1/unload", ""},
		{"GET", "/admin/v2/persistent/ta/ns/t1/partitions", ""},
	}
	want := map[string]int{"none": 401, "badsig": 401, "expired": 401, "nobody": 403, "bob": 403, "app": 403, "alice": 200, "superuser": 200}
	for _, p := range paths {
		for who, code := range want {
			got, body := s.http(t, who, p.method, strings.ReplaceAll(p.path, "{who}", who), p.body)
			if code == 200 {
				if got >= 300 {
					t.Errorf("%s %s as %s: %d %s, want success", p.method, p.path, who, got, body)
				}
			} else if got != code {
				t.Errorf("%s %s as %s: %d %s, want %d", p.method, p.path, who, got, body, code)
			}
		}
	}
	// Tenants themselves are managed by superusers only.
	for who, code := range map[string]int{"alice": 403, "bob": 403, "superuser": 204} {
		if got, body := s.http(t, who, "POST", "/admin/v2/tenants/ta", `{"adminRoles":["alice"],"allowedClusters":["test"]}`); got != code {
			t.Errorf("update tenant as %s: %d %s, want %d", who, got, body, code)
		}
	}
	// Tenant A's admin cannot list, read or measure tenant B.
	if code, body := s.http(t, "alice", "GET", "/admin/v2/tenants", ""); code != 200 || strings.Contains(body, "tb") || !strings.Contains(body, "ta") {
		t.Errorf("alice lists tenants: %d %s (must see ta only)", code, body)
	}
	for _, p := range []string{"/admin/v2/tenants/tb", "/admin/v2/namespaces/tb", "/admin/v2/namespaces/tb/ns", "/admin/v2/persistent/tb/ns", "/admin/v2/persistent/tb/ns/x/stats"} {
		if code, _ := s.http(t, "alice", "GET", p, ""); code != 403 {
			t.Errorf("alice GET %s: %d, want 403", p, code)
		}
	}
	if code, body := s.http(t, "alice", "GET", "/metrics", ""); code != 403 {
		t.Errorf("alice GET /metrics: %d %.80s, want 403 (metrics cover every tenant)", code, body)
	}
	if code, _ := s.http(t, "superuser", "GET", "/metrics", ""); code != 200 {
		t.Errorf("superuser GET /metrics: %d", code)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := s.http(t, "none", "GET", p, ""); code != 200 {
			t.Errorf("GET %s without a token: %d, want 200 (probes)", p, code)
		}
	}
}

// TestIsolationMatrixGRPC: the same identities on each gRPC operation.
func TestIsolationMatrixGRPC(t *testing.T) {
	s := newSecured(t)
	cc, err := grpc.NewClient(s.c.Broker(0).GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cli := clientpb.NewBrokerClient(cc)
	topic := "persistent://ta/ns/g1"
	ctxFor := func(who string) context.Context {
		ctx := ctxT(t, 30*time.Second)
		if tok := s.tokens[who]; tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		}
		return ctx
	}
	ops := map[string]func(ctx context.Context) error{
		"Lookup": func(ctx context.Context) error {
			_, err := cli.Lookup(ctx, &clientpb.LookupRequest{Topic: topic})
			return err
		},
		"PartitionedMetadata": func(ctx context.Context) error {
			_, err := cli.PartitionedMetadata(ctx, &clientpb.PartitionedMetadataRequest{Topic: topic})
			return err
		},
		"LastMessageId": func(ctx context.Context) error {
			_, err := cli.LastMessageId(ctx, &clientpb.LastMessageIdRequest{Topic: topic})
			return err
		},
		"Produce": func(ctx context.Context) error {
			st, err := cli.Produce(ctx)
			if err != nil {
				return err
			}
			st.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Open{Open: &clientpb.ProducerOpen{Topic: topic}}})
			_, err = st.Recv()
			return err
		},
		"Consume": func(ctx context.Context) error {
			st, err := cli.Consume(ctx)
			if err != nil {
				return err
			}
			st.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Subscribe{Subscribe: &clientpb.Subscribe{Topic: topic, Subscription: "s", Durable: true, Type: clientpb.SubscriptionType_SHARED}}})
			_, err = st.Recv()
			return err
		},
	}
	var service []string // every operation of the service is in ops
	for _, m := range clientpb.Broker_ServiceDesc.Methods {
		service = append(service, m.MethodName)
	}
	for _, st := range clientpb.Broker_ServiceDesc.Streams {
		service = append(service, st.StreamName)
	}
	if got, want := slices.Sorted(maps.Keys(ops)), slices.Sorted(slices.Values(service)); !slices.Equal(got, want) {
		t.Errorf("matrix operations %v, the service's %v", got, want)
	}
	allowed := map[string]map[string]bool{ // op -> identities allowed
		"Lookup":              {"app": true, "reader": true, "alice": true, "superuser": true},
		"PartitionedMetadata": {"app": true, "reader": true, "alice": true, "superuser": true},
		"LastMessageId":       {"reader": true, "alice": true, "superuser": true},
		"Produce":             {"app": true, "alice": true, "superuser": true},
		"Consume":             {"reader": true, "alice": true, "superuser": true},
	}
	for op, fn := range ops {
		for who := range s.tokens {
			err := fn(ctxFor(who))
			var want codes.Code
			switch {
			case who == "none" || who == "badsig" || who == "expired":
				want = codes.Unauthenticated
			case allowed[op][who]:
				want = codes.OK
			default:
				want = codes.PermissionDenied
			}
			if status.Code(err) != want {
				t.Errorf("%s as %s: %v, want %v", op, who, err, want)
			}
		}
	}
}

// TestPermissionRevokeClosesAccess: revoking a role's permission
// disconnects its live consumer, which cannot resubscribe.
func TestPermissionRevokeClosesAccess(t *testing.T) {
	s := newSecured(t)
	ctx := ctxT(t, time.Minute)
	cl, err := client.New(s.c.ServiceURL(), client.WithToken(s.tokens["reader"]), client.WithLogger(s.c.Log))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cons, err := cl.Subscribe(ctx, "persistent://ta/ns/revoke", "s", client.WithSubscriptionType(client.Shared))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := s.http(t, "alice", "DELETE", "/admin/v2/namespaces/ta/ns/permissions/reader", ""); code != 204 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	_, err = cons.Receive(ctx)
	if err == nil || !strings.Contains(fmt.Sprint(err), "AUTHORIZATION") {
		t.Fatalf("consumer after revoke: %v, want an authorization error", err)
	}
	if _, err := cl.Subscribe(ctx, "persistent://ta/ns/revoke", "s2"); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("resubscribe after revoke: %v, want ErrUnauthorized", err)
	}
}

// TestTenantAdminRemovalClosesAccess: removing a role from a tenant's
// admins closes its producers and consumers on the tenant's topics; they
// fail with an authorization error and cannot come back.
func TestTenantAdminRemovalClosesAccess(t *testing.T) {
	s := newSecured(t)
	ctx := ctxT(t, time.Minute)
	cl, err := client.New(s.c.ServiceURL(), client.WithToken(s.tokens["alice"]), client.WithLogger(s.c.Log))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const topic = "persistent://ta/ns/demote"
	cons, err := cl.Subscribe(ctx, topic, "s")
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	if m, err := cons.Receive(ctx); err != nil || string(m.Payload) != "before" {
		t.Fatalf("receive before the change: %v", err)
	}
	if code, body := s.http(t, "superuser", "POST", "/admin/v2/tenants/ta", `{"adminRoles":["carol"],"allowedClusters":["`+testcluster.ClusterName+`"]}`); code != 204 {
		t.Fatalf("update tenant: %d %s", code, body)
	}
	if _, err := cons.Receive(ctx); err == nil || !strings.Contains(fmt.Sprint(err), "AUTHORIZATION") {
		t.Fatalf("consumer after removal from the tenant admins: %v, want an authorization error", err)
	}
	if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("after")}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("send after removal from the tenant admins: %v, want ErrUnauthorized", err)
	}
	if _, err := cl.Subscribe(ctx, topic, "s2"); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("subscribe after removal from the tenant admins: %v, want ErrUnauthorized", err)
	}
}
