package tenants_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/auth"
)

// fakeTopics is the broker's topic list, settable by tests.
type fakeTopics struct {
	mu sync.Mutex
	m  map[string][]string
}

func (f *fakeTopics) ListTopics(_ context.Context, ns naming.Namespace) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[ns.String()], nil
}

func (f *fakeTopics) set(ns string, topics ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[ns] = topics
}

type adminEnv struct {
	url    string
	md     metadata.Store
	store  *tenants.Store
	cache  *tenants.Cache
	topics *fakeTopics
	tokens map[string]string
}

// newAdminEnv starts the admin API on a fresh configuration store with
// clusters local, east and west, tenant acme (admin alice, clusters local
// and east) and tenant beta (admin bob, cluster local). With secure set,
// tokens are required and "root" is the superuser.
func newAdminEnv(t *testing.T, secure bool) *adminEnv {
	t.Helper()
	ctx := context.Background()
	md, _ := testutil.Store(t)
	if err := tenants.InitializeCluster(ctx, md, "local", tenants.ClusterData{ServiceURL: "http://local:8080", BrokerServiceURL: "local:6650"}); err != nil {
		t.Fatal(err)
	}
	s := tenants.NewStore(md, tenants.StoreOptions{LocalCluster: "local"})
	for _, c := range []string{"east", "west"} {
		if err := s.CreateCluster(ctx, c, tenants.ClusterData{ServiceURL: "http://" + c + ":8080"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateTenant(ctx, "acme", tenants.TenantInfo{AdminRoles: []string{"alice"}, AllowedClusters: []string{"local", "east"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(ctx, "beta", tenants.TenantInfo{AdminRoles: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	cache, err := tenants.NewCache(ctx, md, tenants.CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	env := &adminEnv{md: md, store: s, cache: cache, topics: &fakeTopics{m: map[string][]string{}}, tokens: map[string]string{}}
	opts := tenants.AdminOptions{Store: s, Topics: env.topics}
	if secure {
		secret, err := auth.GenerateSecretKey()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(path, secret, 0o600); err != nil {
			t.Fatal(err)
		}
		authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: "file://" + path})
		if err != nil {
			t.Fatal(err)
		}
		authz, err := auth.NewAuthorizer(auth.AuthorizerOptions{Enabled: true, SuperUserRoles: []string{"root"}, Source: cache})
		if err != nil {
			t.Fatal(err)
		}
		opts.Role, opts.Authz = authn.AuthenticateHTTP, authz
		for _, role := range []string{"root", "alice", "bob", "carol"} {
			env.tokens[role], _ = auth.CreateToken(secret, auth.TokenOptions{Subject: role})
		}
		other, _ := auth.GenerateSecretKey()
		env.tokens["bad-signature"], _ = auth.CreateToken(other, auth.TokenOptions{Subject: "root"})
		env.tokens["expired"], _ = auth.CreateToken(secret, auth.TokenOptions{Subject: "root", ExpiresIn: time.Minute,
			Now: func() time.Time { return time.Now().Add(-time.Hour) }})
		env.tokens["garbage"] = "not.a.token"
	}
	h, err := tenants.NewAdminHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	env.url = srv.URL
	// Authorization reads the cache: wait until it has the fixtures.
	testutil.WaitFor(t, 5*time.Second, func() error {
		if _, ok := cache.Tenant("beta"); !ok {
			return fmt.Errorf("cache has not seen tenant beta")
		}
		return nil
	})
	return env
}

// do sends a request as role ("" for no token) and returns status and body.
func (e *adminEnv) do(t *testing.T, method, path, role, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
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
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// step is one request of a scripted admin session and what it must answer.
type step struct {
	method, path, role, body string
	status                   int
	// want is the exact JSON body, or with a leading '~' a substring of it.
	want string
}

func runSteps(t *testing.T, e *adminEnv, steps []step) {
	t.Helper()
	for i, s := range steps {
		path := tenants.AdminPrefix + s.path
		status, body := e.do(t, s.method, path, s.role, s.body)
		name := fmt.Sprintf("step %d: %s %s as %q", i, s.method, s.path, s.role)
		if status != s.status {
			t.Errorf("%s: status %d, want %d; body %s", name, status, s.status, body)
			continue
		}
		if status >= 400 {
			var eb struct {
				Reason string `json:"reason"`
			}
			if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Reason == "" {
				t.Errorf("%s: error body %q is not {\"reason\": ...}", name, body)
			}
		}
		if status == http.StatusNoContent && body != "" {
			t.Errorf("%s: 204 with body %q", name, body)
		}
		switch {
		case s.want == "":
		case strings.HasPrefix(s.want, "~"):
			if !strings.Contains(body, s.want[1:]) {
				t.Errorf("%s: body %s does not contain %s", name, body, s.want[1:])
			}
		case body != s.want:
			t.Errorf("%s: body %s, want %s", name, body, s.want)
		}
	}
}

const (
	ok       = http.StatusOK
	created  = http.StatusNoContent
	bad      = http.StatusBadRequest
	unauth   = http.StatusUnauthorized
	denied   = http.StatusForbidden
	missing  = http.StatusNotFound
	conflict = http.StatusConflict
	precond  = http.StatusPreconditionFailed
)

func TestAdminClustersAndTenants(t *testing.T) {
	e := newAdminEnv(t, true)
	runSteps(t, e, []step{
		// Authentication comes first.
		{"GET", "/clusters", "", "", unauth, "~no token"},
		{"GET", "/clusters", "bad-signature", "", unauth, "~signature"},
		{"GET", "/clusters", "expired", "", unauth, "~expired"},
		{"GET", "/clusters", "garbage", "", unauth, "~malformed"},
		{"PUT", "/tenants/x", "", "{}", unauth, ""},

		// Clusters: names for everyone, details and changes for superusers.
		{"GET", "/clusters", "carol", "", ok, `["east","local","west"]`},
		{"GET", "/clusters/local", "carol", "", denied, "~superusers"},
		{"GET", "/clusters/local", "root", "", ok, `{"serviceUrl":"http://local:8080","serviceUrlTls":"","brokerServiceUrl":"local:6650","brokerServiceUrlTls":""}`},
		{"GET", "/clusters/mars", "root", "", missing, `{"reason":"cluster \"mars\" does not exist"}`},
		{"PUT", "/clusters/north", "alice", `{"serviceUrl":"http://n:8080"}`, denied, ""},
		{"PUT", "/clusters/north", "root", `{"serviceUrl":"http://n:8080"}`, created, ""},
		{"PUT", "/clusters/north", "root", `{}`, conflict, "~already exists"},
		{"PUT", "/clusters/bad%20name", "root", `{}`, bad, "~cluster name"},
		{"PUT", "/clusters/x", "root", `{"serviceUrl":5}`, bad, `~field \"serviceUrl\" must be string`},
		{"PUT", "/clusters/x", "root", `{"nope":1}`, bad, `~unknown field \"nope\"`},
		{"PUT", "/clusters/x", "root", `{`, bad, "~malformed JSON"},
		{"PUT", "/clusters/x", "root", `{} {}`, bad, "~unexpected data"},
		{"PUT", "/clusters/x", "root", `{"serviceUrl":"http://"}`, bad, "~serviceUrl"},
		{"GET", "/clusters/x", "root", "", missing, ""},
		{"POST", "/clusters/north", "root", `{"serviceUrl":"http://n2:8080","brokerServiceUrl":"n2:6650"}`, created, ""},
		{"GET", "/clusters/north", "root", "", ok, `~"serviceUrl":"http://n2:8080"`},
		{"POST", "/clusters/north", "root", "", bad, "~request body is required"},
		{"POST", "/clusters/mars", "root", `{}`, missing, ""},
		{"DELETE", "/clusters/north", "alice", "", denied, ""},
		{"DELETE", "/clusters/north", "root", "", created, ""},
		{"DELETE", "/clusters/north", "root", "", missing, ""},

		// Tenants: a role lists and reads only its own tenants.
		{"GET", "/tenants", "root", "", ok, `["acme","beta","public"]`},
		{"GET", "/tenants", "alice", "", ok, `["acme"]`},
		{"GET", "/tenants", "carol", "", ok, `[]`},
		{"GET", "/tenants/acme", "alice", "", ok, `{"adminRoles":["alice"],"allowedClusters":["local","east"]}`},
		{"GET", "/tenants/acme", "bob", "", denied, `~role \"bob\" is not an admin of tenant \"acme\"`},
		{"GET", "/tenants/acme", "carol", "", denied, ""},
		{"GET", "/tenants/nope", "alice", "", denied, ""}, // no existence leak
		{"GET", "/tenants/nope", "root", "", missing, ""},
		{"PUT", "/tenants/gamma", "alice", `{}`, denied, ""},
		{"PUT", "/tenants/gamma", "root", `{"adminRoles":["gina"],"allowedClusters":["mars"]}`, precond, `~cluster \"mars\" does not exist`},
		{"PUT", "/tenants/gamma", "root", `{"adminRoles":[""]}`, bad, "~role name is empty"},
		{"PUT", "/tenants/gamma", "root", `{"admins":["gina"]}`, bad, "~unknown field"},
		{"GET", "/tenants/gamma", "root", "", missing, ""},
		{"PUT", "/tenants/gamma", "root", `{"adminRoles":["gina"],"allowedClusters":["east"]}`, created, ""},
		{"PUT", "/tenants/gamma", "root", `{}`, conflict, "~already exists"},
		{"PUT", "/tenants/bad!name", "root", `{}`, bad, "~tenant name"},
		{"PUT", "/tenants/delta", "root", "", created, ""}, // empty body: the local cluster
		{"GET", "/tenants/delta", "root", "", ok, `{"adminRoles":[],"allowedClusters":["local"]}`},
		{"POST", "/tenants/gamma", "alice", `{}`, denied, ""},
		{"POST", "/tenants/gamma", "root", `{"adminRoles":["gina","gil"],"allowedClusters":["east","west"]}`, created, ""},
		{"GET", "/tenants/gamma", "root", "", ok, `{"adminRoles":["gina","gil"],"allowedClusters":["east","west"]}`},
		{"POST", "/tenants/gamma", "root", `{"allowedClusters":["pluto"]}`, precond, ""},
		{"POST", "/tenants/nope", "root", `{}`, missing, ""},
		{"DELETE", "/tenants/gamma", "bob", "", denied, ""},
		{"DELETE", "/tenants/gamma", "root", "", created, ""},
		{"DELETE", "/tenants/delta", "root", "", created, ""},
		{"DELETE", "/tenants/gamma", "root", "", missing, ""},
		{"GET", "/tenants", "root", "", ok, `["acme","beta","public"]`},

		// Unknown paths and methods answer JSON too.
		{"GET", "/namespaces/acme/app/nonsense/deeper", "root", "", missing, "~no such admin path"},
		{"PATCH", "/tenants/acme", "root", "", http.StatusMethodNotAllowed, "~method not allowed"},
	})
}

func TestAdminNamespacesAndPolicies(t *testing.T) {
	e := newAdminEnv(t, true)
	ns := "/namespaces/acme/app"
	runSteps(t, e, []step{
		{"GET", "/namespaces/acme", "alice", "", ok, `[]`},
		{"PUT", ns, "alice", "", created, ""},
		{"PUT", ns, "alice", "", conflict, "~namespace acme/app already exists"},
		{"PUT", "/namespaces/acme/other", "bob", "", denied, ""},
		{"PUT", "/namespaces/beta/x", "alice", "", denied, ""},
		{"PUT", "/namespaces/nope/x", "root", "", missing, `~tenant \"nope\" does not exist`},
		{"PUT", "/namespaces/acme/bad%20ns", "alice", "", bad, "~namespace name"},
		{"PUT", "/namespaces/acme/withpol", "alice", `{"replication_clusters":["east"],"message_ttl_in_seconds":60}`, created, ""},
		{"PUT", "/namespaces/acme/broken", "alice", `{"replication_clusters":["west"]}`, precond, `~not allowed to use cluster \"west\"`},
		{"PUT", "/namespaces/acme/broken", "alice", `{"replication_clusters":["mars"]}`, precond, ""},
		{"PUT", "/namespaces/acme/broken", "alice", `{"message_ttl_in_seconds":-1}`, bad, "~message_ttl_in_seconds"},
		{"PUT", "/namespaces/acme/broken", "alice", `{"unknown_policy":1}`, bad, "~unknown field"},
		{"PUT", "/namespaces/acme/broken", "alice", `{"persistence":{"bookkeeperEnsemble":1,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":1}}`, bad, "~1/2/1"},
		{"GET", "/namespaces/acme/broken", "alice", "", missing, ""}, // nothing half-created
		{"GET", "/namespaces/acme", "alice", "", ok, `["acme/app","acme/withpol"]`},
		{"GET", "/namespaces/acme", "bob", "", denied, ""},
		{"GET", "/namespaces/nope", "root", "", missing, ""},
		{"GET", ns, "alice", "", ok, `~"replication_clusters":["local"],"bundles":{"boundaries":["0x00000000","0x40000000","0x80000000","0xc0000000","0xffffffff"],"numBundles":4}`},
		{"GET", "/namespaces/acme/withpol", "alice", "", ok, `~"message_ttl_in_seconds":60`},
		{"GET", ns, "bob", "", denied, ""},
		{"GET", ns, "carol", "", denied, ""},
		{"GET", ns, "", "", unauth, ""},
		{"GET", "/namespaces/acme/nope", "alice", "", missing, `~namespace acme/nope does not exist`},

		// retention
		{"GET", ns + "/retention", "alice", "", created, ""},
		{"POST", ns + "/retention", "alice", `{"retentionTimeInMinutes":60,"retentionSizeInMB":100}`, created, ""},
		{"GET", ns + "/retention", "alice", "", ok, `{"retentionTimeInMinutes":60,"retentionSizeInMB":100}`},
		{"POST", ns + "/retention", "alice", `{"retentionTimeInMinutes":-2,"retentionSizeInMB":1}`, bad, "~retentionTimeInMinutes must be between -1 and"},
		{"POST", ns + "/retention", "alice", `{"retentionTimeInMinutes":0,"retentionSizeInMB":1}`, bad, "~use -1"},
		{"POST", ns + "/retention", "alice", `{"retentionTimeInMinutes":"x"}`, bad, "~retentionTimeInMinutes"},
		{"POST", ns + "/retention", "bob", `{"retentionTimeInMinutes":1,"retentionSizeInMB":1}`, denied, ""},
		{"POST", "/namespaces/acme/nope/retention", "alice", `{"retentionTimeInMinutes":1,"retentionSizeInMB":1}`, missing, ""},
		{"GET", ns + "/retention", "alice", "", ok, `{"retentionTimeInMinutes":60,"retentionSizeInMB":100}`},
		{"DELETE", ns + "/retention", "alice", "", created, ""},
		{"GET", ns + "/retention", "alice", "", created, ""},

		// messageTTL
		{"POST", ns + "/messageTTL", "alice", `120`, created, ""},
		{"GET", ns + "/messageTTL", "alice", "", ok, `120`},
		{"POST", ns + "/messageTTL", "alice", `-1`, bad, "~message_ttl_in_seconds must be between 0 and"},
		{"POST", ns + "/messageTTL", "alice", `"abc"`, bad, "~want int"},
		{"POST", ns + "/messageTTL", "alice", ``, bad, "~request body is required"},
		{"DELETE", ns + "/messageTTL", "alice", "", created, ""},
		{"GET", ns + "/messageTTL", "alice", "", created, ""},

		// backlog quotas
		{"GET", ns + "/backlogQuotaMap", "alice", "", ok, `{}`},
		{"POST", ns + "/backlogQuota", "alice", `{"limitSize":1073741824,"limitTime":-1,"policy":"producer_exception"}`, created, ""},
		{"POST", ns + "/backlogQuota?backlogQuotaType=message_age", "alice", `{"limitSize":-1,"limitTime":3600,"policy":"consumer_backlog_eviction"}`, created, ""},
		{"GET", ns + "/backlogQuotaMap", "alice", "", ok,
			`{"destination_storage":{"limitSize":1073741824,"limitTime":-1,"policy":"producer_exception"},"message_age":{"limitSize":-1,"limitTime":3600,"policy":"consumer_backlog_eviction"}}`},
		{"POST", ns + "/backlogQuota?backlogQuotaType=bogus", "alice", `{"limitSize":1,"policy":"producer_exception"}`, bad, `~unknown backlog quota type \"bogus\"`},
		{"POST", ns + "/backlogQuota", "alice", `{"limitSize":1,"policy":"drop"}`, bad, `~unknown backlog quota policy \"drop\"`},
		{"POST", ns + "/backlogQuota", "alice", `{"limitSize":-3,"policy":"producer_request_hold"}`, bad, "~limitSize must be between -1 and"},
		{"POST", ns + "/backlogQuota", "alice", `{"limit":2048,"policy":"producer_request_hold"}`, created, ""},
		{"GET", ns + "/backlogQuotaMap", "alice", "", ok, `~"destination_storage":{"limitSize":2048,"limitTime":0,"policy":"producer_request_hold"}`},
		{"POST", ns + "/retention", "alice", `{"retentionTimeInMinutes":-1,"retentionSizeInMB":1}`, created, ""},
		{"POST", ns + "/backlogQuota", "alice", `{"limitSize":2097152,"policy":"producer_request_hold"}`, precond, "~must exceed"},
		{"DELETE", ns + "/retention", "alice", "", created, ""},
		{"DELETE", ns + "/backlogQuota?backlogQuotaType=message_age", "alice", "", created, ""},
		{"GET", ns + "/backlogQuotaMap", "alice", "", ok, `{"destination_storage":{"limitSize":2048,"limitTime":0,"policy":"producer_request_hold"}}`},
		{"DELETE", ns + "/backlogQuota", "alice", "", created, ""},
		{"GET", ns + "/backlogQuotaMap", "alice", "", ok, `{}`},

		// persistence
		{"GET", ns + "/persistence", "alice", "", created, ""},
		{"POST", ns + "/persistence", "alice", `{"bookkeeperEnsemble":3,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":2,"managedLedgerMaxMarkDeleteRate":1.5}`, created, ""},
		{"GET", ns + "/persistence", "alice", "", ok, `{"bookkeeperEnsemble":3,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":2,"managedLedgerMaxMarkDeleteRate":1.5}`},
		{"POST", ns + "/persistence", "alice", `{"bookkeeperEnsemble":2,"bookkeeperWriteQuorum":3,"bookkeeperAckQuorum":2}`, bad, "~2/3/2"},
		{"POST", ns + "/persistence", "alice", `{"bookkeeperEnsemble":1,"bookkeeperWriteQuorum":1,"bookkeeperAckQuorum":0}`, bad, "~1/1/0"},
		{"DELETE", ns + "/persistence", "alice", "", created, ""},
		{"GET", ns + "/persistence", "alice", "", created, ""},

		// offload
		{"PUT", ns + "/offloadThreshold", "alice", `10485760`, created, ""},
		{"GET", ns + "/offloadThreshold", "alice", "", ok, `10485760`},
		{"PUT", ns + "/offloadThreshold", "alice", `-5`, bad, "~offload_threshold must be between -1 and"},
		{"PUT", ns + "/offloadThreshold", "alice", `-1`, created, ""},
		{"POST", ns + "/offloadThreshold", "alice", `1`, http.StatusMethodNotAllowed, ""},
		{"PUT", ns + "/offloadThresholdInSeconds", "alice", `3600`, created, ""},
		{"GET", ns + "/offloadThresholdInSeconds", "alice", "", ok, `3600`},
		{"PUT", ns + "/offloadDeletionLagMs", "alice", `14400000`, created, ""},
		{"GET", ns + "/offloadDeletionLagMs", "alice", "", ok, `14400000`},
		{"PUT", ns + "/offloadDeletionLagMs", "alice", `-1`, bad, "~offload_deletion_lag_ms"},
		{"DELETE", ns + "/offloadDeletionLagMs", "alice", "", created, ""},
		{"GET", ns + "/offloadDeletionLagMs", "alice", "", created, ""},

		// replication
		{"GET", ns + "/replication", "alice", "", ok, `["local"]`},
		{"POST", ns + "/replication", "alice", `["local","east","east"]`, created, ""},
		{"GET", ns + "/replication", "alice", "", ok, `["local","east"]`},
		{"POST", ns + "/replication", "alice", `["west"]`, precond, `~not allowed to use cluster \"west\"`},
		{"POST", ns + "/replication", "alice", `[]`, bad, "~must not be empty"},
		{"POST", ns + "/replication", "alice", `"local"`, bad, ""},
		{"POST", ns + "/replication", "bob", `["local"]`, denied, ""},
		{"GET", ns + "/replication", "alice", "", ok, `["local","east"]`},

		// deduplication
		{"GET", ns + "/deduplication", "alice", "", created, ""},
		{"POST", ns + "/deduplication", "alice", `true`, created, ""},
		{"GET", ns + "/deduplication", "alice", "", ok, `true`},
		{"POST", ns + "/deduplication", "alice", `"yes"`, bad, ""},
		{"DELETE", ns + "/deduplication", "alice", "", created, ""},

		// permissions
		{"GET", ns + "/permissions", "alice", "", ok, `{}`},
		{"POST", ns + "/permissions/app-role", "alice", `["consume","produce"]`, created, ""},
		{"GET", ns + "/permissions", "alice", "", ok, `{"app-role":["produce","consume"]}`},
		{"POST", ns + "/permissions/app-role", "alice", `["write"]`, bad, `~unknown permission action \"write\"`},
		{"POST", ns + "/permissions/app-role", "bob", `["produce"]`, denied, ""},
		{"POST", ns + "/permissions/other", "alice", `["functions","sources","sinks","packages"]`, created, ""},
		{"DELETE", ns + "/permissions/other", "alice", "", created, ""},
		{"DELETE", ns + "/permissions/never-granted", "alice", "", created, ""},
		{"GET", ns + "/permissions", "alice", "", ok, `{"app-role":["produce","consume"]}`},
		{"POST", ns + "/permissions/subscription/sub1", "alice", `["app-role"]`, created, ""},
		{"GET", ns + "/permissions/subscription", "alice", "", ok, `{"sub1":["app-role"]}`},
		{"DELETE", ns + "/permissions/sub1/app-role", "alice", "", created, ""},
		{"GET", ns + "/permissions/subscription", "alice", "", ok, `{}`},
		{"GET", ns + "/subscriptionAuthMode", "alice", "", ok, `"None"`},
		{"POST", ns + "/subscriptionAuthMode", "alice", `"Prefix"`, created, ""},
		{"GET", ns + "/subscriptionAuthMode", "alice", "", ok, `"Prefix"`},
		{"POST", ns + "/subscriptionAuthMode", "alice", `"Weird"`, bad, "~subscription_auth_mode"},

		// rates, kept for the local cluster
		{"GET", ns + "/publishRate", "alice", "", created, ""},
		{"POST", ns + "/publishRate", "alice", `{"publishThrottlingRateInMsg":100,"publishThrottlingRateInByte":-1}`, created, ""},
		{"GET", ns + "/publishRate", "alice", "", ok, `{"publishThrottlingRateInMsg":100,"publishThrottlingRateInByte":-1}`},
		{"GET", ns, "alice", "", ok, `~"publishMaxMessageRate":{"local":{"publishThrottlingRateInMsg":100,"publishThrottlingRateInByte":-1}}`},
		{"POST", ns + "/publishRate", "alice", `{"publishThrottlingRateInMsg":-5}`, bad, "~publishThrottlingRateInMsg"},
		{"DELETE", ns + "/publishRate", "alice", "", created, ""},
		{"GET", ns + "/publishRate", "alice", "", created, ""},
		{"POST", ns + "/dispatchRate", "alice", `{"dispatchThrottlingRateInMsg":50,"dispatchThrottlingRateInByte":1024}`, created, ""},
		{"GET", ns + "/dispatchRate", "alice", "", ok, `{"dispatchThrottlingRateInMsg":50,"dispatchThrottlingRateInByte":1024,"ratePeriodInSecond":1}`},
		{"POST", ns + "/dispatchRate", "alice", `{"dispatchThrottlingRateInMsg":5,"ratePeriodInSecond":-1}`, bad, "~ratePeriodInSecond"},
		{"DELETE", ns + "/dispatchRate", "alice", "", created, ""},
		{"POST", ns + "/subscriptionDispatchRate", "alice", `{"dispatchThrottlingRateInMsg":10,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":5}`, created, ""},
		{"GET", ns + "/subscriptionDispatchRate", "alice", "", ok, `{"dispatchThrottlingRateInMsg":10,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":5}`},
		{"GET", ns + "/dispatchRate", "alice", "", created, ""},

		// max producers / consumers
		{"POST", ns + "/maxProducersPerTopic", "alice", `5`, created, ""},
		{"GET", ns + "/maxProducersPerTopic", "alice", "", ok, `5`},
		{"POST", ns + "/maxProducersPerTopic", "alice", `-1`, bad, "~max_producers_per_topic"},
		{"DELETE", ns + "/maxProducersPerTopic", "alice", "", created, ""},
		{"GET", ns + "/maxProducersPerTopic", "alice", "", created, ""},
		{"POST", ns + "/maxConsumersPerTopic", "alice", `7`, created, ""},
		{"GET", ns + "/maxConsumersPerTopic", "alice", "", ok, `7`},
		{"POST", ns + "/maxConsumersPerTopic", "alice", `1.5`, bad, ""},
		{"POST", ns + "/maxConsumersPerSubscription", "alice", `0`, created, ""},
		{"GET", ns + "/maxConsumersPerSubscription", "alice", "", ok, `0`},
		{"POST", ns + "/maxConsumersPerSubscription", "alice", `-2`, bad, "~max_consumers_per_subscription"},
		{"PUT", ns + "/compactionThreshold", "alice", `104857600`, created, ""},
		{"GET", ns + "/compactionThreshold", "alice", "", ok, `104857600`},

		// Superusers manage every tenant's namespaces.
		{"POST", ns + "/messageTTL", "root", `30`, created, ""},
		{"GET", ns + "/messageTTL", "alice", "", ok, `30`},
	})
}

func TestAdminDeleteRules(t *testing.T) {
	e := newAdminEnv(t, true)
	ns := "/namespaces/acme/app"
	e.topics.set("acme/app", "persistent://acme/app/t1")
	runSteps(t, e, []step{
		{"PUT", ns, "alice", `{"replication_clusters":["local","east"]}`, created, ""},
		{"PUT", "/namespaces/acme/second", "alice", "", created, ""},
		{"GET", ns + "/topics", "alice", "", ok, `["persistent://acme/app/t1"]`},
		{"GET", "/namespaces/acme/second/topics", "alice", "", ok, `[]`},
		{"GET", ns + "/topics", "bob", "", denied, ""},
		{"GET", "/namespaces/acme/none/topics", "alice", "", missing, ""},
		{"DELETE", ns, "bob", "", denied, ""},
		{"DELETE", ns, "alice", "", conflict, "~namespace acme/app still has 1 topic(s), e.g. persistent://acme/app/t1"},
		{"GET", ns, "alice", "", ok, `~"deleted":false`},
		{"DELETE", "/tenants/acme", "root", "", conflict, `~tenant \"acme\" still has 2 namespace(s)`},
		{"DELETE", "/clusters/east", "root", "", precond, "~replication cluster of namespace acme/app"},
		{"POST", "/tenants/acme", "root", `{"adminRoles":["alice"],"allowedClusters":["local"]}`, conflict, `~cannot remove allowed cluster \"east\"`},
		{"GET", "/tenants/acme", "root", "", ok, `{"adminRoles":["alice"],"allowedClusters":["local","east"]}`},
	})
	e.topics.set("acme/app")
	runSteps(t, e, []step{
		{"DELETE", ns, "alice", "", created, ""},
		{"DELETE", ns, "alice", "", missing, ""},
		{"DELETE", "/clusters/east", "root", "", created, ""},
		{"DELETE", "/namespaces/acme/second", "alice", "", created, ""},
		{"DELETE", "/tenants/acme", "alice", "", denied, "~superusers"},
		{"DELETE", "/tenants/acme", "root", "", created, ""},
		{"GET", "/tenants/acme", "root", "", missing, ""},
		{"GET", "/namespaces/acme", "root", "", missing, ""},
		{"GET", "/tenants", "root", "", ok, `["beta","public"]`},
	})
}

// TestAdminRolesChangeLive: granting a tenant admin role takes effect
// through the watched cache, without restarting anything.
func TestAdminRolesChangeLive(t *testing.T) {
	e := newAdminEnv(t, true)
	runSteps(t, e, []step{
		{"GET", "/tenants/beta", "carol", "", denied, ""},
		{"POST", "/tenants/beta", "root", `{"adminRoles":["bob","carol"],"allowedClusters":["local"]}`, created, ""},
	})
	testutil.WaitFor(t, 5*time.Second, func() error {
		if status, body := e.do(t, "GET", tenants.AdminPrefix+"/tenants/beta", "carol", ""); status != ok {
			return fmt.Errorf("carol still gets %d %s", status, body)
		}
		return nil
	})
	runSteps(t, e, []step{
		{"GET", "/tenants", "carol", "", ok, `["beta"]`},
		{"POST", "/tenants/beta", "root", `{"adminRoles":["bob"],"allowedClusters":["local"]}`, created, ""},
	})
	testutil.WaitFor(t, 5*time.Second, func() error {
		if status, _ := e.do(t, "GET", tenants.AdminPrefix+"/tenants/beta", "carol", ""); status != denied {
			return fmt.Errorf("carol still gets %d after losing the role", status)
		}
		return nil
	})
}

// TestAdminWithoutSecurity: with authentication and authorization off every
// request is allowed, as in a default standalone.
func TestAdminWithoutSecurity(t *testing.T) {
	e := newAdminEnv(t, false)
	runSteps(t, e, []step{
		{"GET", "/tenants", "", "", ok, `["acme","beta","public"]`},
		{"GET", "/clusters/local", "", "", ok, `~"serviceUrl":"http://local:8080"`},
		{"PUT", "/tenants/t", "", `{"allowedClusters":["local"]}`, created, ""},
		{"PUT", "/namespaces/t/ns", "", "", created, ""},
		{"POST", "/namespaces/t/ns/messageTTL", "", `10`, created, ""},
		{"GET", "/namespaces/public", "", "", ok, `["public/default"]`},
		{"GET", "/namespaces/public/default", "", "", ok, `~"replication_clusters":["local"]`},
		{"DELETE", "/namespaces/t/ns", "", "", created, ""},
		{"DELETE", "/tenants/t", "", "", created, ""},
	})
}

func TestAdminFallbackAndOptions(t *testing.T) {
	md, _ := testutil.Store(t)
	s := tenants.NewStore(md, tenants.StoreOptions{})
	if _, err := tenants.NewAdminHandler(tenants.AdminOptions{}); err == nil {
		t.Fatal("handler without a store accepted")
	}
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h, err := tenants.NewAdminHandler(tenants.AdminOptions{Store: s, Fallback: fallback, MaxBodyBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/admin/v2/namespaces/t/ns/unload", nil))
	if rec.Code != http.StatusTeapot {
		t.Fatalf("unmatched path went to %d, want the fallback", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/admin/v2/clusters/c", strings.NewReader(`{"serviceUrl":"http://a-long-host:8080"}`)))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "larger than 16 bytes") {
		t.Fatalf("oversized body: %d %s", rec.Code, rec.Body)
	}
	// Without a local cluster the per-cluster rate paths cannot pick a key.
	if err := s.CreateCluster(context.Background(), "c", tenants.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(context.Background(), "t", tenants.TenantInfo{AllowedClusters: []string{"c"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateNamespace(context.Background(), naming.MustParseNamespace("t/ns"), tenants.Policies{}); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/admin/v2/namespaces/t/ns/publishRate", nil))
	if rec.Code != http.StatusPreconditionFailed {
		t.Fatalf("publishRate without local cluster: %d %s", rec.Code, rec.Body)
	}
}
