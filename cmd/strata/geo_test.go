package main

import (
	"context"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

// TestTwoStandalonesReplicate runs docs/geo-replication.md's first
// how-to with the CLI: two standalones ("east" and "west") that share
// nothing, registered on each other, a tenant and namespace on both,
// replication set on both; messages produced in east are consumed in west
// and the other way round.
func TestTwoStandalonesReplicate(t *testing.T) {
	start := func(cluster string) *standalone.Standalone {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := standalone.Start(ctx, standalone.Options{
			Cluster: cluster, DataDir: t.TempDir(),
			EtcdClientAddr: testutil.FreeAddr(t), EtcdPeerAddr: testutil.FreeAddr(t), BookieAddr: testutil.FreeAddr(t),
			Broker: broker.Options{GRPCAddr: testutil.FreeAddr(t), HTTPAddr: testutil.FreeAddr(t), SessionTTL: 2 * time.Second, PolicyCheckInterval: 200 * time.Millisecond},
			Logger: testcluster.TestLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Setenv("STRATA_TOKEN", "")
	east, west := start("east"), start("west")
	eastHTTP, westHTTP := east.Broker.HTTPURL(), west.Broker.HTTPURL()
	eastURL, westURL := "pulsar://"+east.Broker.GRPCAddr(), "pulsar://"+west.Broker.GRPCAddr()

	// Each standalone registered itself; register each on the other.
	mutate(t, "admin", "--admin-url", eastHTTP, "clusters", "create", "west", "--url", westHTTP, "--broker-url", westURL)
	mutate(t, "admin", "--admin-url", westHTTP, "clusters", "create", "east", "--url", eastHTTP, "--broker-url", eastURL)
	for _, u := range []string{eastHTTP, westHTTP} {
		mutate(t, "admin", "--admin-url", u, "tenants", "create", "acme", "--allowed-clusters", "east,west")
		mutate(t, "admin", "--admin-url", u, "namespaces", "create", "acme/orders")
		mutate(t, "admin", "--admin-url", u, "namespaces", "set-clusters", "acme/orders", "--clusters", "east,west")
	}
	testutil.Equal(t, "west's clusters of acme/orders", jsonOut[[]string](t, mustStrata(t, "admin", "--admin-url", westHTTP, "namespaces", "get-clusters", "acme/orders")), []string{"east", "west"})

	const topic = "persistent://acme/orders/events"
	mutate(t, "client", "produce", topic, "--url", eastURL, "-m", "one", "-m", "two", "-m", "three")
	out := mustStrata(t, "client", "consume", topic, "--url", westURL, "-s", "audit", "-p", "Earliest", "-n", "3", "--timeout", "60s")
	testutil.Equal(t, "consumed in west", out, "one\ntwo\nthree\n")

	mutate(t, "client", "produce", topic, "--url", westURL, "-m", "from-west")
	out = mustStrata(t, "client", "consume", topic, "--url", eastURL, "-s", "mirror", "-p", "Earliest", "-n", "4", "--timeout", "60s")
	testutil.Equal(t, "consumed in east", out, "one\ntwo\nthree\nfrom-west\n")
}
