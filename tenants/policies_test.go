package tenants

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestPoliciesValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       Policies
		kind    error  // nil: valid
		mention string // substring of the error
	}{
		{name: "empty", p: Policies{}},
		{name: "full valid", p: Policies{
			AuthPolicies: AuthPolicies{
				NamespaceAuth:         map[string][]AuthAction{"app": {ActionProduce, ActionConsume}},
				DestinationAuth:       map[string]map[string][]AuthAction{"persistent://t/ns/x": {"r": {ActionConsume}}},
				SubscriptionAuthRoles: map[string][]string{"sub": {"app"}},
			},
			ReplicationClusters: []string{"east", "west"},
			Bundles:             &BundlesData{NumBundles: 4},
			BacklogQuotaMap: map[BacklogQuotaType]BacklogQuota{
				DestinationStorage: {LimitSize: 1 << 30, LimitTime: -1, Policy: ProducerException},
				MessageAge:         {LimitSize: -1, LimitTime: 3600, Policy: ConsumerBacklogEviction},
			},
			TopicDispatchRate:     map[string]DispatchRate{"east": {DispatchThrottlingRateInMsg: 100, DispatchThrottlingRateInByte: -1}},
			PublishMaxMessageRate: map[string]PublishRate{"east": {PublishThrottlingRateInMsg: -1, PublishThrottlingRateInByte: 1024}},
			Persistence:           &PersistencePolicies{BookkeeperEnsemble: 3, BookkeeperWriteQuorum: 2, BookkeeperAckQuorum: 2, ManagedLedgerMaxMarkDeleteRate: 1.5},
			RetentionPolicies:     &RetentionPolicies{RetentionTimeInMinutes: 600, RetentionSizeInMB: 2048},
			MessageTTLInSeconds:   ptr(60),
			OffloadThreshold:      ptr(int64(-1)),
			OffloadDeletionLagMs:  ptr(int64(0)),
			SubscriptionAuthMode:  "Prefix",
		}},
		{name: "unknown action", p: Policies{AuthPolicies: AuthPolicies{NamespaceAuth: map[string][]AuthAction{"app": {"write"}}}},
			kind: ErrInvalid, mention: `unknown permission action "write"`},
		{name: "empty role", p: Policies{AuthPolicies: AuthPolicies{NamespaceAuth: map[string][]AuthAction{"": {ActionProduce}}}},
			kind: ErrInvalid, mention: "role name is empty"},
		{name: "bad destination topic", p: Policies{AuthPolicies: AuthPolicies{DestinationAuth: map[string]map[string][]AuthAction{"non-persistent://t/n/x": {}}}},
			kind: ErrInvalid, mention: "destination_auth"},
		{name: "bad replication cluster", p: Policies{ReplicationClusters: []string{"a b"}},
			kind: ErrInvalid, mention: "replication_clusters: cluster name"},
		{name: "unknown quota type", p: Policies{BacklogQuotaMap: map[BacklogQuotaType]BacklogQuota{"size": {Policy: ProducerRequestHold}}},
			kind: ErrInvalid, mention: `unknown backlog quota type "size"`},
		{name: "unknown quota policy", p: Policies{BacklogQuotaMap: map[BacklogQuotaType]BacklogQuota{DestinationStorage: {Policy: "drop"}}},
			kind: ErrInvalid, mention: `unknown backlog quota policy "drop"`},
		{name: "missing quota policy", p: Policies{BacklogQuotaMap: map[BacklogQuotaType]BacklogQuota{DestinationStorage: {LimitSize: 1}}},
			kind: ErrInvalid, mention: "policy is required"},
		{name: "negative quota size", p: Policies{BacklogQuotaMap: map[BacklogQuotaType]BacklogQuota{DestinationStorage: {LimitSize: -2, Policy: ProducerRequestHold}}},
			kind: ErrInvalid, mention: "limitSize must be between -1 and"},
		{name: "E < Qw", p: Policies{Persistence: &PersistencePolicies{BookkeeperEnsemble: 2, BookkeeperWriteQuorum: 3, BookkeeperAckQuorum: 2}},
			kind: ErrInvalid, mention: "2/3/2"},
		{name: "Qw < Qa", p: Policies{Persistence: &PersistencePolicies{BookkeeperEnsemble: 3, BookkeeperWriteQuorum: 2, BookkeeperAckQuorum: 3}},
			kind: ErrInvalid, mention: "bookkeeperEnsemble >= bookkeeperWriteQuorum >= bookkeeperAckQuorum >= 1"},
		{name: "Qa 0", p: Policies{Persistence: &PersistencePolicies{BookkeeperEnsemble: 1, BookkeeperWriteQuorum: 1}},
			kind: ErrInvalid, mention: "1/1/0"},
		{name: "negative mark delete rate", p: Policies{Persistence: &PersistencePolicies{BookkeeperEnsemble: 1, BookkeeperWriteQuorum: 1, BookkeeperAckQuorum: 1, ManagedLedgerMaxMarkDeleteRate: -1}},
			kind: ErrInvalid, mention: "managedLedgerMaxMarkDeleteRate"},
		{name: "retention below -1", p: Policies{RetentionPolicies: &RetentionPolicies{RetentionTimeInMinutes: -2, RetentionSizeInMB: -1}},
			kind: ErrInvalid, mention: "retentionTimeInMinutes must be between -1 and"},
		{name: "retention size below -1", p: Policies{RetentionPolicies: &RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: -5}},
			kind: ErrInvalid, mention: "retentionSizeInMB must be between -1 and"},
		{name: "retention mixes 0", p: Policies{RetentionPolicies: &RetentionPolicies{RetentionTimeInMinutes: 0, RetentionSizeInMB: 100}},
			kind: ErrInvalid, mention: "use -1"},
		{name: "retention unlimited", p: Policies{RetentionPolicies: &RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: -1}}},
		{name: "retention below quota", p: Policies{
			RetentionPolicies: &RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: 1},
			BacklogQuotaMap:   map[BacklogQuotaType]BacklogQuota{DestinationStorage: {LimitSize: 2 << 20, Policy: ProducerRequestHold}},
		}, kind: ErrPrecondition, mention: "must exceed the destination_storage backlog quota"},
		{name: "retention time below age quota", p: Policies{
			RetentionPolicies: &RetentionPolicies{RetentionTimeInMinutes: 1, RetentionSizeInMB: -1},
			BacklogQuotaMap:   map[BacklogQuotaType]BacklogQuota{MessageAge: {LimitTime: 60, Policy: ProducerRequestHold}},
		}, kind: ErrPrecondition, mention: "message_age"},
		{name: "negative ttl", p: Policies{MessageTTLInSeconds: ptr(-1)}, kind: ErrInvalid, mention: "message_ttl_in_seconds must be between 0 and"},
		{name: "negative max producers", p: Policies{MaxProducersPerTopic: ptr(-1)}, kind: ErrInvalid, mention: "max_producers_per_topic"},
		{name: "negative max consumers", p: Policies{MaxConsumersPerTopic: ptr(-3)}, kind: ErrInvalid, mention: "max_consumers_per_topic"},
		{name: "negative max consumers/sub", p: Policies{MaxConsumersPerSubscription: ptr(-3)}, kind: ErrInvalid, mention: "max_consumers_per_subscription"},
		{name: "offload threshold -2", p: Policies{OffloadThreshold: ptr(int64(-2))}, kind: ErrInvalid, mention: "offload_threshold must be between -1 and"},
		{name: "offload seconds -2", p: Policies{OffloadThresholdInSeconds: ptr(int64(-2))}, kind: ErrInvalid, mention: "offload_threshold_in_seconds"},
		{name: "negative deletion lag", p: Policies{OffloadDeletionLagMs: ptr(int64(-1))}, kind: ErrInvalid, mention: "offload_deletion_lag_ms"},
		{name: "dispatch rate below -1", p: Policies{TopicDispatchRate: map[string]DispatchRate{"c": {DispatchThrottlingRateInMsg: -2, RatePeriodInSecond: 1}}},
			kind: ErrInvalid, mention: "topicDispatchRate[c]: dispatchThrottlingRateInMsg"},
		{name: "dispatch period 0 after validate", p: Policies{SubscriptionDispatchRate: map[string]DispatchRate{"c": {RatePeriodInSecond: -1}}},
			kind: ErrInvalid, mention: "ratePeriodInSecond must be between 1 and"},
		{name: "publish rate below -1", p: Policies{PublishMaxMessageRate: map[string]PublishRate{"c": {PublishThrottlingRateInByte: -7}}},
			kind: ErrInvalid, mention: "publishThrottlingRateInByte"},
		{name: "rate map bad cluster", p: Policies{PublishMaxMessageRate: map[string]PublishRate{"a/b": {}}},
			kind: ErrInvalid, mention: "publishMaxMessageRate: cluster name"},
		{name: "bad auth mode", p: Policies{SubscriptionAuthMode: "Suffix"}, kind: ErrInvalid, mention: "subscription_auth_mode"},
		{name: "bundles zero", p: Policies{Bundles: &BundlesData{}}, kind: ErrInvalid, mention: "numBundles must be between 1"},
		{name: "bundles unsorted", p: Policies{Bundles: &BundlesData{NumBundles: 2, Boundaries: []string{FirstBoundary, "0x00000000", LastBoundary}}},
			kind: ErrInvalid, mention: "strictly ascending"},
		{name: "bundles bad hex", p: Policies{Bundles: &BundlesData{NumBundles: 1, Boundaries: []string{FirstBoundary, "0xfffffffg"}}},
			kind: ErrInvalid, mention: "32-bit hex"},
		{name: "bundles count mismatch", p: Policies{Bundles: &BundlesData{NumBundles: 3, Boundaries: []string{FirstBoundary, LastBoundary}}},
			kind: ErrInvalid, mention: "2 boundaries for 3 bundles"},
		{name: "auto creation type", p: Policies{AutoTopicCreationOverride: &AutoTopicCreationOverride{TopicType: "sharded"}},
			kind: ErrInvalid, mention: "topicType"},
		{name: "schema strategy", p: Policies{SchemaCompatibilityStrategy: "SOMETIMES"}, kind: ErrInvalid, mention: "schema_compatibility_strategy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p.Clone()
			p.Normalize()
			err := p.Validate()
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("Validate = %v, want kind %v", err, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestPoliciesNormalize(t *testing.T) {
	p := Policies{
		AuthPolicies:        AuthPolicies{NamespaceAuth: map[string][]AuthAction{"r": {ActionConsume, ActionProduce, ActionConsume}}},
		ReplicationClusters: []string{"a", "b", "a"},
		BacklogQuotaMap:     map[BacklogQuotaType]BacklogQuota{DestinationStorage: {Limit: ptr(int64(500)), Policy: ProducerRequestHold}},
		TopicDispatchRate:   map[string]DispatchRate{"a": {DispatchThrottlingRateInMsg: 5}},
		Bundles:             &BundlesData{NumBundles: 2},
	}
	p.Normalize()
	if got := p.AuthPolicies.NamespaceAuth["r"]; !slices.Equal(got, []AuthAction{ActionProduce, ActionConsume}) {
		t.Errorf("actions = %v", got)
	}
	if !slices.Equal(p.ReplicationClusters, []string{"a", "b"}) {
		t.Errorf("replication = %v", p.ReplicationClusters)
	}
	if q := p.BacklogQuotaMap[DestinationStorage]; q.LimitSize != 500 || q.Limit != nil {
		t.Errorf("deprecated limit not folded: %+v", q)
	}
	if r := p.TopicDispatchRate["a"]; r.RatePeriodInSecond != 1 {
		t.Errorf("rate period = %d, want default 1", r.RatePeriodInSecond)
	}
	if !slices.Equal(p.Bundles.Boundaries, []string{"0x00000000", "0x80000000", "0xffffffff"}) {
		t.Errorf("boundaries = %v", p.Bundles.Boundaries)
	}
	if p.AuthPolicies.DestinationAuth == nil || p.AuthPolicies.SubscriptionAuthRoles == nil {
		t.Errorf("nil maps left after Normalize")
	}
}

func TestNewBundlesData(t *testing.T) {
	for _, n := range []int{1, 3, 4, 16, MaxBundles} {
		b := NewBundlesData(n)
		if err := b.Validate(); err != nil {
			t.Errorf("NewBundlesData(%d): %v", n, err)
		}
	}
	if got := NewBundlesData(4).Boundaries; !slices.Equal(got, []string{"0x00000000", "0x40000000", "0x80000000", "0xc0000000", "0xffffffff"}) {
		t.Errorf("4 bundles = %v", got)
	}
}

func TestPoliciesCloneIsDeep(t *testing.T) {
	p := Policies{
		AuthPolicies:        AuthPolicies{NamespaceAuth: map[string][]AuthAction{"r": {ActionProduce}}},
		ReplicationClusters: []string{"a"},
		Persistence:         &PersistencePolicies{BookkeeperEnsemble: 1, BookkeeperWriteQuorum: 1, BookkeeperAckQuorum: 1},
		MessageTTLInSeconds: ptr(5),
		BacklogQuotaMap:     map[BacklogQuotaType]BacklogQuota{MessageAge: {LimitTime: 5, Policy: ProducerException}},
	}
	c := p.Clone()
	if !reflect.DeepEqual(p, c) {
		t.Fatalf("clone differs")
	}
	c.AuthPolicies.NamespaceAuth["r"][0] = ActionConsume
	c.ReplicationClusters[0] = "b"
	c.Persistence.BookkeeperEnsemble = 9
	*c.MessageTTLInSeconds = 9
	c.BacklogQuotaMap[MessageAge] = BacklogQuota{}
	if p.AuthPolicies.NamespaceAuth["r"][0] != ActionProduce || p.ReplicationClusters[0] != "a" ||
		p.Persistence.BookkeeperEnsemble != 1 || *p.MessageTTLInSeconds != 5 || p.BacklogQuotaMap[MessageAge].LimitTime != 5 {
		t.Errorf("modifying the clone changed the original")
	}
}

// TestPoliciesJSONNames pins the JSON field names to Pulsar's.
func TestPoliciesJSONNames(t *testing.T) {
	p := Policies{
		ReplicationClusters:         []string{"c"},
		Bundles:                     &BundlesData{NumBundles: 1, Boundaries: []string{FirstBoundary, LastBoundary}},
		BacklogQuotaMap:             map[BacklogQuotaType]BacklogQuota{DestinationStorage: {LimitSize: 1, LimitTime: 2, Policy: ProducerRequestHold}},
		TopicDispatchRate:           map[string]DispatchRate{"c": {1, 2, false, 3}},
		SubscriptionDispatchRate:    map[string]DispatchRate{"c": {1, 2, false, 3}},
		PublishMaxMessageRate:       map[string]PublishRate{"c": {1, 2}},
		Persistence:                 &PersistencePolicies{3, 2, 1, 0.5},
		RetentionPolicies:           &RetentionPolicies{10, 20},
		MessageTTLInSeconds:         ptr(1),
		DeduplicationEnabled:        ptr(true),
		MaxProducersPerTopic:        ptr(1),
		MaxConsumersPerTopic:        ptr(1),
		MaxConsumersPerSubscription: ptr(1),
		OffloadThreshold:            ptr(int64(1)),
		OffloadThresholdInSeconds:   ptr(int64(1)),
		OffloadDeletionLagMs:        ptr(int64(1)),
	}
	p.Normalize()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, name := range []string{
		`"auth_policies":{"namespace_auth":{},"destination_auth":{},"subscription_auth_roles":{}}`,
		`"replication_clusters":["c"]`, `"bundles":{"boundaries":["0x00000000","0xffffffff"],"numBundles":1}`,
		`"backlog_quota_map":{"destination_storage":{"limitSize":1,"limitTime":2,"policy":"producer_request_hold"}}`,
		`"topicDispatchRate":{"c":{"dispatchThrottlingRateInMsg":1,"dispatchThrottlingRateInByte":2,"ratePeriodInSecond":3}}`,
		`"subscriptionDispatchRate":{"c":`, `"publishMaxMessageRate":{"c":{"publishThrottlingRateInMsg":1,"publishThrottlingRateInByte":2}}`,
		`"persistence":{"bookkeeperEnsemble":3,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":1,"managedLedgerMaxMarkDeleteRate":0.5}`,
		`"retention_policies":{"retentionTimeInMinutes":10,"retentionSizeInMB":20}`,
		`"message_ttl_in_seconds":1`, `"deduplicationEnabled":true`, `"max_producers_per_topic":1`,
		`"max_consumers_per_topic":1`, `"max_consumers_per_subscription":1`, `"offload_threshold":1`,
		`"offload_threshold_in_seconds":1`, `"offload_deletion_lag_ms":1`, `"deleted":false`,
	} {
		if !strings.Contains(s, name) {
			t.Errorf("JSON lacks %s\n%s", name, s)
		}
	}
	var back Policies
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("round trip: %v\n%+v\n%+v", err, back, p)
	}
	ti, _ := json.Marshal(TenantInfo{AdminRoles: []string{"a"}, AllowedClusters: []string{"c"}})
	if string(ti) != `{"adminRoles":["a"],"allowedClusters":["c"]}` {
		t.Errorf("TenantInfo JSON = %s", ti)
	}
	cd, _ := json.Marshal(ClusterData{ServiceURL: "http://h:8080", ServiceURLTLS: "https://h:8443", BrokerServiceURL: "pulsar://h:6650", BrokerServiceURLTLS: "pulsar+ssl://h:6651"})
	if string(cd) != `{"serviceUrl":"http://h:8080","serviceUrlTls":"https://h:8443","brokerServiceUrl":"pulsar://h:6650","brokerServiceUrlTls":"pulsar+ssl://h:6651"}` {
		t.Errorf("ClusterData JSON = %s", cd)
	}
}

func TestClusterDataValidate(t *testing.T) {
	good := []ClusterData{
		{},
		{ServiceURL: "http://b:8080", BrokerServiceURL: "b:6650"},
		{BrokerServiceURL: "pulsar://b:6650", PeerClusterNames: []string{"west"}},
	}
	for _, d := range good {
		if err := d.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", d, err)
		}
	}
	bad := []struct {
		d       ClusterData
		mention string
	}{
		{ClusterData{ServiceURL: "http://"}, "serviceUrl"},
		{ClusterData{BrokerServiceURL: "justahost"}, "brokerServiceUrl"},
		{ClusterData{ServiceURLTLS: "https://a b:1"}, "white space"},
		{ClusterData{PeerClusterNames: []string{""}}, "peerClusterNames"},
	}
	for _, tc := range bad {
		err := tc.d.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid mentioning %q", tc.d, err, tc.mention)
		}
	}
}
