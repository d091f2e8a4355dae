package admin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
)

// policyRoundTrip checks that a topic policy reads nil, then set's value
// (want, as the broker stores it), then nil again once removed.
func policyRoundTrip[T any](t *testing.T, name, topic string, v, want T,
	set func(context.Context, string, T) error,
	get func(context.Context, string) (*T, error),
	remove func(context.Context, string) error) {
	t.Helper()
	ctx := context.Background()
	got, err := get(ctx, topic)
	check(t, "get unset "+name, err)
	if got != nil {
		t.Fatalf("unset %s = %#v, want nil", name, *got)
	}
	check(t, "set "+name, set(ctx, topic, v))
	got, err = get(ctx, topic)
	check(t, "get "+name, err)
	if got == nil {
		t.Fatalf("%s is nil after set", name)
	}
	testutil.Equal(t, name, *got, want)
	check(t, "remove "+name, remove(ctx, topic))
	got, err = get(ctx, topic)
	check(t, "get removed "+name, err)
	if got != nil {
		t.Fatalf("removed %s = %#v, want nil", name, *got)
	}
	check(t, "remove unset "+name, remove(ctx, topic))
}

func testTopicPolicies(t *testing.T, c *admin.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp := c.Topics()
	const topic = "public/default/policies"

	policyRoundTrip(t, "deduplication", topic, true, true, tp.SetDeduplication, tp.GetDeduplication, tp.RemoveDeduplication)
	policyRoundTrip(t, "deduplication off", topic, false, false, tp.SetDeduplication, tp.GetDeduplication, tp.RemoveDeduplication)
	pr := tenants.PublishRate{PublishThrottlingRateInMsg: 1000, PublishThrottlingRateInByte: 10 << 20}
	policyRoundTrip(t, "publish rate", topic, pr, pr, tp.SetPublishRate, tp.GetPublishRate, tp.RemovePublishRate)
	dr := tenants.DispatchRate{DispatchThrottlingRateInMsg: 500, DispatchThrottlingRateInByte: -1, RatePeriodInSecond: 2}
	policyRoundTrip(t, "dispatch rate", topic, dr, dr, tp.SetDispatchRate, tp.GetDispatchRate, tp.RemoveDispatchRate)
	// A period of 0 is stored as 1 s.
	sdr := tenants.DispatchRate{DispatchThrottlingRateInMsg: -1, DispatchThrottlingRateInByte: 1 << 20, RelativeToPublishRate: true}
	sdrWant := sdr
	sdrWant.RatePeriodInSecond = 1
	policyRoundTrip(t, "subscription dispatch rate", topic, sdr, sdrWant, tp.SetSubscriptionDispatchRate, tp.GetSubscriptionDispatchRate, tp.RemoveSubscriptionDispatchRate)
	policyRoundTrip(t, "max producers", topic, 3, 3, tp.SetMaxProducers, tp.GetMaxProducers, tp.RemoveMaxProducers)
	policyRoundTrip(t, "max consumers", topic, 4, 4, tp.SetMaxConsumers, tp.GetMaxConsumers, tp.RemoveMaxConsumers)
	policyRoundTrip(t, "max consumers per subscription", topic, 5, 5, tp.SetMaxConsumersPerSubscription, tp.GetMaxConsumersPerSubscription, tp.RemoveMaxConsumersPerSubscription)
	policyRoundTrip(t, "message ttl", topic, 3600, 3600, tp.SetMessageTTL, tp.GetMessageTTL, tp.RemoveMessageTTL)

	// Policies are independent fields; a partition reads its partitioned
	// topic's, and every name form reaches the same topic.
	check(t, "set ttl", tp.SetMessageTTL(ctx, topic, 60))
	check(t, "set max producers", tp.SetMaxProducers(ctx, "persistent://"+topic, 7))
	ttl, err := tp.GetMessageTTL(ctx, topic+"-partition-1")
	check(t, "ttl of a partition", err)
	testutil.Equal(t, "ttl of a partition", *ttl, 60)
	mp, err := tp.GetMaxProducers(ctx, topic)
	check(t, "max producers", err)
	testutil.Equal(t, "max producers", *mp, 7)
	check(t, "remove ttl", tp.RemoveMessageTTL(ctx, topic))
	mp, err = tp.GetMaxProducers(ctx, topic)
	check(t, "max producers after removing the ttl", err)
	testutil.Equal(t, "max producers after removing the ttl", *mp, 7)
	check(t, "remove max producers", tp.RemoveMaxProducers(ctx, topic))

	// Invalid values are refused with the reason, and change nothing.
	wantErr(t, "negative max consumers", tp.SetMaxConsumers(ctx, topic, -1), http.StatusBadRequest, "must be between 0 and 2147483647")
	wantErr(t, "bad dispatch period", tp.SetDispatchRate(ctx, topic, tenants.DispatchRate{DispatchThrottlingRateInMsg: 1, RatePeriodInSecond: -2}),
		http.StatusBadRequest, "ratePeriodInSecond")
	mc, err := tp.GetMaxConsumers(ctx, topic)
	check(t, "max consumers after the refusal", err)
	if mc != nil {
		t.Fatalf("max consumers after the refusal = %d, want nil", *mc)
	}
	_, err = tp.GetMessageTTL(ctx, "public/nope/t")
	wantErr(t, "ttl in a missing namespace", err, http.StatusNotFound, "public/nope")
	_, err = tp.GetMessageTTL(ctx, "a/b/c/d")
	if err == nil || admin.StatusCode(err) != 0 {
		t.Fatalf("bad topic name: got %v, want a local error", err)
	}
}
