package admin

import (
	"context"
	"net/http"

	"github.com/strata-mq/strata/tenants"
)

// Topic-level policies (Pulsar's /admin/v2/persistent/{tenant}/{ns}/{topic}/...
// policy paths) override the namespace's field by field; a partitioned
// topic's apply to every partition. A Get returns nil when the topic does
// not set the policy (the namespace's applies); a Remove returns to it. The
// broker that owns the topic applies a change within its policy check
// interval.

// Topic policy paths, under the topic's admin path.
const (
	policyDeduplication               = "/deduplicationEnabled"
	policyPublishRate                 = "/publishRate"
	policyDispatchRate                = "/dispatchRate"
	policySubscriptionDispatchRate    = "/subscriptionDispatchRate"
	policyMaxProducers                = "/maxProducers"
	policyMaxConsumers                = "/maxConsumers"
	policyMaxConsumersPerSubscription = "/maxConsumersPerSubscription"
	policyMessageTTL                  = "/messageTTL"
	policyReplication                 = "/replication"
)

// SetReplicationClusters replaces the namespace's replication clusters for
// the topic.
func (r *Topics) SetReplicationClusters(ctx context.Context, topic string, clusters []string) error {
	return r.setPolicy(ctx, topic, policyReplication, clusters)
}

// GetReplicationClusters returns the topic's replication clusters, nil
// when the namespace's apply.
func (r *Topics) GetReplicationClusters(ctx context.Context, topic string) (*[]string, error) {
	return getPolicy[[]string](ctx, r, topic, policyReplication)
}

// RemoveReplicationClusters lets the namespace's replication clusters
// apply to the topic again.
func (r *Topics) RemoveReplicationClusters(ctx context.Context, topic string) error {
	return r.removePolicy(ctx, topic, policyReplication)
}

// setPolicy sets a topic policy to v.
func (r *Topics) setPolicy(ctx context.Context, topic, suffix string, v any) error {
	return r.do(ctx, http.MethodPost, topic, suffix, nil, v, nil)
}

// removePolicy unsets a topic policy.
func (r *Topics) removePolicy(ctx context.Context, topic, suffix string) error {
	return r.do(ctx, http.MethodDelete, topic, suffix, nil, nil, nil)
}

// getPolicy reads a topic policy: nil when the topic does not set it (the
// broker answers 204).
func getPolicy[T any](ctx context.Context, r *Topics, topic, suffix string) (*T, error) {
	p, err := topicPath(topic, suffix)
	if err != nil {
		return nil, err
	}
	var v T
	ok, err := r.c.Do(ctx, http.MethodGet, p, nil, nil, &v)
	if err != nil || !ok {
		return nil, err
	}
	return &v, nil
}

// SetDeduplication turns producer deduplication on or off for the topic.
func (r *Topics) SetDeduplication(ctx context.Context, topic string, enabled bool) error {
	return r.setPolicy(ctx, topic, policyDeduplication, enabled)
}

// GetDeduplication returns the topic's deduplication setting, nil when not set.
func (r *Topics) GetDeduplication(ctx context.Context, topic string) (*bool, error) {
	return getPolicy[bool](ctx, r, topic, policyDeduplication)
}

// RemoveDeduplication unsets the topic's deduplication setting.
func (r *Topics) RemoveDeduplication(ctx context.Context, topic string) error {
	return r.removePolicy(ctx, topic, policyDeduplication)
}

// SetPublishRate limits publishing on the topic (-1: no limit).
func (r *Topics) SetPublishRate(ctx context.Context, topic string, rate tenants.PublishRate) error {
	return r.setPolicy(ctx, topic, policyPublishRate, rate)
}

// GetPublishRate returns the topic's publish rate, nil when not set.
func (r *Topics) GetPublishRate(ctx context.Context, topic string) (*tenants.PublishRate, error) {
	return getPolicy[tenants.PublishRate](ctx, r, topic, policyPublishRate)
}

// RemovePublishRate unsets the topic's publish rate.
func (r *Topics) RemovePublishRate(ctx context.Context, topic string) error {
	return r.removePolicy(ctx, topic, policyPublishRate)
}

// SetDispatchRate limits dispatch on the topic, shared by its subscriptions
// (-1: no limit; a RatePeriodInSecond of 0 is stored as 1).
func (r *Topics) SetDispatchRate(ctx context.Context, topic string, rate tenants.DispatchRate) error {
	return r.setPolicy(ctx, topic, policyDispatchRate, rate)
}

// GetDispatchRate returns the topic's dispatch rate, nil when not set.
func (r *Topics) GetDispatchRate(ctx context.Context, topic string) (*tenants.DispatchRate, error) {
	return getPolicy[tenants.DispatchRate](ctx, r, topic, policyDispatchRate)
}

// RemoveDispatchRate unsets the topic's dispatch rate.
func (r *Topics) RemoveDispatchRate(ctx context.Context, topic string) error {
	return r.removePolicy(ctx, topic, policyDispatchRate)
}

// SetSubscriptionDispatchRate limits dispatch on each subscription of the
// topic (-1: no limit; a RatePeriodInSecond of 0 is stored as 1).
func (r *Topics) SetSubscriptionDispatchRate(ctx context.Context, topic string, rate tenants.DispatchRate) error {
	return r.setPolicy(ctx, topic, policySubscriptionDispatchRate, rate)
}

// GetSubscriptionDispatchRate returns the topic's per-subscription dispatch
// rate, nil when not set.
func (r *Topics) GetSubscriptionDispatchRate(ctx context.Context, topic string) (*tenants.DispatchRate, error) {
	return getPolicy[tenants.DispatchRate](ctx, r, topic, policySubscriptionDispatchRate)
}

// RemoveSubscriptionDispatchRate unsets the topic's per-subscription
// dispatch rate.
func (r *Topics) RemoveSubscriptionDispatchRate(ctx context.Context, topic string) error {
	return r.removePolicy(ctx, topic, policySubscriptionDispatchRate)
}

// SetMaxProducers limits the topic's producers (0: unlimited).
func (r *Topics) SetMaxProducers(ctx context.Context, topic string, n int) error {
	return r.setPolicy(ctx, topic, policyMaxProducers, n)
}

// GetMaxProducers returns the topic's producer limit, nil when not set.
func (r *Topics) GetMaxProducers(ctx context.Context, topic string) (*int, error) {
	return getPolicy[int](ctx, r, topic, policyMaxProducers)
}

// RemoveMaxProducers unsets the topic's producer limit.
func (r *Topics) RemoveMaxProducers(ctx context.Context, topic string) error {
	return r.removePolicy(ctx, topic, policyMaxProducers)
}

// SetMaxConsumers limits the topic's consumers (0: unlimited).
func (r *Topics) SetMaxConsumers(ctx context.Context, topic string, n int) error {
	return r.setPolicy(ctx, topic, policyMaxConsumers, n)
}

// GetMaxConsumers returns the topic's consumer limit, nil when not set.
func (r *Topics) GetMaxConsumers(ctx context.Context, topic string) (*int, error) {
	return getPolicy[int](ctx, r, topic, policyMaxConsumers)
}

// RemoveMaxConsumers unsets the topic's consumer limit.
func (r *Topics) RemoveMaxConsumers(ctx context.Context, topic string) error {
	return r.removePolicy(ctx, topic, policyMaxConsumers)
}

// SetMaxConsumersPerSubscription limits the consumers of each subscription
// of the topic (0: unlimited).
func (r *Topics) SetMaxConsumersPerSubscription(ctx context.Context, topic string, n int) error {
	return r.setPolicy(ctx, topic, policyMaxConsumersPerSubscription, n)
}

// GetMaxConsumersPerSubscription returns the topic's per-subscription
// consumer limit, nil when not set.
func (r *Topics) GetMaxConsumersPerSubscription(ctx context.Context, topic string) (*int, error) {
	return getPolicy[int](ctx, r, topic, policyMaxConsumersPerSubscription)
}

// RemoveMaxConsumersPerSubscription unsets the topic's per-subscription
// consumer limit.
func (r *Topics) RemoveMaxConsumersPerSubscription(ctx context.Context, topic string) error {
	return r.removePolicy(ctx, topic, policyMaxConsumersPerSubscription)
}

// SetMessageTTL expires the topic's unacknowledged messages older than
// seconds (0: never).
func (r *Topics) SetMessageTTL(ctx context.Context, topic string, seconds int) error {
	return r.setPolicy(ctx, topic, policyMessageTTL, seconds)
}

// GetMessageTTL returns the topic's message TTL in seconds, nil when not set.
func (r *Topics) GetMessageTTL(ctx context.Context, topic string) (*int, error) {
	return getPolicy[int](ctx, r, topic, policyMessageTTL)
}

// RemoveMessageTTL unsets the topic's message TTL.
func (r *Topics) RemoveMessageTTL(ctx context.Context, topic string) error {
	return r.removePolicy(ctx, topic, policyMessageTTL)
}
