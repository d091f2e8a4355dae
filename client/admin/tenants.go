package admin

import (
	"context"
	"net/http"
	"net/url"

	"github.com/strata-mq/strata/tenants"
)

// adminPrefix is the path prefix of the admin API v2.
const adminPrefix = "/admin/v2"

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// Clusters manages clusters: /admin/v2/clusters.
type Clusters struct{ c *Client }

// Clusters returns the cluster operations.
func (c *Client) Clusters() *Clusters { return &Clusters{c} }

// List returns the cluster names.
func (r *Clusters) List(ctx context.Context) ([]string, error) {
	var out []string
	_, err := r.c.Do(ctx, http.MethodGet, adminPrefix+"/clusters", nil, nil, &out)
	return out, err
}

// Get returns a cluster's configuration (superusers only).
func (r *Clusters) Get(ctx context.Context, name string) (tenants.ClusterData, error) {
	var out tenants.ClusterData
	_, err := r.c.Do(ctx, http.MethodGet, adminPrefix+"/clusters/"+seg(name), nil, nil, &out)
	return out, err
}

// Create registers a cluster (409 if it exists).
func (r *Clusters) Create(ctx context.Context, name string, data tenants.ClusterData) error {
	_, err := r.c.Do(ctx, http.MethodPut, adminPrefix+"/clusters/"+seg(name), nil, data, nil)
	return err
}

// Update replaces a cluster's configuration.
func (r *Clusters) Update(ctx context.Context, name string, data tenants.ClusterData) error {
	_, err := r.c.Do(ctx, http.MethodPost, adminPrefix+"/clusters/"+seg(name), nil, data, nil)
	return err
}

// Delete removes a cluster (412 while a namespace replicates to it).
func (r *Clusters) Delete(ctx context.Context, name string) error {
	_, err := r.c.Do(ctx, http.MethodDelete, adminPrefix+"/clusters/"+seg(name), nil, nil, nil)
	return err
}

// Tenants manages tenants: /admin/v2/tenants.
type Tenants struct{ c *Client }

// Tenants returns the tenant operations.
func (c *Client) Tenants() *Tenants { return &Tenants{c} }

// List returns the tenants the caller administers (all for superusers).
func (r *Tenants) List(ctx context.Context) ([]string, error) {
	var out []string
	_, err := r.c.Do(ctx, http.MethodGet, adminPrefix+"/tenants", nil, nil, &out)
	return out, err
}

// Get returns a tenant's configuration.
func (r *Tenants) Get(ctx context.Context, name string) (tenants.TenantInfo, error) {
	var out tenants.TenantInfo
	_, err := r.c.Do(ctx, http.MethodGet, adminPrefix+"/tenants/"+seg(name), nil, nil, &out)
	return out, err
}

// Create creates a tenant (409 if it exists). Without allowed clusters the
// broker's own cluster is allowed.
func (r *Tenants) Create(ctx context.Context, name string, info tenants.TenantInfo) error {
	_, err := r.c.Do(ctx, http.MethodPut, adminPrefix+"/tenants/"+seg(name), nil, info, nil)
	return err
}

// Update replaces a tenant's configuration.
func (r *Tenants) Update(ctx context.Context, name string, info tenants.TenantInfo) error {
	_, err := r.c.Do(ctx, http.MethodPost, adminPrefix+"/tenants/"+seg(name), nil, info, nil)
	return err
}

// Delete removes a tenant (409 while it has namespaces).
func (r *Tenants) Delete(ctx context.Context, name string) error {
	_, err := r.c.Do(ctx, http.MethodDelete, adminPrefix+"/tenants/"+seg(name), nil, nil, nil)
	return err
}
