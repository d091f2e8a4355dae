package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

// TestAdminTopicPolicyCommands runs every topic policy command (set-X,
// get-X, remove-X) against an unsecured standalone.
func TestAdminTopicPolicyCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := standalone.Start(ctx, standalone.Options{DataDir: t.TempDir(), EtcdClientAddr: testutil.FreeAddr(t),
		EtcdPeerAddr: testutil.FreeAddr(t), BookieAddr: testutil.FreeAddr(t),
		Broker: broker.Options{GRPCAddr: testutil.FreeAddr(t), HTTPAddr: testutil.FreeAddr(t), SessionTTL: 2 * time.Second},
		Logger: testcluster.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t.Setenv("STRATA_ADMIN_URL", s.Broker.HTTPURL())
	t.Setenv("STRATA_TOKEN", "")
	const topic = "persistent://public/default/orders"

	policies := []struct {
		name string
		set  []string // set-NAME's flags
		want string   // what get-NAME prints after it
	}{
		{"deduplication", []string{"--enable"}, `true`},
		{"deduplication", []string{"-d"}, `false`},
		{"publish-rate", []string{"--msg-publish-rate", "100", "--byte-publish-rate", "1M"},
			`{"publishThrottlingRateInMsg":100,"publishThrottlingRateInByte":1048576}`},
		{"publish-rate", []string{"-m", "5"}, `{"publishThrottlingRateInMsg":5,"publishThrottlingRateInByte":-1}`},
		{"dispatch-rate", []string{"--msg-dispatch-rate", "50", "--byte-dispatch-rate", "2M", "--dispatch-rate-period", "5"},
			`{"dispatchThrottlingRateInMsg":50,"dispatchThrottlingRateInByte":2097152,"ratePeriodInSecond":5}`},
		{"dispatch-rate", []string{"--msg-dispatch-rate", "50"},
			`{"dispatchThrottlingRateInMsg":50,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":1}`},
		{"subscription-dispatch-rate", []string{"--byte-dispatch-rate", "10k", "--relative-to-publish-rate"},
			`{"dispatchThrottlingRateInMsg":-1,"dispatchThrottlingRateInByte":10240,"relativeToPublishRate":true,"ratePeriodInSecond":1}`},
		{"max-producers", []string{"--max-producers", "3"}, `3`},
		{"max-producers", []string{"-p", "0"}, `0`},
		{"max-consumers", []string{"--max-consumers", "4"}, `4`},
		{"max-consumers-per-subscription", []string{"--max-consumers-per-subscription", "2"}, `2`},
		{"max-consumers-per-subscription", []string{"-c", "6"}, `6`},
		{"message-ttl", []string{"--ttl", "120"}, `120`},
		{"message-ttl", []string{"--ttl", "1h"}, `3600`},
		{"message-ttl", []string{"-t", "2d"}, `172800`},
		{"replication-clusters", []string{"--clusters", "standalone"}, `["standalone"]`},
	}
	names := []string{"deduplication", "publish-rate", "dispatch-rate", "subscription-dispatch-rate",
		"max-producers", "max-consumers", "max-consumers-per-subscription", "message-ttl", "replication-clusters"}
	getNull := func(name, topic string) {
		t.Helper()
		if out := mustStrata(t, "admin", "topics", "get-"+name, topic); strings.TrimSpace(out) != "null" {
			t.Fatalf("get-%s %s printed %q, want null", name, topic, out)
		}
	}
	for _, name := range names {
		getNull(name, topic)
	}
	for _, p := range policies {
		mutate(t, append([]string{"admin", "topics", "set-" + p.name, topic}, p.set...)...)
		if out := mustStrata(t, "admin", "topics", "get-"+p.name, topic); !sameJSON(out, p.want) {
			t.Fatalf("after set-%s %v, get-%s printed %s, want %s", p.name, p.set, p.name, out, p.want)
		}
	}
	// Other name forms reach the same topic; a partition reads its
	// partitioned topic's policies.
	for _, name := range []string{"orders", "public/default/orders", "orders-partition-2"} {
		if out := mustStrata(t, "admin", "topics", "get-message-ttl", name); !sameJSON(out, "172800") {
			t.Fatalf("get-message-ttl %s printed %s, want 172800", name, out)
		}
	}
	for _, name := range names {
		mutate(t, "admin", "topics", "remove-"+name, topic)
		getNull(name, topic)
	}

	// Bad values are refused, locally or by the broker, with a reason.
	failStrata(t, "--ttl", "admin", "topics", "set-message-ttl", topic, "--ttl", "1x")
	failStrata(t, `required flag(s) "ttl" not set`, "admin", "topics", "set-message-ttl", topic)
	failStrata(t, "maxProducerPerTopic must be between 0 and", "admin", "topics", "set-max-producers", topic, "--max-producers", "-1")
	failStrata(t, "ratePeriodInSecond must be between 1 and", "admin", "topics", "set-dispatch-rate", topic, "--dispatch-rate-period", "-1")
	failStrata(t, "--byte-publish-rate", "admin", "topics", "set-publish-rate", topic, "-b", "lots")
	failStrata(t, "not allowed to use cluster", "admin", "topics", "set-replication-clusters", topic, "-c", "standalone,elsewhere")
	failStrata(t, "exactly one", "admin", "topics", "set-deduplication", topic)
	failStrata(t, "exactly one", "admin", "topics", "set-deduplication", topic, "--enable", "--disable")
	failStrata(t, "namespace public/nope does not exist", "admin", "topics", "get-max-consumers", "public/nope/orders")
	for _, name := range names {
		getNull(name, topic) // nothing refused was stored
	}
}
