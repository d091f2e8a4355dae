package tenants_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// refused is a request the admin API must refuse without changing anything.
type refused struct {
	method, path, role, body string
	status                   int
	// reason holds substrings the {"reason": ...} must contain: the
	// offending name, field or rule.
	reason []string
}

// badInputStatePaths are read (as superuser) before and after every refused
// request: none of them may change.
var badInputStatePaths = []string{
	"/clusters", "/clusters/local", "/clusters/east",
	"/tenants", "/tenants/acme", "/tenants/beta", "/tenants/public",
	"/namespaces/acme", "/namespaces/beta", "/namespaces/public",
	"/namespaces/acme/app", "/namespaces/beta/b1", "/namespaces/public/default",
}

// state is what the admin API answers for badInputStatePaths plus every
// key and value of the configuration store, so that a half-created object
// (even one no listing shows, like a tenant named "a/b") is noticed.
func (e *adminEnv) state(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range badInputStatePaths {
		status, body := e.do(t, "GET", tenants.AdminPrefix+p, "root", "")
		if status != ok {
			t.Fatalf("GET %s: %d %s; the server stopped serving", p, status, body)
		}
		out["GET "+p] = body
	}
	kvs, err := metadata.ListAll(context.Background(), e.md, "/", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		out["key "+kv.Key] = string(kv.Value)
	}
	return out
}

// refuseAll sends each request and checks its status and reason, and that
// the API and the store show exactly what they showed before.
func refuseAll(t *testing.T, e *adminEnv, cases []refused) {
	t.Helper()
	before := e.state(t)
	for i, c := range cases {
		shown := c.path
		if len(shown) > 80 {
			shown = shown[:80] + "..."
		}
		name := fmt.Sprintf("case %d: %s %s as %q", i, c.method, shown, c.role)
		status, body := e.do(t, c.method, tenants.AdminPrefix+c.path, c.role, c.body)
		if status != c.status {
			t.Errorf("%s: status %d, want %d; body %.300s", name, status, c.status, body)
		}
		testutil.CheckReason(t, name, body, c.reason...)
		after := e.state(t)
		if !maps.Equal(before, after) {
			for _, k := range slices.Sorted(maps.Keys(after)) {
				if before[k] != after[k] {
					t.Errorf("%s changed %s: %.300s -> %.300s", name, k, before[k], after[k])
				}
			}
			for k := range before {
				if _, ok := after[k]; !ok {
					t.Errorf("%s removed %s", name, k)
				}
			}
			before = after
		}
	}
}

// TestAdminBadInput: bad names, malformed bodies and out-of-range values
// get the exact status and a reason naming the problem; nothing is created
// or changed, and the server goes on serving.
func TestAdminBadInput(t *testing.T) {
	e := newAdminEnv(t, true)
	ns := "/namespaces/acme/app"
	long := func(c string, n int) string { return strings.Repeat(c, n) }

	// Fixtures: a namespace with policies set, so that "unchanged" means
	// something, and tenant beta allowed a cluster that is then deleted.
	runSteps(t, e, []step{
		{"PUT", ns, "root", `{"replication_clusters":["local","east"],"message_ttl_in_seconds":60,` +
			`"retention_policies":{"retentionTimeInMinutes":60,"retentionSizeInMB":100},` +
			`"persistence":{"bookkeeperEnsemble":3,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":2,"managedLedgerMaxMarkDeleteRate":1},` +
			`"backlog_quota_map":{"destination_storage":{"limitSize":1048576,"limitTime":-1,"policy":"producer_request_hold"}},` +
			`"auth_policies":{"namespace_auth":{"app-role":["produce"]},"subscription_auth_roles":{"sub1":["app-role"]}}}`, created, ""},
		{"POST", ns + "/publishRate", "root", `{"publishThrottlingRateInMsg":100,"publishThrottlingRateInByte":-1}`, created, ""},
		{"POST", "/tenants/beta", "root", `{"adminRoles":["bob"],"allowedClusters":["local","west"]}`, created, ""},
		{"DELETE", "/clusters/west", "root", "", created, ""},
		{"PUT", "/namespaces/beta/b1", "root", "", created, ""},
	})
	e.topics.set("acme/app", "persistent://acme/app/t1")

	t.Run("names", func(t *testing.T) {
		refuseAll(t, e, []refused{
			// tenants
			{"PUT", "/tenants/a%2Fb", "root", "", bad, []string{`tenant name "a/b" has '/'`}},
			{"PUT", "/tenants/a%00b", "root", "", bad, []string{`tenant name "a\x00b" has control character 0x00`}},
			{"PUT", "/tenants/a%0Ab", "root", "", bad, []string{`tenant name "a\nb" has control character 0x0a`}},
			{"PUT", "/tenants/a%7F", "root", "", bad, []string{`tenant name "a\x7f" has control character 0x7f`}},
			{"PUT", "/tenants/%C3%A9t%C3%A9", "root", "", bad, []string{"tenant name", "non-ASCII byte 0xc3"}},
			{"PUT", "/tenants/a%20b", "root", "", bad, []string{`tenant name "a b" has character ' '`}},
			{"PUT", "/tenants/%2E%2E", "root", "", bad, []string{`tenant name ".." is reserved`}},
			{"PUT", "/tenants/%2E", "root", "", bad, []string{`tenant name "." is reserved`}},
			{"PUT", "/tenants/" + long("t", 256), "root", "", bad, []string{"tenant name", "256 bytes long (max 255)"}},
			{"POST", "/tenants/a%2Fb", "root", `{}`, bad, []string{`tenant name "a/b"`}},
			{"DELETE", "/tenants/a%00b", "root", "", bad, []string{`tenant name "a\x00b"`}},
			{"GET", "/tenants/a%0A", "root", "", bad, []string{`tenant name "a\n"`}},
			// Names are checked before authorization, after authentication.
			{"PUT", "/tenants/a%2Fb", "carol", "", bad, []string{`tenant name "a/b"`}},
			{"PUT", "/tenants/a%2Fb", "", "", unauth, []string{"token"}},
			// Paths that ServeMux would redirect to their cleaned form.
			{"PUT", "/tenants/..", "root", "", bad, []string{`has a ".." segment`}},
			{"PUT", "/tenants/.", "root", "", bad, []string{`has a "." segment`}},
			{"PUT", "/tenants//gamma", "root", "", bad, []string{"empty segment"}},
			{"PUT", "/namespaces/acme//gamma", "root", "", bad, []string{"empty segment"}},
			{"PUT", "/namespaces/acme/../beta", "root", "", bad, []string{`".." segment`}},
			// Cleaned, this path would be DELETE of the namespace itself.
			{"DELETE", ns + "/permissions/..", "root", "", bad, []string{`".." segment`}},
			{"DELETE", "/tenants/beta/.", "root", "", bad, []string{`"." segment`}},

			// clusters
			{"PUT", "/clusters/a%2Fb", "root", `{}`, bad, []string{`cluster name "a/b" has '/'`}},
			{"PUT", "/clusters/%00", "root", `{}`, bad, []string{`cluster name "\x00" has control character 0x00`}},
			{"PUT", "/clusters/c%7F", "root", `{}`, bad, []string{`cluster name "c\x7f" has control character 0x7f`}},
			{"PUT", "/clusters/%2E%2E", "root", `{}`, bad, []string{`cluster name ".." is reserved`}},
			{"PUT", "/clusters/" + long("c", 300), "root", `{}`, bad, []string{"cluster name", "300 bytes long (max 255)"}},
			{"POST", "/clusters/a%0Ab", "root", `{}`, bad, []string{`cluster name "a\nb"`}},
			{"DELETE", "/clusters/a%2Fb", "root", "", bad, []string{`cluster name "a/b"`}},
			{"PUT", "/clusters/x", "root", `{"peerClusterNames":["east","a/b"]}`, bad, []string{"peerClusterNames", `cluster name "a/b"`}},

			// namespaces
			{"PUT", "/namespaces/acme/a%2Fb", "root", "", bad, []string{`namespace name "a/b" has '/'`}},
			{"PUT", "/namespaces/acme/a%00", "root", "", bad, []string{`namespace name "a\x00" has control character 0x00`}},
			{"PUT", "/namespaces/acme/a%0A", "root", "", bad, []string{`namespace name "a\n"`}},
			{"PUT", "/namespaces/acme/%7F", "root", "", bad, []string{`namespace name "\x7f"`}},
			{"PUT", "/namespaces/acme/%2E%2E", "root", "", bad, []string{`namespace name ".." is reserved`}},
			{"PUT", "/namespaces/acme/" + long("n", 256), "root", "", bad, []string{"namespace name", "256 bytes long"}},
			{"PUT", "/namespaces/a%2Fb/x", "root", "", bad, []string{`tenant name "a/b"`}},
			{"DELETE", "/namespaces/acme/a%2Fb", "root", "", bad, []string{`namespace name "a/b"`}},
			{"POST", "/namespaces/acme/a%00/messageTTL", "root", `10`, bad, []string{`namespace name "a\x00"`}},

			// roles: any character but control characters, at most 1024 bytes
			{"POST", ns + "/permissions/a%00b", "root", `["produce"]`, bad, []string{`role name "a\x00b" has control character 0x00`}},
			{"POST", ns + "/permissions/a%0A", "root", `["produce"]`, bad, []string{`role name "a\n" has control character 0x0a`}},
			{"POST", ns + "/permissions/a%7F", "root", `["produce"]`, bad, []string{`role name "a\x7f" has control character 0x7f`}},
			{"POST", ns + "/permissions/" + long("r", 1025), "root", `["produce"]`, bad, []string{"role name", "longer than 1024 bytes"}},
			{"DELETE", ns + "/permissions/app%0A", "root", "", bad, []string{`role name "app\n"`}},
			{"PUT", "/tenants/gamma", "root", `{"adminRoles":["ok","a\u0000b"]}`, bad, []string{`role name "a\x00b" has control character`}},
			{"PUT", "/tenants/gamma", "root", `{"adminRoles":[""]}`, bad, []string{"role name is empty"}},
			{"PUT", "/namespaces/acme/x", "root", `{"auth_policies":{"namespace_auth":{"a\u007f":["produce"]}}}`, bad,
				[]string{"auth_policies.namespace_auth", `role name "a\x7f"`}},

			// subscriptions: as roles, and no '/', "." or ".."
			{"POST", ns + "/permissions/subscription/a%2Fb", "root", `["app-role"]`, bad, []string{`subscription name "a/b" has '/'`}},
			{"POST", ns + "/permissions/subscription/a%00", "root", `["app-role"]`, bad, []string{`subscription name "a\x00" has control character 0x00`}},
			{"POST", ns + "/permissions/subscription/s%0A1", "root", `["app-role"]`, bad, []string{`subscription name "s\n1" has control character 0x0a`}},
			{"POST", ns + "/permissions/subscription/%7F", "root", `["app-role"]`, bad, []string{`subscription name "\x7f"`}},
			{"POST", ns + "/permissions/subscription/%2E%2E", "root", `["app-role"]`, bad, []string{`subscription name ".." is reserved`}},
			{"POST", ns + "/permissions/subscription/" + long("s", 1025), "root", `["app-role"]`, bad, []string{"subscription name", "longer than 1024 bytes"}},
			{"POST", ns + "/permissions/subscription/sub2", "root", `["ok","a\u0007"]`, bad, []string{"subscription_auth_roles", `role name "a\a"`}},
			{"PUT", "/namespaces/acme/x", "root", `{"auth_policies":{"subscription_auth_roles":{"a\nb":["r"]}}}`, bad,
				[]string{"auth_policies.subscription_auth_roles", `subscription name "a\nb"`}},
		})
	})

	t.Run("bodies", func(t *testing.T) {
		refuseAll(t, e, []refused{
			// malformed JSON
			{"PUT", "/tenants/gamma", "root", `{"adminRoles":["gina"`, bad, []string{"malformed JSON body", "unexpected EOF"}},
			{"PUT", "/tenants/gamma", "root", `{"adminRoles":["gina"]}}`, bad, []string{"unexpected data after the JSON value"}},
			{"PUT", "/tenants/gamma", "root", `{"adminRoles":["gina"]}]`, bad, []string{"unexpected data after the JSON value"}},
			{"PUT", "/tenants/gamma", "root", `{'adminRoles':[]}`, bad, []string{"malformed JSON body", "invalid character"}},
			{"PUT", "/tenants/gamma", "root", `{"adminRoles":["a"]} {}`, bad, []string{"unexpected data"}},
			{"PUT", "/tenants/gamma", "root", `{"adminRoles":["` + long("x", 1<<20) + `"]}`, bad, []string{"larger than 1048576 bytes"}},
			// wrong types, arrays where objects are due
			{"PUT", "/tenants/gamma", "root", `["gina"]`, bad, []string{"want tenants.TenantInfo, got array"}},
			{"PUT", "/tenants/gamma", "root", `{"adminRoles":"gina"}`, bad, []string{`field "adminRoles" must be []string, got string`}},
			{"PUT", "/tenants/gamma", "root", `{"allowedClusters":[1]}`, bad, []string{`field "allowedClusters" must be string, got number`}},
			{"PUT", "/clusters/x", "root", `["http://x:8080"]`, bad, []string{"got array"}},
			{"PUT", "/clusters/x", "root", `{"brokerClientTlsEnabled":"yes"}`, bad, []string{`"brokerClientTlsEnabled" must be bool`}},
			{"PUT", "/namespaces/acme/x", "root", `[]`, bad, []string{"want tenants.Policies, got array"}},
			{"PUT", "/namespaces/acme/x", "root", `{"replication_clusters":"east"}`, bad, []string{`field "replication_clusters" must be []string`}},
			{"PUT", "/namespaces/acme/x", "root", `{"message_ttl_in_seconds":"60"}`, bad, []string{`field "message_ttl_in_seconds" must be int, got string`}},
			{"PUT", "/namespaces/acme/x", "root", `{"message_ttl_in_seconds":99999999999999999999}`, bad, []string{"message_ttl_in_seconds", "number 99999999999999999999"}},
			{"PUT", "/namespaces/acme/x", "root", `{"persistence":[3,2,2]}`, bad, []string{`field "persistence" must be tenants.PersistencePolicies, got array`}},
			// unknown fields, also nested: a typo would otherwise do nothing
			{"PUT", "/tenants/gamma", "root", `{"adminRole":["gina"]}`, bad, []string{`unknown field "adminRole"`}},
			{"PUT", "/clusters/x", "root", `{"serviceUri":"http://x:8080"}`, bad, []string{`unknown field "serviceUri"`}},
			{"PUT", "/namespaces/acme/x", "root", `{"message_ttl":60}`, bad, []string{`unknown field "message_ttl"`}},
			{"PUT", "/namespaces/acme/x", "root", `{"persistence":{"bookkeeperEnsembel":3,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":2}}`, bad,
				[]string{`unknown field "bookkeeperEnsembel"`}},
			{"POST", ns + "/retention", "root", `{"retentionTimeInMinutes":10,"retentionSizeMB":5}`, bad, []string{`unknown field "retentionSizeMB"`}},
			{"POST", ns + "/backlogQuota", "root", `{"limitSize":10,"policy":"producer_exception","limitTme":5}`, bad, []string{`unknown field "limitTme"`}},
			{"POST", ns + "/dispatchRate", "root", `{"dispatchRate":5}`, bad, []string{`unknown field "dispatchRate"`}},
			// null or missing where a value is required (null would store zero values)
			{"POST", "/tenants/beta", "root", `null`, bad, []string{"request body is null"}},
			{"POST", "/tenants/beta", "root", ``, bad, []string{"request body is required"}},
			{"POST", "/clusters/east", "root", `null`, bad, []string{"request body is null"}},
			{"POST", ns + "/messageTTL", "root", `null`, bad, []string{"request body is null"}},
			{"POST", ns + "/retention", "root", `null`, bad, []string{"request body is null"}},
			{"POST", ns + "/deduplication", "root", ` null `, bad, []string{"request body is null"}},
			{"POST", ns + "/replication", "root", `null`, bad, []string{"request body is null"}},
			{"POST", ns + "/permissions/app-role", "root", `null`, bad, []string{"request body is null"}},
			{"POST", ns + "/subscriptionAuthMode", "root", `null`, bad, []string{"request body is null"}},
			{"PUT", ns + "/offloadThreshold", "root", ``, bad, []string{"request body is required"}},
			// scalars of the wrong type
			{"POST", ns + "/messageTTL", "root", `"60"`, bad, []string{"want int, got string"}},
			{"POST", ns + "/messageTTL", "root", `[60]`, bad, []string{"want int, got array"}},
			{"POST", ns + "/messageTTL", "root", `60 60`, bad, []string{"unexpected data"}},
			{"POST", ns + "/messageTTL", "root", `6e1`, bad, []string{"want int, got number 6e1"}},
			{"POST", ns + "/deduplication", "root", `"true"`, bad, []string{"want bool, got string"}},
			{"POST", ns + "/deduplication", "root", `1`, bad, []string{"want bool, got number"}},
			{"POST", ns + "/replication", "root", `"local"`, bad, []string{"want []string, got string"}},
			{"POST", ns + "/replication", "root", `[1]`, bad, []string{"want string, got number"}},
			{"POST", ns + "/replication", "root", `{"clusters":["local"]}`, bad, []string{"want []string, got object"}},
			{"POST", ns + "/permissions/app-role", "root", `"produce"`, bad, []string{"got string"}},
			{"POST", ns + "/permissions/app-role", "root", `{"actions":["produce"]}`, bad, []string{"got object"}},
			{"POST", ns + "/subscriptionAuthMode", "root", `1`, bad, []string{"want string, got number"}},
			{"PUT", ns + "/offloadThreshold", "root", `"10M"`, bad, []string{"want int64, got string"}},
			{"POST", ns + "/persistence", "root", `{"bookkeeperEnsemble":"3"}`, bad, []string{`field "bookkeeperEnsemble" must be int, got string`}},
			// Authorization comes before the body: a stranger learns nothing.
			{"POST", ns + "/messageTTL", "bob", `"60"`, denied, []string{`role "bob" is not an admin of tenant "acme"`}},
		})
	})

	t.Run("values", func(t *testing.T) {
		refuseAll(t, e, []refused{
			// negative sizes, times and rates; -1 is kept where Pulsar gives it a meaning
			{"POST", ns + "/messageTTL", "root", `-1`, bad, []string{"message_ttl_in_seconds must be between 0 and", "got -1"}},
			{"POST", ns + "/retention", "root", `{"retentionTimeInMinutes":-2,"retentionSizeInMB":10}`, bad, []string{"retentionTimeInMinutes must be between -1 and", "got -2"}},
			{"POST", ns + "/retention", "root", `{"retentionTimeInMinutes":10,"retentionSizeInMB":-5}`, bad, []string{"retentionSizeInMB must be between -1 and", "got -5"}},
			{"POST", ns + "/retention", "root", `{"retentionTimeInMinutes":0,"retentionSizeInMB":10}`, bad, []string{"retention: time 0 and size 10", "use -1"}},
			{"POST", ns + "/backlogQuota", "root", `{"limitSize":-2,"policy":"producer_exception"}`, bad, []string{"limitSize must be between -1 and", "got -2"}},
			{"POST", ns + "/backlogQuota?backlogQuotaType=message_age", "root", `{"limitTime":-5,"policy":"producer_exception"}`, bad, []string{"limitTime must be between -1 and", "got -5"}},
			{"PUT", ns + "/offloadThreshold", "root", `-2`, bad, []string{"offload_threshold must be between -1 and", "got -2"}},
			{"PUT", ns + "/offloadThresholdInSeconds", "root", `-2`, bad, []string{"offload_threshold_in_seconds must be between -1 and"}},
			{"PUT", ns + "/offloadDeletionLagMs", "root", `-1`, bad, []string{"offload_deletion_lag_ms must be between 0 and", "got -1"}},
			{"PUT", ns + "/compactionThreshold", "root", `-1`, bad, []string{"compaction_threshold must be between 0 and"}},
			{"POST", ns + "/maxProducersPerTopic", "root", `-1`, bad, []string{"max_producers_per_topic must be between 0 and"}},
			{"POST", ns + "/maxConsumersPerTopic", "root", `-3`, bad, []string{"max_consumers_per_topic must be between 0 and"}},
			{"POST", ns + "/maxConsumersPerSubscription", "root", `-1`, bad, []string{"max_consumers_per_subscription must be between 0 and"}},
			{"POST", ns + "/publishRate", "root", `{"publishThrottlingRateInMsg":10,"publishThrottlingRateInByte":-2}`, bad, []string{"publishThrottlingRateInByte must be between -1 and", "got -2"}},
			{"POST", ns + "/dispatchRate", "root", `{"dispatchThrottlingRateInMsg":-2}`, bad, []string{"topicDispatchRate[local]", "dispatchThrottlingRateInMsg must be between -1 and"}},
			{"POST", ns + "/subscriptionDispatchRate", "root", `{"dispatchThrottlingRateInMsg":5,"ratePeriodInSecond":-1}`, bad, []string{"subscriptionDispatchRate[local]", "ratePeriodInSecond must be between 1 and"}},
			{"PUT", "/namespaces/acme/x", "root", `{"max_consumers_per_topic":-1}`, bad, []string{"max_consumers_per_topic must be between 0 and"}},
			{"PUT", "/namespaces/acme/x", "root", `{"bundles":{"numBundles":0}}`, bad, []string{"bundles.numBundles must be between 1 and 1024, got 0"}},
			{"PUT", "/namespaces/acme/x", "root", `{"bundles":{"numBundles":-4}}`, bad, []string{"bundles.numBundles", "got -4"}},
			{"PUT", "/namespaces/acme/x", "root", `{"bundles":{"numBundles":2048}}`, bad, []string{"bundles.numBundles", "got 2048"}},
			{"PUT", "/namespaces/acme/x", "root", `{"bundles":{"boundaries":["0x00000000","0x80000000","0x40000000","0xffffffff"]}}`, bad, []string{"strictly ascending"}},

			// persistence: E >= Qw >= Qa >= 1
			{"POST", ns + "/persistence", "root", `{"bookkeeperEnsemble":2,"bookkeeperWriteQuorum":3,"bookkeeperAckQuorum":2}`, bad,
				[]string{"bookkeeperEnsemble >= bookkeeperWriteQuorum >= bookkeeperAckQuorum >= 1", "got 2/3/2"}},
			{"POST", ns + "/persistence", "root", `{"bookkeeperEnsemble":3,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":3}`, bad, []string{"got 3/2/3"}},
			{"POST", ns + "/persistence", "root", `{"bookkeeperEnsemble":0,"bookkeeperWriteQuorum":0,"bookkeeperAckQuorum":0}`, bad, []string{"got 0/0/0"}},
			{"POST", ns + "/persistence", "root", `{"bookkeeperEnsemble":-1,"bookkeeperWriteQuorum":-1,"bookkeeperAckQuorum":-1}`, bad, []string{"got -1/-1/-1"}},
			{"POST", ns + "/persistence", "root", `{"bookkeeperEnsemble":3,"bookkeeperWriteQuorum":3,"bookkeeperAckQuorum":2,"managedLedgerMaxMarkDeleteRate":-0.5}`, bad,
				[]string{"managedLedgerMaxMarkDeleteRate must be a finite number >= 0", "got -0.5"}},
			{"PUT", "/namespaces/acme/x", "root", `{"persistence":{"bookkeeperEnsemble":1,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":1}}`, bad, []string{"got 1/2/1"}},

			// unknown enum values
			{"POST", ns + "/backlogQuota", "root", `{"limitSize":10,"policy":"drop_oldest"}`, bad, []string{`unknown backlog quota policy "drop_oldest"`, "producer_request_hold"}},
			{"POST", ns + "/backlogQuota", "root", `{"limitSize":10}`, bad, []string{"backlog quota policy is required"}},
			{"POST", ns + "/backlogQuota?backlogQuotaType=size", "root", `{"limitSize":10,"policy":"producer_exception"}`, bad, []string{`unknown backlog quota type "size"`}},
			{"DELETE", ns + "/backlogQuota?backlogQuotaType=size", "root", "", bad, []string{`unknown backlog quota type "size"`}},
			{"PUT", "/namespaces/acme/x", "root", `{"backlog_quota_map":{"destination_storage":{"limitSize":10,"policy":"hold"}}}`, bad,
				[]string{"backlog_quota_map[destination_storage]", `unknown backlog quota policy "hold"`}},
			{"PUT", "/namespaces/acme/x", "root", `{"backlog_quota_map":{"size":{"limitSize":10,"policy":"producer_exception"}}}`, bad, []string{`unknown backlog quota type "size"`}},
			{"POST", ns + "/permissions/app-role", "root", `["produce","fly"]`, bad, []string{`unknown permission action "fly"`}},
			{"POST", ns + "/subscriptionAuthMode", "root", `"prefix"`, bad, []string{`subscription_auth_mode must be None or Prefix, got "prefix"`}},
			{"PUT", "/namespaces/acme/x", "root", `{"schema_compatibility_strategy":"Backward"}`, bad, []string{`schema_compatibility_strategy "Backward" is unknown`}},
			{"PUT", "/namespaces/acme/x", "root", `{"autoTopicCreationOverride":{"allowAutoTopicCreation":true,"topicType":"partitioned","defaultNumPartitions":0}}`, bad,
				[]string{"autoTopicCreationOverride.defaultNumPartitions must be between 1 and"}},
			{"PUT", "/namespaces/acme/x", "root", `{"auth_policies":{"destination_auth":{"persistent://beta/b1/t":{"r":["produce"]}}}}`, bad,
				[]string{"topic persistent://beta/b1/t is not in namespace acme/x"}},

			// replication clusters: a valid name, allowed for the tenant, existing
			{"POST", ns + "/replication", "root", `[]`, bad, []string{"replication clusters must not be empty"}},
			{"POST", ns + "/replication", "root", `["local","a/b"]`, bad, []string{"replication_clusters", `cluster name "a/b" has '/'`}},
			{"POST", ns + "/replication", "root", `["local","west"]`, precond, []string{`tenant "acme" is not allowed to use cluster "west"`}},
			{"POST", ns + "/replication", "root", `["mars"]`, precond, []string{`not allowed to use cluster "mars"`}},
			{"POST", "/namespaces/beta/b1/replication", "root", `["local","west"]`, precond, []string{`replication_clusters: cluster "west" does not exist`}},
			{"PUT", "/namespaces/beta/x", "root", `{"replication_clusters":["west"]}`, precond, []string{`cluster "west" does not exist`}},
			{"PUT", "/namespaces/acme/x", "root", `{"replication_clusters":["east","west"]}`, precond, []string{`not allowed to use cluster "west"`}},
			{"PUT", "/tenants/gamma", "root", `{"allowedClusters":["local","mars"]}`, precond, []string{`allowedClusters: cluster "mars" does not exist`}},
			{"PUT", "/tenants/gamma", "root", `{"allowedClusters":["a%2Fb"]}`, bad, []string{"allowedClusters", `cluster name "a%2Fb" has character '%'`}},
			{"POST", "/tenants/acme", "root", `{"adminRoles":["alice"],"allowedClusters":["local"]}`, conflict,
				[]string{`cannot remove allowed cluster "east": namespace acme/app replicates to it`}},

			// the retention must exceed the backlog quota (Pulsar: 412)
			{"POST", ns + "/backlogQuota", "root", `{"limitSize":209715200,"limitTime":-1,"policy":"producer_request_hold"}`, precond,
				[]string{"retention size (100 MB) must exceed the destination_storage backlog quota (209715200 bytes)"}},
			{"POST", ns + "/retention", "root", `{"retentionTimeInMinutes":60,"retentionSizeInMB":1}`, precond, []string{"retention size (1 MB) must exceed"}},

			// existing, missing or non-empty objects
			{"PUT", "/tenants/acme", "root", `{"adminRoles":["mallory"]}`, conflict, []string{`tenant "acme" already exists`}},
			{"PUT", "/clusters/east", "root", `{"serviceUrl":"http://mallory:8080"}`, conflict, []string{`cluster "east" already exists`}},
			{"PUT", ns, "root", `{"message_ttl_in_seconds":1}`, conflict, []string{"namespace acme/app already exists"}},
			{"PUT", "/namespaces/nope/x", "root", "", missing, []string{`tenant "nope" does not exist`}},
			{"POST", "/namespaces/acme/nope/messageTTL", "root", `10`, missing, []string{"namespace acme/nope does not exist"}},
			{"POST", "/tenants/nope", "root", `{}`, missing, []string{`tenant "nope" does not exist`}},
			{"POST", "/clusters/west", "root", `{}`, missing, []string{`cluster "west" does not exist`}},
			{"DELETE", "/tenants/acme", "root", "", conflict, []string{`tenant "acme" still has 1 namespace(s)`}},
			{"DELETE", ns, "root", "", conflict, []string{"namespace acme/app still has 1 topic(s)"}},
			{"DELETE", "/clusters/east", "root", "", precond, []string{`cluster "east" is still a replication cluster of namespace acme/app`}},
			{"PATCH", ns, "root", `{}`, http.StatusMethodNotAllowed, []string{"method not allowed"}},
		})
	})

	// The server still accepts valid requests, on the same objects.
	runSteps(t, e, []step{
		{"POST", ns + "/messageTTL", "alice", `120`, created, ""},
		{"GET", ns + "/messageTTL", "alice", "", ok, `120`},
		{"POST", ns + "/retention", "alice", `{"retentionTimeInMinutes":-1,"retentionSizeInMB":-1}`, created, ""},
		{"PUT", ns + "/offloadThreshold", "alice", `-1`, created, ""},
		{"POST", ns + "/backlogQuota", "alice", `{"limitSize":-1,"limitTime":-1,"policy":"producer_exception"}`, created, ""},
		{"POST", ns + "/persistence", "alice", `{"bookkeeperEnsemble":3,"bookkeeperWriteQuorum":3,"bookkeeperAckQuorum":3}`, created, ""},
		{"POST", ns + "/permissions/subscription/caf%C3%A9", "alice", `["app-role"]`, created, ""},
		{"GET", ns + "/permissions/subscription", "alice", "", ok, `{"café":["app-role"],"sub1":["app-role"]}`},
		{"POST", ns + "/permissions/role%2Fwith%20slash", "alice", `["consume"]`, created, ""},
		{"PUT", "/tenants/gamma", "root", `{"adminRoles":["gina"],"allowedClusters":["east"]}`, created, ""},
		{"GET", "/tenants/gamma", "root", "", ok, `{"adminRoles":["gina"],"allowedClusters":["east"]}`},
		{"PUT", "/namespaces/gamma/x", "root", `{"replication_clusters":["east"]}`, created, ""},
		{"DELETE", "/namespaces/gamma/x", "root", "", created, ""},
		{"DELETE", "/tenants/gamma", "root", "", created, ""},
	})
}
