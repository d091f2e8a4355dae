package naming

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	tests := []struct {
		in                      string
		full, tenant, ns, local string
		path                    string
	}{
		{in: "my-topic", full: "persistent://public/default/my-topic", tenant: "public", ns: "default", local: "my-topic", path: "public/default/my-topic"},
		{in: "acme/orders/created", full: "persistent://acme/orders/created", tenant: "acme", ns: "orders", local: "created", path: "acme/orders/created"},
		{in: "persistent://acme/orders/created", full: "persistent://acme/orders/created", tenant: "acme", ns: "orders", local: "created", path: "acme/orders/created"},
		{in: "persistent://a_b/c=d/e:f.g", full: "persistent://a_b/c=d/e:f.g", tenant: "a_b", ns: "c=d", local: "e:f.g", path: "a_b/c=d/e:f.g"},
		{in: "t/ns/x-partition-3", full: "persistent://t/ns/x-partition-3", tenant: "t", ns: "ns", local: "x-partition-3", path: "t/ns/x-partition-3"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			tp, err := ParseTopic(tc.in)
			if err != nil {
				t.Fatalf("ParseTopic(%q): %v", tc.in, err)
			}
			if got := tp.String(); got != tc.full {
				t.Errorf("String() = %q, want %q", got, tc.full)
			}
			if tp.Tenant() != tc.tenant || tp.Namespace() != tc.ns || tp.LocalName() != tc.local {
				t.Errorf("parts = %q %q %q, want %q %q %q", tp.Tenant(), tp.Namespace(), tp.LocalName(), tc.tenant, tc.ns, tc.local)
			}
			if got := tp.Path(); got != tc.path {
				t.Errorf("Path() = %q, want %q", got, tc.path)
			}
			if got := tp.NamespaceName().String(); got != tc.tenant+"/"+tc.ns {
				t.Errorf("NamespaceName() = %q", got)
			}
			// Round trip through the full name.
			again, err := ParseTopic(tp.String())
			if err != nil || again != tp {
				t.Errorf("round trip: %v %v", again, err)
			}
		})
	}
}

func TestParseTopicErrors(t *testing.T) {
	long := strings.Repeat("a", MaxPartLength+1)
	tests := []struct {
		in      string
		want    error
		mention string // substring the message must contain
	}{
		{"", ErrInvalidName, "topic name is empty"},
		{"non-persistent://t/ns/x", ErrUnsupportedDomain, "non-persistent topics are not supported"},
		{"kafka://t/ns/x", ErrInvalidName, `unknown domain "kafka"`},
		{"persistent://t/ns", ErrInvalidName, "persistent://tenant/namespace/topic"},
		{"persistent://t/ns/a/b", ErrInvalidName, "persistent://tenant/namespace/topic"},
		{"ns/topic", ErrInvalidName, "tenant/namespace/topic"},
		{"t/c/ns/topic", ErrInvalidName, "tenant/namespace/topic"},
		{"persistent:///ns/x", ErrInvalidName, "tenant name is empty"},
		{"t//x", ErrInvalidName, "namespace name is empty"},
		{"t/ns/", ErrInvalidName, "topic name is empty"},
		{"t/n s/x", ErrInvalidName, `namespace name "n s" has character ' '`},
		{"t/ns/x\x01y", ErrInvalidName, "control character 0x01"},
		{"té/ns/x", ErrInvalidName, "non-ASCII byte"},
		{"t/ns/a?b", ErrInvalidName, `topic name "a?b" has character '?'`},
		{"t/../x", ErrInvalidName, `namespace name ".." is reserved`},
		{"t/ns/" + long, ErrInvalidName, "max 255"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseTopic(tc.in)
			if err == nil {
				t.Fatalf("ParseTopic(%q) succeeded", tc.in)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestPartitions(t *testing.T) {
	tests := []struct {
		in     string
		index  int
		parent string
	}{
		{"t/ns/x", -1, "persistent://t/ns/x"},
		{"t/ns/x-partition-0", 0, "persistent://t/ns/x"},
		{"t/ns/x-partition-12", 12, "persistent://t/ns/x"},
		{"t/ns/x-partition-", -1, "persistent://t/ns/x-partition-"},
		{"t/ns/x-partition-1a", -1, "persistent://t/ns/x-partition-1a"},
		{"t/ns/-partition-1", -1, "persistent://t/ns/-partition-1"},
		{"t/ns/a-partition-1-partition-2", 2, "persistent://t/ns/a-partition-1"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			tp := MustParseTopic(tc.in)
			if got := tp.PartitionIndex(); got != tc.index {
				t.Errorf("PartitionIndex() = %d, want %d", got, tc.index)
			}
			if got := tp.IsPartition(); got != (tc.index >= 0) {
				t.Errorf("IsPartition() = %v", got)
			}
			if got := tp.PartitionedParent().String(); got != tc.parent {
				t.Errorf("PartitionedParent() = %q, want %q", got, tc.parent)
			}
		})
	}
	base := MustParseTopic("t/ns/x")
	p := base.Partition(4)
	if p.String() != "persistent://t/ns/x-partition-4" || p.PartitionIndex() != 4 {
		t.Errorf("Partition(4) = %v", p)
	}
	if got := p.Partition(1).String(); got != "persistent://t/ns/x-partition-1" {
		t.Errorf("partition of partition = %q", got)
	}
	if base.Partition(-1) != base {
		t.Errorf("Partition(-1) changed the topic")
	}
}

func TestParseNamespace(t *testing.T) {
	ok := []string{"public/default", "a-b/c_d", "x=1/y:2.3"}
	for _, s := range ok {
		ns, err := ParseNamespace(s)
		if err != nil {
			t.Errorf("ParseNamespace(%q): %v", s, err)
			continue
		}
		if ns.String() != s {
			t.Errorf("String() = %q, want %q", ns.String(), s)
		}
		tp, err := ns.Topic("tp")
		if err != nil || tp.String() != "persistent://"+s+"/tp" {
			t.Errorf("Topic: %v %v", tp, err)
		}
	}
	bad := []struct{ in, mention string }{
		{"", "must have the form"},
		{"public", "must have the form"},
		{"a/b/c", "'tenant/cluster/namespace' form is not supported"},
		{"a/b/c/d", "must have the form"},
		{"/ns", "tenant name is empty"},
		{"t/", "namespace name is empty"},
		{"t/a b", "namespace name"},
		{"t*/ns", "tenant name"},
	}
	for _, tc := range bad {
		_, err := ParseNamespace(tc.in)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("ParseNamespace(%q) = %v, want ErrInvalidName mentioning %q", tc.in, err, tc.mention)
		}
	}
}

func TestValidateNames(t *testing.T) {
	tests := []struct {
		fn   func(string) error
		in   string
		good bool
	}{
		{ValidateTenant, "acme", true},
		{ValidateTenant, "", false},
		{ValidateTenant, "a/b", false},
		{ValidateTenant, ".", false},
		{ValidateCluster, "us-east.1", true},
		{ValidateCluster, "us east", false},
		{ValidateCluster, strings.Repeat("c", MaxPartLength), true},
		{ValidateCluster, strings.Repeat("c", MaxPartLength+1), false},
		{ValidateTopicLocal, "a\tb", false},
		// A number after the last partition suffix must be an index as
		// Strata writes it; anything else numeric would read as a
		// partition to a Pulsar client.
		{ValidateTopicLocal, "data-partition-0", true},
		{ValidateTopicLocal, "data-partition-2147483647", true},
		{ValidateTopicLocal, "data-partition-x", true},
		{ValidateTopicLocal, "data-partition-", true},
		{ValidateTopicLocal, "data-partition--x", true},
		{ValidateTopicLocal, "-partition-1", true},
		{ValidateTopicLocal, "data-partition--1", false},
		{ValidateTopicLocal, "data-partition-+1", false},
		{ValidateTopicLocal, "data-partition-01", false},
		{ValidateTopicLocal, "data-partition-00", false},
		{ValidateTopicLocal, "data-partition-2147483648", false},
		{ValidateTopicLocal, "data-partition-99999999999999999999", false},
		{ValidateTopicLocal, "a-partition-1-partition--2", false},
	}
	for _, tc := range tests {
		err := tc.fn(tc.in)
		if (err == nil) != tc.good {
			t.Errorf("validate(%q) = %v, want good=%v", tc.in, err, tc.good)
		}
	}
	if err := ValidateCluster("a/b"); err == nil || !strings.Contains(err.Error(), "cluster name") {
		t.Errorf("cluster error must name the part: %v", err)
	}
}

func TestTextMarshaling(t *testing.T) {
	var tp Topic
	if err := tp.UnmarshalText([]byte("orders")); err != nil {
		t.Fatal(err)
	}
	b, _ := tp.MarshalText()
	if string(b) != "persistent://public/default/orders" {
		t.Errorf("MarshalText = %s", b)
	}
	var ns Namespace
	if err := ns.UnmarshalText([]byte("bad")); err == nil {
		t.Errorf("UnmarshalText accepted a bad namespace")
	}
	if !(Topic{}).IsZero() || !(Namespace{}).IsZero() {
		t.Errorf("zero values must report IsZero")
	}
}
