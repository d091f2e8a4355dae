package tenants

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testutil"
)

func TestTopicPoliciesApply(t *testing.T) {
	ns := Policies{MaxProducersPerTopic: ptr(5), MessageTTLInSeconds: ptr(60),
		PublishMaxMessageRate: map[string]PublishRate{"east": {PublishThrottlingRateInMsg: 10}}}
	tp := TopicPolicies{MaxProducersPerTopic: ptr(1), PublishRate: &PublishRate{PublishThrottlingRateInMsg: 100},
		DispatchRate: &DispatchRate{DispatchThrottlingRateInMsg: 7, RatePeriodInSecond: 1}}
	got := tp.Apply(ns, "local")
	if *got.MaxProducersPerTopic != 1 || *got.MessageTTLInSeconds != 60 {
		t.Fatalf("overlay: max producers %d, ttl %d", *got.MaxProducersPerTopic, *got.MessageTTLInSeconds)
	}
	if r, _ := got.PublishRateFor("local"); r.PublishThrottlingRateInMsg != 100 {
		t.Fatalf("publish rate for local: %+v", r)
	}
	if r, _ := got.PublishRateFor("east"); r.PublishThrottlingRateInMsg != 10 {
		t.Fatalf("publish rate for east changed: %+v", r)
	}
	if r, ok := got.TopicDispatchRateFor("local"); !ok || r.DispatchThrottlingRateInMsg != 7 {
		t.Fatalf("dispatch rate: %+v %v", r, ok)
	}
	// The namespace's policies are not modified.
	if *ns.MaxProducersPerTopic != 5 || len(ns.PublishMaxMessageRate) != 1 {
		t.Fatalf("namespace policies modified: %+v", ns)
	}
}

func TestTopicPoliciesStoreAndCache(t *testing.T) {
	s, md := newTestStore(t)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, "acme", TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateNamespace(ctx, naming.MustParseNamespace("acme/app"), Policies{}); err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(ctx, md, CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := naming.MustParseTopic("persistent://acme/app/orders")
	if _, err := s.UpdateTopicPolicies(ctx, naming.MustParseTopic("persistent://acme/none/orders"), func(*TopicPolicies) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("policies in a missing namespace: %v", err)
	}
	if _, err := s.UpdateTopicPolicies(ctx, topic, func(p *TopicPolicies) error { p.MaxConsumersPerTopic = ptr(-2); return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative max consumers: %v", err)
	}
	if _, err := s.UpdateTopicPolicies(ctx, topic, func(p *TopicPolicies) error {
		p.DispatchRate = &DispatchRate{DispatchThrottlingRateInMsg: 3}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTopicPolicies(ctx, topic)
	if err != nil || got.DispatchRate == nil || got.DispatchRate.RatePeriodInSecond != 1 {
		t.Fatalf("stored %+v, %v (want the period normalized to 1 s)", got, err)
	}
	// A partition sees its partitioned topic's policies.
	testutil.WaitFor(t, 5*time.Second, func() error {
		tp, ok := c.TopicPolicies(topic.Partition(3))
		if !ok || tp.DispatchRate == nil || tp.DispatchRate.DispatchThrottlingRateInMsg != 3 {
			return fmt.Errorf("cache: %+v %v", tp, ok)
		}
		return nil
	})
	// Clearing the last field deletes the key.
	if _, err := s.UpdateTopicPolicies(ctx, topic, func(p *TopicPolicies) error { p.DispatchRate = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := md.Get(ctx, TopicPoliciesKey(topic)); err == nil {
		t.Fatal("empty topic policies left a key behind")
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if _, ok := c.TopicPolicies(topic); ok {
			return errors.New("cache still has the policies")
		}
		return nil
	})
}
