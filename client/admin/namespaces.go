package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
)

// Namespaces manages namespaces and their policies:
// /admin/v2/namespaces/{tenant}/{namespace}/...
//
// A Get of a policy that is not set returns nil (the broker default applies).
type Namespaces struct{ c *Client }

// Namespaces returns the namespace operations.
func (c *Client) Namespaces() *Namespaces { return &Namespaces{c} }

// nsPath returns /admin/v2/namespaces/{tenant}/{ns}{suffix}.
func nsPath(namespace, suffix string) (string, error) {
	ns, err := naming.ParseNamespace(namespace)
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	return adminPrefix + "/namespaces/" + ns.String() + suffix, nil
}

// do sends a request about namespace ns.
func (r *Namespaces) do(ctx context.Context, method, ns, suffix string, q url.Values, in, out any) (bool, error) {
	p, err := nsPath(ns, suffix)
	if err != nil {
		return false, err
	}
	return r.c.Do(ctx, method, p, q, in, out)
}

// getOpt reads an optional value of namespace ns: nil when it is not set.
func getOpt[T any](ctx context.Context, r *Namespaces, ns, suffix string) (*T, error) {
	var v T
	ok, err := r.do(ctx, http.MethodGet, ns, suffix, nil, nil, &v)
	if err != nil || !ok {
		return nil, err
	}
	return &v, nil
}

func (r *Namespaces) send(ctx context.Context, method, ns, suffix string, in any) error {
	_, err := r.do(ctx, method, ns, suffix, nil, in, nil)
	return err
}

// List returns the namespaces of tenant, as "tenant/ns".
func (r *Namespaces) List(ctx context.Context, tenant string) ([]string, error) {
	if err := naming.ValidateTenant(tenant); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	var out []string
	_, err := r.c.Do(ctx, http.MethodGet, adminPrefix+"/namespaces/"+tenant, nil, nil, &out)
	return out, err
}

// Topics returns the namespace's topics (partitions included), as full names.
func (r *Namespaces) Topics(ctx context.Context, ns string) ([]string, error) {
	var out []string
	_, err := r.do(ctx, http.MethodGet, ns, "/topics", nil, nil, &out)
	return out, err
}

// Create creates a namespace with optional initial policies (nil for none:
// 4 bundles and the broker's cluster). Set policies.Bundles to
// &tenants.BundlesData{NumBundles: n} to choose the number of bundles.
func (r *Namespaces) Create(ctx context.Context, ns string, policies *tenants.Policies) error {
	var body any
	if policies != nil {
		body = policies
	}
	return r.send(ctx, http.MethodPut, ns, "", body)
}

// Delete removes a namespace (409 while it has topics).
func (r *Namespaces) Delete(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "", nil)
}

// Policies returns every policy of the namespace.
func (r *Namespaces) Policies(ctx context.Context, ns string) (*tenants.Policies, error) {
	var p tenants.Policies
	if _, err := r.do(ctx, http.MethodGet, ns, "", nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// SetRetention keeps acknowledged messages for the given time and size
// (-1: unlimited).
func (r *Namespaces) SetRetention(ctx context.Context, ns string, p tenants.RetentionPolicies) error {
	return r.send(ctx, http.MethodPost, ns, "/retention", p)
}

// GetRetention returns the retention policy, nil when not set.
func (r *Namespaces) GetRetention(ctx context.Context, ns string) (*tenants.RetentionPolicies, error) {
	return getOpt[tenants.RetentionPolicies](ctx, r, ns, "/retention")
}

// RemoveRetention unsets the retention policy.
func (r *Namespaces) RemoveRetention(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/retention", nil)
}

// SetMessageTTL expires unacknowledged messages older than ttlSeconds (0: never).
func (r *Namespaces) SetMessageTTL(ctx context.Context, ns string, ttlSeconds int) error {
	return r.send(ctx, http.MethodPost, ns, "/messageTTL", ttlSeconds)
}

// GetMessageTTL returns the message TTL in seconds, nil when not set.
func (r *Namespaces) GetMessageTTL(ctx context.Context, ns string) (*int, error) {
	return getOpt[int](ctx, r, ns, "/messageTTL")
}

// RemoveMessageTTL unsets the message TTL.
func (r *Namespaces) RemoveMessageTTL(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/messageTTL", nil)
}

func quotaQuery(t tenants.BacklogQuotaType) url.Values {
	if t == "" {
		t = tenants.DestinationStorage
	}
	return url.Values{"backlogQuotaType": {string(t)}}
}

// SetBacklogQuota sets the backlog quota of type t (destination_storage
// when empty).
func (r *Namespaces) SetBacklogQuota(ctx context.Context, ns string, t tenants.BacklogQuotaType, q tenants.BacklogQuota) error {
	_, err := r.do(ctx, http.MethodPost, ns, "/backlogQuota", quotaQuery(t), q, nil)
	return err
}

// GetBacklogQuotaMap returns the backlog quotas by type.
func (r *Namespaces) GetBacklogQuotaMap(ctx context.Context, ns string) (map[tenants.BacklogQuotaType]tenants.BacklogQuota, error) {
	out := map[tenants.BacklogQuotaType]tenants.BacklogQuota{}
	_, err := r.do(ctx, http.MethodGet, ns, "/backlogQuotaMap", nil, nil, &out)
	return out, err
}

// RemoveBacklogQuota unsets the backlog quota of type t (destination_storage
// when empty).
func (r *Namespaces) RemoveBacklogQuota(ctx context.Context, ns string, t tenants.BacklogQuotaType) error {
	_, err := r.do(ctx, http.MethodDelete, ns, "/backlogQuota", quotaQuery(t), nil, nil)
	return err
}

// SetPersistence sets the ensemble, write and ack quorums of new ledgers.
func (r *Namespaces) SetPersistence(ctx context.Context, ns string, p tenants.PersistencePolicies) error {
	return r.send(ctx, http.MethodPost, ns, "/persistence", p)
}

// GetPersistence returns the persistence policy, nil when not set.
func (r *Namespaces) GetPersistence(ctx context.Context, ns string) (*tenants.PersistencePolicies, error) {
	return getOpt[tenants.PersistencePolicies](ctx, r, ns, "/persistence")
}

// RemovePersistence unsets the persistence policy.
func (r *Namespaces) RemovePersistence(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/persistence", nil)
}

// SetOffloadThreshold offloads closed ledgers once a topic keeps more than
// bytes on bookies (0: as soon as possible, -1: never).
func (r *Namespaces) SetOffloadThreshold(ctx context.Context, ns string, bytes int64) error {
	return r.send(ctx, http.MethodPut, ns, "/offloadThreshold", bytes)
}

// GetOffloadThreshold returns the offload threshold in bytes, nil when not set.
func (r *Namespaces) GetOffloadThreshold(ctx context.Context, ns string) (*int64, error) {
	return getOpt[int64](ctx, r, ns, "/offloadThreshold")
}

// SetOffloadThresholdInSeconds offloads closed ledgers older than seconds (-1: never).
func (r *Namespaces) SetOffloadThresholdInSeconds(ctx context.Context, ns string, seconds int64) error {
	return r.send(ctx, http.MethodPut, ns, "/offloadThresholdInSeconds", seconds)
}

// GetOffloadThresholdInSeconds returns the time offload threshold, nil when not set.
func (r *Namespaces) GetOffloadThresholdInSeconds(ctx context.Context, ns string) (*int64, error) {
	return getOpt[int64](ctx, r, ns, "/offloadThresholdInSeconds")
}

// SetOffloadDeletionLag keeps offloaded ledgers on bookies for lagMs
// milliseconds before deleting them there.
func (r *Namespaces) SetOffloadDeletionLag(ctx context.Context, ns string, lagMs int64) error {
	return r.send(ctx, http.MethodPut, ns, "/offloadDeletionLagMs", lagMs)
}

// GetOffloadDeletionLag returns the deletion lag in milliseconds, nil when not set.
func (r *Namespaces) GetOffloadDeletionLag(ctx context.Context, ns string) (*int64, error) {
	return getOpt[int64](ctx, r, ns, "/offloadDeletionLagMs")
}

// ClearOffloadDeletionLag unsets the deletion lag (the broker default applies).
func (r *Namespaces) ClearOffloadDeletionLag(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/offloadDeletionLagMs", nil)
}

// SetCompactionThreshold stores the compaction threshold in bytes.
func (r *Namespaces) SetCompactionThreshold(ctx context.Context, ns string, bytes int64) error {
	return r.send(ctx, http.MethodPut, ns, "/compactionThreshold", bytes)
}

// GetCompactionThreshold returns the compaction threshold, nil when not set.
func (r *Namespaces) GetCompactionThreshold(ctx context.Context, ns string) (*int64, error) {
	return getOpt[int64](ctx, r, ns, "/compactionThreshold")
}

// SetClusters sets the namespace's replication clusters (non-empty, allowed
// by the tenant).
func (r *Namespaces) SetClusters(ctx context.Context, ns string, clusters []string) error {
	return r.send(ctx, http.MethodPost, ns, "/replication", clusters)
}

// GetClusters returns the namespace's replication clusters.
func (r *Namespaces) GetClusters(ctx context.Context, ns string) ([]string, error) {
	var out []string
	_, err := r.do(ctx, http.MethodGet, ns, "/replication", nil, nil, &out)
	return out, err
}

// SetDeduplication turns producer deduplication on or off.
func (r *Namespaces) SetDeduplication(ctx context.Context, ns string, enabled bool) error {
	return r.send(ctx, http.MethodPost, ns, "/deduplication", enabled)
}

// GetDeduplication returns whether deduplication is on, nil when not set.
func (r *Namespaces) GetDeduplication(ctx context.Context, ns string) (*bool, error) {
	return getOpt[bool](ctx, r, ns, "/deduplication")
}

// RemoveDeduplication unsets the deduplication policy.
func (r *Namespaces) RemoveDeduplication(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/deduplication", nil)
}

// Permissions returns the namespace-wide grants: role → actions.
func (r *Namespaces) Permissions(ctx context.Context, ns string) (map[string][]tenants.AuthAction, error) {
	out := map[string][]tenants.AuthAction{}
	_, err := r.do(ctx, http.MethodGet, ns, "/permissions", nil, nil, &out)
	return out, err
}

// GrantPermission sets the actions role may perform on every topic of the
// namespace (replacing earlier grants to role).
func (r *Namespaces) GrantPermission(ctx context.Context, ns, role string, actions []tenants.AuthAction) error {
	return r.send(ctx, http.MethodPost, ns, "/permissions/"+seg(role), actions)
}

// RevokePermission removes role's namespace-wide grant.
func (r *Namespaces) RevokePermission(ctx context.Context, ns, role string) error {
	return r.send(ctx, http.MethodDelete, ns, "/permissions/"+seg(role), nil)
}

// SubscriptionPermissions returns the roles allowed on each restricted
// subscription.
func (r *Namespaces) SubscriptionPermissions(ctx context.Context, ns string) (map[string][]string, error) {
	out := map[string][]string{}
	_, err := r.do(ctx, http.MethodGet, ns, "/permissions/subscription", nil, nil, &out)
	return out, err
}

// GrantSubscriptionPermission restricts subscription sub to roles.
func (r *Namespaces) GrantSubscriptionPermission(ctx context.Context, ns, sub string, roles []string) error {
	return r.send(ctx, http.MethodPost, ns, "/permissions/subscription/"+seg(sub), roles)
}

// RevokeSubscriptionPermission removes role from subscription sub's roles.
func (r *Namespaces) RevokeSubscriptionPermission(ctx context.Context, ns, sub, role string) error {
	return r.send(ctx, http.MethodDelete, ns, "/permissions/"+seg(sub)+"/"+seg(role), nil)
}

// SetSubscriptionAuthMode sets "None" or "Prefix".
func (r *Namespaces) SetSubscriptionAuthMode(ctx context.Context, ns, mode string) error {
	return r.send(ctx, http.MethodPost, ns, "/subscriptionAuthMode", mode)
}

// GetSubscriptionAuthMode returns "None" or "Prefix".
func (r *Namespaces) GetSubscriptionAuthMode(ctx context.Context, ns string) (string, error) {
	var out string
	_, err := r.do(ctx, http.MethodGet, ns, "/subscriptionAuthMode", nil, nil, &out)
	return out, err
}

// SetPublishRate limits publishing per topic (the serving cluster's entry).
func (r *Namespaces) SetPublishRate(ctx context.Context, ns string, rate tenants.PublishRate) error {
	return r.send(ctx, http.MethodPost, ns, "/publishRate", rate)
}

// GetPublishRate returns the publish rate, nil when not set.
func (r *Namespaces) GetPublishRate(ctx context.Context, ns string) (*tenants.PublishRate, error) {
	return getOpt[tenants.PublishRate](ctx, r, ns, "/publishRate")
}

// RemovePublishRate unsets the publish rate.
func (r *Namespaces) RemovePublishRate(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/publishRate", nil)
}

// SetDispatchRate limits dispatch per topic (the serving cluster's entry).
func (r *Namespaces) SetDispatchRate(ctx context.Context, ns string, rate tenants.DispatchRate) error {
	return r.send(ctx, http.MethodPost, ns, "/dispatchRate", rate)
}

// GetDispatchRate returns the per-topic dispatch rate, nil when not set.
func (r *Namespaces) GetDispatchRate(ctx context.Context, ns string) (*tenants.DispatchRate, error) {
	return getOpt[tenants.DispatchRate](ctx, r, ns, "/dispatchRate")
}

// RemoveDispatchRate unsets the per-topic dispatch rate.
func (r *Namespaces) RemoveDispatchRate(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/dispatchRate", nil)
}

// SetSubscriptionDispatchRate limits dispatch per subscription.
func (r *Namespaces) SetSubscriptionDispatchRate(ctx context.Context, ns string, rate tenants.DispatchRate) error {
	return r.send(ctx, http.MethodPost, ns, "/subscriptionDispatchRate", rate)
}

// GetSubscriptionDispatchRate returns the per-subscription dispatch rate,
// nil when not set.
func (r *Namespaces) GetSubscriptionDispatchRate(ctx context.Context, ns string) (*tenants.DispatchRate, error) {
	return getOpt[tenants.DispatchRate](ctx, r, ns, "/subscriptionDispatchRate")
}

// RemoveSubscriptionDispatchRate unsets the per-subscription dispatch rate.
func (r *Namespaces) RemoveSubscriptionDispatchRate(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/subscriptionDispatchRate", nil)
}

// SetReplicatorDispatchRate limits what each replicator of the namespace's
// topics sends to another cluster.
func (r *Namespaces) SetReplicatorDispatchRate(ctx context.Context, ns string, rate tenants.DispatchRate) error {
	return r.send(ctx, http.MethodPost, ns, "/replicatorDispatchRate", rate)
}

// GetReplicatorDispatchRate returns the replicator dispatch rate, nil when
// not set.
func (r *Namespaces) GetReplicatorDispatchRate(ctx context.Context, ns string) (*tenants.DispatchRate, error) {
	return getOpt[tenants.DispatchRate](ctx, r, ns, "/replicatorDispatchRate")
}

// RemoveReplicatorDispatchRate unsets the replicator dispatch rate.
func (r *Namespaces) RemoveReplicatorDispatchRate(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/replicatorDispatchRate", nil)
}

// SetMaxProducersPerTopic limits producers per topic (0: unlimited).
func (r *Namespaces) SetMaxProducersPerTopic(ctx context.Context, ns string, n int) error {
	return r.send(ctx, http.MethodPost, ns, "/maxProducersPerTopic", n)
}

// GetMaxProducersPerTopic returns the limit, nil when not set.
func (r *Namespaces) GetMaxProducersPerTopic(ctx context.Context, ns string) (*int, error) {
	return getOpt[int](ctx, r, ns, "/maxProducersPerTopic")
}

// RemoveMaxProducersPerTopic unsets the limit.
func (r *Namespaces) RemoveMaxProducersPerTopic(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/maxProducersPerTopic", nil)
}

// SetMaxSubscriptionsPerTopic limits durable subscriptions per topic (0: unlimited).
func (r *Namespaces) SetMaxSubscriptionsPerTopic(ctx context.Context, ns string, n int) error {
	return r.send(ctx, http.MethodPost, ns, "/maxSubscriptionsPerTopic", n)
}

// GetMaxSubscriptionsPerTopic returns the limit, nil when not set.
func (r *Namespaces) GetMaxSubscriptionsPerTopic(ctx context.Context, ns string) (*int, error) {
	return getOpt[int](ctx, r, ns, "/maxSubscriptionsPerTopic")
}

// RemoveMaxSubscriptionsPerTopic unsets the limit.
func (r *Namespaces) RemoveMaxSubscriptionsPerTopic(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/maxSubscriptionsPerTopic", nil)
}

// SetMaxTopicsPerNamespace limits topics of the namespace (0: unlimited).
func (r *Namespaces) SetMaxTopicsPerNamespace(ctx context.Context, ns string, n int) error {
	return r.send(ctx, http.MethodPost, ns, "/maxTopicsPerNamespace", n)
}

// GetMaxTopicsPerNamespace returns the limit, nil when not set.
func (r *Namespaces) GetMaxTopicsPerNamespace(ctx context.Context, ns string) (*int, error) {
	return getOpt[int](ctx, r, ns, "/maxTopicsPerNamespace")
}

// RemoveMaxTopicsPerNamespace unsets the limit.
func (r *Namespaces) RemoveMaxTopicsPerNamespace(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/maxTopicsPerNamespace", nil)
}

// SetMaxConsumersPerTopic limits consumers per topic (0: unlimited).
func (r *Namespaces) SetMaxConsumersPerTopic(ctx context.Context, ns string, n int) error {
	return r.send(ctx, http.MethodPost, ns, "/maxConsumersPerTopic", n)
}

// GetMaxConsumersPerTopic returns the limit, nil when not set.
func (r *Namespaces) GetMaxConsumersPerTopic(ctx context.Context, ns string) (*int, error) {
	return getOpt[int](ctx, r, ns, "/maxConsumersPerTopic")
}

// RemoveMaxConsumersPerTopic unsets the limit.
func (r *Namespaces) RemoveMaxConsumersPerTopic(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/maxConsumersPerTopic", nil)
}

// SetMaxConsumersPerSubscription limits consumers per subscription (0: unlimited).
func (r *Namespaces) SetMaxConsumersPerSubscription(ctx context.Context, ns string, n int) error {
	return r.send(ctx, http.MethodPost, ns, "/maxConsumersPerSubscription", n)
}

// GetMaxConsumersPerSubscription returns the limit, nil when not set.
func (r *Namespaces) GetMaxConsumersPerSubscription(ctx context.Context, ns string) (*int, error) {
	return getOpt[int](ctx, r, ns, "/maxConsumersPerSubscription")
}

// RemoveMaxConsumersPerSubscription unsets the limit.
func (r *Namespaces) RemoveMaxConsumersPerSubscription(ctx context.Context, ns string) error {
	return r.send(ctx, http.MethodDelete, ns, "/maxConsumersPerSubscription", nil)
}
