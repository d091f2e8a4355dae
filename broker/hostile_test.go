package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// TestPolicyOverflowExpiresNothing: durations and sizes so large that
// multiplying them into nanoseconds or bytes overflows are refused with a
// 400 naming the allowed range — namespace and topic message TTL, a
// message-age backlog quota with eviction, retention, expire-messages — and
// such values stored before they were checked expire nothing: the overflow
// used to put the expiry cut-off in the future and expire the whole backlog.
func TestPolicyOverflowExpiresNothing(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	cons, err := cl.Subscribe(ctx, "ovf", "s")
	if err != nil {
		t.Fatal(err)
	}
	cons.Close()
	p, err := cl.CreateProducer(ctx, "ovf", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 5)
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	const topic = "persistent://public/default/ovf"
	huge := int64(10_000_000_000)
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"namespace message TTL", adm.Namespaces().SetMessageTTL(ctx, "public/default", int(huge))},
		{"topic message TTL", adm.Topics().SetMessageTTL(ctx, topic, int(huge))},
		{"message-age quota", adm.Namespaces().SetBacklogQuota(ctx, "public/default", tenants.MessageAge,
			tenants.BacklogQuota{LimitSize: -1, LimitTime: huge, Policy: tenants.ConsumerBacklogEviction})},
		{"retention time", adm.Namespaces().SetRetention(ctx, "public/default", tenants.RetentionPolicies{RetentionTimeInMinutes: int(huge * 1000), RetentionSizeInMB: -1})},
		{"retention size", adm.Namespaces().SetRetention(ctx, "public/default", tenants.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: 1 << 60})},
		{"expire messages", adm.Topics().ExpireMessages(ctx, topic, "s", 1<<63-1)},
		{"expire all messages", adm.Topics().ExpireAllMessages(ctx, topic, 1<<63-1)},
	} {
		if admin.StatusCode(tc.err) != http.StatusBadRequest || !strings.Contains(tc.err.Error(), "between") {
			t.Errorf("%s of %d: %v, want 400 naming the allowed range", tc.what, huge, tc.err)
		}
	}
	if b := subBacklog(t, c, "ovf", "s"); b != 5 {
		t.Fatalf("backlog %d after refused policies, want 5", b)
	}

	// Values stored before the API checked them saturate instead of
	// overflowing: nothing expires.
	kv, err := c.Store.Get(ctx, tenants.NamespaceKey(naming.MustParseNamespace("public/default")))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(kv.Value, &raw); err != nil {
		t.Fatal(err)
	}
	raw["message_ttl_in_seconds"] = huge
	raw["backlog_quota_map"] = map[string]any{"message_age": map[string]any{"limitSize": -1, "limitTime": huge, "policy": "consumer_backlog_eviction"}}
	raw["retention_policies"] = map[string]any{"retentionTimeInMinutes": huge * 1000, "retentionSizeInMB": int64(1) << 60}
	data, _ := json.Marshal(raw)
	if _, err := c.Store.Put(ctx, kv.Key, data, metadata.AnyVersion); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error { // the broker serves the stored values
		ttl, err := adm.Namespaces().GetMessageTTL(context.Background(), "public/default")
		if err != nil || ttl == nil || int64(*ttl) != huge {
			return fmt.Errorf("message TTL %v (%v)", ttl, err)
		}
		return nil
	})
	// Twenty policy intervals (100 ms each) with the overflowing values.
	holdsFor(t, 2*time.Second, func() error {
		if b := subBacklog(t, c, "ovf", "s"); b != 5 {
			return fmt.Errorf("backlog %d with overflowing policies in force, want 5 (messages expired)", b)
		}
		return nil
	})
}

// holdsFor fails the test if cond fails at any check during d.
func holdsFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAPILimitsMatchEveryLayer: what the API accepts, every layer can do.
// An ensemble the ledger client cannot use (1,000 bookies) and a partition
// count beyond the bound are refused with the allowed range instead of
// being stored and failing every produce later.
func TestAPILimitsMatchEveryLayer(t *testing.T) {
	if tenants.MaxEnsembleSize != ledger.MaxEnsembleSize {
		t.Fatalf("the API allows ensembles of %d, ledgers of %d", tenants.MaxEnsembleSize, ledger.MaxEnsembleSize)
	}
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	ctx := ctxT(t, time.Minute)
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	err = adm.Namespaces().SetPersistence(ctx, "public/default", tenants.PersistencePolicies{BookkeeperEnsemble: 1000, BookkeeperWriteQuorum: 2, BookkeeperAckQuorum: 2})
	if admin.StatusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "64 >= bookkeeperEnsemble") {
		t.Fatalf("ensemble of 1000: %v, want 400 naming the limit", err)
	}
	err = adm.Topics().CreatePartitioned(ctx, "many", tenants.MaxPartitions+1)
	if admin.StatusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "between 1 and 1024") {
		t.Fatalf("%d partitions: %v, want 400 naming the limit", tenants.MaxPartitions+1, err)
	}
}
