package broker

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-mq/strata/tenants"
)

// routeMux is an http.ServeMux that lists its routes: the patterns given to
// Handle and HandleFunc.
type routeMux struct {
	*http.ServeMux
	routes []string
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

// ServeHTTP refuses, rather than redirects to the cleaned path (another
// resource), paths with an empty, "." or ".." segment.
func (m *routeMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := tenants.CheckPath(r); err != nil {
		writeErr(w, err)
		return
	}
	m.ServeMux.ServeHTTP(w, r)
}

// Handle registers h for pattern and lists pattern as a route.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.routes = append(m.routes, pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers h for pattern and lists pattern as a route.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// HTTPRoutes lists the routes of a started broker's HTTP API (probes,
// metrics, lookups and the admin API), each as an http.ServeMux pattern such
// as "GET /admin/v2/persistent/{tenant}/{namespace}" (a pattern without a
// method serves every method); other paths answer 404. It serves to list
// the API or to check that every route is authorized.
func (b *Broker) HTTPRoutes() []string { return slices.Clone(b.httpRoutes) }

// httpHandler serves liveness, readiness, metrics, lookups and the admin API
// (tenants, clusters and namespaces by package tenants; topics here).
func (b *Broker) httpHandler() *routeMux {
	mux := newRouteMux()
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
	// A series that cannot be gathered is left out, not the whole answer:
	// one tenant's odd data never hides every tenant's metrics.
	metrics := promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: slogPrinter{b.log}})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		// Metrics name every tenant's topics: with authentication on they
		// need a token, with authorization on a superuser's (e.g. the
		// Prometheus scraper's).
		if b.opts.Authentication != nil {
			role, err := b.roleHTTP(r)
			if err == nil && b.opts.AuthorizationEnabled && !b.authz.IsSuperUser(role) {
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
	// Mounts, not routes: the mounted handlers' routes are the mux's.
	mux.ServeMux.Handle("/admin/", admin)
	mux.ServeMux.Handle("/lookup/", topics)
	mux.routes = slices.Concat(mux.routes, admin.Routes(), topics.routes)
	return mux
}

// slogPrinter logs promhttp's gathering errors.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics: " + fmt.Sprint(v...)) }
