package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/auth"
)

type roleKey struct{}

// roleOf returns the authenticated role of a request ("" without authentication).
func roleOf(ctx context.Context) string {
	r, _ := ctx.Value(roleKey{}).(string)
	return r
}

// policySource feeds the authorizer from the broker's configuration cache.
type policySource struct{ b *Broker }

func (p policySource) Tenant(name string) (tenants.TenantInfo, bool) {
	if c := p.b.cache.Load(); c != nil {
		return c.Tenant(name)
	}
	return tenants.TenantInfo{}, false
}

func (p policySource) Policies(ns naming.Namespace) (tenants.Policies, bool) {
	if c := p.b.cache.Load(); c != nil {
		return c.Policies(ns)
	}
	return tenants.Policies{}, false
}

func newAuthorizer(b *Broker) (*auth.Authorizer, error) {
	return auth.NewAuthorizer(auth.AuthorizerOptions{Enabled: b.opts.AuthorizationEnabled, SuperUserRoles: b.opts.SuperUserRoles, Source: policySource{b}})
}

// authenticateGRPC reads the bearer token of a call.
func (b *Broker) authenticateGRPC(ctx context.Context) (context.Context, error) {
	if b.opts.Authentication == nil {
		return ctx, nil
	}
	var header string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			header = v[0]
		}
	}
	token, err := auth.BearerToken(header)
	if err == nil {
		var role string
		if role, err = b.opts.Authentication.Authenticate(token); err == nil {
			return context.WithValue(ctx, roleKey{}, role), nil
		}
	}
	return ctx, clientpb.Error(clientpb.ServerError_AUTHENTICATION_ERROR, "%v", err)
}

func (b *Broker) unaryAuth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := b.authenticateGRPC(ctx)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s authedStream) Context() context.Context { return s.ctx }

func (b *Broker) streamAuth(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := b.authenticateGRPC(ss.Context())
	if err != nil {
		return err
	}
	return h(srv, authedStream{ss, ctx})
}

// roleHTTP authenticates an HTTP request ("" when authentication is off).
func (b *Broker) roleHTTP(r *http.Request) (string, error) {
	if b.opts.Authentication == nil {
		return "", nil
	}
	return b.opts.Authentication.AuthenticateHTTP(r)
}

// requireClientCert guards every HTTP path except the probes when the TLS
// configuration demands client certificates (probes carry none).
func (b *Broker) requireClientCert(next http.Handler) http.Handler {
	// Only a broker that requires client certificates enforces them on
	// HTTP; with VerifyClientCertIfGiven a certificate is optional there too.
	if b.opts.TLS == nil || (b.opts.TLS.ClientAuth != tls.RequireAndVerifyClientCert && b.opts.TLS.ClientAuth != tls.RequireAnyClientCert) {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probe := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
		if !probe && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			http.Error(w, `{"reason":"a client certificate is required"}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// httpTLS returns the HTTP listener's TLS config: client certificates are
// verified when given and enforced per path by requireClientCert.
func (b *Broker) httpTLS() *tls.Config {
	cfg := b.opts.TLS.Clone()
	if cfg.ClientAuth >= tls.VerifyClientCertIfGiven {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg
}

// checkAccess re-validates live producers and consumers after a policy
// change (a revoked permission closes their access).
func (b *Broker) checkAccess(ch tenants.Change) {
	if !b.opts.AuthorizationEnabled || ch.Kind == tenants.TopicPoliciesChanged {
		return
	}
	for _, t := range b.loadedTopics() {
		if ch.Kind == tenants.NamespaceChanged && t.name.NamespaceName().String() != ch.Name {
			continue
		}
		if ch.Kind == tenants.TenantChanged && t.name.Tenant() != ch.Name {
			continue
		}
		t.recheckAccess(context.Background())
	}
}

// recheckAccess disconnects producers and consumers whose role lost its permission.
func (t *Topic) recheckAccess(ctx context.Context) {
	t.mu.Lock()
	producers := make([]*Producer, 0, len(t.mu.producers))
	for _, p := range t.mu.producers {
		producers = append(producers, p)
	}
	subs := make([]*Subscription, 0, len(t.mu.subs))
	for _, s := range t.mu.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, p := range producers {
		if err := t.b.authz.CanProduce(ctx, p.role, t.name); err != nil {
			p.kill(err)
		}
	}
	for _, s := range subs {
		s.mu.Lock()
		consumers := append([]*Consumer(nil), s.mu.consumers...)
		s.mu.Unlock()
		for _, c := range consumers {
			if err := t.b.authz.CanConsume(ctx, c.role, t.name, s.name); err != nil {
				c.kill(err)
			}
		}
	}
}

func describeTLS(cfg *tls.Config) string {
	if cfg == nil {
		return "off"
	}
	return strings.ToLower(fmt.Sprint(cfg.ClientAuth))
}
