package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants/auth"
)

// runMainEnv makes the test binary run as the strata binary (tests start
// it as a process to send it signals).
const runMainEnv = "STRATA_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	testutil.Main(m)
}

// jsonOut decodes a command's JSON output into a value of type T.
func jsonOut[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output %q is not the expected JSON: %v", out, err)
	}
	return v
}

// mutate runs a command that must succeed and print nothing.
func mutate(t *testing.T, args ...string) {
	t.Helper()
	if out := mustStrata(t, args...); out != "" {
		t.Fatalf("strata %s printed %q, want nothing", strings.Join(args, " "), out)
	}
}

// startSecureStandalone starts a standalone whose broker requires tokens
// signed with the secret in keyFile; role "admin" is the superuser.
func startSecureStandalone(t *testing.T, keyFile string) *standalone.Standalone {
	t.Helper()
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: "file://" + keyFile})
	if err != nil {
		t.Fatal(err)
	}
	return testcluster.StartSecureStandalone(t, authn)
}

// TestAdminCommandsEndToEnd runs a representative pulsar-admin style
// session against a standalone with authentication on, with a token made
// by `strata tokens`.
func TestAdminCommandsEndToEnd(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	mustStrata(t, "tokens", "create-secret-key", "--output", keyFile)
	token := strings.TrimSpace(mustStrata(t, "tokens", "create", "--subject", "admin", "--secret-key", "file://"+keyFile))
	s := startSecureStandalone(t, keyFile)
	url := s.Broker.HTTPURL()
	t.Setenv("STRATA_ADMIN_URL", "")
	t.Setenv("STRATA_TOKEN", "")

	// Flags, then the environment (bound by the root command).
	tenants := jsonOut[[]string](t, mustStrata(t, "admin", "--admin-url", url, "--token", token, "tenants", "list"))
	testutil.Equal(t, "tenants", tenants, []string{"public"})
	failStrata(t, "", "admin", "--admin-url", url, "tenants", "list") // no token: 401
	t.Setenv("STRATA_ADMIN_URL", url)
	t.Setenv("STRATA_TOKEN", token)

	t.Run("Tenants", testAdminTenants)
	t.Run("Clusters", testAdminClusters)
	t.Run("Namespaces", testAdminNamespaces)
	t.Run("Topics", func(t *testing.T) { testAdminTopics(t, s, token) })
	t.Run("PartitionedTopics", func(t *testing.T) { testAdminPartitioned(t, s, token) })
	t.Run("Schemas", testAdminSchemas)
	t.Run("Cleanup", func(t *testing.T) {
		mutate(t, "admin", "namespaces", "delete", "acme/orders")
		mutate(t, "admin", "tenants", "delete", "acme")
		failStrata(t, `tenant "acme" does not exist`, "admin", "tenants", "get", "acme")
		testutil.Equal(t, "tenants", jsonOut[[]string](t, mustStrata(t, "admin", "tenants", "list")), []string{"public"})
	})
}

func testAdminTenants(t *testing.T) {
	mutate(t, "admin", "tenants", "create", "acme", "--admin-roles", "acme-admin", "--allowed-clusters", "standalone")
	failStrata(t, `tenant "acme" already exists`, "admin", "tenants", "create", "acme")
	testutil.Equal(t, "tenants", jsonOut[[]string](t, mustStrata(t, "admin", "tenants", "list")), []string{"acme", "public"})
	type info struct {
		AdminRoles      []string `json:"adminRoles"`
		AllowedClusters []string `json:"allowedClusters"`
	}
	testutil.Equal(t, "acme", jsonOut[info](t, mustStrata(t, "admin", "tenants", "get", "acme")), info{[]string{"acme-admin"}, []string{"standalone"}})
	mutate(t, "admin", "tenants", "update", "acme", "-r", "acme-admin,acme-ops")
	testutil.Equal(t, "updated acme", jsonOut[info](t, mustStrata(t, "admin", "tenants", "get", "acme")), info{[]string{"acme-admin", "acme-ops"}, []string{"standalone"}})
	failStrata(t, `"mars" does not exist`, "admin", "tenants", "create", "other", "--allowed-clusters", "mars")
	mutate(t, "admin", "tenants", "create", "tmp")
	mutate(t, "admin", "tenants", "delete", "tmp")
	failStrata(t, `tenant "nope" does not exist`, "admin", "tenants", "delete", "nope")
}

func testAdminClusters(t *testing.T) {
	testutil.Equal(t, "clusters", jsonOut[[]string](t, mustStrata(t, "admin", "clusters", "list")), []string{"standalone"})
	mutate(t, "admin", "clusters", "create", "west", "--url", "http://west:8080", "--broker-url", "west:6650")
	mutate(t, "admin", "clusters", "update", "west", "--url", "http://west2:8080")
	type data struct {
		ServiceURL       string `json:"serviceUrl"`
		BrokerServiceURL string `json:"brokerServiceUrl"`
	}
	testutil.Equal(t, "west", jsonOut[data](t, mustStrata(t, "admin", "clusters", "get", "west")), data{"http://west2:8080", "west:6650"})
	mutate(t, "admin", "clusters", "delete", "west")
	failStrata(t, `cluster "west" does not exist`, "admin", "clusters", "get", "west")
}

func testAdminNamespaces(t *testing.T) {
	const ns = "acme/orders"
	mutate(t, "admin", "namespaces", "create", ns)
	mutate(t, "admin", "namespaces", "create", "acme/audit", "--bundles", "8", "--clusters", "standalone")
	failStrata(t, "namespace acme/orders already exists", "admin", "namespaces", "create", ns)
	failStrata(t, "invalid name", "admin", "namespaces", "create", "no-slash")
	testutil.Equal(t, "namespaces", jsonOut[[]string](t, mustStrata(t, "admin", "namespaces", "list", "acme")), []string{"acme/audit", "acme/orders"})
	type policies struct {
		Bundles struct {
			NumBundles int `json:"numBundles"`
		} `json:"bundles"`
		ReplicationClusters []string         `json:"replication_clusters"`
		Retention           map[string]int64 `json:"retention_policies"`
		TTL                 *int             `json:"message_ttl_in_seconds"`
	}
	p := jsonOut[policies](t, mustStrata(t, "admin", "namespaces", "policies", "acme/audit"))
	if p.Bundles.NumBundles != 8 || !reflect.DeepEqual(p.ReplicationClusters, []string{"standalone"}) {
		t.Fatalf("policies of acme/audit: %+v", p)
	}
	mutate(t, "admin", "namespaces", "delete", "acme/audit")

	// Every getter says null before its setter runs.
	for _, get := range []string{"get-retention", "get-message-ttl", "get-persistence", "get-offload-threshold",
		"get-offload-deletion-lag", "get-deduplication", "get-publish-rate", "get-dispatch-rate",
		"get-max-producers-per-topic", "get-max-consumers-per-topic", "get-max-consumers-per-subscription"} {
		if out := mustStrata(t, "admin", "namespaces", get, ns); strings.TrimSpace(out) != "null" {
			t.Fatalf("%s of a fresh namespace printed %q, want null", get, out)
		}
	}
	sets := []struct {
		set  []string
		get  string
		want string
	}{
		{[]string{"set-retention", "--size", "10G", "--time", "3d"}, "get-retention", `{"retentionTimeInMinutes":4320,"retentionSizeInMB":10240}`},
		{[]string{"set-message-ttl", "--ttl", "1h"}, "get-message-ttl", `3600`},
		{[]string{"set-backlog-quota", "--limit-size", "1G", "--policy", "producer_exception"}, "get-backlog-quotas",
			`{"destination_storage":{"limitSize":1073741824,"limitTime":-1,"policy":"producer_exception"}}`},
		{[]string{"set-backlog-quota", "-t", "message_age", "--limit-time", "2h", "-p", "consumer_backlog_eviction"}, "get-backlog-quotas",
			`{"destination_storage":{"limitSize":1073741824,"limitTime":-1,"policy":"producer_exception"},"message_age":{"limitSize":-1,"limitTime":7200,"policy":"consumer_backlog_eviction"}}`},
		{[]string{"remove-backlog-quota", "-t", "message_age"}, "get-backlog-quotas",
			`{"destination_storage":{"limitSize":1073741824,"limitTime":-1,"policy":"producer_exception"}}`},
		{[]string{"set-persistence", "-e", "1", "-w", "1", "-a", "1", "-r", "2.5"}, "get-persistence",
			`{"bookkeeperEnsemble":1,"bookkeeperWriteQuorum":1,"bookkeeperAckQuorum":1,"managedLedgerMaxMarkDeleteRate":2.5}`},
		{[]string{"set-offload-threshold", "--size", "10M"}, "get-offload-threshold", `10485760`},
		{[]string{"set-offload-deletion-lag", "--lag", "4h"}, "get-offload-deletion-lag", `14400000`},
		{[]string{"clear-offload-deletion-lag"}, "get-offload-deletion-lag", `null`},
		{[]string{"set-clusters", "--clusters", "standalone"}, "get-clusters", `["standalone"]`},
		{[]string{"set-deduplication", "--enable"}, "get-deduplication", `true`},
		{[]string{"set-deduplication", "--disable"}, "get-deduplication", `false`},
		{[]string{"grant-permission", "--role", "app", "--actions", "produce,consume"}, "permissions", `{"app":["produce","consume"]}`},
		{[]string{"grant-permission", "--role", "auditor", "--actions", "consume"}, "permissions", `{"app":["produce","consume"],"auditor":["consume"]}`},
		{[]string{"revoke-permission", "--role", "auditor"}, "permissions", `{"app":["produce","consume"]}`},
		{[]string{"grant-subscription-permission", "-s", "billing", "--roles", "app,ops"}, "subscription-permissions", `{"billing":["app","ops"]}`},
		{[]string{"revoke-subscription-permission", "-s", "billing", "--role", "ops"}, "subscription-permissions", `{"billing":["app"]}`},
		{[]string{"set-publish-rate", "-m", "100", "-b", "1M"}, "get-publish-rate", `{"publishThrottlingRateInMsg":100,"publishThrottlingRateInByte":1048576}`},
		{[]string{"set-dispatch-rate", "--msg-dispatch-rate", "50"}, "get-dispatch-rate",
			`{"dispatchThrottlingRateInMsg":50,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":1}`},
		{[]string{"remove-dispatch-rate"}, "get-dispatch-rate", `null`},
		{[]string{"set-subscription-dispatch-rate", "--byte-dispatch-rate", "2M", "--dispatch-rate-period", "5"}, "get-subscription-dispatch-rate",
			`{"dispatchThrottlingRateInMsg":-1,"dispatchThrottlingRateInByte":2097152,"ratePeriodInSecond":5}`},
		{[]string{"set-max-producers-per-topic", "-p", "5"}, "get-max-producers-per-topic", `5`},
		{[]string{"set-max-consumers-per-topic", "-c", "6"}, "get-max-consumers-per-topic", `6`},
		{[]string{"set-max-consumers-per-subscription", "-c", "2"}, "get-max-consumers-per-subscription", `2`},
		{[]string{"remove-max-consumers-per-subscription"}, "get-max-consumers-per-subscription", `null`},
	}
	for _, s := range sets {
		mutate(t, append(append([]string{"admin", "namespaces"}, s.set...), ns)...)
		out := mustStrata(t, "admin", "namespaces", s.get, ns)
		if !sameJSON(out, s.want) {
			t.Fatalf("after %v, %s printed %s, want %s", s.set, s.get, out, s.want)
		}
	}
	p = jsonOut[policies](t, mustStrata(t, "admin", "namespaces", "policies", ns))
	if p.TTL == nil || *p.TTL != 3600 || p.Retention["retentionSizeInMB"] != 10240 {
		t.Fatalf("policies after the changes: %+v", p)
	}

	// Bad input is refused before or by the server, with a reason.
	failStrata(t, "--size", "admin", "namespaces", "set-retention", ns, "--size", "10X", "--time", "1d")
	failStrata(t, "required flag", "admin", "namespaces", "set-retention", ns, "--size", "10G")
	failStrata(t, "exactly one", "admin", "namespaces", "set-deduplication", ns)
	failStrata(t, "--limit-size is required", "admin", "namespaces", "set-backlog-quota", ns, "-p", "producer_exception")
	failStrata(t, "fly", "admin", "namespaces", "grant-permission", ns, "--role", "app", "--actions", "fly")
	failStrata(t, "namespace acme/nope does not exist", "admin", "namespaces", "get-retention", "acme/nope")
	failStrata(t, "tenant", "admin", "namespaces", "list", "nope")
	// Back to the broker defaults for the topic tests (the permission of
	// role "app" stays).
	mutate(t, "admin", "namespaces", "remove-retention", ns)
	mutate(t, "admin", "namespaces", "remove-message-ttl", ns)
	mutate(t, "admin", "namespaces", "remove-persistence", ns)
	mutate(t, "admin", "namespaces", "remove-publish-rate", ns)
	mutate(t, "admin", "namespaces", "remove-subscription-dispatch-rate", ns)
	mutate(t, "admin", "namespaces", "remove-max-producers-per-topic", ns)
	mutate(t, "admin", "namespaces", "remove-max-consumers-per-topic", ns)
	mutate(t, "admin", "namespaces", "remove-backlog-quota", ns)
}

// sameJSON compares two JSON texts by value.
func sameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// produce publishes n messages, returning their ids.
func produce(t *testing.T, s *standalone.Standalone, token, topic string, n int) []client.MessageID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := client.New(s.Broker.GRPCAddr(), client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var ids []client.MessageID
	for i := 0; i < n; i++ {
		id, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprint(i)), Key: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func subBacklog(t *testing.T, statsOut, sub string) int64 {
	t.Helper()
	st := jsonOut[admin.TopicStats](t, statsOut)
	ss, ok := st.Subscriptions[sub]
	if !ok {
		t.Fatalf("stats lack subscription %s: %s", sub, statsOut)
	}
	return ss.MsgBacklog
}

func testAdminTopics(t *testing.T, s *standalone.Standalone, token string) {
	const topic = "acme/orders/plain"
	const full = "persistent://acme/orders/plain"
	mutate(t, "admin", "topics", "create", topic)
	failStrata(t, "already exists", "admin", "topics", "create", full)
	testutil.Equal(t, "topics", jsonOut[[]string](t, mustStrata(t, "admin", "topics", "list", "acme/orders")), []string{full})
	testutil.Equal(t, "namespace topics", jsonOut[[]string](t, mustStrata(t, "admin", "namespaces", "topics", "acme/orders")), []string{full})
	mutate(t, "admin", "topics", "create-subscription", topic, "-s", "s1", "-m", "earliest")
	ids := produce(t, s, token, full, 5)
	mutate(t, "admin", "topics", "create-subscription", topic, "-s", "late") // latest
	testutil.Equal(t, "subscriptions", jsonOut[[]string](t, mustStrata(t, "admin", "topics", "subscriptions", topic)), []string{"late", "s1"})

	stats := mustStrata(t, "admin", "topics", "stats", topic)
	if st := jsonOut[admin.TopicStats](t, stats); st.MsgInCounter != 5 || subBacklog(t, stats, "s1") != 5 || subBacklog(t, stats, "late") != 0 {
		t.Fatalf("stats: %s", stats)
	}
	mutate(t, "admin", "topics", "skip", topic, "-s", "s1", "-n", "2")
	testutil.Equal(t, "backlog after skip", subBacklog(t, mustStrata(t, "admin", "topics", "stats", topic), "s1"), int64(3))
	mutate(t, "admin", "topics", "reset-cursor", topic, "-s", "s1", "-m", fmt.Sprintf("%d:%d", ids[1].LedgerID, ids[1].EntryID))
	testutil.Equal(t, "backlog after reset to message 1", subBacklog(t, mustStrata(t, "admin", "topics", "stats", topic), "s1"), int64(4))
	mutate(t, "admin", "topics", "clear-backlog", topic, "-s", "s1")
	testutil.Equal(t, "backlog after clear", subBacklog(t, mustStrata(t, "admin", "topics", "stats", topic), "s1"), int64(0))
	mutate(t, "admin", "topics", "reset-cursor", topic, "-s", "s1", "-t", "1h")
	testutil.Equal(t, "backlog after reset by time", subBacklog(t, mustStrata(t, "admin", "topics", "stats", topic), "s1"), int64(5))
	mutate(t, "admin", "topics", "expire-messages", topic, "-s", "s1", "-t", "1h")
	testutil.Equal(t, "backlog after expiring older than 1h", subBacklog(t, mustStrata(t, "admin", "topics", "stats", topic), "s1"), int64(5))
	mutate(t, "admin", "topics", "expire-messages-all-subscriptions", topic, "-t", "0")
	testutil.Equal(t, "backlog after expiring all", subBacklog(t, mustStrata(t, "admin", "topics", "stats", topic), "s1"), int64(0))

	is := jsonOut[admin.InternalStats](t, mustStrata(t, "admin", "topics", "stats-internal", topic))
	if is.NumberOfEntries != 5 || len(is.Cursors) != 2 || len(is.Ledgers) == 0 {
		t.Fatalf("internal stats %+v", is)
	}
	last := jsonOut[admin.MessageID](t, mustStrata(t, "admin", "topics", "last-message-id", topic))
	testutil.Equal(t, "last message id", [2]int64{last.LedgerID, last.EntryID}, [2]int64{ids[4].LedgerID, ids[4].EntryID})
	ld := jsonOut[admin.LookupData](t, mustStrata(t, "admin", "topics", "lookup", topic))
	testutil.Equal(t, "lookup", ld.BrokerURL, "pulsar://"+s.Broker.GRPCAddr())

	mutate(t, "admin", "topics", "grant-permission", topic, "--role", "reader", "--actions", "consume")
	testutil.Equal(t, "topic permissions", jsonOut[map[string][]string](t, mustStrata(t, "admin", "topics", "permissions", topic)),
		map[string][]string{"app": {"produce", "consume"}, "reader": {"consume"}})
	mutate(t, "admin", "topics", "revoke-permission", topic, "--role", "reader")
	mutate(t, "admin", "topics", "revoke-permission", topic, "--role", "reader") // nothing left to revoke: still fine

	// Offload needs data beyond the threshold: here everything fits.
	out, err := strata(t, "", "admin", "topics", "offload", topic, "--size-threshold", "10M")
	if err != nil || out != "" {
		t.Fatalf("offload with nothing to do: %q, %v", out, err)
	}

	mutate(t, "admin", "topics", "unload", topic)
	term := jsonOut[admin.MessageID](t, mustStrata(t, "admin", "topics", "terminate", topic))
	testutil.Equal(t, "terminated at", term, last)
	mutate(t, "admin", "topics", "unsubscribe", topic, "-s", "late")
	failStrata(t, "subscription late does not exist", "admin", "topics", "unsubscribe", topic, "-s", "late")
	mutate(t, "admin", "topics", "delete", topic)
	failStrata(t, "not found", "admin", "topics", "stats", topic)

	// Local checks.
	failStrata(t, "invalid name", "admin", "topics", "stats", "a/b")
	failStrata(t, "exactly one", "admin", "topics", "reset-cursor", topic, "-s", "s1")
	failStrata(t, "required flag", "admin", "topics", "skip", topic, "-s", "s1")
}

func testAdminPartitioned(t *testing.T, s *standalone.Standalone, token string) {
	const topic = "acme/orders/events"
	const full = "persistent://acme/orders/events"
	mutate(t, "admin", "topics", "create-partitioned-topic", topic, "-p", "2")
	failStrata(t, "", "admin", "topics", "create-partitioned-topic", topic, "-p", "2")
	failStrata(t, "partitions", "admin", "topics", "create-partitioned-topic", "acme/orders/none", "-p", "0")
	testutil.Equal(t, "metadata", jsonOut[map[string]int](t, mustStrata(t, "admin", "topics", "get-partitioned-topic-metadata", topic)), map[string]int{"partitions": 2})
	mutate(t, "admin", "topics", "update-partitioned-topic", topic, "-p", "3")
	testutil.Equal(t, "metadata", jsonOut[map[string]int](t, mustStrata(t, "admin", "topics", "get-partitioned-topic-metadata", topic)), map[string]int{"partitions": 3})
	testutil.Equal(t, "partitioned topics", jsonOut[[]string](t, mustStrata(t, "admin", "topics", "list-partitioned", "acme/orders")), []string{full})

	// A subscription on a partitioned topic is created on every partition.
	mutate(t, "admin", "topics", "create-subscription", topic, "-s", "audit", "-m", "earliest")
	testutil.Equal(t, "subscriptions", jsonOut[[]string](t, mustStrata(t, "admin", "topics", "subscriptions", topic)), []string{"audit"})
	testutil.Equal(t, "topics", jsonOut[[]string](t, mustStrata(t, "admin", "topics", "list", "acme/orders")),
		[]string{full + "-partition-0", full + "-partition-1", full + "-partition-2"})
	produce(t, s, token, full, 12)
	backlog := func() int64 {
		t.Helper()
		st := jsonOut[admin.PartitionedTopicStats](t, mustStrata(t, "admin", "topics", "partitioned-stats", topic))
		if st.MsgInCounter != 12 || st.Metadata.Partitions != 3 {
			t.Fatalf("partitioned stats %+v", st)
		}
		return st.Subscriptions["audit"].MsgBacklog
	}
	testutil.Equal(t, "backlog", backlog(), int64(12))
	per := jsonOut[admin.PartitionedTopicStats](t, mustStrata(t, "admin", "topics", "partitioned-stats", topic, "--per-partition"))
	if len(per.Partitions) != 3 {
		t.Fatalf("per-partition stats %+v", per)
	}
	mutate(t, "admin", "topics", "clear-backlog", topic, "-s", "audit")
	testutil.Equal(t, "backlog after clear", backlog(), int64(0))
	mutate(t, "admin", "topics", "reset-cursor", topic, "-s", "audit", "-t", "1h")
	testutil.Equal(t, "backlog after reset", backlog(), int64(12))
	mutate(t, "admin", "topics", "expire-messages", topic, "-s", "audit", "-t", "0")
	testutil.Equal(t, "backlog after expire", backlog(), int64(0))
	failStrata(t, "partition", "admin", "topics", "reset-cursor", topic, "-s", "audit", "-m", "1:0")
	failStrata(t, "partitioned", "admin", "topics", "stats", topic)
	lookups := jsonOut[map[string]admin.LookupData](t, mustStrata(t, "admin", "topics", "lookup", topic))
	if len(lookups) != 3 || lookups[full+"-partition-1"].BrokerURL != "pulsar://"+s.Broker.GRPCAddr() {
		t.Fatalf("lookup of the partitioned topic: %+v", lookups)
	}
	mutate(t, "admin", "topics", "unsubscribe", topic, "-s", "audit")
	testutil.Equal(t, "subscriptions after unsubscribe", jsonOut[[]string](t, mustStrata(t, "admin", "topics", "subscriptions", topic)), []string{})
	mutate(t, "admin", "topics", "delete", topic)
	testutil.Equal(t, "partitioned topics after delete", jsonOut[[]string](t, mustStrata(t, "admin", "topics", "list-partitioned", "acme/orders")), []string{})
	testutil.Equal(t, "topics after delete", jsonOut[[]string](t, mustStrata(t, "admin", "topics", "list", "acme/orders")), []string{})
}

func testAdminSchemas(t *testing.T) {
	const topic = "persistent://acme/orders/typed"
	mutate(t, "admin", "topics", "create", topic)
	dir := t.TempDir()
	file := func(name, typ, def string) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(map[string]any{"type": typ, "schema": def, "properties": map[string]string{"team": "billing"}})
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1 := file("v1.json", "AVRO", `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}`)
	v2 := file("v2.json", "AVRO", `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"note","type":"string","default":""}]}`)
	bad := file("bad.json", "AVRO", `{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}`)
	failStrata(t, "no schema", "admin", "schemas", "get", topic)
	testutil.Equal(t, "upload v1", jsonOut[map[string]int64](t, mustStrata(t, "admin", "schemas", "upload", topic, "-f", v1))["version"], int64(0))
	c := jsonOut[admin.Compatibility](t, mustStrata(t, "admin", "schemas", "compatibility", topic, "-f", bad))
	if c.IsCompatible || c.Strategy != "FULL" || c.Reason == "" {
		t.Fatalf("compatibility of an incompatible schema: %+v", c)
	}
	failStrata(t, "incompatible", "admin", "schemas", "upload", topic, "-f", bad)
	testutil.Equal(t, "upload v2", jsonOut[map[string]int64](t, mustStrata(t, "admin", "schemas", "upload", topic, "-f", v2))["version"], int64(1))
	latest := jsonOut[admin.SchemaInfo](t, mustStrata(t, "admin", "schemas", "get", topic))
	if latest.Version != 1 || latest.Type != "AVRO" || latest.Properties["team"] != "billing" {
		t.Fatalf("latest schema: %+v", latest)
	}
	testutil.Equal(t, "version 0", jsonOut[admin.SchemaInfo](t, mustStrata(t, "admin", "schemas", "get", topic, "--version", "0")).Version, int64(0))
	testutil.Equal(t, "all versions", len(jsonOut[[]admin.SchemaInfo](t, mustStrata(t, "admin", "schemas", "get", topic, "--all"))), 2)
	testutil.Equal(t, "delete", jsonOut[map[string]int64](t, mustStrata(t, "admin", "schemas", "delete", topic))["version"], int64(2))
	failStrata(t, "no schema", "admin", "schemas", "get", topic)
	failStrata(t, "a schema file is required", "admin", "schemas", "upload", topic)
	mutate(t, "admin", "topics", "delete", topic)
}
