package tenants

import (
	"net/http"
)

func (h *AdminHandler) clusterRoutes() {
	s := h.opts.Store
	h.route(http.MethodGet, "/clusters", anyRole, func(c *call) (any, error) {
		return s.ListClusters(c.ctx)
	})
	h.route(http.MethodGet, "/clusters/{cluster}", superUser, func(c *call) (any, error) {
		return s.GetCluster(c.ctx, c.r.PathValue("cluster"))
	})
	h.route(http.MethodPut, "/clusters/{cluster}", superUser, func(c *call) (any, error) {
		var d ClusterData
		if err := c.decode(&d, true); err != nil {
			return nil, err
		}
		return noContent, s.CreateCluster(c.ctx, c.r.PathValue("cluster"), d)
	})
	h.route(http.MethodPost, "/clusters/{cluster}", superUser, func(c *call) (any, error) {
		var d ClusterData
		if err := c.decode(&d, false); err != nil {
			return nil, err
		}
		_, err := s.UpdateCluster(c.ctx, c.r.PathValue("cluster"), func(old *ClusterData) error {
			*old = d
			return nil
		})
		return noContent, err
	})
	h.route(http.MethodDelete, "/clusters/{cluster}", superUser, func(c *call) (any, error) {
		return noContent, s.DeleteCluster(c.ctx, c.r.PathValue("cluster"))
	})
}

func (h *AdminHandler) tenantRoutes() {
	s := h.opts.Store
	// Listing shows only the tenants the role may manage (all of them for
	// superusers), rather than refusing non-superusers outright.
	h.route(http.MethodGet, "/tenants", anyRole, func(c *call) (any, error) {
		all, err := s.ListTenants(c.ctx)
		if err != nil || h.isSuperUser(c.role) {
			return all, err
		}
		visible := make([]string, 0, len(all))
		for _, t := range all {
			if h.canManage(c.ctx, c.role, t) == nil {
				visible = append(visible, t)
			}
		}
		return visible, nil
	})
	h.route(http.MethodGet, "/tenants/{tenant}", tenantAdmin, func(c *call) (any, error) {
		return s.GetTenant(c.ctx, c.r.PathValue("tenant"))
	})
	h.route(http.MethodPut, "/tenants/{tenant}", superUser, func(c *call) (any, error) {
		var t TenantInfo
		if err := c.decode(&t, true); err != nil {
			return nil, err
		}
		return noContent, s.CreateTenant(c.ctx, c.r.PathValue("tenant"), t)
	})
	h.route(http.MethodPost, "/tenants/{tenant}", superUser, func(c *call) (any, error) {
		var t TenantInfo
		if err := c.decode(&t, false); err != nil {
			return nil, err
		}
		_, err := s.UpdateTenant(c.ctx, c.r.PathValue("tenant"), func(old *TenantInfo) error {
			*old = t
			return nil
		})
		return noContent, err
	})
	h.route(http.MethodDelete, "/tenants/{tenant}", superUser, func(c *call) (any, error) {
		return noContent, s.DeleteTenant(c.ctx, c.r.PathValue("tenant"))
	})
}

func (h *AdminHandler) namespaceRoutes() {
	s := h.opts.Store
	h.route(http.MethodGet, "/namespaces/{tenant}", tenantAdmin, func(c *call) (any, error) {
		return s.ListNamespaces(c.ctx, c.r.PathValue("tenant"))
	})
	h.route(http.MethodPut, "/namespaces/{tenant}/{namespace}", tenantAdmin, func(c *call) (any, error) {
		var p Policies
		if err := c.decode(&p, true); err != nil {
			return nil, err
		}
		return noContent, s.CreateNamespace(c.ctx, c.namespace(), p)
	})
	h.route(http.MethodGet, "/namespaces/{tenant}/{namespace}", tenantAdmin, func(c *call) (any, error) {
		return s.GetPolicies(c.ctx, c.namespace())
	})
	h.route(http.MethodDelete, "/namespaces/{tenant}/{namespace}", tenantAdmin, func(c *call) (any, error) {
		return noContent, s.DeleteNamespace(c.ctx, c.namespace(), h.opts.Topics)
	})
	if h.opts.Topics != nil {
		h.route(http.MethodGet, "/namespaces/{tenant}/{namespace}/topics", tenantAdmin, func(c *call) (any, error) {
			ns := c.namespace()
			if _, err := s.GetPolicies(c.ctx, ns); err != nil {
				return nil, err
			}
			topics, err := h.opts.Topics.ListTopics(c.ctx, ns)
			if topics == nil && err == nil {
				topics = []string{}
			}
			return topics, err
		})
	}
}
