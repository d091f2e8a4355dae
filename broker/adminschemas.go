package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants/schema"
)

// The schema REST API, on Pulsar's paths:
//
//	GET    /admin/v2/schemas/{tenant}/{ns}/{topic}/schema            the latest version
//	GET    /admin/v2/schemas/{tenant}/{ns}/{topic}/schema/{version}  one version
//	GET    /admin/v2/schemas/{tenant}/{ns}/{topic}/schemas           every version in force
//	POST   /admin/v2/schemas/{tenant}/{ns}/{topic}/schema            upload (a new version if compatible)
//	DELETE /admin/v2/schemas/{tenant}/{ns}/{topic}/schema            delete (versions keep counting)
//	POST   /admin/v2/schemas/{tenant}/{ns}/{topic}/compatibility     test a candidate
//	POST   /admin/v2/schemas/{tenant}/{ns}/{topic}/version           the version of a schema, if stored
//
// Reading needs produce or consume permission on the topic; changing it,
// tenant admin (producers add versions through the protocol).

const schemasPath = "/admin/v2/schemas/{tenant}/{namespace}/{topic}"

// schemaInfo is Pulsar's GetSchemaResponse.
type schemaInfo struct {
	Version    int64             `json:"version"`
	Type       string            `json:"type"`
	Timestamp  int64             `json:"timestamp"`
	Data       string            `json:"data"`
	Properties map[string]string `json:"properties"`
}

func toSchemaInfo(v schema.Version) schemaInfo {
	props := v.Properties
	if props == nil {
		props = map[string]string{}
	}
	return schemaInfo{Version: v.Version, Type: v.Type, Timestamp: v.Timestamp, Data: string(v.Data), Properties: props}
}

// schemaPayload is Pulsar's PostSchemaPayload (the schema file format of
// pulsar-admin schemas upload).
type schemaPayload struct {
	Type       string            `json:"type"`
	Schema     string            `json:"schema"`
	Properties map[string]string `json:"properties"`
}

func (b *Broker) schemaRoutes(mux *routeMux) {
	mux.HandleFunc("GET "+schemasPath+"/schema", b.schemaRoute(false, b.getSchemaREST))
	mux.HandleFunc("GET "+schemasPath+"/schema/{version}", b.schemaRoute(false, b.getSchemaREST))
	mux.HandleFunc("GET "+schemasPath+"/schemas", b.schemaRoute(false, b.listSchemasREST))
	mux.HandleFunc("POST "+schemasPath+"/schema", b.schemaRoute(true, b.postSchemaREST))
	mux.HandleFunc("DELETE "+schemasPath+"/schema", b.schemaRoute(true, b.deleteSchemaREST))
	mux.HandleFunc("POST "+schemasPath+"/compatibility", b.schemaRoute(false, b.compatibilityREST))
	mux.HandleFunc("POST "+schemasPath+"/version", b.schemaRoute(false, b.schemaVersionREST))
}

type schemaHandler func(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error

// schemaRoute authenticates and authorizes a schema request (write: tenant
// admin; else produce or consume on the topic) and checks the namespace.
func (b *Broker) schemaRoute(write bool, h schemaHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		role, err := b.roleHTTP(r)
		var t naming.Topic
		if err == nil {
			t, err = naming.ParseTopic(fmt.Sprintf("persistent://%s/%s/%s", r.PathValue("tenant"), r.PathValue("namespace"), r.PathValue("topic")))
		}
		if err == nil {
			if write {
				err = b.authz.CanManageTenant(r.Context(), role, t.Tenant())
			} else {
				err = b.authz.CanLookup(r.Context(), role, t)
			}
		}
		if err == nil {
			if _, err = b.policies(t.NamespaceName()); errors.Is(err, ErrNamespaceNotFound) {
				err = httpErr(http.StatusNotFound, "namespace %s does not exist", t.NamespaceName())
			}
		}
		if err == nil {
			err = h(r.Context(), w, r, t)
		}
		if err != nil {
			writeErr(w, err)
		}
	}
}

func (b *Broker) getSchemaREST(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	var v schema.Version
	var err error
	if s := r.PathValue("version"); s != "" {
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil || n < 0 {
			return httpErr(http.StatusBadRequest, "schema version must be a number from 0, got %q", s)
		}
		v, err = b.schemas.Get(ctx, schemaTopic(t), n)
	} else {
		v, err = b.schemas.Latest(ctx, schemaTopic(t))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSchemaInfo(v))
	return nil
}

func (b *Broker) listSchemasREST(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	vs, err := b.schemas.Live(ctx, schemaTopic(t))
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("%w: topic %s has no schema", schema.ErrNotFound, t)
	}
	out := make([]schemaInfo, len(vs))
	for i, v := range vs {
		out[i] = toSchemaInfo(v)
	}
	writeJSON(w, http.StatusOK, map[string][]schemaInfo{"getSchemaResponses": out})
	return nil
}

// readSchemaPayload decodes a PostSchemaPayload. The body may hold a
// definition up to schema.MaxSize, escaped; beyond that nothing is read.
func readSchemaPayload(r *http.Request) (schema.Schema, error) {
	const limit = 2*schema.MaxSize + 64<<10
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return schema.Schema{}, err
	}
	if len(body) > limit {
		return schema.Schema{}, httpErr(http.StatusRequestEntityTooLarge, "schema payload larger than %d bytes (definitions are at most %d)", limit, schema.MaxSize)
	}
	var p schemaPayload
	if err := decodeStrict(body, &p, "schema payload"); err != nil {
		return schema.Schema{}, err
	}
	s := schema.Schema{Type: p.Type, Data: []byte(p.Schema), Properties: p.Properties}
	if err := schema.Validate(s); err != nil {
		return schema.Schema{}, err
	}
	return s, nil
}

// topicKnown reports whether t exists: it has a log, or is a partitioned
// topic (or one of its partitions).
func (b *Broker) topicKnown(ctx context.Context, t naming.Topic) (bool, error) {
	if ok, err := b.topicExists(ctx, t); ok || err != nil {
		return ok, err
	}
	return b.isPartitioned(ctx, t) || b.declaredPartition(ctx, t), nil
}

func (b *Broker) postSchemaREST(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	s, err := readSchemaPayload(r)
	if err != nil {
		return err
	}
	if ok, err := b.topicKnown(ctx, t); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %s", ErrTopicNotFound, t)
	}
	p, err := b.topicPolicies(t)
	if err != nil {
		return err
	}
	v, _, err := b.schemas.Add(ctx, schemaTopic(t), s, schemaStrategy(p))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"version": v.Version})
	return nil
}

func (b *Broker) deleteSchemaREST(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	v, err := b.schemas.Delete(ctx, schemaTopic(t))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"version": v})
	return nil
}

func (b *Broker) compatibilityREST(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	s, err := readSchemaPayload(r)
	if err != nil {
		return err
	}
	p, err := b.topicPolicies(t)
	if err != nil {
		return err
	}
	vs, err := b.schemas.Live(ctx, schemaTopic(t))
	if err != nil {
		return err
	}
	st := schemaStrategy(p)
	out := map[string]any{"isCompatible": true, "schemaCompatibilityStrategy": string(st)}
	if err := schema.Check(schema.Schemas(vs), s, st); errors.Is(err, schema.ErrIncompatible) {
		out["isCompatible"], out["reason"] = false, err.Error()
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (b *Broker) schemaVersionREST(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	s, err := readSchemaPayload(r)
	if err != nil {
		return err
	}
	v, found, err := b.schemas.Find(ctx, schemaTopic(t), s)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: no version of the schema of %s is that schema", schema.ErrNotFound, t)
	}
	writeJSON(w, http.StatusOK, map[string]int64{"version": v.Version})
	return nil
}
