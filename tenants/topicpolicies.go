package tenants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants/schema"
)

// TopicPolicies override a topic's namespace policies field by field
// (Pulsar's topic-level policies); a nil field inherits the namespace's.
// Partitions share the policies of their partitioned topic.
type TopicPolicies struct {
	DeduplicationEnabled        *bool         `json:"deduplicationEnabled,omitempty"`
	PublishRate                 *PublishRate  `json:"publishRate,omitempty"`
	DispatchRate                *DispatchRate `json:"dispatchRate,omitempty"`
	SubscriptionDispatchRate    *DispatchRate `json:"subscriptionDispatchRate,omitempty"`
	MaxProducersPerTopic        *int          `json:"maxProducerPerTopic,omitempty"`
	MaxConsumersPerTopic        *int          `json:"maxConsumerPerTopic,omitempty"`
	MaxConsumersPerSubscription *int          `json:"maxConsumersPerSubscription,omitempty"`
	MessageTTLInSeconds         *int          `json:"messageTTLInSeconds,omitempty"`
	// ReplicationClusters replaces the namespace's replication clusters
	// for this topic (a pointer, so that TopicPolicies stays comparable).
	ReplicationClusters *[]string `json:"replicationClusters,omitempty"`
	// SchemaCompatibilityStrategy replaces the namespace's strategy for
	// the topic's schema versions.
	SchemaCompatibilityStrategy *string `json:"schemaCompatibilityStrategy,omitempty"`
}

// clone returns a copy sharing no memory with tp.
func (tp TopicPolicies) clone() TopicPolicies {
	c := tp
	c.DeduplicationEnabled = clonePtr(tp.DeduplicationEnabled)
	c.PublishRate = clonePtr(tp.PublishRate)
	c.DispatchRate = clonePtr(tp.DispatchRate)
	c.SubscriptionDispatchRate = clonePtr(tp.SubscriptionDispatchRate)
	c.MaxProducersPerTopic = clonePtr(tp.MaxProducersPerTopic)
	c.MaxConsumersPerTopic = clonePtr(tp.MaxConsumersPerTopic)
	c.MaxConsumersPerSubscription = clonePtr(tp.MaxConsumersPerSubscription)
	c.MessageTTLInSeconds = clonePtr(tp.MessageTTLInSeconds)
	c.SchemaCompatibilityStrategy = clonePtr(tp.SchemaCompatibilityStrategy)
	if tp.ReplicationClusters != nil {
		cs := cloneSlice(*tp.ReplicationClusters)
		c.ReplicationClusters = &cs
	}
	return c
}

// IsZero reports whether no field is set.
func (tp TopicPolicies) IsZero() bool { return tp == TopicPolicies{} }

// Validate reports the first invalid field.
func (tp TopicPolicies) Validate() error {
	for _, f := range []struct {
		name string
		v    *int
	}{
		{"maxProducerPerTopic", tp.MaxProducersPerTopic},
		{"maxConsumerPerTopic", tp.MaxConsumersPerTopic},
		{"maxConsumersPerSubscription", tp.MaxConsumersPerSubscription},
		{"messageTTLInSeconds", tp.MessageTTLInSeconds},
	} {
		if f.v != nil {
			if err := CheckRange(f.name, int64(*f.v), 0, math.MaxInt32, ""); err != nil {
				return err
			}
		}
	}
	if s := tp.SchemaCompatibilityStrategy; s != nil && !slices.Contains(schema.Strategies, schema.Strategy(*s)) {
		return errorf(ErrInvalid, "schemaCompatibilityStrategy %q is unknown (known: %v)", *s, schema.Strategies)
	}
	if tp.PublishRate != nil {
		if err := tp.PublishRate.Validate(); err != nil {
			return fmt.Errorf("publishRate: %w", err)
		}
	}
	if tp.ReplicationClusters != nil {
		if len(*tp.ReplicationClusters) == 0 {
			return errorf(ErrInvalid, "replicationClusters must not be empty")
		}
		for _, c := range *tp.ReplicationClusters {
			if err := naming.ValidateCluster(c); err != nil {
				return errorf(ErrInvalid, "replicationClusters: %s", nameMsg(err))
			}
		}
	}
	for _, f := range []struct {
		name string
		r    *DispatchRate
	}{
		{"dispatchRate", tp.DispatchRate},
		{"subscriptionDispatchRate", tp.SubscriptionDispatchRate},
	} {
		if f.r != nil {
			if err := f.r.normalize().Validate(); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
	}
	return nil
}

// normalize fills the dispatch rates' defaults (a period of 1 s).
func (tp *TopicPolicies) normalize() {
	for _, r := range []**DispatchRate{&tp.DispatchRate, &tp.SubscriptionDispatchRate} {
		if *r != nil {
			n := (*r).normalize()
			*r = &n
		}
	}
}

// Apply returns p with the fields tp sets replaced; the rates become the
// entries of cluster.
func (tp TopicPolicies) Apply(p Policies, cluster string) Policies {
	p = p.Clone()
	if tp.DeduplicationEnabled != nil {
		p.DeduplicationEnabled = tp.DeduplicationEnabled
	}
	if tp.MaxProducersPerTopic != nil {
		p.MaxProducersPerTopic = tp.MaxProducersPerTopic
	}
	if tp.MaxConsumersPerTopic != nil {
		p.MaxConsumersPerTopic = tp.MaxConsumersPerTopic
	}
	if tp.MaxConsumersPerSubscription != nil {
		p.MaxConsumersPerSubscription = tp.MaxConsumersPerSubscription
	}
	if tp.MessageTTLInSeconds != nil {
		p.MessageTTLInSeconds = tp.MessageTTLInSeconds
	}
	if tp.SchemaCompatibilityStrategy != nil && *tp.SchemaCompatibilityStrategy != string(schema.Undefined) {
		p.SchemaCompatibilityStrategy = *tp.SchemaCompatibilityStrategy
	}
	if tp.PublishRate != nil {
		p.PublishMaxMessageRate = withEntry(p.PublishMaxMessageRate, cluster, *tp.PublishRate)
	}
	if tp.DispatchRate != nil {
		p.TopicDispatchRate = withEntry(p.TopicDispatchRate, cluster, *tp.DispatchRate)
	}
	if tp.SubscriptionDispatchRate != nil {
		p.SubscriptionDispatchRate = withEntry(p.SubscriptionDispatchRate, cluster, *tp.SubscriptionDispatchRate)
	}
	if tp.ReplicationClusters != nil {
		p.ReplicationClusters = cloneSlice(*tp.ReplicationClusters)
	}
	return p
}

func withEntry[T any](m map[string]T, k string, v T) map[string]T {
	out := make(map[string]T, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}

// checkReplicationClusters checks that the tenant of ns may use every
// cluster of clusters and that they exist.
func (s *Store) checkReplicationClusters(ctx context.Context, ns naming.Namespace, clusters []string) error {
	t, _, err := s.getTenantRecord(ctx, ns.Tenant())
	if err != nil {
		return err
	}
	return s.clustersAllowed(ctx, ns.Tenant(), t.TenantInfo, "replicationClusters", clusters)
}

// TopicPoliciesKey is the key of a topic's policies: a partition's are its
// partitioned topic's.
func TopicPoliciesKey(t naming.Topic) string {
	if t.IsPartition() {
		t = t.PartitionedParent()
	}
	return metadata.TopicPoliciesPrefix + t.Path()
}

// GetTopicPolicies returns a topic's policies (zero when none are set).
func (s *Store) GetTopicPolicies(ctx context.Context, t naming.Topic) (TopicPolicies, error) {
	var tp TopicPolicies
	kv, err := s.md.Get(ctx, TopicPoliciesKey(t))
	if errors.Is(err, metadata.ErrNotFound) {
		return tp, nil
	}
	if err != nil {
		return tp, err
	}
	return tp, decode(kv, &tp)
}

// UpdateTopicPolicies applies fn to a topic's policies with a
// compare-and-swap; policies left empty are deleted. The namespace must
// exist.
func (s *Store) UpdateTopicPolicies(ctx context.Context, t naming.Topic, fn func(*TopicPolicies) error) (TopicPolicies, error) {
	if _, err := s.GetPolicies(ctx, t.NamespaceName()); err != nil {
		return TopicPolicies{}, err
	}
	key := TopicPoliciesKey(t)
	for range maxCASAttempts {
		var tp TopicPolicies
		kv, err := s.md.Get(ctx, key)
		switch {
		case errors.Is(err, metadata.ErrNotFound):
			kv.ModRevision = 0
		case err != nil:
			return tp, err
		default:
			if err := decode(kv, &tp); err != nil {
				return tp, err
			}
		}
		if err := fn(&tp); err != nil {
			return tp, err
		}
		tp.normalize()
		if err := tp.Validate(); err != nil {
			return tp, err
		}
		if tp.ReplicationClusters != nil {
			if err := s.checkReplicationClusters(ctx, t.NamespaceName(), *tp.ReplicationClusters); err != nil {
				return tp, err
			}
		}
		switch {
		case tp.IsZero() && kv.ModRevision == 0:
			return tp, nil
		case tp.IsZero():
			err = s.md.Delete(ctx, key, kv.ModRevision)
		case kv.ModRevision == 0:
			var b []byte
			if b, err = json.Marshal(tp); err == nil {
				_, err = s.md.Create(ctx, key, b)
			}
		default:
			var b []byte
			if b, err = json.Marshal(tp); err == nil {
				_, err = s.md.Put(ctx, key, b, kv.ModRevision)
			}
		}
		switch {
		case err == nil:
			return tp, nil
		case errors.Is(err, metadata.ErrBadVersion), errors.Is(err, metadata.ErrExists), errors.Is(err, metadata.ErrNotFound):
			continue
		default:
			return tp, err
		}
	}
	return TopicPolicies{}, fmt.Errorf("tenants: update policies of %s: too many concurrent updates", t)
}

// DeleteTopicPolicies removes a topic's policies (when the topic is deleted).
func (s *Store) DeleteTopicPolicies(ctx context.Context, t naming.Topic) error {
	err := s.md.Delete(ctx, TopicPoliciesKey(t), metadata.AnyVersion)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil
	}
	return err
}
