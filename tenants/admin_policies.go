package tenants

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/strata-mq/strata/tenants/schema"
)

// nsPath is the path of a namespace under AdminPrefix.
const nsPath = "/namespaces/{tenant}/{namespace}"

func (h *AdminHandler) policyRoutes() {
	ptrPolicy(h, "/retention", http.MethodPost, func(p *Policies) **RetentionPolicies { return &p.RetentionPolicies })
	ptrPolicy(h, "/messageTTL", http.MethodPost, func(p *Policies) **int { return &p.MessageTTLInSeconds })
	ptrPolicy(h, "/persistence", http.MethodPost, func(p *Policies) **PersistencePolicies { return &p.Persistence })
	ptrPolicy(h, "/deduplication", http.MethodPost, func(p *Policies) **bool { return &p.DeduplicationEnabled })
	ptrPolicy(h, "/offloadThreshold", http.MethodPut, func(p *Policies) **int64 { return &p.OffloadThreshold })
	ptrPolicy(h, "/offloadThresholdInSeconds", http.MethodPut, func(p *Policies) **int64 { return &p.OffloadThresholdInSeconds })
	ptrPolicy(h, "/offloadDeletionLagMs", http.MethodPut, func(p *Policies) **int64 { return &p.OffloadDeletionLagMs })
	ptrPolicy(h, "/compactionThreshold", http.MethodPut, func(p *Policies) **int64 { return &p.CompactionThreshold })
	ptrPolicy(h, "/maxProducersPerTopic", http.MethodPost, func(p *Policies) **int { return &p.MaxProducersPerTopic })
	ptrPolicy(h, "/maxConsumersPerTopic", http.MethodPost, func(p *Policies) **int { return &p.MaxConsumersPerTopic })
	ptrPolicy(h, "/maxConsumersPerSubscription", http.MethodPost, func(p *Policies) **int { return &p.MaxConsumersPerSubscription })
	ptrPolicy(h, "/maxSubscriptionsPerTopic", http.MethodPost, func(p *Policies) **int { return &p.MaxSubscriptionsPerTopic })
	ptrPolicy(h, "/maxTopicsPerNamespace", http.MethodPost, func(p *Policies) **int { return &p.MaxTopicsPerNamespace })

	clusterPolicy(h, "/publishRate", func(p *Policies) *map[string]PublishRate { return &p.PublishMaxMessageRate })
	clusterPolicy(h, "/dispatchRate", func(p *Policies) *map[string]DispatchRate { return &p.TopicDispatchRate })
	clusterPolicy(h, "/subscriptionDispatchRate", func(p *Policies) *map[string]DispatchRate { return &p.SubscriptionDispatchRate })
	clusterPolicy(h, "/replicatorDispatchRate", func(p *Policies) *map[string]DispatchRate { return &p.ReplicatorDispatchRate })

	h.schemaPolicyRoutes()
	h.backlogQuotaRoutes()
	h.replicationRoutes()
	h.permissionRoutes()
}

// getPolicies reads the request's namespace policies.
func (c *call) getPolicies() (Policies, error) {
	return c.h.opts.Store.GetPolicies(c.ctx, c.namespace())
}

// update applies fn to the request's namespace policies.
func (c *call) update(fn func(*Policies) error) (any, error) {
	_, err := c.h.opts.Store.UpdatePolicies(c.ctx, c.namespace(), fn)
	return noContent, err
}

// ptrPolicy serves GET (204 when unset), set (setMethod) and DELETE (unset)
// of one optional policy field.
func ptrPolicy[T any](h *AdminHandler, path, setMethod string, field func(*Policies) **T) {
	h.route(http.MethodGet, nsPath+path, tenantAdmin, func(c *call) (any, error) {
		p, err := c.getPolicies()
		if err != nil {
			return nil, err
		}
		if v := *field(&p); v != nil {
			return v, nil
		}
		return nil, nil
	})
	h.route(setMethod, nsPath+path, tenantAdmin, func(c *call) (any, error) {
		var v T
		if err := c.decode(&v, false); err != nil {
			return nil, err
		}
		return c.update(func(p *Policies) error {
			cp := v
			*field(p) = &cp
			return nil
		})
	})
	h.route(http.MethodDelete, nsPath+path, tenantAdmin, func(c *call) (any, error) {
		return c.update(func(p *Policies) error {
			*field(p) = nil
			return nil
		})
	})
}

// clusterPolicy serves GET/POST/DELETE of the local cluster's entry of a
// per-cluster policy map.
func clusterPolicy[T any](h *AdminHandler, path string, field func(*Policies) *map[string]T) {
	cluster := func() (string, error) {
		if h.opts.Cluster == "" {
			return "", errorf(ErrPrecondition, "this broker has no local cluster name configured, needed for %s", path)
		}
		return h.opts.Cluster, nil
	}
	h.route(http.MethodGet, nsPath+path, tenantAdmin, func(c *call) (any, error) {
		cl, err := cluster()
		if err != nil {
			return nil, err
		}
		p, err := c.getPolicies()
		if err != nil {
			return nil, err
		}
		if v, ok := (*field(&p))[cl]; ok {
			return v, nil
		}
		return nil, nil
	})
	h.route(http.MethodPost, nsPath+path, tenantAdmin, func(c *call) (any, error) {
		cl, err := cluster()
		if err != nil {
			return nil, err
		}
		var v T
		if err := c.decode(&v, false); err != nil {
			return nil, err
		}
		return c.update(func(p *Policies) error {
			m := field(p)
			if *m == nil {
				*m = map[string]T{}
			}
			(*m)[cl] = v
			return nil
		})
	})
	h.route(http.MethodDelete, nsPath+path, tenantAdmin, func(c *call) (any, error) {
		cl, err := cluster()
		if err != nil {
			return nil, err
		}
		return c.update(func(p *Policies) error {
			m := field(p)
			delete(*m, cl)
			if len(*m) == 0 {
				*m = nil
			}
			return nil
		})
	})
}

// backlogQuotaType reads ?backlogQuotaType=, destination_storage when absent.
func (c *call) backlogQuotaType() (BacklogQuotaType, error) {
	t := BacklogQuotaType(c.r.URL.Query().Get("backlogQuotaType"))
	if t == "" {
		return DestinationStorage, nil
	}
	return t, ValidateBacklogQuotaType(t)
}

func (h *AdminHandler) backlogQuotaRoutes() {
	h.route(http.MethodGet, nsPath+"/backlogQuotaMap", tenantAdmin, func(c *call) (any, error) {
		p, err := c.getPolicies()
		if err != nil {
			return nil, err
		}
		return p.BacklogQuotaMap, nil
	})
	h.route(http.MethodPost, nsPath+"/backlogQuota", tenantAdmin, func(c *call) (any, error) {
		typ, err := c.backlogQuotaType()
		if err != nil {
			return nil, err
		}
		var q BacklogQuota
		if err := c.decode(&q, false); err != nil {
			return nil, err
		}
		return c.update(func(p *Policies) error {
			p.BacklogQuotaMap[typ] = q.normalize()
			return nil
		})
	})
	h.route(http.MethodDelete, nsPath+"/backlogQuota", tenantAdmin, func(c *call) (any, error) {
		typ, err := c.backlogQuotaType()
		if err != nil {
			return nil, err
		}
		return c.update(func(p *Policies) error {
			delete(p.BacklogQuotaMap, typ)
			return nil
		})
	})
}

func (h *AdminHandler) replicationRoutes() {
	h.route(http.MethodGet, nsPath+"/replication", tenantAdmin, func(c *call) (any, error) {
		p, err := c.getPolicies()
		if err != nil {
			return nil, err
		}
		return p.ReplicationClusters, nil
	})
	h.route(http.MethodPost, nsPath+"/replication", tenantAdmin, func(c *call) (any, error) {
		var clusters []string
		if err := c.decode(&clusters, false); err != nil {
			return nil, err
		}
		if len(clusters) == 0 {
			return nil, errorf(ErrInvalid, "replication clusters must not be empty")
		}
		return c.update(func(p *Policies) error {
			p.ReplicationClusters = slices.Clone(clusters)
			return nil
		})
	})
}

func (h *AdminHandler) permissionRoutes() {
	h.route(http.MethodGet, nsPath+"/permissions", tenantAdmin, func(c *call) (any, error) {
		p, err := c.getPolicies()
		if err != nil {
			return nil, err
		}
		return p.AuthPolicies.NamespaceAuth, nil
	})
	h.route(http.MethodPost, nsPath+"/permissions/{role}", tenantAdmin, func(c *call) (any, error) {
		var actions []AuthAction
		if err := c.decode(&actions, false); err != nil {
			return nil, err
		}
		if err := ValidateActions(actions); err != nil {
			return nil, err
		}
		role := c.r.PathValue("role")
		return c.update(func(p *Policies) error {
			p.AuthPolicies.NamespaceAuth[role] = slices.Clone(actions)
			return nil
		})
	})
	h.route(http.MethodDelete, nsPath+"/permissions/{role}", tenantAdmin, func(c *call) (any, error) {
		role := c.r.PathValue("role")
		return c.update(func(p *Policies) error {
			delete(p.AuthPolicies.NamespaceAuth, role)
			return nil
		})
	})
	h.route(http.MethodGet, nsPath+"/permissions/subscription", tenantAdmin, func(c *call) (any, error) {
		p, err := c.getPolicies()
		if err != nil {
			return nil, err
		}
		return p.AuthPolicies.SubscriptionAuthRoles, nil
	})
	h.route(http.MethodPost, nsPath+"/permissions/subscription/{subscription}", tenantAdmin, func(c *call) (any, error) {
		sub := c.r.PathValue("subscription")
		if err := ValidateSubscription(sub); err != nil {
			return nil, err
		}
		var roles []string
		if err := c.decode(&roles, false); err != nil {
			return nil, err
		}
		return c.update(func(p *Policies) error {
			p.AuthPolicies.SubscriptionAuthRoles[sub] = slices.Clone(roles)
			return nil
		})
	})
	h.route(http.MethodDelete, nsPath+"/permissions/{subscription}/{role}", tenantAdmin, func(c *call) (any, error) {
		sub, role := c.r.PathValue("subscription"), c.r.PathValue("role")
		return c.update(func(p *Policies) error {
			roles := slices.DeleteFunc(p.AuthPolicies.SubscriptionAuthRoles[sub], func(r string) bool { return r == role })
			if len(roles) == 0 {
				delete(p.AuthPolicies.SubscriptionAuthRoles, sub)
			} else {
				p.AuthPolicies.SubscriptionAuthRoles[sub] = roles
			}
			return nil
		})
	})
	h.route(http.MethodGet, nsPath+"/subscriptionAuthMode", tenantAdmin, func(c *call) (any, error) {
		p, err := c.getPolicies()
		if err != nil {
			return nil, err
		}
		if p.SubscriptionAuthMode == "" {
			return "None", nil
		}
		return p.SubscriptionAuthMode, nil
	})
	h.route(http.MethodPost, nsPath+"/subscriptionAuthMode", tenantAdmin, func(c *call) (any, error) {
		var mode string
		if err := c.decode(&mode, false); err != nil {
			return nil, err
		}
		return c.update(func(p *Policies) error {
			p.SubscriptionAuthMode = mode
			if mode == "None" {
				p.SubscriptionAuthMode = ""
			}
			return nil
		})
	})
}

// schemaPolicyRoutes serve the namespace's schema policies, with Pulsar's
// paths and defaults.
func (h *AdminHandler) schemaPolicyRoutes() {
	valuePolicy(h, "/schemaCompatibilityStrategy", http.MethodPut,
		func(p Policies) string { return cmp.Or(p.SchemaCompatibilityStrategy, string(schema.Undefined)) },
		func(p *Policies, name string) error {
			st, err := schema.ParseStrategy(name)
			if err != nil {
				return errorf(ErrInvalid, "%v", err)
			}
			p.SchemaCompatibilityStrategy = string(st)
			if st == schema.Undefined {
				p.SchemaCompatibilityStrategy = ""
			}
			return nil
		})
	valuePolicy(h, "/isAllowAutoUpdateSchema", http.MethodPost,
		func(p Policies) bool { return p.IsAllowAutoUpdateSchema == nil || *p.IsAllowAutoUpdateSchema },
		func(p *Policies, allow bool) error { p.IsAllowAutoUpdateSchema = &allow; return nil })
	valuePolicy(h, "/schemaValidationEnforced", http.MethodPost,
		func(p Policies) bool { return p.SchemaValidationEnforced },
		func(p *Policies, enforced bool) error { p.SchemaValidationEnforced = enforced; return nil })
}

// valuePolicy serves GET (the value in force, its default when unset) and
// set (setMethod) of a policy that always has a value.
func valuePolicy[T any](h *AdminHandler, path, setMethod string, get func(Policies) T, set func(*Policies, T) error) {
	h.route(http.MethodGet, nsPath+path, tenantAdmin, func(c *call) (any, error) {
		p, err := c.getPolicies()
		if err != nil {
			return nil, err
		}
		return get(p), nil
	})
	h.route(setMethod, nsPath+path, tenantAdmin, func(c *call) (any, error) {
		var v T
		if err := c.decode(&v, false); err != nil {
			return nil, err
		}
		return c.update(func(p *Policies) error { return set(p, v) })
	})
}
