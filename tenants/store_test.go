package tenants

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
)

// newTestStore returns a Store on a fresh root with clusters local, east
// and west registered.
func newTestStore(t *testing.T) (*Store, metadata.Store) {
	t.Helper()
	md, _ := testutil.Store(t)
	s := NewStore(md, StoreOptions{LocalCluster: "local"})
	ctx := context.Background()
	for _, c := range []string{"local", "east", "west"} {
		if err := s.CreateCluster(ctx, c, ClusterData{ServiceURL: "http://" + c + ":8080", BrokerServiceURL: c + ":6650"}); err != nil {
			t.Fatalf("create cluster %s: %v", c, err)
		}
	}
	return s, md
}

func wantKind(t *testing.T, err, kind error, mention string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want kind %v", err, kind)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("error %q does not mention %q", err, mention)
	}
}

func TestStoreClusters(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()

	names, err := s.ListClusters(ctx)
	if err != nil || !slices.Equal(names, []string{"east", "local", "west"}) {
		t.Fatalf("ListClusters = %v, %v", names, err)
	}
	wantKind(t, s.CreateCluster(ctx, "east", ClusterData{}), ErrExists, `cluster "east" already exists`)
	wantKind(t, s.CreateCluster(ctx, "bad name", ClusterData{}), ErrInvalid, "cluster name")
	wantKind(t, s.CreateCluster(ctx, "x", ClusterData{ServiceURL: "http://"}), ErrInvalid, "serviceUrl")

	d, err := s.UpdateCluster(ctx, "east", func(d *ClusterData) error {
		d.ServiceURL = "http://east2:8080"
		return nil
	})
	if err != nil || d.ServiceURL != "http://east2:8080" || d.BrokerServiceURL != "east:6650" {
		t.Fatalf("UpdateCluster = %+v, %v", d, err)
	}
	got, err := s.GetCluster(ctx, "east")
	if err != nil || !reflect.DeepEqual(got, d) {
		t.Fatalf("GetCluster = %+v, %v", got, err)
	}
	_, err = s.GetCluster(ctx, "nope")
	wantKind(t, err, ErrNotFound, `cluster "nope" does not exist`)
	_, err = s.UpdateCluster(ctx, "nope", func(*ClusterData) error { return nil })
	wantKind(t, err, ErrNotFound, "does not exist")

	// A cluster a namespace replicates to cannot be deleted.
	if err := s.CreateTenant(ctx, "acme", TenantInfo{AllowedClusters: []string{"local", "east"}}); err != nil {
		t.Fatal(err)
	}
	ns := naming.MustParseNamespace("acme/app")
	if err := s.CreateNamespace(ctx, ns, Policies{ReplicationClusters: []string{"east"}}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.DeleteCluster(ctx, "east"), ErrPrecondition, "replication cluster of namespace acme/app")
	if err := s.DeleteCluster(ctx, "west"); err != nil {
		t.Fatalf("DeleteCluster(west): %v", err)
	}
	wantKind(t, s.DeleteCluster(ctx, "west"), ErrNotFound, "does not exist")
}

func TestStoreTenants(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()

	if err := s.CreateTenant(ctx, "acme", TenantInfo{AdminRoles: []string{"alice", "alice"}, AllowedClusters: []string{"east"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(ctx, "beta", TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.CreateTenant(ctx, "acme", TenantInfo{}), ErrExists, `tenant "acme" already exists`)
	wantKind(t, s.CreateTenant(ctx, "x/y", TenantInfo{}), ErrInvalid, "tenant name")
	wantKind(t, s.CreateTenant(ctx, "gamma", TenantInfo{AllowedClusters: []string{"mars"}}), ErrPrecondition, `cluster "mars" does not exist`)
	wantKind(t, s.CreateTenant(ctx, "gamma", TenantInfo{AdminRoles: []string{""}}), ErrInvalid, "role name is empty")
	if _, err := s.GetTenant(ctx, "gamma"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed creates must not leave a tenant: %v", err)
	}

	acme, err := s.GetTenant(ctx, "acme")
	if err != nil || !slices.Equal(acme.AdminRoles, []string{"alice"}) || !slices.Equal(acme.AllowedClusters, []string{"east"}) {
		t.Fatalf("GetTenant(acme) = %+v, %v", acme, err)
	}
	beta, _ := s.GetTenant(ctx, "beta")
	if !slices.Equal(beta.AllowedClusters, []string{"local"}) || beta.AdminRoles == nil {
		t.Fatalf("tenant without clusters should get the local one and [] roles: %+v", beta)
	}
	names, err := s.ListTenants(ctx)
	if err != nil || !slices.Equal(names, []string{"acme", "beta"}) {
		t.Fatalf("ListTenants = %v, %v", names, err)
	}

	// Removing an allowed cluster a namespace replicates to is a conflict.
	if err := s.CreateNamespace(ctx, naming.MustParseNamespace("acme/app"), Policies{}); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("namespace defaulting to a cluster the tenant may not use: %v", err)
	}
	if err := s.CreateNamespace(ctx, naming.MustParseNamespace("acme/app"), Policies{ReplicationClusters: []string{"east"}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateTenant(ctx, "acme", func(ti *TenantInfo) error {
		ti.AllowedClusters = []string{"west"}
		return nil
	})
	wantKind(t, err, ErrConflict, `cannot remove allowed cluster "east": namespace acme/app replicates to it`)
	ti, err := s.UpdateTenant(ctx, "acme", func(ti *TenantInfo) error {
		ti.AllowedClusters = append(ti.AllowedClusters, "west")
		ti.AdminRoles = append(ti.AdminRoles, "bob")
		return nil
	})
	if err != nil || !slices.Equal(ti.AllowedClusters, []string{"east", "west"}) || !ti.IsAdmin("bob") {
		t.Fatalf("UpdateTenant = %+v, %v", ti, err)
	}
	_, err = s.UpdateTenant(ctx, "acme", func(ti *TenantInfo) error {
		ti.AllowedClusters = append(ti.AllowedClusters, "pluto")
		return nil
	})
	wantKind(t, err, ErrPrecondition, `cluster "pluto" does not exist`)

	// Delete refuses while namespaces exist.
	wantKind(t, s.DeleteTenant(ctx, "acme"), ErrNotEmpty, `tenant "acme" still has 1 namespace(s), e.g. acme/app`)
	// The refused delete left no marker behind: namespaces can still be created.
	if err := s.CreateNamespace(ctx, naming.MustParseNamespace("acme/two"), Policies{ReplicationClusters: []string{"west"}}); err != nil {
		t.Fatalf("create after refused delete: %v", err)
	}
	for _, n := range []string{"acme/app", "acme/two"} {
		if err := s.DeleteNamespace(ctx, naming.MustParseNamespace(n), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	wantKind(t, s.DeleteTenant(ctx, "acme"), ErrNotFound, "does not exist")
	_, err = s.UpdateTenant(ctx, "acme", func(*TenantInfo) error { return nil })
	wantKind(t, err, ErrNotFound, "does not exist")
}

func TestStoreNamespaces(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, "acme", TenantInfo{AllowedClusters: []string{"local", "east"}}); err != nil {
		t.Fatal(err)
	}
	ns := naming.MustParseNamespace("acme/app")

	wantKind(t, s.CreateNamespace(ctx, naming.MustParseNamespace("nobody/app"), Policies{}), ErrNotFound, `tenant "nobody" does not exist`)
	wantKind(t, s.CreateNamespace(ctx, ns, Policies{ReplicationClusters: []string{"west"}}), ErrPrecondition,
		`tenant "acme" is not allowed to use cluster "west"`)
	wantKind(t, s.CreateNamespace(ctx, ns, Policies{MessageTTLInSeconds: ptr(-5)}), ErrInvalid, "message_ttl_in_seconds")
	if _, err := s.GetPolicies(ctx, ns); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed creates must not leave a namespace: %v", err)
	}

	if err := s.CreateNamespace(ctx, ns, Policies{Deleted: true}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.CreateNamespace(ctx, ns, Policies{}), ErrExists, "namespace acme/app already exists")
	p, err := s.GetPolicies(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.ReplicationClusters, []string{"local"}) || p.Bundles == nil || p.Bundles.NumBundles != DefaultBundles || p.Deleted {
		t.Fatalf("defaults not applied: %+v", p)
	}

	p, err = s.UpdatePolicies(ctx, ns, func(p *Policies) error {
		p.RetentionPolicies = &RetentionPolicies{RetentionTimeInMinutes: 60, RetentionSizeInMB: -1}
		p.ReplicationClusters = []string{"local", "east"}
		return nil
	})
	if err != nil || p.RetentionPolicies.RetentionTimeInMinutes != 60 || len(p.ReplicationClusters) != 2 {
		t.Fatalf("UpdatePolicies = %+v, %v", p, err)
	}
	_, err = s.UpdatePolicies(ctx, ns, func(p *Policies) error {
		p.Persistence = &PersistencePolicies{BookkeeperEnsemble: 1, BookkeeperWriteQuorum: 2, BookkeeperAckQuorum: 1}
		return nil
	})
	wantKind(t, err, ErrInvalid, "1/2/1")
	_, err = s.UpdatePolicies(ctx, ns, func(p *Policies) error {
		p.AuthPolicies.DestinationAuth["persistent://other/ns/t"] = map[string][]AuthAction{"r": {ActionProduce}}
		return nil
	})
	wantKind(t, err, ErrInvalid, "is not in namespace acme/app")
	p, _ = s.GetPolicies(ctx, ns)
	if p.Persistence != nil {
		t.Fatalf("a rejected update was stored: %+v", p.Persistence)
	}
	_, err = s.UpdatePolicies(ctx, naming.MustParseNamespace("acme/none"), func(*Policies) error { return nil })
	wantKind(t, err, ErrNotFound, "namespace acme/none does not exist")

	if err := s.CreateNamespace(ctx, naming.MustParseNamespace("acme/b"), Policies{}); err != nil {
		t.Fatal(err)
	}
	names, err := s.ListNamespaces(ctx, "acme")
	if err != nil || !slices.Equal(names, []string{"acme/app", "acme/b"}) {
		t.Fatalf("ListNamespaces = %v, %v", names, err)
	}
	_, err = s.ListNamespaces(ctx, "nobody")
	wantKind(t, err, ErrNotFound, `tenant "nobody" does not exist`)

	// Delete is refused while the broker reports topics, without marking
	// the namespace deleted (the mark hides it from every broker).
	var listed naming.Namespace
	lister := TopicListerFunc(func(_ context.Context, n naming.Namespace) ([]string, error) {
		listed = n
		if p, _ := s.GetPolicies(ctx, n); p.Deleted {
			t.Errorf("namespace with topics marked deleted")
		}
		return []string{"persistent://acme/app/t1"}, nil
	})
	wantKind(t, s.DeleteNamespace(ctx, ns, lister), ErrNotEmpty, "namespace acme/app still has 1 topic(s), e.g. persistent://acme/app/t1")
	if listed != ns {
		t.Fatalf("lister called with %v", listed)
	}
	// A topic appearing between the first check and the mark: the last
	// check, made under the mark, refuses, and the mark is undone.
	calls := 0
	racing := TopicListerFunc(func(_ context.Context, n naming.Namespace) ([]string, error) {
		if calls++; calls == 1 {
			return nil, nil
		}
		if p, _ := s.GetPolicies(ctx, n); !p.Deleted {
			t.Errorf("namespace not marked deleted during the last check")
		}
		return []string{"persistent://acme/app/t2"}, nil
	})
	wantKind(t, s.DeleteNamespace(ctx, ns, racing), ErrNotEmpty, "namespace acme/app still has 1 topic(s), e.g. persistent://acme/app/t2")
	if p, _ := s.GetPolicies(ctx, ns); p.Deleted {
		t.Fatalf("refused delete left the deleted mark")
	}
	failing := TopicListerFunc(func(context.Context, naming.Namespace) ([]string, error) { return nil, errors.New("broker down") })
	if err := s.DeleteNamespace(ctx, ns, failing); err == nil || !strings.Contains(err.Error(), "broker down") {
		t.Fatalf("lister error not reported: %v", err)
	}
	if p, _ := s.GetPolicies(ctx, ns); p.Deleted {
		t.Fatalf("failed delete left the deleted mark")
	}

	// Partitioned topic metadata also keeps the namespace alive.
	tp := naming.MustParseTopic("acme/app/orders")
	if err := s.CreatePartitionedTopic(ctx, tp, 3); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.DeleteNamespace(ctx, ns, nil), ErrNotEmpty, "persistent://acme/app/orders")
	if err := s.DeletePartitionedTopic(ctx, tp); err != nil {
		t.Fatal(err)
	}
	empty := TopicListerFunc(func(context.Context, naming.Namespace) ([]string, error) { return nil, nil })
	if err := s.DeleteNamespace(ctx, ns, empty); err != nil {
		t.Fatalf("DeleteNamespace: %v", err)
	}
	wantKind(t, s.DeleteNamespace(ctx, ns, nil), ErrNotFound, "does not exist")
}

func TestStorePartitionedTopics(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, "acme", TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	ns := naming.MustParseNamespace("acme/app")
	tp := naming.MustParseTopic("acme/app/orders")
	wantKind(t, s.CreatePartitionedTopic(ctx, tp, 2), ErrNotFound, "namespace acme/app does not exist")
	if err := s.CreateNamespace(ctx, ns, Policies{}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.CreatePartitionedTopic(ctx, tp, 0), ErrInvalid, "must be between 1 and 1024")
	wantKind(t, s.CreatePartitionedTopic(ctx, tp.Partition(1), 2), ErrInvalid, "is a partition name")
	if err := s.CreatePartitionedTopic(ctx, tp, 2); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.CreatePartitionedTopic(ctx, tp, 2), ErrExists, "already exists")
	wantKind(t, s.UpdatePartitionedTopic(ctx, tp, 2), ErrInvalid, "can only be increased: persistent://acme/app/orders has 2, asked for 2")
	if err := s.UpdatePartitionedTopic(ctx, tp, 5); err != nil {
		t.Fatal(err)
	}
	m, err := s.GetPartitionedTopic(ctx, tp)
	if err != nil || m.Partitions != 5 {
		t.Fatalf("GetPartitionedTopic = %+v, %v", m, err)
	}
	if err := s.CreatePartitionedTopic(ctx, naming.MustParseTopic("acme/app/a"), 1); err != nil {
		t.Fatal(err)
	}
	names, err := s.ListPartitionedTopics(ctx, ns)
	if err != nil || !slices.Equal(names, []string{"persistent://acme/app/a", "persistent://acme/app/orders"}) {
		t.Fatalf("ListPartitionedTopics = %v, %v", names, err)
	}
	if err := s.DeletePartitionedTopic(ctx, tp); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetPartitionedTopic(ctx, tp)
	wantKind(t, err, ErrNotFound, "does not exist")
	wantKind(t, s.DeletePartitionedTopic(ctx, tp), ErrNotFound, "does not exist")
	wantKind(t, s.UpdatePartitionedTopic(ctx, tp, 9), ErrNotFound, "does not exist")
}

// TestStoreConcurrentUpdates has many writers change different policy fields
// of one namespace at once: the CAS loop must keep every change.
func TestStoreConcurrentUpdates(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, "acme", TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	ns := naming.MustParseNamespace("acme/app")
	if err := s.CreateNamespace(ctx, ns, Policies{}); err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			role := fmt.Sprintf("role-%d", i)
			_, err := s.UpdatePolicies(ctx, ns, func(p *Policies) error {
				p.AuthPolicies.NamespaceAuth[role] = []AuthAction{ActionProduce}
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent update: %v", err)
		}
	}
	p, _ := s.GetPolicies(ctx, ns)
	if len(p.AuthPolicies.NamespaceAuth) != writers {
		t.Fatalf("lost updates: %d of %d grants stored", len(p.AuthPolicies.NamespaceAuth), writers)
	}
}

// TestStoreDeleteTenantRacesCreateNamespace runs tenant deletes against
// namespace creates: whatever interleaving happens, no namespace may be left
// without its tenant.
func TestStoreDeleteTenantRacesCreateNamespace(t *testing.T) {
	s, md := newTestStore(t)
	ctx := context.Background()
	for round := range 20 {
		tenant := fmt.Sprintf("t%d", round)
		if err := s.CreateTenant(ctx, tenant, TenantInfo{}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			s.CreateNamespace(ctx, naming.MustParseNamespace(tenant+"/ns"), Policies{})
		}()
		go func() {
			defer wg.Done()
			s.DeleteTenant(ctx, tenant)
		}()
		wg.Wait()
		_, terr := s.GetTenant(ctx, tenant)
		kvs, err := metadata.ListAll(ctx, md, metadata.NamespacesPrefix+tenant+"/", true)
		if err != nil {
			t.Fatal(err)
		}
		if errors.Is(terr, ErrNotFound) && len(kvs) > 0 {
			t.Fatalf("round %d: namespace %s outlived its tenant", round, kvs[0].Key)
		}
	}
}

func TestInitializeCluster(t *testing.T) {
	md, _ := testutil.Store(t)
	ctx := context.Background()
	data := ClusterData{ServiceURL: "http://127.0.0.1:8080", BrokerServiceURL: "127.0.0.1:6650"}
	for i := range 2 {
		if err := InitializeCluster(ctx, md, "standalone", data); err != nil {
			t.Fatalf("InitializeCluster #%d: %v", i+1, err)
		}
	}
	s := NewStore(md, StoreOptions{})
	if d, err := s.GetCluster(ctx, "standalone"); err != nil || d.ServiceURL != data.ServiceURL {
		t.Fatalf("cluster = %+v, %v", d, err)
	}
	ti, err := s.GetTenant(ctx, "public")
	if err != nil || !slices.Equal(ti.AllowedClusters, []string{"standalone"}) {
		t.Fatalf("tenant public = %+v, %v", ti, err)
	}
	p, err := s.GetPolicies(ctx, naming.MustParseNamespace("public/default"))
	if err != nil || !slices.Equal(p.ReplicationClusters, []string{"standalone"}) {
		t.Fatalf("public/default = %+v, %v", p, err)
	}
	// A second cluster joining the same configuration store is added to public.
	data2 := ClusterData{ServiceURL: "http://10.0.0.2:8080"}
	if err := InitializeCluster(ctx, md, "second", data2); err != nil {
		t.Fatal(err)
	}
	ti, _ = s.GetTenant(ctx, "public")
	if !slices.Equal(ti.AllowedClusters, []string{"standalone", "second"}) {
		t.Fatalf("tenant public after second cluster = %+v", ti)
	}
	// Changed URLs are updated on the next run.
	data.ServiceURL = "http://127.0.0.1:18080"
	if err := InitializeCluster(ctx, md, "standalone", data); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.GetCluster(ctx, "standalone"); d.ServiceURL != "http://127.0.0.1:18080" {
		t.Fatalf("service URL not updated: %+v", d)
	}
	if err := InitializeCluster(ctx, md, "bad name", data); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad cluster name: %v", err)
	}
}
