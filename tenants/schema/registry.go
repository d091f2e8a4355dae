package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/strata-mq/strata/metadata"
)

// Version is one stored version of a topic's schema. A deletion is stored
// as a version too (Deleted), as in Pulsar: versions keep counting up, and
// compatibility is checked only against the versions after the last one.
type Version struct {
	Version    int64             `json:"version"`
	Type       string            `json:"type"`
	Data       []byte            `json:"data,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
	Timestamp  int64             `json:"timestamp"` // Unix ms
	Deleted    bool              `json:"deleted,omitempty"`
}

// Schema returns the version's schema.
func (v Version) Schema() Schema {
	return Schema{Type: v.Type, Data: v.Data, Properties: v.Properties}
}

// Schemas returns the versions' schemas, in order (for Check).
func Schemas(vs []Version) []Schema {
	out := make([]Schema, len(vs))
	for i, v := range vs {
		out[i] = v.Schema()
	}
	return out
}

// Registry stores schemas in the metadata store, one key per version under
// /schemas/{tenant}/{ns}/{topic}/. Topics are named by their full
// persistent:// name; callers pass a partitioned topic's parent for its
// partitions, which share its schema.
type Registry struct {
	md    metadata.Store
	clock func() time.Time
}

// NewRegistry returns a registry over md.
func NewRegistry(md metadata.Store) *Registry { return &Registry{md: md, clock: time.Now} }

func prefix(topic string) string {
	const scheme = "persistent://"
	if len(topic) > len(scheme) && topic[:len(scheme)] == scheme {
		topic = topic[len(scheme):]
	}
	return metadata.SchemasPrefix + topic + "/"
}

func versionKey(topic string, v int64) string { return fmt.Sprintf("%s%019d", prefix(topic), v) }

// Versions returns every stored version of the topic's schema, oldest
// first, deletions included.
func (r *Registry) Versions(ctx context.Context, topic string) ([]Version, error) {
	kvs, err := metadata.ListAll(ctx, r.md, prefix(topic), false)
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", topic, err)
	}
	out := make([]Version, 0, len(kvs))
	for _, kv := range kvs {
		var v Version
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("schema of %s: corrupt version at %s: %w", topic, kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// live returns the versions after the last deletion.
func live(vs []Version) []Version {
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Deleted {
			return vs[i+1:]
		}
	}
	return vs
}

// Live returns the versions in force: those after the last deletion.
func (r *Registry) Live(ctx context.Context, topic string) ([]Version, error) {
	vs, err := r.Versions(ctx, topic)
	if err != nil {
		return nil, err
	}
	return live(vs), nil
}

// Latest returns the newest version in force (ErrNotFound if none).
func (r *Registry) Latest(ctx context.Context, topic string) (Version, error) {
	vs, err := r.Live(ctx, topic)
	if err != nil {
		return Version{}, err
	}
	if len(vs) == 0 {
		return Version{}, fmt.Errorf("%w: topic %s has no schema", ErrNotFound, topic)
	}
	return vs[len(vs)-1], nil
}

// Get returns one version in force (ErrNotFound if it does not exist, or
// a deletion came at or after it: as in Pulsar, a deleted schema's
// versions are gone for readers too).
func (r *Registry) Get(ctx context.Context, topic string, version int64) (Version, error) {
	vs, err := r.Live(ctx, topic)
	if err != nil {
		return Version{}, err
	}
	for _, v := range vs {
		if v.Version == version {
			return v, nil
		}
	}
	return Version{}, fmt.Errorf("%w: topic %s has no schema version %d in force", ErrNotFound, topic, version)
}

// Find returns the version in force that is the same schema as s.
func (r *Registry) Find(ctx context.Context, topic string, s Schema) (Version, bool, error) {
	vs, err := r.Live(ctx, topic)
	if err != nil {
		return Version{}, false, err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if Same(vs[i].Schema(), s) {
			return vs[i], true, nil
		}
	}
	return Version{}, false, nil
}

// Add stores s as the topic's next version unless the same schema is in
// force already (then its version is returned and created is false). s
// must follow the versions in force under strategy. Concurrent adds are
// ordered by the store: one wins a version number, the other checks again.
func (r *Registry) Add(ctx context.Context, topic string, s Schema, strategy Strategy) (v Version, created bool, err error) {
	if err := Validate(s); err != nil {
		return Version{}, false, err
	}
	for {
		vs, err := r.Versions(ctx, topic)
		if err != nil {
			return Version{}, false, err
		}
		inForce := live(vs)
		for i := len(inForce) - 1; i >= 0; i-- {
			if Same(inForce[i].Schema(), s) {
				return inForce[i], false, nil
			}
		}
		if err := Check(Schemas(inForce), s, strategy); err != nil {
			return Version{}, false, err
		}
		next := int64(0)
		if len(vs) > 0 {
			next = vs[len(vs)-1].Version + 1
		}
		v := Version{Version: next, Type: s.Type, Data: s.Data, Properties: maps.Clone(s.Properties), Timestamp: r.clock().UnixMilli()}
		if err := r.create(ctx, topic, v); errors.Is(err, metadata.ErrExists) {
			continue // another add took the number: check against it too
		} else if err != nil {
			return Version{}, false, err
		}
		return v, true, nil
	}
}

func (r *Registry) create(ctx context.Context, topic string, v Version) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = r.md.Create(ctx, versionKey(topic, v.Version), data)
	return err
}

// Delete ends the topic's schema history in force: a deletion is stored
// as the next version, and returned. ErrNotFound if nothing is in force.
func (r *Registry) Delete(ctx context.Context, topic string) (int64, error) {
	for {
		vs, err := r.Versions(ctx, topic)
		if err != nil {
			return 0, err
		}
		if len(live(vs)) == 0 {
			return 0, fmt.Errorf("%w: topic %s has no schema", ErrNotFound, topic)
		}
		v := Version{Version: vs[len(vs)-1].Version + 1, Deleted: true, Timestamp: r.clock().UnixMilli()}
		if err := r.create(ctx, topic, v); errors.Is(err, metadata.ErrExists) {
			continue
		} else if err != nil {
			return 0, err
		}
		return v.Version, nil
	}
}

// Purge removes every version of the topic's schema (the topic is deleted).
func (r *Registry) Purge(ctx context.Context, topic string) error {
	_, err := r.md.DeletePrefix(ctx, prefix(topic))
	return err
}
