package broker

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-mq/strata/tenants"
)

// httpHandler serves liveness, readiness, metrics, lookups and the admin API
// (tenants, clusters and namespaces by package tenants; topics here).
func (b *Broker) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !b.ready.Load() {
			reason := "not ready"
			if p := b.initErr.Load(); p != nil {
				reason = *p
			}
			http.Error(w, reason, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	metrics := promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		// Metrics cover every tenant: with authorization on, only superusers
		// (e.g. the Prometheus scraper's token) may read them.
		if b.opts.AuthorizationEnabled {
			role, err := b.roleHTTP(r)
			if err == nil && !b.authz.IsSuperUser(role) {
				err = fmt.Errorf("%w: metrics are readable by superusers only", tenants.ErrForbidden)
			}
			if err != nil {
				writeErr(w, err)
				return
			}
		}
		metrics.ServeHTTP(w, r)
	})
	topics := b.adminMux()
	opts := tenants.AdminOptions{Store: b.cfg, Authz: b.authz, Topics: b, Cluster: b.opts.Cluster, Fallback: topics, Logger: b.log}
	if b.opts.Authentication != nil {
		opts.Role = b.roleHTTP
	}
	admin, err := tenants.NewAdminHandler(opts)
	if err != nil {
		// Only invalid options fail, and these are built here.
		panic(err)
	}
	mux.Handle("/admin/", admin)
	mux.Handle("/lookup/", topics)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Refuse, rather than redirect to the cleaned path (another
		// resource), "a//b", "." and ".." paths.
		if err := tenants.CheckPath(r); err != nil {
			writeErr(w, err)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
