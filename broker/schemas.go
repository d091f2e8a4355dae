package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/schema"
)

// The schema registry as topics use it (tenants/schema keeps the versions).
// A partitioned topic's partitions share its schema.

// errSchemaRefused wraps the refusals that the namespace's policies make
// (validation enforced, auto update off); the registry's own are
// schema.ErrInvalid and schema.ErrIncompatible.
var errSchemaRefused = errors.New("schema refused")

// schemaTopic is the name a topic's schema is kept under.
func schemaTopic(t naming.Topic) string {
	if t.IsPartition() {
		return t.PartitionedParent().String()
	}
	return t.String()
}

// topicPolicies returns t's effective policies (namespace, then
// topic-level) whether or not the topic is loaded here.
func (b *Broker) topicPolicies(t naming.Topic) (tenants.Policies, error) {
	p, err := b.policies(t.NamespaceName())
	if err != nil {
		return p, err
	}
	if c := b.cache.Load(); c != nil {
		if tp, ok := c.TopicPolicies(t); ok {
			p = tp.Apply(p, b.opts.Cluster)
		}
	}
	return p, nil
}

// schemaStrategy returns the compatibility strategy of t's schema.
func schemaStrategy(p tenants.Policies) schema.Strategy {
	if st, err := schema.ParseStrategy(p.SchemaCompatibilityStrategy); err == nil && st != schema.Undefined {
		return st
	}
	return schema.Full
}

// schemaForProducer returns the version a producer declaring s uses,
// adding s when the policies allow; s nil (no schema: raw bytes) is
// refused only on a topic that has a schema with validation enforced.
// The version is nil for producers without a schema.
func (b *Broker) schemaForProducer(ctx context.Context, t naming.Topic, s *schema.Schema) ([]byte, error) {
	p, err := b.topicPolicies(t)
	if err != nil {
		return nil, err
	}
	name := schemaTopic(t)
	if s == nil {
		if !p.SchemaValidationEnforced {
			return nil, nil
		}
		if _, err := b.schemas.Latest(ctx, name); errors.Is(err, schema.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s has a schema and its namespace enforces schema validation: declare it", errSchemaRefused, t)
	}
	if p.IsAllowAutoUpdateSchema != nil && !*p.IsAllowAutoUpdateSchema {
		// Only a version in force, or the first schema of a topic.
		vs, err := b.schemas.Live(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if schema.Same(v.Schema(), *s) {
				return versionBytes(v.Version), nil
			}
		}
		if len(vs) > 0 {
			return nil, fmt.Errorf("%w: the schema is not a version of %s and its namespace does not allow producers to add one", errSchemaRefused, t)
		}
	}
	// Add answers the version in force that is the same schema, if any.
	v, _, err := b.schemas.Add(ctx, name, *s, schemaStrategy(p))
	if err != nil {
		return nil, err
	}
	return versionBytes(v.Version), nil
}

// checkConsumerSchema accepts a consumer's schema: a version of the topic,
// the first schema of a topic without one (added, when allowed), or one
// that can read the versions in force under the topic's strategy.
func (b *Broker) checkConsumerSchema(ctx context.Context, t naming.Topic, s schema.Schema) error {
	p, err := b.topicPolicies(t)
	if err != nil {
		return err
	}
	if err := schema.Validate(s); err != nil {
		return err
	}
	name := schemaTopic(t)
	vs, err := b.schemas.Live(ctx, name)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		if p.IsAllowAutoUpdateSchema != nil && !*p.IsAllowAutoUpdateSchema {
			return nil
		}
		_, _, err := b.schemas.Add(ctx, name, s, schemaStrategy(p))
		return err
	}
	for _, v := range vs {
		if schema.Same(v.Schema(), s) {
			return nil
		}
	}
	return schema.Check(schema.Schemas(vs), s, schemaStrategy(p))
}

// grpcSchema converts a schema of the gRPC API (nil: none).
func grpcSchema(s *clientpb.Schema) *schema.Schema {
	if s == nil || s.Type == "" || s.Type == "NONE" {
		return nil
	}
	return &schema.Schema{Type: s.Type, Data: s.Data, Properties: s.Properties}
}

// versionBytes is a schema version as Pulsar's protocol carries it: 8
// bytes, big-endian.
func versionBytes(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// parseVersion reads a protocol schema version (-1: none given).
func parseVersion(b []byte) (int64, error) {
	switch len(b) {
	case 0:
		return -1, nil
	case 8:
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	return 0, fmt.Errorf("%w: a schema version is 8 bytes, got %d", errBadRequest, len(b))
}
