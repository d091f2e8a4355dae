package tenants

import (
	"maps"
)

// AuthAction is a permission a role can be granted on a namespace or topic.
type AuthAction string

// The permission actions Pulsar defines. Strata enforces produce and
// consume; the others are accepted and stored for compatibility.
const (
	ActionProduce   AuthAction = "produce"
	ActionConsume   AuthAction = "consume"
	ActionFunctions AuthAction = "functions"
	ActionSources   AuthAction = "sources"
	ActionSinks     AuthAction = "sinks"
	ActionPackages  AuthAction = "packages"
)

// KnownActions lists every valid AuthAction.
var KnownActions = []AuthAction{ActionProduce, ActionConsume, ActionFunctions, ActionSources, ActionSinks, ActionPackages}

// AuthPolicies holds a namespace's permissions (Pulsar's auth_policies).
type AuthPolicies struct {
	// NamespaceAuth maps a role to the actions it may perform on every topic
	// of the namespace.
	NamespaceAuth map[string][]AuthAction `json:"namespace_auth"`
	// DestinationAuth maps a full topic name to role → actions, granted on
	// that topic only.
	DestinationAuth map[string]map[string][]AuthAction `json:"destination_auth"`
	// SubscriptionAuthRoles maps a subscription name to the roles allowed to
	// consume from it; a subscription absent here is open to every role
	// with the consume action.
	SubscriptionAuthRoles map[string][]string `json:"subscription_auth_roles"`
}

// BacklogQuotaType says what a backlog quota limits.
type BacklogQuotaType string

// Backlog quota types.
const (
	// DestinationStorage limits the backlog's size in bytes (limitSize).
	DestinationStorage BacklogQuotaType = "destination_storage"
	// MessageAge limits the age of the oldest unacknowledged message in
	// seconds (limitTime).
	MessageAge BacklogQuotaType = "message_age"
)

// BacklogPolicy says what happens when a backlog quota is exceeded.
type BacklogPolicy string

// Backlog quota policies.
const (
	// ProducerRequestHold holds producers' sends until there is room again.
	ProducerRequestHold BacklogPolicy = "producer_request_hold"
	// ProducerException fails producers with a quota-exceeded error.
	ProducerException BacklogPolicy = "producer_exception"
	// ConsumerBacklogEviction moves the slowest cursors forward, dropping
	// the oldest backlog.
	ConsumerBacklogEviction BacklogPolicy = "consumer_backlog_eviction"
)

// BacklogQuota is one backlog limit (Pulsar's BacklogQuota).
type BacklogQuota struct {
	// LimitSize is the backlog size limit in bytes; -1 means no limit.
	LimitSize int64 `json:"limitSize"`
	// LimitTime is the message age limit in seconds; -1 means no limit.
	LimitTime int64 `json:"limitTime"`
	// Policy is what happens when the limit is exceeded.
	Policy BacklogPolicy `json:"policy"`
	// Limit is the deprecated name of LimitSize, accepted on input only:
	// when set and LimitSize is 0, it becomes LimitSize.
	Limit *int64 `json:"limit,omitempty"`
}

// PersistencePolicies sets the BookKeeper-style replication of a
// namespace's ledgers (Pulsar's PersistencePolicies).
type PersistencePolicies struct {
	// BookkeeperEnsemble (E) is the number of bookies a ledger is striped over.
	BookkeeperEnsemble int `json:"bookkeeperEnsemble"`
	// BookkeeperWriteQuorum (Qw) is the number of copies of each entry.
	BookkeeperWriteQuorum int `json:"bookkeeperWriteQuorum"`
	// BookkeeperAckQuorum (Qa) is the number of copies that must be durable
	// before an entry is acknowledged. E ≥ Qw ≥ Qa ≥ 1.
	BookkeeperAckQuorum int `json:"bookkeeperAckQuorum"`
	// ManagedLedgerMaxMarkDeleteRate caps cursor persistence, in updates per
	// second per cursor; 0 means unthrottled.
	ManagedLedgerMaxMarkDeleteRate float64 `json:"managedLedgerMaxMarkDeleteRate"`
}

// RetentionPolicies keeps acknowledged data (Pulsar's RetentionPolicies).
// -1 means unlimited, 0 means no retention; setting one limit to 0 and the
// other to a non-zero value is rejected (use -1 to ignore one limit).
type RetentionPolicies struct {
	// RetentionTimeInMinutes keeps acknowledged data this long.
	RetentionTimeInMinutes int `json:"retentionTimeInMinutes"`
	// RetentionSizeInMB keeps up to this many megabytes of acknowledged data
	// per topic.
	RetentionSizeInMB int64 `json:"retentionSizeInMB"`
}

// PublishRate limits producers per topic (Pulsar's PublishRate). -1 or 0
// means no limit.
type PublishRate struct {
	// PublishThrottlingRateInMsg is the maximum messages per second.
	PublishThrottlingRateInMsg int `json:"publishThrottlingRateInMsg"`
	// PublishThrottlingRateInByte is the maximum bytes per second.
	PublishThrottlingRateInByte int64 `json:"publishThrottlingRateInByte"`
}

// DispatchRate limits delivery to consumers (Pulsar's DispatchRate), per
// topic or per subscription. -1 or 0 means no limit.
type DispatchRate struct {
	// DispatchThrottlingRateInMsg is the maximum messages per period.
	DispatchThrottlingRateInMsg int `json:"dispatchThrottlingRateInMsg"`
	// DispatchThrottlingRateInByte is the maximum bytes per period.
	DispatchThrottlingRateInByte int64 `json:"dispatchThrottlingRateInByte"`
	// RelativeToPublishRate makes the limits relative to the publish rate.
	RelativeToPublishRate bool `json:"relativeToPublishRate,omitempty"`
	// RatePeriodInSecond is the period the limits apply to; 1 when 0 or absent.
	RatePeriodInSecond int `json:"ratePeriodInSecond"`
}

// SubscribeRate limits how often a consumer may subscribe (Pulsar's
// SubscribeRate). Stored, not enforced yet.
type SubscribeRate struct {
	// SubscribeThrottlingRatePerConsumer is the maximum subscribes per period.
	SubscribeThrottlingRatePerConsumer int `json:"subscribeThrottlingRatePerConsumer"`
	// RatePeriodInSecond is the period; 30 when 0 or absent.
	RatePeriodInSecond int `json:"ratePeriodInSecond"`
}

// BundlesData splits a namespace's 32-bit hash range into bundles, the unit
// of topic ownership (Pulsar's BundlesData).
type BundlesData struct {
	// Boundaries are NumBundles+1 ascending hex values from "0x00000000" to
	// "0xffffffff".
	Boundaries []string `json:"boundaries"`
	// NumBundles is the number of bundles.
	NumBundles int `json:"numBundles"`
}

// AutoTopicCreationOverride overrides the broker's auto topic creation for a
// namespace (Pulsar's autoTopicCreationOverride). Stored, enforced by brokers.
type AutoTopicCreationOverride struct {
	// AllowAutoTopicCreation enables creating topics on first use.
	AllowAutoTopicCreation bool `json:"allowAutoTopicCreation"`
	// TopicType is "non-partitioned" or "partitioned".
	TopicType string `json:"topicType"`
	// DefaultNumPartitions is the partition count of auto-created
	// partitioned topics.
	DefaultNumPartitions *int `json:"defaultNumPartitions,omitempty"`
}

// Policies are a namespace's policies, stored at /namespaces/{t}/{ns} and
// returned by GET /admin/v2/namespaces/{t}/{ns}, with Pulsar's JSON names.
//
// A nil pointer, nil map or missing map entry means "not set: use the
// broker's default". Per-cluster rate maps (publishMaxMessageRate,
// topicDispatchRate, subscriptionDispatchRate, replicatorDispatchRate,
// clusterSubscribeRate) are keyed by cluster name as in Pulsar; the admin
// API reads and writes the entry of the serving broker's own cluster, and
// brokers enforce that entry (see PublishRateFor and friends).
type Policies struct {
	// AuthPolicies holds the namespace's permissions.
	AuthPolicies AuthPolicies `json:"auth_policies"`
	// ReplicationClusters are the clusters the namespace's topics are
	// served and replicated in; a subset of the tenant's allowed clusters.
	ReplicationClusters []string `json:"replication_clusters"`
	// Bundles splits the namespace's hash range; set when it is created.
	Bundles *BundlesData `json:"bundles,omitempty"`
	// BacklogQuotaMap holds the backlog quotas by type.
	BacklogQuotaMap map[BacklogQuotaType]BacklogQuota `json:"backlog_quota_map"`
	// TopicDispatchRate is the per-topic dispatch limit, by cluster.
	TopicDispatchRate map[string]DispatchRate `json:"topicDispatchRate,omitempty"`
	// SubscriptionDispatchRate is the per-subscription dispatch limit, by cluster.
	SubscriptionDispatchRate map[string]DispatchRate `json:"subscriptionDispatchRate,omitempty"`
	// ReplicatorDispatchRate is the per-replicator dispatch limit, by
	// cluster (stored, not enforced yet).
	ReplicatorDispatchRate map[string]DispatchRate `json:"replicatorDispatchRate,omitempty"`
	// PublishMaxMessageRate is the per-topic publish limit, by cluster.
	PublishMaxMessageRate map[string]PublishRate `json:"publishMaxMessageRate,omitempty"`
	// ClusterSubscribeRate is the subscribe limit, by cluster (stored, not
	// enforced yet).
	ClusterSubscribeRate map[string]SubscribeRate `json:"clusterSubscribeRate,omitempty"`
	// Persistence sets E/Qw/Qa for new ledgers.
	Persistence *PersistencePolicies `json:"persistence,omitempty"`
	// RetentionPolicies keeps acknowledged data.
	RetentionPolicies *RetentionPolicies `json:"retention_policies,omitempty"`
	// MessageTTLInSeconds expires unacknowledged messages older than this;
	// 0 disables expiry.
	MessageTTLInSeconds *int `json:"message_ttl_in_seconds,omitempty"`
	// DeduplicationEnabled turns producer deduplication on or off.
	DeduplicationEnabled *bool `json:"deduplicationEnabled,omitempty"`
	// MaxProducersPerTopic limits producers per topic; 0 means unlimited.
	MaxProducersPerTopic *int `json:"max_producers_per_topic,omitempty"`
	// MaxConsumersPerTopic limits consumers per topic; 0 means unlimited.
	MaxConsumersPerTopic *int `json:"max_consumers_per_topic,omitempty"`
	// MaxConsumersPerSubscription limits consumers per subscription; 0
	// means unlimited.
	MaxConsumersPerSubscription *int `json:"max_consumers_per_subscription,omitempty"`
	// MaxSubscriptionsPerTopic limits durable subscriptions per topic; 0
	// means unlimited.
	MaxSubscriptionsPerTopic *int `json:"max_subscriptions_per_topic,omitempty"`
	// MaxTopicsPerNamespace limits the topics of the namespace (a
	// partitioned topic counts its partitions); 0 means unlimited.
	MaxTopicsPerNamespace *int `json:"max_topics_per_namespace,omitempty"`
	// CompactionThreshold triggers compaction above this backlog size in
	// bytes; 0 disables it (stored, not enforced yet).
	CompactionThreshold *int64 `json:"compaction_threshold,omitempty"`
	// OffloadThreshold offloads closed ledgers once a topic keeps more than
	// this many bytes on bookies; 0 offloads as soon as possible, -1 disables.
	OffloadThreshold *int64 `json:"offload_threshold,omitempty"`
	// OffloadThresholdInSeconds offloads closed ledgers older than this; -1 disables.
	OffloadThresholdInSeconds *int64 `json:"offload_threshold_in_seconds,omitempty"`
	// OffloadDeletionLagMs is how long an offloaded ledger stays on bookies.
	OffloadDeletionLagMs *int64 `json:"offload_deletion_lag_ms,omitempty"`
	// SubscriptionAuthMode is "None" (default) or "Prefix": with Prefix a
	// role may only use subscriptions whose name starts with the role.
	SubscriptionAuthMode string `json:"subscription_auth_mode,omitempty"`
	// AutoTopicCreationOverride overrides broker auto topic creation.
	AutoTopicCreationOverride *AutoTopicCreationOverride `json:"autoTopicCreationOverride,omitempty"`
	// EncryptionRequired rejects unencrypted messages (stored, not enforced yet).
	EncryptionRequired bool `json:"encryption_required,omitempty"`
	// SchemaValidationEnforced refuses producers that declare no schema on
	// topics that have one.
	SchemaValidationEnforced bool `json:"schema_validation_enforced,omitempty"`
	// SchemaCompatibilityStrategy checks new schema versions of the
	// namespace's topics (tenants/schema strategies; "" or UNDEFINED: the
	// broker default, FULL).
	SchemaCompatibilityStrategy string `json:"schema_compatibility_strategy,omitempty"`
	// SchemaAutoUpdateCompatibilityStrategy is Pulsar's legacy schema
	// auto-update strategy (stored, not enforced yet).
	SchemaAutoUpdateCompatibilityStrategy string `json:"schema_auto_update_compatibility_strategy,omitempty"`
	// IsAllowAutoUpdateSchema lets producers and consumers register new
	// schema versions (nil: true, as in Pulsar).
	IsAllowAutoUpdateSchema *bool `json:"is_allow_auto_update_schema,omitempty"`
	// AntiAffinityGroup names the namespace's anti-affinity group (stored,
	// not enforced yet).
	AntiAffinityGroup string `json:"antiAffinityGroup,omitempty"`
	// LatencyStatsSampleRate is accepted for compatibility and ignored.
	LatencyStatsSampleRate map[string]int `json:"latency_stats_sample_rate,omitempty"`
	// Deleted is set while the namespace is being deleted; brokers must not
	// create topics in it.
	Deleted bool `json:"deleted"`
}

// PublishRateFor returns the publish rate set for cluster.
func (p *Policies) PublishRateFor(cluster string) (PublishRate, bool) {
	r, ok := p.PublishMaxMessageRate[cluster]
	return r, ok
}

// TopicDispatchRateFor returns the per-topic dispatch rate set for cluster.
func (p *Policies) TopicDispatchRateFor(cluster string) (DispatchRate, bool) {
	r, ok := p.TopicDispatchRate[cluster]
	return r, ok
}

// ReplicatorDispatchRateFor returns the rate each replicator of cluster's
// topics may send to another cluster at.
func (p *Policies) ReplicatorDispatchRateFor(cluster string) (DispatchRate, bool) {
	r, ok := p.ReplicatorDispatchRate[cluster]
	return r, ok
}

// SubscriptionDispatchRateFor returns the per-subscription dispatch rate set
// for cluster.
func (p *Policies) SubscriptionDispatchRateFor(cluster string) (DispatchRate, bool) {
	r, ok := p.SubscriptionDispatchRate[cluster]
	return r, ok
}

// Actions returns the actions role holds on topic (a full topic name):
// namespace-wide grants plus grants on that topic.
func (p *Policies) Actions(role, topic string) []AuthAction {
	var out []AuthAction
	out = append(out, p.AuthPolicies.NamespaceAuth[role]...)
	if t, ok := p.AuthPolicies.DestinationAuth[topic]; ok {
		out = append(out, t[role]...)
	}
	return out
}

// Clone returns a deep copy that shares nothing with p.
func (p Policies) Clone() Policies {
	c := p
	c.AuthPolicies.NamespaceAuth = cloneMapOfSlices(p.AuthPolicies.NamespaceAuth)
	if p.AuthPolicies.DestinationAuth != nil {
		c.AuthPolicies.DestinationAuth = make(map[string]map[string][]AuthAction, len(p.AuthPolicies.DestinationAuth))
		for k, v := range p.AuthPolicies.DestinationAuth {
			c.AuthPolicies.DestinationAuth[k] = cloneMapOfSlices(v)
		}
	}
	c.AuthPolicies.SubscriptionAuthRoles = cloneMapOfSlices(p.AuthPolicies.SubscriptionAuthRoles)
	c.ReplicationClusters = cloneSlice(p.ReplicationClusters)
	if p.Bundles != nil {
		b := *p.Bundles
		b.Boundaries = cloneSlice(b.Boundaries)
		c.Bundles = &b
	}
	c.BacklogQuotaMap = maps.Clone(p.BacklogQuotaMap)
	for k, q := range c.BacklogQuotaMap {
		q.Limit = clonePtr(q.Limit)
		c.BacklogQuotaMap[k] = q
	}
	c.TopicDispatchRate = maps.Clone(p.TopicDispatchRate)
	c.SubscriptionDispatchRate = maps.Clone(p.SubscriptionDispatchRate)
	c.ReplicatorDispatchRate = maps.Clone(p.ReplicatorDispatchRate)
	c.PublishMaxMessageRate = maps.Clone(p.PublishMaxMessageRate)
	c.ClusterSubscribeRate = maps.Clone(p.ClusterSubscribeRate)
	c.LatencyStatsSampleRate = maps.Clone(p.LatencyStatsSampleRate)
	if p.Persistence != nil {
		v := *p.Persistence
		c.Persistence = &v
	}
	if p.RetentionPolicies != nil {
		v := *p.RetentionPolicies
		c.RetentionPolicies = &v
	}
	if p.AutoTopicCreationOverride != nil {
		v := *p.AutoTopicCreationOverride
		v.DefaultNumPartitions = clonePtr(v.DefaultNumPartitions)
		c.AutoTopicCreationOverride = &v
	}
	c.MessageTTLInSeconds = clonePtr(p.MessageTTLInSeconds)
	c.DeduplicationEnabled = clonePtr(p.DeduplicationEnabled)
	c.MaxProducersPerTopic = clonePtr(p.MaxProducersPerTopic)
	c.MaxConsumersPerTopic = clonePtr(p.MaxConsumersPerTopic)
	c.MaxConsumersPerSubscription = clonePtr(p.MaxConsumersPerSubscription)
	c.MaxSubscriptionsPerTopic = clonePtr(p.MaxSubscriptionsPerTopic)
	c.MaxTopicsPerNamespace = clonePtr(p.MaxTopicsPerNamespace)
	c.CompactionThreshold = clonePtr(p.CompactionThreshold)
	c.OffloadThreshold = clonePtr(p.OffloadThreshold)
	c.OffloadThresholdInSeconds = clonePtr(p.OffloadThresholdInSeconds)
	c.OffloadDeletionLagMs = clonePtr(p.OffloadDeletionLagMs)
	c.IsAllowAutoUpdateSchema = clonePtr(p.IsAllowAutoUpdateSchema)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneMapOfSlices[K comparable, V any](m map[K][]V) map[K][]V {
	if m == nil {
		return nil
	}
	out := make(map[K][]V, len(m))
	for k, v := range m {
		out[k] = cloneSlice(v)
	}
	return out
}
