// Package naming parses and validates Strata's resource names: clusters,
// tenants, namespaces ("tenant/ns") and topics
// ("persistent://tenant/ns/topic"), following Pulsar's conventions.
//
// Every part of a name (tenant, namespace, topic local name, cluster) may use
// letters, digits and the characters '-', '_', '=', ':' and '.', must not be
// empty, "." or "..", and is at most MaxPartLength bytes long.
package naming

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Errors returned by the parsers. Every returned error wraps ErrInvalidName,
// except a non-persistent topic, which gets ErrUnsupportedDomain; the message
// names the offending part.
var (
	// ErrInvalidName: a name or one of its parts is malformed.
	ErrInvalidName = errors.New("naming: invalid name")
	// ErrUnsupportedDomain: the topic uses a domain Strata does not serve
	// (for now every domain except persistent://).
	ErrUnsupportedDomain = errors.New("naming: unsupported topic domain")
)

// MaxPartLength is the longest allowed part of a name, in bytes.
const MaxPartLength = 255

// Default tenant and namespace that a bare topic name belongs to.
const (
	DefaultTenant    = "public"
	DefaultNamespace = "default"
)

// Topic domains.
const (
	// Persistent is the domain of durable topics, stored in ledgers.
	Persistent = "persistent"
	// NonPersistent is Pulsar's in-memory domain; Strata does not support it yet.
	NonPersistent = "non-persistent"
)

// PartitionSuffix separates a partitioned topic's name from a partition
// index: partition 3 of "t" is "t-partition-3".
const PartitionSuffix = "-partition-"

// validatePart checks one part of a name; what names the part in messages
// ("tenant", "namespace", "topic", "cluster").
func validatePart(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s name is empty", ErrInvalidName, what)
	}
	if len(s) > MaxPartLength {
		return fmt.Errorf("%w: %s name %.32q... is %d bytes long (max %d)", ErrInvalidName, what, s, len(s), MaxPartLength)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%w: %s name %q is reserved", ErrInvalidName, what, s)
	}
	for i := 0; i < len(s); i++ {
		if !allowedChar(s[i]) {
			return fmt.Errorf("%w: %s name %q has %s at byte %d (allowed: letters, digits, '-', '_', '=', ':', '.')",
				ErrInvalidName, what, s, describeByte(s[i]), i)
		}
	}
	return nil
}

func allowedChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '-', c == '_', c == '=', c == ':', c == '.':
		return true
	}
	return false
}

func describeByte(c byte) string {
	switch {
	case c == '/':
		return "'/'"
	case c < 0x20 || c == 0x7f:
		return fmt.Sprintf("control character 0x%02x", c)
	case c >= 0x80:
		return fmt.Sprintf("non-ASCII byte 0x%02x", c)
	default:
		return fmt.Sprintf("character %q", rune(c))
	}
}

// ValidateTenant checks a tenant name.
func ValidateTenant(name string) error { return validatePart("tenant", name) }

// ValidateCluster checks a cluster name.
func ValidateCluster(name string) error { return validatePart("cluster", name) }

// ValidateNamespaceLocal checks the local part of a namespace name (the
// "ns" in "tenant/ns").
func ValidateNamespaceLocal(name string) error { return validatePart("namespace", name) }

// ValidateTopicLocal checks the local part of a topic name (the "topic" in
// "persistent://tenant/ns/topic"). After its last PartitionSuffix, a number
// must be a partition index as Strata writes it (no sign, no leading zero,
// at most 2^31-1): "t-partition--1" or "t-partition-01" would be an ordinary
// topic here but partition 1 of "t" to a Pulsar client.
func ValidateTopicLocal(name string) error {
	if err := validatePart("topic", name); err != nil {
		return err
	}
	i := strings.LastIndex(name, PartitionSuffix)
	if i <= 0 {
		return nil
	}
	idx := name[i+len(PartitionSuffix):]
	digits := strings.TrimLeft(idx, "-+")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return nil // not a number: an ordinary name
	}
	if n, err := strconv.ParseInt(digits, 10, 32); err != nil || n < 0 || digits != idx || strconv.FormatInt(n, 10) != digits {
		return fmt.Errorf("%w: topic name %q ends in partition index %q: an index is 0 to %d, without sign or leading zeros",
			ErrInvalidName, name, idx, math.MaxInt32)
	}
	return nil
}

// Namespace is a validated namespace name "tenant/ns". The zero value is
// not a valid namespace.
type Namespace struct {
	tenant, local string
}

// NewNamespace builds a namespace from its parts, validating both.
func NewNamespace(tenant, ns string) (Namespace, error) {
	if err := ValidateTenant(tenant); err != nil {
		return Namespace{}, err
	}
	if err := ValidateNamespaceLocal(ns); err != nil {
		return Namespace{}, err
	}
	return Namespace{tenant: tenant, local: ns}, nil
}

// ParseNamespace parses "tenant/ns".
func ParseNamespace(s string) (Namespace, error) {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 2:
		return NewNamespace(parts[0], parts[1])
	case 3:
		return Namespace{}, fmt.Errorf("%w: namespace %q: the 'tenant/cluster/namespace' form is not supported, use 'tenant/namespace'", ErrInvalidName, s)
	default:
		return Namespace{}, fmt.Errorf("%w: namespace %q must have the form 'tenant/namespace'", ErrInvalidName, s)
	}
}

// MustParseNamespace is ParseNamespace that panics on error, for constants
// and tests.
func MustParseNamespace(s string) Namespace {
	ns, err := ParseNamespace(s)
	if err != nil {
		panic(err)
	}
	return ns
}

// String returns "tenant/ns".
func (n Namespace) String() string { return n.tenant + "/" + n.local }

// Tenant returns the tenant part.
func (n Namespace) Tenant() string { return n.tenant }

// LocalName returns the namespace part without the tenant.
func (n Namespace) LocalName() string { return n.local }

// IsZero reports whether n is the zero value (not a parsed namespace).
func (n Namespace) IsZero() bool { return n.tenant == "" }

// Topic returns the persistent topic named local in this namespace.
func (n Namespace) Topic(local string) (Topic, error) {
	if n.IsZero() {
		return Topic{}, fmt.Errorf("%w: empty namespace", ErrInvalidName)
	}
	if err := ValidateTopicLocal(local); err != nil {
		return Topic{}, err
	}
	return Topic{ns: n, local: local}, nil
}

// MarshalText implements encoding.TextMarshaler.
func (n Namespace) MarshalText() ([]byte, error) {
	if n.IsZero() {
		return []byte{}, nil
	}
	return []byte(n.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (n *Namespace) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*n = Namespace{}
		return nil
	}
	v, err := ParseNamespace(string(b))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// Topic is a validated persistent topic name. The zero value is not a valid
// topic.
type Topic struct {
	ns    Namespace
	local string
}

// ParseTopic parses a topic name in one of the forms
//
//	persistent://tenant/ns/topic
//	tenant/ns/topic          (domain persistent)
//	topic                    (persistent://public/default/topic)
//
// non-persistent:// topics are rejected with ErrUnsupportedDomain; any other
// form (two parts, four parts, a '/' in the local name, an unknown domain) is
// rejected with ErrInvalidName.
func ParseTopic(s string) (Topic, error) {
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		domain := s[:i]
		rest = s[i+3:]
		switch domain {
		case Persistent:
		case NonPersistent:
			return Topic{}, fmt.Errorf("%w: topic %q: non-persistent topics are not supported yet, use persistent://", ErrUnsupportedDomain, s)
		default:
			return Topic{}, fmt.Errorf("%w: topic %q: unknown domain %q (want persistent://)", ErrInvalidName, s, domain)
		}
		if n := strings.Count(rest, "/"); n != 2 {
			return Topic{}, fmt.Errorf("%w: topic %q must have the form persistent://tenant/namespace/topic", ErrInvalidName, s)
		}
	}
	parts := strings.Split(rest, "/")
	switch len(parts) {
	case 1:
		parts = []string{DefaultTenant, DefaultNamespace, parts[0]}
	case 3:
	default:
		return Topic{}, fmt.Errorf("%w: topic %q: use 'topic', 'tenant/namespace/topic' or 'persistent://tenant/namespace/topic'", ErrInvalidName, s)
	}
	ns, err := NewNamespace(parts[0], parts[1])
	if err != nil {
		return Topic{}, fmt.Errorf("topic %q: %w", s, err)
	}
	t, err := ns.Topic(parts[2])
	if err != nil {
		return Topic{}, fmt.Errorf("topic %q: %w", s, err)
	}
	return t, nil
}

// MustParseTopic is ParseTopic that panics on error, for constants and tests.
func MustParseTopic(s string) Topic {
	t, err := ParseTopic(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the full name, "persistent://tenant/ns/topic".
func (t Topic) String() string {
	if t.IsZero() {
		return ""
	}
	return Persistent + "://" + t.Path()
}

// Domain returns the topic's domain, always Persistent for now.
func (t Topic) Domain() string { return Persistent }

// Tenant returns the tenant part.
func (t Topic) Tenant() string { return t.ns.tenant }

// Namespace returns the namespace's local part (the "ns" of tenant/ns).
func (t Topic) Namespace() string { return t.ns.local }

// NamespaceName returns the topic's namespace.
func (t Topic) NamespaceName() Namespace { return t.ns }

// LocalName returns the topic's name within its namespace.
func (t Topic) LocalName() string { return t.local }

// Path returns "tenant/ns/topic", the form used in REST paths and metadata keys.
func (t Topic) Path() string { return t.ns.String() + "/" + t.local }

// IsZero reports whether t is the zero value (not a parsed topic).
func (t Topic) IsZero() bool { return t.local == "" }

// PartitionIndex returns the partition index when the topic is a partition
// of a partitioned topic ("name-partition-3" ⇒ 3), else -1.
func (t Topic) PartitionIndex() int {
	i := strings.LastIndex(t.local, PartitionSuffix)
	if i <= 0 {
		return -1
	}
	// ValidateTopicLocal admits only canonical indexes after the suffix:
	// anything Atoi reads is one.
	n, err := strconv.Atoi(t.local[i+len(PartitionSuffix):])
	if err != nil {
		return -1
	}
	return n
}

// IsPartition reports whether the topic is one partition of a partitioned topic.
func (t Topic) IsPartition() bool { return t.PartitionIndex() >= 0 }

// Partition returns partition i ("{topic}-partition-{i}") of the topic. When
// t is itself a partition, the partition of its parent is returned. A
// negative i returns t unchanged.
func (t Topic) Partition(i int) Topic {
	if i < 0 {
		return t
	}
	p := t.PartitionedParent()
	return Topic{ns: p.ns, local: p.local + PartitionSuffix + strconv.Itoa(i)}
}

// PartitionedParent returns the partitioned topic a partition belongs to, or
// t itself when t is not a partition.
func (t Topic) PartitionedParent() Topic {
	if !t.IsPartition() {
		return t
	}
	i := strings.LastIndex(t.local, PartitionSuffix)
	return Topic{ns: t.ns, local: t.local[:i]}
}

// MarshalText implements encoding.TextMarshaler (the full name).
func (t Topic) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (any form ParseTopic accepts).
func (t *Topic) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*t = Topic{}
		return nil
	}
	v, err := ParseTopic(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}
