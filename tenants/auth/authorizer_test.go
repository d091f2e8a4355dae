package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
)

// fakeSource is a PolicySource backed by maps.
type fakeSource struct {
	tenants  map[string]tenants.TenantInfo
	policies map[string]tenants.Policies
}

func (f fakeSource) Tenant(name string) (tenants.TenantInfo, bool) {
	t, ok := f.tenants[name]
	return t, ok
}

func (f fakeSource) Policies(ns naming.Namespace) (tenants.Policies, bool) {
	p, ok := f.policies[ns.String()]
	return p, ok && !p.Deleted
}

func testSource() fakeSource {
	return fakeSource{
		tenants: map[string]tenants.TenantInfo{
			"acme": {AdminRoles: []string{"alice"}},
			"beta": {AdminRoles: []string{"bob"}},
		},
		policies: map[string]tenants.Policies{
			"acme/app": {AuthPolicies: tenants.AuthPolicies{
				NamespaceAuth: map[string][]tenants.AuthAction{
					"producer": {tenants.ActionProduce},
					"consumer": {tenants.ActionConsume},
					"both":     {tenants.ActionProduce, tenants.ActionConsume},
				},
				DestinationAuth: map[string]map[string][]tenants.AuthAction{
					"persistent://acme/app/one":   {"single": {tenants.ActionConsume}},
					"persistent://acme/app/parts": {"single": {tenants.ActionProduce}},
				},
				SubscriptionAuthRoles: map[string][]string{"reserved": {"both"}},
			}},
			"acme/prefixed": {
				AuthPolicies:         tenants.AuthPolicies{NamespaceAuth: map[string][]tenants.AuthAction{"consumer": {tenants.ActionConsume}}},
				SubscriptionAuthMode: "Prefix",
			},
			"acme/gone": {Deleted: true, AuthPolicies: tenants.AuthPolicies{NamespaceAuth: map[string][]tenants.AuthAction{"producer": {tenants.ActionProduce}}}},
			"beta/data": {AuthPolicies: tenants.AuthPolicies{NamespaceAuth: map[string][]tenants.AuthAction{"beta-app": {tenants.ActionProduce, tenants.ActionConsume}}}},
		},
	}
}

// TestIsolationMatrix checks every identity against every operation, from
// the token to the decision: 401 for authentication failures, 403 for
// roles without the right, ok otherwise.
func TestIsolationMatrix(t *testing.T) {
	k := newKeys(t)
	now := time.Now()
	authn, err := NewAuthenticator(AuthenticatorOptions{SecretKey: k.secretURL})
	if err != nil {
		t.Fatal(err)
	}
	authz, err := NewAuthorizer(AuthorizerOptions{Enabled: true, SuperUserRoles: []string{"root"}, Source: testSource()})
	if err != nil {
		t.Fatal(err)
	}
	token := func(role string) string { return mustToken(t, k.secret, TokenOptions{Subject: role}) }
	expired := mustToken(t, k.secret, TokenOptions{Subject: "root", ExpiresIn: time.Minute, Now: func() time.Time { return now.Add(-time.Hour) }})
	wrongSig := mustToken(t, k.otherSecret, TokenOptions{Subject: "root"})

	topic := naming.MustParseTopic("acme/app/orders")
	ctx := context.Background()
	ops := map[string]func(role string) error{
		"manage acme":  func(r string) error { return authz.CanManageTenant(ctx, r, "acme") },
		"produce":      func(r string) error { return authz.CanProduce(ctx, r, topic) },
		"consume":      func(r string) error { return authz.CanConsume(ctx, r, topic, "sub") },
		"lookup":       func(r string) error { return authz.CanLookup(ctx, r, topic) },
		"manage beta":  func(r string) error { return authz.CanManageTenant(ctx, r, "beta") },
		"produce beta": func(r string) error { return authz.CanProduce(ctx, r, naming.MustParseTopic("beta/data/x")) },
	}
	const ok, denied, unauth = "ok", "403", "401"
	tests := []struct {
		who   string
		token string
		want  map[string]string
	}{
		{"no token", "", map[string]string{"manage acme": unauth, "produce": unauth, "consume": unauth, "lookup": unauth, "manage beta": unauth, "produce beta": unauth}},
		{"wrong signature", wrongSig, map[string]string{"manage acme": unauth, "produce": unauth, "consume": unauth, "lookup": unauth, "manage beta": unauth, "produce beta": unauth}},
		{"expired", expired, map[string]string{"manage acme": unauth, "produce": unauth, "consume": unauth, "lookup": unauth, "manage beta": unauth, "produce beta": unauth}},
		{"role without permission", token("carol"), map[string]string{"manage acme": denied, "produce": denied, "consume": denied, "lookup": denied, "manage beta": denied, "produce beta": denied}},
		{"other tenant's admin", token("bob"), map[string]string{"manage acme": denied, "produce": denied, "consume": denied, "lookup": denied, "manage beta": ok, "produce beta": ok}},
		{"other tenant's app", token("beta-app"), map[string]string{"manage acme": denied, "produce": denied, "consume": denied, "lookup": denied, "manage beta": denied, "produce beta": ok}},
		{"producer role", token("producer"), map[string]string{"manage acme": denied, "produce": ok, "consume": denied, "lookup": ok, "manage beta": denied, "produce beta": denied}},
		{"consumer role", token("consumer"), map[string]string{"manage acme": denied, "produce": denied, "consume": ok, "lookup": ok, "manage beta": denied, "produce beta": denied}},
		{"tenant admin", token("alice"), map[string]string{"manage acme": ok, "produce": ok, "consume": ok, "lookup": ok, "manage beta": denied, "produce beta": denied}},
		{"superuser", token("root"), map[string]string{"manage acme": ok, "produce": ok, "consume": ok, "lookup": ok, "manage beta": ok, "produce beta": ok}},
	}
	for _, tc := range tests {
		for op, fn := range ops {
			got := ok
			role, err := authn.Authenticate(tc.token)
			if err != nil {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("%s: authentication error %v is not ErrUnauthenticated", tc.who, err)
				}
				got = unauth
			} else if err := fn(role); err != nil {
				if !errors.Is(err, ErrForbidden) || !errors.Is(err, tenants.ErrForbidden) {
					t.Fatalf("%s/%s: authorization error %v is not ErrForbidden", tc.who, op, err)
				}
				got = denied
			}
			if got != tc.want[op] {
				t.Errorf("%s: %s = %s, want %s", tc.who, op, got, tc.want[op])
			}
		}
	}
}

func TestAuthorizerDetails(t *testing.T) {
	ctx := context.Background()
	a, err := NewAuthorizer(AuthorizerOptions{Enabled: true, SuperUserRoles: []string{"root"}, Source: testSource()})
	if err != nil {
		t.Fatal(err)
	}
	tp := naming.MustParseTopic
	tests := []struct {
		name  string
		check func() error
		ok    bool
	}{
		{"topic grant allows consume on that topic", func() error { return a.CanConsume(ctx, "single", tp("acme/app/one"), "s") }, true},
		{"topic grant does not reach other topics", func() error { return a.CanConsume(ctx, "single", tp("acme/app/two"), "s") }, false},
		{"grant on partitioned topic covers partitions", func() error { return a.CanProduce(ctx, "single", tp("acme/app/parts-partition-2")) }, true},
		{"reserved subscription refuses others", func() error { return a.CanConsume(ctx, "consumer", tp("acme/app/x"), "reserved") }, false},
		{"reserved subscription admits its role", func() error { return a.CanConsume(ctx, "both", tp("acme/app/x"), "reserved") }, true},
		{"prefix mode refuses foreign subscription", func() error { return a.CanConsume(ctx, "consumer", tp("acme/prefixed/x"), "other-sub") }, false},
		{"prefix mode admits own prefix", func() error { return a.CanConsume(ctx, "consumer", tp("acme/prefixed/x"), "consumer-sub") }, true},
		{"namespace being deleted grants nothing", func() error { return a.CanProduce(ctx, "producer", tp("acme/gone/x")) }, false},
		{"missing namespace grants nothing", func() error { return a.CanProduce(ctx, "producer", tp("acme/none/x")) }, false},
		{"missing tenant has no admins", func() error { return a.CanManageTenant(ctx, "alice", "nope") }, false},
		{"superuser manages missing tenant", func() error { return a.CanManageTenant(ctx, "root", "nope") }, true},
		{"anonymous is nobody", func() error { return a.CanProduce(ctx, "", tp("acme/app/x")) }, false},
		{"anonymous is not an admin", func() error { return a.CanManageTenant(ctx, "", "acme") }, false},
	}
	for _, tc := range tests {
		if err := tc.check(); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if !a.IsSuperUser("root") || a.IsSuperUser("alice") || a.IsSuperUser("") {
		t.Error("IsSuperUser")
	}

	off, err := NewAuthorizer(AuthorizerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if off.Enabled() || !off.IsSuperUser("") || off.CanManageTenant(ctx, "", "x") != nil ||
		off.CanProduce(ctx, "", tp("t")) != nil || off.CanConsume(ctx, "", tp("t"), "s") != nil || off.CanLookup(ctx, "", tp("t")) != nil {
		t.Error("disabled authorization must allow everything")
	}
	if _, err := NewAuthorizer(AuthorizerOptions{Enabled: true}); err == nil {
		t.Error("enabled authorizer without a source accepted")
	}
}
