package broker

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
)

// topicPolicyRoutes registers Pulsar's topic-level policy paths: GET
// (null when unset), set (POST) and DELETE (inherit the namespace's) of
// each field of tenants.TopicPolicies. They write the configuration store
// only, so any broker answers; the owning broker applies a change within a
// policy check interval.
func (b *Broker) topicPolicyRoutes(mux *routeMux, tp string) {
	topicPolicy(b, mux, tp+"/deduplicationEnabled", func(p *tenants.TopicPolicies) **bool { return &p.DeduplicationEnabled })
	topicPolicy(b, mux, tp+"/publishRate", func(p *tenants.TopicPolicies) **tenants.PublishRate { return &p.PublishRate })
	topicPolicy(b, mux, tp+"/dispatchRate", func(p *tenants.TopicPolicies) **tenants.DispatchRate { return &p.DispatchRate })
	topicPolicy(b, mux, tp+"/subscriptionDispatchRate", func(p *tenants.TopicPolicies) **tenants.DispatchRate { return &p.SubscriptionDispatchRate })
	topicPolicy(b, mux, tp+"/maxProducers", func(p *tenants.TopicPolicies) **int { return &p.MaxProducersPerTopic })
	topicPolicy(b, mux, tp+"/maxConsumers", func(p *tenants.TopicPolicies) **int { return &p.MaxConsumersPerTopic })
	topicPolicy(b, mux, tp+"/maxConsumersPerSubscription", func(p *tenants.TopicPolicies) **int { return &p.MaxConsumersPerSubscription })
	topicPolicy(b, mux, tp+"/messageTTL", func(p *tenants.TopicPolicies) **int { return &p.MessageTTLInSeconds })
	topicPolicy(b, mux, tp+"/replication", func(p *tenants.TopicPolicies) **[]string { return &p.ReplicationClusters })
	topicPolicy(b, mux, tp+"/schemaCompatibilityStrategy", func(p *tenants.TopicPolicies) **string { return &p.SchemaCompatibilityStrategy })
}

func topicPolicy[T any](b *Broker, mux *routeMux, path string, field func(*tenants.TopicPolicies) **T) {
	mux.HandleFunc("GET "+path, b.topicRoute(func(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
		p, err := b.cfg.GetTopicPolicies(ctx, t)
		if err != nil {
			return err
		}
		if v := *field(&p); v != nil {
			writeJSON(w, http.StatusOK, v)
		} else {
			w.WriteHeader(http.StatusNoContent) // unset: the namespace's applies
		}
		return nil
	}, false))
	mux.HandleFunc("POST "+path, b.topicRoute(func(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
		v, err := readPolicyValue[T](r, path)
		if err != nil {
			return err
		}
		_, err = b.cfg.UpdateTopicPolicies(ctx, t, func(p *tenants.TopicPolicies) error {
			*field(p) = &v
			return nil
		})
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}, false))
	mux.HandleFunc("DELETE "+path, b.topicRoute(func(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
		_, err := b.cfg.UpdateTopicPolicies(ctx, t, func(p *tenants.TopicPolicies) error {
			*field(p) = nil
			return nil
		})
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}, false))
}

// readPolicyValue decodes a policy value from the JSON body; a number may
// also come as a query parameter named after the path's last segment (as
// pulsar-admin sends ?messageTTL=N).
func readPolicyValue[T any](r *http.Request, path string) (T, error) {
	var v T
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return v, err
	}
	if strings.TrimSpace(string(body)) == "" {
		name := path[strings.LastIndex(path, "/")+1:]
		q := r.URL.Query().Get(name)
		if q == "" {
			return v, httpErr(http.StatusBadRequest, "a value is required in the body (or as ?%s=)", name)
		}
		body = []byte(q)
	}
	if isNull(body) {
		return v, httpErr(http.StatusBadRequest, "a value is required, got null (DELETE removes the policy)")
	}
	return v, decodeStrict(body, &v, "value")
}

// policies returns the topic's effective policies: its namespace's with
// the topic-level fields applied.
func (t *Topic) policies() tenants.Policies {
	p, _ := t.b.policies(t.name.NamespaceName())
	if c := t.b.cache.Load(); c != nil {
		if tp, ok := c.TopicPolicies(t.name); ok {
			p = tp.Apply(p, t.b.opts.Cluster)
		}
	}
	return p
}
