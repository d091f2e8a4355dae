package tenants

import (
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/strata-mq/strata/internal/naming"
)

// TenantInfo is a tenant's configuration (Pulsar's TenantInfo).
type TenantInfo struct {
	// AdminRoles may manage the tenant's namespaces, policies and topics.
	AdminRoles []string `json:"adminRoles"`
	// AllowedClusters are the clusters the tenant's namespaces may use
	// (as replication clusters).
	AllowedClusters []string `json:"allowedClusters"`
}

// tenantRecord is what is stored at /tenants/{t}: the TenantInfo plus a
// marker set while a delete is checking that the tenant has no namespaces.
type tenantRecord struct {
	TenantInfo
	// Deleting is set by DeleteTenant before it checks for namespaces;
	// CreateNamespace re-reads the tenant after creating its key and backs
	// out when it sees the marker, so a namespace never outlives its tenant.
	Deleting bool `json:"deleting,omitempty"`
}

// IsAdmin reports whether role is one of the tenant's admin roles.
func (t TenantInfo) IsAdmin(role string) bool {
	return role != "" && slices.Contains(t.AdminRoles, role)
}

// AllowsCluster reports whether the tenant may use cluster.
func (t TenantInfo) AllowsCluster(cluster string) bool {
	return slices.Contains(t.AllowedClusters, cluster)
}

// Clone returns a deep copy.
func (t TenantInfo) Clone() TenantInfo {
	return TenantInfo{AdminRoles: cloneSlice(t.AdminRoles), AllowedClusters: cloneSlice(t.AllowedClusters)}
}

// normalize removes duplicates and makes nil lists empty (so they encode as []).
func (t *TenantInfo) normalize() {
	t.AdminRoles = dedupe(t.AdminRoles)
	t.AllowedClusters = dedupe(t.AllowedClusters)
}

// Validate checks role and cluster names (not whether the clusters exist).
func (t TenantInfo) Validate() error {
	for _, r := range t.AdminRoles {
		if err := ValidateRole(r); err != nil {
			return err
		}
	}
	for _, c := range t.AllowedClusters {
		if err := naming.ValidateCluster(c); err != nil {
			return errorf(ErrInvalid, "allowedClusters: %s", nameMsg(err))
		}
	}
	return nil
}

// ClusterData describes a cluster (Pulsar's ClusterData). Only the service
// URLs are used by Strata today; the other fields are stored for
// geo-replication and compatibility with Pulsar's admin clients.
type ClusterData struct {
	// ServiceURL is the cluster's admin/HTTP URL, e.g. http://broker:8080.
	ServiceURL string `json:"serviceUrl"`
	// ServiceURLTLS is the HTTPS variant of ServiceURL.
	ServiceURLTLS string `json:"serviceUrlTls"`
	// BrokerServiceURL is the cluster's data-plane (gRPC) URL, e.g. broker:6650.
	BrokerServiceURL string `json:"brokerServiceUrl"`
	// BrokerServiceURLTLS is the TLS variant of BrokerServiceURL.
	BrokerServiceURLTLS string `json:"brokerServiceUrlTls"`
	// PeerClusterNames lists clusters whose brokers serve as peers.
	PeerClusterNames []string `json:"peerClusterNames,omitempty"`
	// AuthenticationPlugin names how brokers of other clusters authenticate
	// to this one (e.g. "token"); used by replicators.
	AuthenticationPlugin string `json:"authenticationPlugin,omitempty"`
	// AuthenticationParameters are the plugin's parameters (a secret: only
	// superusers can read cluster details).
	AuthenticationParameters string `json:"authenticationParameters,omitempty"`
	// BrokerClientTrustCertsFilePath is the CA file replicators trust.
	BrokerClientTrustCertsFilePath string `json:"brokerClientTrustCertsFilePath,omitempty"`
	// BrokerClientTLSEnabled makes replicators connect with TLS.
	BrokerClientTLSEnabled bool `json:"brokerClientTlsEnabled,omitempty"`
}

// Clone returns a deep copy.
func (c ClusterData) Clone() ClusterData {
	c.PeerClusterNames = cloneSlice(c.PeerClusterNames)
	return c
}

// Validate checks the URLs' syntax and the peer cluster names.
func (c ClusterData) Validate() error {
	urls := []struct{ field, v string }{
		{"serviceUrl", c.ServiceURL},
		{"serviceUrlTls", c.ServiceURLTLS},
		{"brokerServiceUrl", c.BrokerServiceURL},
		{"brokerServiceUrlTls", c.BrokerServiceURLTLS},
	}
	for _, u := range urls {
		if err := validateURL(u.field, u.v); err != nil {
			return err
		}
	}
	for _, p := range c.PeerClusterNames {
		if err := naming.ValidateCluster(p); err != nil {
			return errorf(ErrInvalid, "peerClusterNames: %s", nameMsg(err))
		}
	}
	return nil
}

// validateURL accepts "" or a URL with a scheme and host ("http://h:8080",
// "pulsar://h:6650") or a bare host:port ("h:6650", the form Strata's gRPC
// clients take).
func validateURL(field, v string) error {
	if v == "" {
		return nil
	}
	if strings.ContainsAny(v, " \t\r\n") {
		return errorf(ErrInvalid, "%s %q contains white space", field, v)
	}
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return errorf(ErrInvalid, "%s %q is not a valid URL with a host", field, v)
		}
		return nil
	}
	if i := strings.LastIndexByte(v, ':'); i <= 0 || i == len(v)-1 {
		return errorf(ErrInvalid, "%s %q must be a URL (scheme://host:port) or host:port", field, v)
	}
	return nil
}

// PartitionedTopicMetadata is stored at /partitioned-topics/{t}/{ns}/{topic}
// (Pulsar's PartitionedTopicMetadata).
type PartitionedTopicMetadata struct {
	// Partitions is the number of partitions, at least 1.
	Partitions int `json:"partitions"`
}

// MaxRoleLength is the longest role name accepted, in bytes.
const MaxRoleLength = 1024

// ValidateRole checks a role name: non-empty, at most MaxRoleLength bytes, no
// control characters. Roles are JWT subjects, so any other character is
// allowed.
func ValidateRole(role string) error {
	if role == "" {
		return errorf(ErrInvalid, "role name is empty")
	}
	if len(role) > MaxRoleLength {
		return errorf(ErrInvalid, "role name %.32q... is longer than %d bytes", role, MaxRoleLength)
	}
	if !utf8.ValidString(role) {
		return errorf(ErrInvalid, "role name %q is not valid UTF-8", role)
	}
	for i := 0; i < len(role); i++ {
		if c := role[i]; c < 0x20 || c == 0x7f {
			return errorf(ErrInvalid, "role name %q has control character 0x%02x", role, c)
		}
	}
	return nil
}

// MaxSubscriptionLength is the longest subscription name accepted, in bytes.
const MaxSubscriptionLength = 1024

// ValidateSubscription checks a subscription name: non-empty, at most
// MaxSubscriptionLength bytes, valid UTF-8, not "." or "..", no '/' (it
// would nest the cursor's metadata key) and no control characters. Any
// other character, non-ASCII included, is allowed, as in Pulsar.
func ValidateSubscription(name string) error {
	switch {
	case name == "":
		return errorf(ErrInvalid, "subscription name is empty")
	case len(name) > MaxSubscriptionLength:
		return errorf(ErrInvalid, "subscription name %.32q... is longer than %d bytes", name, MaxSubscriptionLength)
	case name == "." || name == "..":
		return errorf(ErrInvalid, "subscription name %q is reserved", name)
	case !utf8.ValidString(name):
		return errorf(ErrInvalid, "subscription name %q is not valid UTF-8", name)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '/':
			return errorf(ErrInvalid, "subscription name %q has '/' at byte %d", name, i)
		case c < 0x20 || c == 0x7f:
			return errorf(ErrInvalid, "subscription name %q has control character 0x%02x at byte %d", name, c, i)
		}
	}
	return nil
}

// MaxProducerNameLength is the longest producer name accepted, in bytes.
const MaxProducerNameLength = 1024

// ValidateProducerName checks a producer name a client chose: at most
// MaxProducerNameLength bytes of valid UTF-8 without control characters
// (it appears in stats, logs and the deduplication state). Empty means
// "let the broker choose".
func ValidateProducerName(name string) error {
	switch {
	case len(name) > MaxProducerNameLength:
		return errorf(ErrInvalid, "producer name %.32q... is longer than %d bytes", name, MaxProducerNameLength)
	case !utf8.ValidString(name):
		return errorf(ErrInvalid, "producer name %q is not valid UTF-8", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return errorf(ErrInvalid, "producer name %q has control character 0x%02x at byte %d", name, c, i)
		}
	}
	return nil
}

// nameMsg strips the naming package's sentinel prefix from a message.
func nameMsg(err error) string {
	return strings.TrimPrefix(err.Error(), naming.ErrInvalidName.Error()+": ")
}

// invalidName converts a naming error into an ErrInvalid *Error.
func invalidName(err error) error {
	return &Error{Kind: ErrInvalid, Msg: nameMsg(err)}
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

// dedupe removes repeated elements, keeping the first occurrence, and returns
// an empty (non-nil) slice for nil.
func dedupe[T comparable](s []T) []T {
	out := make([]T, 0, len(s))
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
