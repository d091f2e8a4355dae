package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
)

// PolicySource supplies tenants and namespace policies to an Authorizer;
// *tenants.Cache implements it.
type PolicySource interface {
	// Tenant returns a tenant's configuration.
	Tenant(name string) (tenants.TenantInfo, bool)
	// Policies returns a live (not being deleted) namespace's policies.
	Policies(ns naming.Namespace) (tenants.Policies, bool)
}

// AuthorizerOptions configures an Authorizer.
type AuthorizerOptions struct {
	// Enabled turns authorization on (Pulsar's authorizationEnabled). When
	// false every check passes and every role counts as a superuser.
	Enabled bool
	// SuperUserRoles may do anything (Pulsar's superUserRoles).
	SuperUserRoles []string
	// Source supplies tenants and policies; required when Enabled.
	Source PolicySource
}

// Authorizer decides what a role may do:
//
//   - superusers may do anything;
//   - a tenant's admin roles (TenantInfo.AdminRoles) manage the tenant's
//     namespaces, policies and topics, and may produce and consume on them;
//   - other roles need a namespace (auth_policies.namespace_auth) or topic
//     (auth_policies.destination_auth) grant of the produce or consume
//     action; consuming also honours subscription_auth_roles and the
//     Prefix subscription_auth_mode.
//
// Checks return nil when allowed and an error wrapping ErrForbidden (and
// tenants.ErrForbidden) otherwise. The role "" (unauthenticated) is only
// allowed when authorization is disabled. It is safe for concurrent use.
type Authorizer struct {
	opts AuthorizerOptions
}

// NewAuthorizer returns an Authorizer.
func NewAuthorizer(opts AuthorizerOptions) (*Authorizer, error) {
	if opts.Enabled && opts.Source == nil {
		return nil, fmt.Errorf("auth: authorization enabled without a policy source")
	}
	opts.SuperUserRoles = slices.Clone(opts.SuperUserRoles)
	return &Authorizer{opts: opts}, nil
}

// Enabled reports whether authorization is on.
func (a *Authorizer) Enabled() bool { return a.opts.Enabled }

// forbiddenError wraps ErrForbidden and tenants.ErrForbidden.
type forbiddenError struct{ msg string }

func (e *forbiddenError) Error() string   { return e.msg }
func (e *forbiddenError) Unwrap() []error { return []error{ErrForbidden, tenants.ErrForbidden} }

func forbidden(format string, args ...any) error {
	return &forbiddenError{msg: "auth: " + fmt.Sprintf(format, args...)}
}

// IsSuperUser reports whether role is a superuser (always true when
// authorization is disabled).
func (a *Authorizer) IsSuperUser(role string) bool {
	if !a.opts.Enabled {
		return true
	}
	return role != "" && slices.Contains(a.opts.SuperUserRoles, role)
}

// isAdmin reports whether role is a superuser or an admin of tenant.
func (a *Authorizer) isAdmin(role, tenant string) bool {
	if a.IsSuperUser(role) {
		return true
	}
	if role == "" {
		return false
	}
	t, ok := a.opts.Source.Tenant(tenant)
	return ok && t.IsAdmin(role)
}

// CanManageTenant allows superusers and the tenant's admin roles. The error
// does not reveal whether the tenant exists.
func (a *Authorizer) CanManageTenant(ctx context.Context, role, tenant string) error {
	if a.isAdmin(role, tenant) {
		return nil
	}
	return forbidden("role %s is not an admin of tenant %q", roleName(role), tenant)
}

// CanProduce allows superusers, the tenant's admins, and roles granted the
// produce action on the topic's namespace or on the topic (for a partition,
// a grant on its partitioned topic counts).
func (a *Authorizer) CanProduce(ctx context.Context, role string, topic naming.Topic) error {
	if a.isAdmin(role, topic.Tenant()) {
		return nil
	}
	if _, ok := a.granted(role, topic, tenants.ActionProduce); ok {
		return nil
	}
	return forbidden("role %s may not produce to %s", roleName(role), topic)
}

// CanConsume allows superusers, the tenant's admins, and roles granted the
// consume action on the topic's namespace or topic, as long as the
// subscription admits the role: when subscription_auth_roles lists the
// subscription the role must be among its roles, and with
// subscription_auth_mode Prefix the subscription name must start with the
// role.
func (a *Authorizer) CanConsume(ctx context.Context, role string, topic naming.Topic, subscription string) error {
	if a.isAdmin(role, topic.Tenant()) {
		return nil
	}
	p, ok := a.granted(role, topic, tenants.ActionConsume)
	if !ok {
		return forbidden("role %s may not consume from %s", roleName(role), topic)
	}
	if roles := p.AuthPolicies.SubscriptionAuthRoles[subscription]; len(roles) > 0 && !slices.Contains(roles, role) {
		return forbidden("role %s may not use subscription %q of %s", roleName(role), subscription, topic)
	}
	if p.SubscriptionAuthMode == "Prefix" && !strings.HasPrefix(subscription, role) {
		return forbidden("role %s may only use subscriptions starting with %q in namespace %s", roleName(role), role, topic.NamespaceName())
	}
	return nil
}

// CanLookup allows whoever may produce to or consume from the topic.
func (a *Authorizer) CanLookup(ctx context.Context, role string, topic naming.Topic) error {
	if a.isAdmin(role, topic.Tenant()) {
		return nil
	}
	if _, ok := a.granted(role, topic, tenants.ActionProduce); ok {
		return nil
	}
	if _, ok := a.granted(role, topic, tenants.ActionConsume); ok {
		return nil
	}
	return forbidden("role %s may not look up %s", roleName(role), topic)
}

// CanListTopics allows tenant admins and roles granted produce or consume
// on the whole namespace to list its topics (Pulsar's GET_TOPICS_OF_NAMESPACE).
func (a *Authorizer) CanListTopics(ctx context.Context, role string, ns naming.Namespace) error {
	if a.isAdmin(role, ns.Tenant()) {
		return nil
	}
	if role != "" {
		if p, ok := a.opts.Source.Policies(ns); ok {
			actions := p.AuthPolicies.NamespaceAuth[role]
			if slices.Contains(actions, tenants.ActionProduce) || slices.Contains(actions, tenants.ActionConsume) {
				return nil
			}
		}
	}
	return forbidden("role %s may not list the topics of namespace %s", roleName(role), ns)
}

// granted reports whether role holds action on topic through a namespace
// or topic grant, returning the namespace's policies.
func (a *Authorizer) granted(role string, topic naming.Topic, action tenants.AuthAction) (tenants.Policies, bool) {
	if role == "" {
		return tenants.Policies{}, false
	}
	p, ok := a.opts.Source.Policies(topic.NamespaceName())
	if !ok {
		return p, false
	}
	if slices.Contains(p.Actions(role, topic.String()), action) {
		return p, true
	}
	if topic.IsPartition() && slices.Contains(p.Actions(role, topic.PartitionedParent().String()), action) {
		return p, true
	}
	return p, false
}

func roleName(role string) string {
	if role == "" {
		return "(anonymous)"
	}
	return fmt.Sprintf("%q", role)
}
