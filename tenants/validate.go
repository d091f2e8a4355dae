package tenants

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-mq/strata/internal/naming"

	"github.com/strata-mq/strata/tenants/schema"
)

// MaxBundles is the largest number of bundles a namespace may have.
const MaxBundles = 1024

// DefaultBundles is the number of bundles of a new namespace when neither the
// request nor StoreOptions say otherwise (Pulsar's defaultNumberOfNamespaceBundles).
const DefaultBundles = 4

// Hash-range boundaries of a namespace's bundles.
const (
	FirstBoundary = "0x00000000"
	LastBoundary  = "0xffffffff"
)

// NewBundlesData splits the hash range into n equal bundles.
func NewBundlesData(n int) BundlesData {
	if n < 1 {
		n = 1
	}
	b := BundlesData{NumBundles: n, Boundaries: make([]string, 0, n+1)}
	step := (uint64(1) << 32) / uint64(n)
	for i := 0; i < n; i++ {
		b.Boundaries = append(b.Boundaries, fmt.Sprintf("0x%08x", uint64(i)*step))
	}
	b.Boundaries = append(b.Boundaries, LastBoundary)
	return b
}

var autoUpdateStrategies = []string{
	"AutoUpdateDisabled", "Backward", "Forward", "Full", "AlwaysCompatible",
	"BackwardTransitive", "ForwardTransitive", "FullTransitive",
}

// Normalize fills defaults and canonical forms in place: empty maps and lists
// instead of nil where Pulsar returns {} or [], de-duplicated cluster lists
// and actions, the deprecated backlog quota "limit" folded into limitSize,
// rate periods defaulted (1 s for dispatch rates, 30 s for subscribe rates),
// and bundle boundaries computed from numBundles when only the count is given.
func (p *Policies) Normalize() {
	ap := &p.AuthPolicies
	if ap.NamespaceAuth == nil {
		ap.NamespaceAuth = map[string][]AuthAction{}
	}
	for r, a := range ap.NamespaceAuth {
		ap.NamespaceAuth[r] = normalizeActions(a)
	}
	if ap.DestinationAuth == nil {
		ap.DestinationAuth = map[string]map[string][]AuthAction{}
	}
	for _, m := range ap.DestinationAuth {
		for r, a := range m {
			m[r] = normalizeActions(a)
		}
	}
	if ap.SubscriptionAuthRoles == nil {
		ap.SubscriptionAuthRoles = map[string][]string{}
	}
	for s, roles := range ap.SubscriptionAuthRoles {
		ap.SubscriptionAuthRoles[s] = dedupe(roles)
	}
	p.ReplicationClusters = dedupe(p.ReplicationClusters)
	if p.BacklogQuotaMap == nil {
		p.BacklogQuotaMap = map[BacklogQuotaType]BacklogQuota{}
	}
	for k, q := range p.BacklogQuotaMap {
		p.BacklogQuotaMap[k] = q.normalize()
	}
	for _, m := range []map[string]DispatchRate{p.TopicDispatchRate, p.SubscriptionDispatchRate, p.ReplicatorDispatchRate} {
		for k, r := range m {
			m[k] = r.normalize()
		}
	}
	for k, r := range p.ClusterSubscribeRate {
		if r.RatePeriodInSecond == 0 {
			r.RatePeriodInSecond = 30
		}
		p.ClusterSubscribeRate[k] = r
	}
	if b := p.Bundles; b != nil {
		if len(b.Boundaries) == 0 && b.NumBundles > 0 && b.NumBundles <= MaxBundles {
			*b = NewBundlesData(b.NumBundles)
		} else if b.NumBundles == 0 && len(b.Boundaries) > 1 {
			b.NumBundles = len(b.Boundaries) - 1
		}
	}
}

func (q BacklogQuota) normalize() BacklogQuota {
	if q.Limit != nil {
		if q.LimitSize == 0 {
			q.LimitSize = *q.Limit
		}
		q.Limit = nil
	}
	return q
}

func (r DispatchRate) normalize() DispatchRate {
	if r.RatePeriodInSecond == 0 {
		r.RatePeriodInSecond = 1
	}
	return r
}

// normalizeActions removes duplicates and orders known actions canonically.
func normalizeActions(a []AuthAction) []AuthAction {
	a = dedupe(a)
	slices.SortStableFunc(a, func(x, y AuthAction) int {
		return actionRank(x) - actionRank(y)
	})
	return a
}

func actionRank(a AuthAction) int {
	if i := slices.Index(KnownActions, a); i >= 0 {
		return i
	}
	return len(KnownActions)
}

// ValidateActions checks that every action is a known AuthAction.
func ValidateActions(actions []AuthAction) error {
	for _, a := range actions {
		if !slices.Contains(KnownActions, a) {
			return errorf(ErrInvalid, "unknown permission action %q (known: %s)", a, joinActions(KnownActions))
		}
	}
	return nil
}

func joinActions(a []AuthAction) string {
	s := make([]string, len(a))
	for i, v := range a {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// Validate checks every field's range and syntax. It returns an ErrInvalid
// error naming the offending field (by its JSON name), or ErrPrecondition
// when retention is smaller than the backlog quota (as Pulsar does). It does
// not check whether replication clusters exist or are allowed: Store does.
func (p *Policies) Validate() error {
	for role, actions := range p.AuthPolicies.NamespaceAuth {
		if err := validateGrant("auth_policies.namespace_auth", role, actions); err != nil {
			return err
		}
	}
	for topic, grants := range p.AuthPolicies.DestinationAuth {
		if _, err := naming.ParseTopic(topic); err != nil {
			return errorf(ErrInvalid, "auth_policies.destination_auth: %s", nameMsg(err))
		}
		for role, actions := range grants {
			if err := validateGrant("auth_policies.destination_auth", role, actions); err != nil {
				return err
			}
		}
	}
	for sub, roles := range p.AuthPolicies.SubscriptionAuthRoles {
		if err := ValidateSubscription(sub); err != nil {
			return errorf(ErrInvalid, "auth_policies.subscription_auth_roles: %v", err)
		}
		for _, r := range roles {
			if err := ValidateRole(r); err != nil {
				return errorf(ErrInvalid, "auth_policies.subscription_auth_roles[%q]: %v", sub, err)
			}
		}
	}
	for _, c := range p.ReplicationClusters {
		if err := naming.ValidateCluster(c); err != nil {
			return errorf(ErrInvalid, "replication_clusters: %s", nameMsg(err))
		}
	}
	if p.Bundles != nil {
		if err := p.Bundles.Validate(); err != nil {
			return err
		}
	}
	for typ, q := range p.BacklogQuotaMap {
		if err := ValidateBacklogQuotaType(typ); err != nil {
			return err
		}
		if err := q.Validate(); err != nil {
			return errorf(ErrInvalid, "backlog_quota_map[%s]: %v", typ, err)
		}
	}
	rateMaps := []struct {
		field string
		m     map[string]DispatchRate
	}{
		{"topicDispatchRate", p.TopicDispatchRate},
		{"subscriptionDispatchRate", p.SubscriptionDispatchRate},
		{"replicatorDispatchRate", p.ReplicatorDispatchRate},
	}
	for _, rm := range rateMaps {
		for c, r := range rm.m {
			if err := naming.ValidateCluster(c); err != nil {
				return errorf(ErrInvalid, "%s: %s", rm.field, nameMsg(err))
			}
			if err := r.Validate(); err != nil {
				return errorf(ErrInvalid, "%s[%s]: %v", rm.field, c, err)
			}
		}
	}
	for c, r := range p.PublishMaxMessageRate {
		if err := naming.ValidateCluster(c); err != nil {
			return errorf(ErrInvalid, "publishMaxMessageRate: %s", nameMsg(err))
		}
		if err := r.Validate(); err != nil {
			return errorf(ErrInvalid, "publishMaxMessageRate[%s]: %v", c, err)
		}
	}
	for c, r := range p.ClusterSubscribeRate {
		if err := naming.ValidateCluster(c); err != nil {
			return errorf(ErrInvalid, "clusterSubscribeRate: %s", nameMsg(err))
		}
		if r.SubscribeThrottlingRatePerConsumer < -1 {
			return errorf(ErrInvalid, "clusterSubscribeRate[%s]: subscribeThrottlingRatePerConsumer must be >= -1, got %d", c, r.SubscribeThrottlingRatePerConsumer)
		}
		if err := CheckRange("ratePeriodInSecond", int64(r.RatePeriodInSecond), 1, math.MaxInt32, ""); err != nil {
			return fmt.Errorf("clusterSubscribeRate[%s]: %w", c, err)
		}
	}
	if p.Persistence != nil {
		if err := p.Persistence.Validate(); err != nil {
			return err
		}
	}
	if p.RetentionPolicies != nil {
		if err := p.RetentionPolicies.Validate(); err != nil {
			return err
		}
	}
	checks := []struct {
		field    string
		v        *int64
		min, max int64
		hint     string
	}{
		{"message_ttl_in_seconds", intPtr64(p.MessageTTLInSeconds), 0, math.MaxInt32, "seconds; 0 disables expiry"},
		{"max_producers_per_topic", intPtr64(p.MaxProducersPerTopic), 0, math.MaxInt32, "0 means unlimited"},
		{"max_consumers_per_topic", intPtr64(p.MaxConsumersPerTopic), 0, math.MaxInt32, "0 means unlimited"},
		{"max_consumers_per_subscription", intPtr64(p.MaxConsumersPerSubscription), 0, math.MaxInt32, "0 means unlimited"},
		{"max_subscriptions_per_topic", intPtr64(p.MaxSubscriptionsPerTopic), 0, math.MaxInt32, "0 means unlimited"},
		{"max_topics_per_namespace", intPtr64(p.MaxTopicsPerNamespace), 0, math.MaxInt32, "0 means unlimited"},
		{"compaction_threshold", p.CompactionThreshold, 0, math.MaxInt64, "bytes; 0 disables compaction"},
		{"offload_threshold", p.OffloadThreshold, -1, math.MaxInt64, "bytes; -1 disables offload"},
		{"offload_threshold_in_seconds", p.OffloadThresholdInSeconds, -1, MaxDurationSeconds, "-1 disables offload"},
		{"offload_deletion_lag_ms", p.OffloadDeletionLagMs, 0, MaxDurationMillis, "remove the policy to use the broker default"},
	}
	for _, c := range checks {
		if c.v != nil {
			if err := CheckRange(c.field, *c.v, c.min, c.max, c.hint); err != nil {
				return err
			}
		}
	}
	switch p.SubscriptionAuthMode {
	case "", "None", "Prefix":
	default:
		return errorf(ErrInvalid, "subscription_auth_mode must be None or Prefix, got %q", p.SubscriptionAuthMode)
	}
	if o := p.AutoTopicCreationOverride; o != nil {
		switch o.TopicType {
		case "non-partitioned", "partitioned":
		default:
			return errorf(ErrInvalid, "autoTopicCreationOverride.topicType must be non-partitioned or partitioned, got %q", o.TopicType)
		}
		if o.DefaultNumPartitions != nil {
			if err := CheckRange("autoTopicCreationOverride.defaultNumPartitions", int64(*o.DefaultNumPartitions), 1, MaxPartitions, ""); err != nil {
				return err
			}
		}
		if o.TopicType == "partitioned" && o.AllowAutoTopicCreation && o.DefaultNumPartitions == nil {
			return errorf(ErrInvalid, "autoTopicCreationOverride.defaultNumPartitions is required for partitioned topics")
		}
	}
	if s := p.SchemaCompatibilityStrategy; s != "" && !slices.Contains(schema.Strategies, schema.Strategy(s)) {
		return errorf(ErrInvalid, "schema_compatibility_strategy %q is unknown (known: %v)", s, schema.Strategies)
	}
	if s := p.SchemaAutoUpdateCompatibilityStrategy; s != "" && !slices.Contains(autoUpdateStrategies, s) {
		return errorf(ErrInvalid, "schema_auto_update_compatibility_strategy %q is unknown (known: %s)", s, strings.Join(autoUpdateStrategies, ", "))
	}
	return p.checkRetentionCoversQuota()
}

// Upper bounds of the numbers policies carry. Counts and Pulsar's int
// fields are 32-bit; durations must fit a time.Duration (about 292 years)
// once converted, and sizes in MB must fit int64 bytes.
const (
	MaxDurationSeconds = math.MaxInt64 / int64(time.Second)
	MaxDurationMinutes = math.MaxInt64 / int64(time.Minute)
	MaxDurationMillis  = math.MaxInt64 / int64(time.Millisecond)
	MaxSizeMB          = math.MaxInt64 >> 20
)

// MaxPartitions bounds a partitioned topic's partition count: each
// partition is a log with its own ledgers and cursors.
const MaxPartitions = 1024

// MaxEnsembleSize is the largest ensemble a ledger may have: the ledger
// client's limit (ledger.MaxEnsembleSize; a test keeps them equal).
const MaxEnsembleSize = 64

// CheckRange refuses v outside [min, max] with an ErrInvalid naming the
// field and the allowed range.
func CheckRange(field string, v, min, max int64, hint string) error {
	if v < min || v > max {
		if hint != "" {
			hint = " (" + hint + ")"
		}
		return errorf(ErrInvalid, "%s must be between %d and %d%s, got %d", field, min, max, hint, v)
	}
	return nil
}

// checkRetentionCoversQuota rejects a retention smaller than the backlog
// quota: acknowledged data would be deleted while unacknowledged data is
// still allowed to grow past it, which is never what an operator meant.
func (p *Policies) checkRetentionCoversQuota() error {
	r := p.RetentionPolicies
	if r == nil {
		return nil
	}
	if q, ok := p.BacklogQuotaMap[DestinationStorage]; ok && r.RetentionSizeInMB > 0 && q.LimitSize > 0 &&
		q.LimitSize >= r.RetentionSizeInMB*(1<<20) {
		return errorf(ErrPrecondition, "retention size (%d MB) must exceed the destination_storage backlog quota (%d bytes)",
			r.RetentionSizeInMB, q.LimitSize)
	}
	if q, ok := p.BacklogQuotaMap[MessageAge]; ok && r.RetentionTimeInMinutes > 0 && q.LimitTime > 0 &&
		q.LimitTime >= int64(r.RetentionTimeInMinutes)*60 {
		return errorf(ErrPrecondition, "retention time (%d minutes) must exceed the message_age backlog quota (%d seconds)",
			r.RetentionTimeInMinutes, q.LimitTime)
	}
	return nil
}

func intPtr64(p *int) *int64 {
	if p == nil {
		return nil
	}
	v := int64(*p)
	return &v
}

func validateGrant(field, role string, actions []AuthAction) error {
	if err := ValidateRole(role); err != nil {
		return errorf(ErrInvalid, "%s: %v", field, err)
	}
	if err := ValidateActions(actions); err != nil {
		return errorf(ErrInvalid, "%s[%q]: %v", field, role, err)
	}
	return nil
}

// ValidateBacklogQuotaType checks a backlog quota type name.
func ValidateBacklogQuotaType(t BacklogQuotaType) error {
	switch t {
	case DestinationStorage, MessageAge:
		return nil
	}
	return errorf(ErrInvalid, "unknown backlog quota type %q (known: %s, %s)", t, DestinationStorage, MessageAge)
}

// Validate checks the limits and the policy.
func (q BacklogQuota) Validate() error {
	switch q.Policy {
	case ProducerRequestHold, ProducerException, ConsumerBacklogEviction:
	case "":
		return errorf(ErrInvalid, "backlog quota policy is required (%s, %s or %s)", ProducerRequestHold, ProducerException, ConsumerBacklogEviction)
	default:
		return errorf(ErrInvalid, "unknown backlog quota policy %q (known: %s, %s, %s)", q.Policy, ProducerRequestHold, ProducerException, ConsumerBacklogEviction)
	}
	if err := CheckRange("limitSize", q.LimitSize, -1, math.MaxInt64, "bytes; -1 means no limit"); err != nil {
		return err
	}
	return CheckRange("limitTime", q.LimitTime, -1, math.MaxInt32, "seconds; -1 means no limit")
}

// Validate checks E ≥ Qw ≥ Qa ≥ 1 and the mark-delete rate.
func (pp PersistencePolicies) Validate() error {
	e, w, a := pp.BookkeeperEnsemble, pp.BookkeeperWriteQuorum, pp.BookkeeperAckQuorum
	if a < 1 || w < a || e < w || e > MaxEnsembleSize {
		return errorf(ErrInvalid, "persistence: need %d >= bookkeeperEnsemble >= bookkeeperWriteQuorum >= bookkeeperAckQuorum >= 1, got %d/%d/%d",
			MaxEnsembleSize, e, w, a)
	}
	if r := pp.ManagedLedgerMaxMarkDeleteRate; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return errorf(ErrInvalid, "persistence: managedLedgerMaxMarkDeleteRate must be a finite number >= 0, got %v", r)
	}
	return nil
}

// Validate checks the limits (each >= -1) and that a 0 limit is not mixed
// with a non-zero one.
func (r RetentionPolicies) Validate() error {
	if err := CheckRange("retentionTimeInMinutes", int64(r.RetentionTimeInMinutes), -1, MaxDurationMinutes, "-1 means unlimited"); err != nil {
		return err
	}
	if err := CheckRange("retentionSizeInMB", r.RetentionSizeInMB, -1, MaxSizeMB, "-1 means unlimited"); err != nil {
		return err
	}
	if (r.RetentionTimeInMinutes == 0) != (r.RetentionSizeInMB == 0) {
		return errorf(ErrInvalid, "retention: time %d and size %d mix a 0 (no retention) with a non-zero limit; use -1 to leave one limit unbounded",
			r.RetentionTimeInMinutes, r.RetentionSizeInMB)
	}
	return nil
}

// Validate checks that limits are >= -1 and the period is >= 1.
func (r DispatchRate) Validate() error {
	if err := CheckRange("dispatchThrottlingRateInMsg", int64(r.DispatchThrottlingRateInMsg), -1, math.MaxInt32, "-1 means unlimited"); err != nil {
		return err
	}
	if err := CheckRange("dispatchThrottlingRateInByte", r.DispatchThrottlingRateInByte, -1, math.MaxInt64, "-1 means unlimited"); err != nil {
		return err
	}
	return CheckRange("ratePeriodInSecond", int64(r.RatePeriodInSecond), 1, math.MaxInt32, "")
}

// Validate checks that limits are >= -1.
func (r PublishRate) Validate() error {
	if err := CheckRange("publishThrottlingRateInMsg", int64(r.PublishThrottlingRateInMsg), -1, math.MaxInt32, "-1 means unlimited"); err != nil {
		return err
	}
	return CheckRange("publishThrottlingRateInByte", r.PublishThrottlingRateInByte, -1, math.MaxInt64, "-1 means unlimited")
}

// Validate checks the bundle count and boundaries.
func (b BundlesData) Validate() error {
	if b.NumBundles < 1 || b.NumBundles > MaxBundles {
		return errorf(ErrInvalid, "bundles.numBundles must be between 1 and %d, got %d", MaxBundles, b.NumBundles)
	}
	if len(b.Boundaries) != b.NumBundles+1 {
		return errorf(ErrInvalid, "bundles: %d boundaries for %d bundles (want numBundles+1)", len(b.Boundaries), b.NumBundles)
	}
	var prev uint64
	for i, s := range b.Boundaries {
		v, err := parseBoundary(s)
		if err != nil {
			return errorf(ErrInvalid, "bundles.boundaries[%d]: %v", i, err)
		}
		switch {
		case i == 0 && s != FirstBoundary:
			return errorf(ErrInvalid, "bundles.boundaries must start at %s, got %s", FirstBoundary, s)
		case i == len(b.Boundaries)-1 && s != LastBoundary:
			return errorf(ErrInvalid, "bundles.boundaries must end at %s, got %s", LastBoundary, s)
		case i > 0 && v <= prev:
			return errorf(ErrInvalid, "bundles.boundaries must be strictly ascending: %s after %s", s, b.Boundaries[i-1])
		}
		prev = v
	}
	return nil
}

func parseBoundary(s string) (uint64, error) {
	if len(s) != 10 || !strings.HasPrefix(s, "0x") {
		return 0, fmt.Errorf("%q is not a 32-bit hex value like 0x40000000", s)
	}
	v, err := strconv.ParseUint(s[2:], 16, 32)
	if err != nil || strings.ToLower(s) != s {
		return 0, fmt.Errorf("%q is not a lower-case 32-bit hex value like 0x40000000", s)
	}
	return v, nil
}
