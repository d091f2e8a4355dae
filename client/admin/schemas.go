package admin

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/strata-mq/strata/internal/naming"
)

// SchemaPayload is a schema as pulsar-admin's schema files hold it (and
// Pulsar's PostSchemaPayload): a type name (AVRO, JSON, PROTOBUF, STRING,
// INT32, ...), the definition (an Avro record as JSON text for AVRO and
// JSON, empty for primitives) and free-form properties.
type SchemaPayload struct {
	Type       string            `json:"type"`
	Schema     string            `json:"schema"`
	Properties map[string]string `json:"properties"`
}

// SchemaInfo is one stored version of a topic's schema.
type SchemaInfo struct {
	Version    int64             `json:"version"`
	Type       string            `json:"type"`
	Timestamp  int64             `json:"timestamp"`
	Data       string            `json:"data"`
	Properties map[string]string `json:"properties"`
}

// Compatibility is the answer to a compatibility test.
type Compatibility struct {
	IsCompatible bool   `json:"isCompatible"`
	Strategy     string `json:"schemaCompatibilityStrategy"`
	// Reason says why a candidate is not compatible.
	Reason string `json:"reason,omitempty"`
}

// Schemas manages topics' schemas: /admin/v2/schemas/{tenant}/{ns}/{topic}.
type Schemas struct{ c *Client }

// Schemas returns the schema operations.
func (c *Client) Schemas() *Schemas { return &Schemas{c} }

func schemaPath(topic, suffix string) (string, error) {
	t, err := naming.ParseTopic(topic)
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	return adminPrefix + "/schemas/" + t.Path() + suffix, nil
}

func (r *Schemas) do(ctx context.Context, method, topic, suffix string, in, out any) error {
	p, err := schemaPath(topic, suffix)
	if err != nil {
		return err
	}
	_, err = r.c.Do(ctx, method, p, nil, in, out)
	return err
}

// Get returns the latest version of the topic's schema (404 if none).
func (r *Schemas) Get(ctx context.Context, topic string) (SchemaInfo, error) {
	var out SchemaInfo
	return out, r.do(ctx, http.MethodGet, topic, "/schema", nil, &out)
}

// GetVersion returns one version of the topic's schema.
func (r *Schemas) GetVersion(ctx context.Context, topic string, version int64) (SchemaInfo, error) {
	var out SchemaInfo
	return out, r.do(ctx, http.MethodGet, topic, "/schema/"+strconv.FormatInt(version, 10), nil, &out)
}

// GetAll returns every version in force, oldest first.
func (r *Schemas) GetAll(ctx context.Context, topic string) ([]SchemaInfo, error) {
	var out struct {
		Versions []SchemaInfo `json:"getSchemaResponses"`
	}
	return out.Versions, r.do(ctx, http.MethodGet, topic, "/schemas", nil, &out)
}

// Upload adds a schema as the topic's next version if it is compatible
// with the versions in force (the same schema again returns its version).
func (r *Schemas) Upload(ctx context.Context, topic string, s SchemaPayload) (int64, error) {
	var out struct {
		Version int64 `json:"version"`
	}
	return out.Version, r.do(ctx, http.MethodPost, topic, "/schema", s, &out)
}

// Delete deletes the topic's schema; the returned version records it.
func (r *Schemas) Delete(ctx context.Context, topic string) (int64, error) {
	var out struct {
		Version int64 `json:"version"`
	}
	return out.Version, r.do(ctx, http.MethodDelete, topic, "/schema", nil, &out)
}

// Compatibility tests whether s could be added as the topic's next version.
func (r *Schemas) Compatibility(ctx context.Context, topic string, s SchemaPayload) (Compatibility, error) {
	var out Compatibility
	return out, r.do(ctx, http.MethodPost, topic, "/compatibility", s, &out)
}
