package tenants

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/strata-mq/strata/internal/naming"
)

// AdminPrefix is the path prefix of Pulsar's admin REST API v2.
const AdminPrefix = "/admin/v2"

// DefaultMaxBodyBytes bounds admin request bodies when AdminOptions leaves it 0.
const DefaultMaxBodyBytes = 1 << 20

// Authorizer decides admin operations; *auth.Authorizer implements it.
type Authorizer interface {
	// IsSuperUser reports whether role may do anything.
	IsSuperUser(role string) bool
	// CanManageTenant returns nil when role may manage tenant's namespaces
	// and policies, else an error wrapping ErrForbidden.
	CanManageTenant(ctx context.Context, role, tenant string) error
}

// AdminOptions configures NewAdminHandler.
type AdminOptions struct {
	// Store holds the configuration (required).
	Store *Store
	// Authz checks permissions; nil disables authorization (everything is
	// allowed, as with Pulsar's authorizationEnabled=false).
	Authz Authorizer
	// Role authenticates a request and returns its role; an error answers
	// 401. nil disables authentication (every request has role "").
	Role func(*http.Request) (string, error)
	// Topics lists a namespace's topics: DELETE of a namespace with topics is
	// refused, and GET .../{tenant}/{namespace}/topics is served. nil: only
	// partitioned-topic metadata counts and .../topics is not served here.
	Topics TopicLister
	// Cluster is the local cluster, the key of the per-cluster rate
	// policies (publishRate, dispatchRate, subscriptionDispatchRate);
	// Store.LocalCluster() when empty.
	Cluster string
	// Fallback serves requests that match none of the handler's routes
	// (e.g. the broker's own /admin/v2 paths); nil answers a JSON 404/405.
	Fallback http.Handler
	// MaxBodyBytes bounds request bodies; DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// Logger receives internal errors; slog.Default() when nil.
	Logger *slog.Logger
}

// AdminHandler serves the clusters, tenants and namespaces part of /admin/v2.
type AdminHandler struct {
	opts   AdminOptions
	log    *slog.Logger
	mux    *http.ServeMux
	routes []string // patterns registered on mux
}

// access is who may call a route.
type access int

const (
	anyRole     access = iota // any authenticated role
	superUser                 // superusers only
	tenantAdmin               // superusers and admins of {tenant}
)

// noContent is returned by route functions that answer 204.
var noContent = struct{}{}

// call is one request being served.
type call struct {
	r    *http.Request
	ctx  context.Context
	role string
	h    *AdminHandler
}

type routeFunc func(c *call) (any, error)

// NewAdminHandler returns the handler of Pulsar's /admin/v2 cluster,
// tenant and namespace paths (see docs/admin-api.md). Every request is
// authenticated (401), authorized (403) and validated (400) before it
// changes anything; errors are JSON {"reason": "..."} with the status of
// HTTPStatus.
func NewAdminHandler(opts AdminOptions) (*AdminHandler, error) {
	if opts.Store == nil {
		return nil, errors.New("tenants: admin handler needs a Store")
	}
	if opts.Cluster == "" {
		opts.Cluster = opts.Store.LocalCluster()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	h := &AdminHandler{opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.clusterRoutes()
	h.tenantRoutes()
	h.namespaceRoutes()
	h.policyRoutes()
	return h, nil
}

// Routes lists the handler's routes, each as an http.ServeMux pattern such
// as "GET /admin/v2/tenants/{tenant}", in registration order; Fallback's
// are not included. It serves to list the API or to check that every route
// is authorized.
func (h *AdminHandler) Routes() []string { return slices.Clone(h.routes) }

// ServeHTTP routes to the matching admin route, else to Fallback or a JSON
// 404/405.
func (h *AdminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := CheckPath(r); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, pattern := h.mux.Handler(r); pattern == "" {
		if h.opts.Fallback != nil {
			h.opts.Fallback.ServeHTTP(w, r)
			return
		}
		h.mux.ServeHTTP(&jsonErrorWriter{ResponseWriter: w}, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// CheckPath refuses (ErrInvalid) a request path with an empty segment
// ("a//b"), or a "." or ".." segment, a trailing slash apart. An
// http.ServeMux answers such a path with a redirect to its cleaned form,
// which names another resource: DELETE .../{topic}/subscription/.. would
// become DELETE .../{topic}, and PUT /tenants//x would create tenant x.
// A name that really is "." or ".." must be escaped (%2E) and is then
// refused by name validation.
func CheckPath(r *http.Request) error {
	if r.Method == http.MethodConnect {
		return nil
	}
	p := r.URL.EscapedPath()
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		switch {
		case s == "" && i < len(segs)-1:
			return errorf(ErrInvalid, "path %q has an empty segment (a name is missing)", p)
		case s == "." || s == "..":
			return errorf(ErrInvalid, "path %q has a %q segment; \".\" and \"..\" are not valid names", p, s)
		}
	}
	return nil
}

// route registers fn for "METHOD /admin/v2/path".
func (h *AdminHandler) route(method, path string, who access, fn routeFunc) {
	pattern := method + " " + AdminPrefix + path
	h.routes = append(h.routes, pattern)
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c := &call{r: r, ctx: r.Context(), h: h}
		res, err := h.serve(c, who, fn)
		switch {
		case err != nil:
			h.fail(w, r, err)
		case res == nil || res == noContent:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, http.StatusOK, res)
		}
	})
}

func (h *AdminHandler) serve(c *call, who access, fn routeFunc) (any, error) {
	if h.opts.Role != nil {
		role, err := h.opts.Role(c.r)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				err = &Error{Kind: ErrUnauthenticated, Msg: err.Error()}
			}
			return nil, err
		}
		c.role = role
	}
	if err := validatePathNames(c.r); err != nil {
		return nil, err
	}
	switch who {
	case superUser:
		if !h.isSuperUser(c.role) {
			return nil, errorf(ErrForbidden, "only superusers may %s %s", c.r.Method, c.r.URL.Path)
		}
	case tenantAdmin:
		if err := h.canManage(c.ctx, c.role, c.r.PathValue("tenant")); err != nil {
			return nil, err
		}
	}
	return fn(c)
}

func (h *AdminHandler) isSuperUser(role string) bool {
	return h.opts.Authz == nil || h.opts.Authz.IsSuperUser(role)
}

func (h *AdminHandler) canManage(ctx context.Context, role, tenant string) error {
	if h.opts.Authz == nil {
		return nil
	}
	err := h.opts.Authz.CanManageTenant(ctx, role, tenant)
	if err != nil && !errors.Is(err, ErrForbidden) {
		err = &Error{Kind: ErrForbidden, Msg: err.Error()}
	}
	return err
}

// validatePathNames checks the {cluster}, {tenant} and {namespace} path values.
func validatePathNames(r *http.Request) error {
	checks := []struct {
		key string
		fn  func(string) error
	}{
		{"cluster", naming.ValidateCluster},
		{"tenant", naming.ValidateTenant},
		{"namespace", naming.ValidateNamespaceLocal},
	}
	for _, c := range checks {
		if v := r.PathValue(c.key); v != "" || strings.Contains(r.Pattern, "{"+c.key+"}") {
			if err := c.fn(v); err != nil {
				return invalidName(err)
			}
		}
	}
	if role := r.PathValue("role"); role != "" || strings.Contains(r.Pattern, "{role}") {
		if err := ValidateRole(role); err != nil {
			return err
		}
	}
	return nil
}

// namespace returns the request's {tenant}/{namespace}.
func (c *call) namespace() naming.Namespace {
	ns, _ := naming.NewNamespace(c.r.PathValue("tenant"), c.r.PathValue("namespace")) // validated in serve
	return ns
}

// decode reads a JSON body into v, rejecting unknown fields and trailing
// data. With optional set, an empty body (or JSON null) leaves v unchanged;
// otherwise null is refused: decoded, it would silently set a zero value
// (a TTL of 0, a tenant without admins).
func (c *call) decode(v any, optional bool) error {
	body := http.MaxBytesReader(nil, c.r.Body, c.h.opts.MaxBodyBytes)
	data, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorf(ErrInvalid, "request body is larger than %d bytes", tooBig.Limit)
		}
		return errorf(ErrInvalid, "reading request body: %v", err)
	}
	switch strings.TrimSpace(string(data)) {
	case "":
		if optional {
			return nil
		}
		return errorf(ErrInvalid, "request body is required")
	case "null":
		if optional {
			return nil
		}
		return errorf(ErrInvalid, "request body is null; a value is required (DELETE removes a policy)")
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(ErrInvalid, "malformed JSON body: %s", jsonErrMsg(err))
	}
	// Token, not More: More misses a stray ']' or '}' after the value.
	if _, err := dec.Token(); err != io.EOF {
		return errorf(ErrInvalid, "malformed JSON body: unexpected data after the JSON value")
	}
	return nil
}

func jsonErrMsg(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %q must be %s, got %s", te.Field, te.Type, te.Value)
		}
		return fmt.Sprintf("want %s, got %s", te.Type, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// errorBody is the JSON of every error answer, as Pulsar's admin API sends it.
type errorBody struct {
	Reason string `json:"reason"`
}

func (h *AdminHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := HTTPStatus(err)
	if status >= 500 {
		h.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
	}
	writeJSON(w, status, errorBody{Reason: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // reasons quote ">=" and names verbatim
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		enc.Encode(errorBody{Reason: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// jsonErrorWriter turns the ServeMux's plain-text 404 and 405 answers into
// JSON {"reason": ...}; other answers (redirects) pass through.
type jsonErrorWriter struct {
	http.ResponseWriter
	swallow bool
}

// WriteHeader replaces 404 and 405 answers with JSON.
func (w *jsonErrorWriter) WriteHeader(code int) {
	if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
		w.swallow = true
		w.Header().Del("X-Content-Type-Options")
		reason := "no such admin path"
		if code == http.StatusMethodNotAllowed {
			reason = "method not allowed on this path (allowed: " + w.Header().Get("Allow") + ")"
		}
		writeJSON(w.ResponseWriter, code, errorBody{Reason: reason})
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write drops the plain-text body of a replaced answer.
func (w *jsonErrorWriter) Write(b []byte) (int, error) {
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}
