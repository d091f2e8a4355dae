package broker_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// TestLookupAssignsLeastLoaded: lookups of topics in unowned bundles, all
// sent to the first broker, assign each bundle to the live broker owning the
// fewest, so 8 bundles end 4 and 4; a lookup of an owned bundle answers its
// owner from any broker; once the second broker stops, new bundles go to the
// first.
func TestLookupAssignsLeastLoaded(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2})
	ctx := ctxT(t, 2*time.Minute)
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	bundles := tenants.NewBundlesData(8)
	if err := st.CreateNamespace(ctx, naming.MustParseNamespace("public/spread"), tenants.Policies{Bundles: &bundles}); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]int{c.Broker(0).GRPCAddr: 0, c.Broker(1).GRPCAddr: 1}
	raws := []clientpb.BrokerClient{rawClient(t, c.Broker(0).GRPCAddr), rawClient(t, c.Broker(1).GRPCAddr)}
	// lookup follows redirects from broker `from` as the SDK does and
	// returns the index of the broker that serves the topic.
	lookup := func(from int, topic string) int {
		t.Helper()
		req := &clientpb.LookupRequest{Topic: topic}
		cli := raws[from]
		for hop := 0; hop < 4; hop++ {
			resp, err := cli.Lookup(ctx, req)
			if err != nil {
				t.Fatalf("lookup %s: %v", topic, err)
			}
			i, ok := addrs[resp.BrokerUrl]
			if !ok {
				t.Fatalf("lookup %s: broker url %q is neither broker", topic, resp.BrokerUrl)
			}
			if resp.Kind == clientpb.LookupResponse_CONNECT {
				return i
			}
			cli, req = raws[i], &clientpb.LookupRequest{Topic: topic, Authoritative: resp.Authoritative}
		}
		t.Fatalf("lookup %s: too many redirects", topic)
		return -1
	}
	// owned counts the bundles each broker owns, from the ownership keys.
	owned := func() map[string]int {
		kvs, err := metadata.ListAll(ctx, c.Store, metadata.OwnershipPrefix, false)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, kv := range kvs {
			var v struct {
				GRPCURL string `json:"grpcUrl"`
			}
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				t.Fatalf("ownership %s: %v", kv.Key, err)
			}
			n[v.GRPCURL]++
		}
		return n
	}

	// The namespace was written to the store directly: wait until both
	// brokers' policy caches have it (a probe topic per broker; its bundle
	// is assigned like any other).
	waitNamespace := func(ns string, brokers ...int) {
		t.Helper()
		for _, from := range brokers {
			testutil.WaitFor(t, 30*time.Second, func() error {
				_, err := raws[from].Lookup(ctx, &clientpb.LookupRequest{Topic: "persistent://" + ns + "/probe"})
				return err
			})
		}
	}
	waitNamespace("public/spread", 0, 1)

	served := map[string]int{} // topic -> broker
	total := func(n map[string]int) int { return n[c.Broker(0).GRPCAddr] + n[c.Broker(1).GRPCAddr] }
	for i := 0; total(owned()) < 8; i++ {
		if i == 1000 {
			t.Fatalf("1000 topics did not cover the 8 bundles: %v", owned())
		}
		topic := fmt.Sprintf("persistent://public/spread/t%d", i)
		served[topic] = lookup(0, topic)
	}
	if got := owned(); len(got) != 2 || got[c.Broker(0).GRPCAddr] != 4 || got[c.Broker(1).GRPCAddr] != 4 {
		t.Fatalf("8 bundles assigned %v; want 4 to each broker", got)
	}
	for topic, want := range served {
		for from := range 2 {
			if got := lookup(from, topic); got != want {
				t.Fatalf("lookup of owned %s from broker %d: broker %d, want its owner %d", topic, from, got, want)
			}
		}
	}

	// A stopped broker leaves the broker list: new bundles go to the other.
	four := tenants.NewBundlesData(4)
	if err := st.CreateNamespace(ctx, naming.MustParseNamespace("public/after"), tenants.Policies{Bundles: &four}); err != nil {
		t.Fatal(err)
	}
	c.StopBroker(1)
	waitNamespace("public/after", 0)
	for i := range 40 {
		if got := lookup(0, fmt.Sprintf("persistent://public/after/t%d", i)); got != 0 {
			t.Fatalf("with broker 1 stopped, a new bundle went to broker %d", got)
		}
	}
}
