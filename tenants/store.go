package tenants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/metadata"
)

// maxCASAttempts bounds the compare-and-swap retries of one update; each
// failed attempt means another writer succeeded, so running out means heavy
// contention on one key.
const maxCASAttempts = 64

// StoreOptions configures a Store.
type StoreOptions struct {
	// LocalCluster is the name of the cluster this process belongs to. A new
	// namespace without replication clusters gets [LocalCluster]; a new tenant
	// without allowed clusters gets [LocalCluster]. Empty: no defaults.
	LocalCluster string
	// DefaultBundles is the number of bundles of a namespace created without
	// a bundles policy; DefaultBundles (4) when 0.
	DefaultBundles int
}

// TopicLister lists the topics of a namespace. The broker implements it so
// that a namespace with topics cannot be deleted.
//
// To close the race with a concurrent namespace delete, a broker creating a
// topic should write the topic's metadata first and then re-check that the
// namespace still exists and is not marked Deleted (Store.GetPolicies or the
// Cache), removing the topic otherwise: DeleteNamespace marks the namespace
// before it lists topics.
type TopicLister interface {
	// ListTopics returns the full names of the namespace's topics
	// (persistent://t/ns/x), including partitions.
	ListTopics(ctx context.Context, ns naming.Namespace) ([]string, error)
}

// TopicListerFunc adapts a function to TopicLister.
type TopicListerFunc func(ctx context.Context, ns naming.Namespace) ([]string, error)

// ListTopics implements TopicLister.
func (f TopicListerFunc) ListTopics(ctx context.Context, ns naming.Namespace) ([]string, error) {
	return f(ctx, ns)
}

// Store reads and writes clusters, tenants, namespaces and partitioned-topic
// metadata in the configuration store. Every update is a compare-and-swap
// loop on the key's ModRevision, so concurrent admins never lose each
// other's changes. It is safe for concurrent use.
type Store struct {
	md   metadata.Store
	opts StoreOptions
}

// NewStore returns a Store over md.
func NewStore(md metadata.Store, opts StoreOptions) *Store {
	if opts.DefaultBundles == 0 {
		opts.DefaultBundles = DefaultBundles
	}
	return &Store{md: md, opts: opts}
}

// LocalCluster returns StoreOptions.LocalCluster.
func (s *Store) LocalCluster() string { return s.opts.LocalCluster }

// Key helpers (relative to the metadata store root).

// ClusterKey is the key of a cluster's ClusterData.
func ClusterKey(name string) string { return metadata.ClustersPrefix + name }

// TenantKey is the key of a tenant's TenantInfo.
func TenantKey(name string) string { return metadata.TenantsPrefix + name }

// NamespaceKey is the key of a namespace's Policies.
func NamespaceKey(ns naming.Namespace) string { return metadata.NamespacesPrefix + ns.String() }

// PartitionedTopicKey is the key of a partitioned topic's metadata.
func PartitionedTopicKey(t naming.Topic) string { return metadata.PartitionedTopicsPrefix + t.Path() }

func decode[T any](kv metadata.KV, v *T) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("tenants: corrupt value at %s: %w", kv.Key, err)
	}
	return nil
}

// casUpdate reads key, applies fn and writes the result back if nobody
// changed the key meanwhile, retrying otherwise. notFound builds the error
// for a missing key.
func casUpdate[T any](ctx context.Context, md metadata.Store, key string, notFound func() error, fn func(*T) error) (T, metadata.KV, error) {
	var zero T
	for range maxCASAttempts {
		kv, err := md.Get(ctx, key)
		if errors.Is(err, metadata.ErrNotFound) {
			return zero, kv, notFound()
		}
		if err != nil {
			return zero, kv, err
		}
		var v T
		if err := decode(kv, &v); err != nil {
			return zero, kv, err
		}
		if err := fn(&v); err != nil {
			return zero, kv, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return zero, kv, fmt.Errorf("tenants: encode %s: %w", key, err)
		}
		rev, err := md.Put(ctx, key, b, kv.ModRevision)
		switch {
		case err == nil:
			kv.Value, kv.ModRevision = b, rev
			return v, kv, nil
		case errors.Is(err, metadata.ErrBadVersion):
			continue
		case errors.Is(err, metadata.ErrNotFound):
			return zero, kv, notFound()
		default:
			return zero, kv, err
		}
	}
	return zero, metadata.KV{}, errorf(ErrConflict, "too many concurrent updates of %s, try again", key)
}

// listNames lists the last path element of every key under prefix.
func (s *Store) listNames(ctx context.Context, prefix string) ([]string, error) {
	kvs, err := metadata.ListAll(ctx, s.md, prefix, true)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		rest := strings.TrimPrefix(kv.Key, prefix)
		if rest != "" && !strings.Contains(rest, "/") {
			names = append(names, rest)
		}
	}
	return names, nil
}

// ---- clusters ----

// CreateCluster registers a cluster. ErrExists if it is already registered.
func (s *Store) CreateCluster(ctx context.Context, name string, data ClusterData) error {
	if err := naming.ValidateCluster(name); err != nil {
		return invalidName(err)
	}
	if err := data.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if _, err := s.md.Create(ctx, ClusterKey(name), b); err != nil {
		if errors.Is(err, metadata.ErrExists) {
			return errorf(ErrExists, "cluster %q already exists", name)
		}
		return err
	}
	return nil
}

// GetCluster returns a cluster's data, or ErrNotFound.
func (s *Store) GetCluster(ctx context.Context, name string) (ClusterData, error) {
	var d ClusterData
	if err := naming.ValidateCluster(name); err != nil {
		return d, invalidName(err)
	}
	kv, err := s.md.Get(ctx, ClusterKey(name))
	if errors.Is(err, metadata.ErrNotFound) {
		return d, errorf(ErrNotFound, "cluster %q does not exist", name)
	}
	if err != nil {
		return d, err
	}
	err = decode(kv, &d)
	return d, err
}

// UpdateCluster applies fn to a cluster's data and stores the result.
func (s *Store) UpdateCluster(ctx context.Context, name string, fn func(*ClusterData) error) (ClusterData, error) {
	if err := naming.ValidateCluster(name); err != nil {
		return ClusterData{}, invalidName(err)
	}
	d, _, err := casUpdate(ctx, s.md, ClusterKey(name),
		func() error { return errorf(ErrNotFound, "cluster %q does not exist", name) },
		func(d *ClusterData) error {
			if err := fn(d); err != nil {
				return err
			}
			return d.Validate()
		})
	return d, err
}

// DeleteCluster removes a cluster. ErrPrecondition while a namespace
// replicates to it.
func (s *Store) DeleteCluster(ctx context.Context, name string) error {
	if err := naming.ValidateCluster(name); err != nil {
		return invalidName(err)
	}
	kv, err := s.md.Get(ctx, ClusterKey(name))
	if errors.Is(err, metadata.ErrNotFound) {
		return errorf(ErrNotFound, "cluster %q does not exist", name)
	}
	if err != nil {
		return err
	}
	nss, err := metadata.ListAll(ctx, s.md, metadata.NamespacesPrefix, false)
	if err != nil {
		return err
	}
	for _, nkv := range nss {
		var p Policies
		if err := decode(nkv, &p); err != nil {
			return err
		}
		if slices.Contains(p.ReplicationClusters, name) {
			return errorf(ErrPrecondition, "cluster %q is still a replication cluster of namespace %s",
				name, strings.TrimPrefix(nkv.Key, metadata.NamespacesPrefix))
		}
	}
	if err := s.md.Delete(ctx, ClusterKey(name), kv.ModRevision); err != nil {
		if errors.Is(err, metadata.ErrNotFound) {
			return errorf(ErrNotFound, "cluster %q does not exist", name)
		}
		if errors.Is(err, metadata.ErrBadVersion) {
			return errorf(ErrConflict, "cluster %q changed while being deleted, try again", name)
		}
		return err
	}
	return nil
}

// ListClusters returns the registered cluster names, sorted.
func (s *Store) ListClusters(ctx context.Context) ([]string, error) {
	return s.listNames(ctx, metadata.ClustersPrefix)
}

// clustersExist returns ErrPrecondition naming the first cluster that is not
// registered.
func (s *Store) clustersExist(ctx context.Context, field string, clusters []string) error {
	for _, c := range clusters {
		_, err := s.md.Get(ctx, ClusterKey(c))
		if errors.Is(err, metadata.ErrNotFound) {
			return errorf(ErrPrecondition, "%s: cluster %q does not exist", field, c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- tenants ----

// CreateTenant creates a tenant. Its allowed clusters must exist
// (ErrPrecondition); with none given it is allowed the local cluster.
func (s *Store) CreateTenant(ctx context.Context, name string, info TenantInfo) error {
	if err := naming.ValidateTenant(name); err != nil {
		return invalidName(err)
	}
	info.normalize()
	if len(info.AllowedClusters) == 0 && s.opts.LocalCluster != "" {
		info.AllowedClusters = []string{s.opts.LocalCluster}
	}
	if err := info.Validate(); err != nil {
		return err
	}
	if err := s.clustersExist(ctx, "allowedClusters", info.AllowedClusters); err != nil {
		return err
	}
	b, err := json.Marshal(tenantRecord{TenantInfo: info})
	if err != nil {
		return err
	}
	if _, err := s.md.Create(ctx, TenantKey(name), b); err != nil {
		if errors.Is(err, metadata.ErrExists) {
			return errorf(ErrExists, "tenant %q already exists", name)
		}
		return err
	}
	return nil
}

func (s *Store) getTenantRecord(ctx context.Context, name string) (tenantRecord, metadata.KV, error) {
	var r tenantRecord
	if err := naming.ValidateTenant(name); err != nil {
		return r, metadata.KV{}, invalidName(err)
	}
	kv, err := s.md.Get(ctx, TenantKey(name))
	if errors.Is(err, metadata.ErrNotFound) {
		return r, kv, errorf(ErrNotFound, "tenant %q does not exist", name)
	}
	if err != nil {
		return r, kv, err
	}
	err = decode(kv, &r)
	r.normalize()
	return r, kv, err
}

// GetTenant returns a tenant's configuration, or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, name string) (TenantInfo, error) {
	r, _, err := s.getTenantRecord(ctx, name)
	return r.TenantInfo, err
}

// UpdateTenant applies fn to a tenant's configuration and stores the result.
// Allowed clusters must exist (ErrPrecondition), and a cluster may only be
// removed when none of the tenant's namespaces replicates to it (ErrConflict).
func (s *Store) UpdateTenant(ctx context.Context, name string, fn func(*TenantInfo) error) (TenantInfo, error) {
	if err := naming.ValidateTenant(name); err != nil {
		return TenantInfo{}, invalidName(err)
	}
	r, _, err := casUpdate(ctx, s.md, TenantKey(name),
		func() error { return errorf(ErrNotFound, "tenant %q does not exist", name) },
		func(r *tenantRecord) error {
			old := r.TenantInfo.Clone()
			// An update clears a pending delete's marker; that delete's
			// final compare-and-swap then fails and it starts over.
			r.Deleting = false
			if err := fn(&r.TenantInfo); err != nil {
				return err
			}
			r.normalize()
			if err := r.Validate(); err != nil {
				return err
			}
			if err := s.clustersExist(ctx, "allowedClusters", r.AllowedClusters); err != nil {
				return err
			}
			var removed []string
			for _, c := range old.AllowedClusters {
				if !r.AllowsCluster(c) {
					removed = append(removed, c)
				}
			}
			return s.checkClustersUnused(ctx, name, removed)
		})
	return r.TenantInfo, err
}

// checkClustersUnused fails with ErrConflict when a namespace of tenant
// replicates to one of clusters.
func (s *Store) checkClustersUnused(ctx context.Context, tenant string, clusters []string) error {
	if len(clusters) == 0 {
		return nil
	}
	kvs, err := metadata.ListAll(ctx, s.md, metadata.NamespacesPrefix+tenant+"/", false)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		var p Policies
		if err := decode(kv, &p); err != nil {
			return err
		}
		for _, c := range clusters {
			if slices.Contains(p.ReplicationClusters, c) {
				return errorf(ErrConflict, "cannot remove allowed cluster %q: namespace %s replicates to it",
					c, strings.TrimPrefix(kv.Key, metadata.NamespacesPrefix))
			}
		}
	}
	return nil
}

// DeleteTenant deletes a tenant that has no namespaces (ErrNotEmpty otherwise).
func (s *Store) DeleteTenant(ctx context.Context, name string) error {
	if err := naming.ValidateTenant(name); err != nil {
		return invalidName(err)
	}
	notFound := func() error { return errorf(ErrNotFound, "tenant %q does not exist", name) }
	for range maxCASAttempts {
		// Mark first, then look for namespaces: a concurrent CreateNamespace
		// either created its key before our listing (we see it) or re-reads
		// the tenant after our mark (it backs out).
		_, kv, err := casUpdate(ctx, s.md, TenantKey(name), notFound, func(r *tenantRecord) error {
			r.Deleting = true
			return nil
		})
		if err != nil {
			return err
		}
		nss, err := s.listNames(ctx, metadata.NamespacesPrefix+name+"/")
		if err != nil {
			return err
		}
		if len(nss) > 0 {
			_, _, uerr := casUpdate(ctx, s.md, TenantKey(name), notFound, func(r *tenantRecord) error {
				r.Deleting = false
				return nil
			})
			if uerr != nil && !errors.Is(uerr, ErrNotFound) {
				return uerr
			}
			return errorf(ErrNotEmpty, "tenant %q still has %d namespace(s), e.g. %s/%s; delete them first", name, len(nss), name, nss[0])
		}
		err = s.md.Delete(ctx, TenantKey(name), kv.ModRevision)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, metadata.ErrBadVersion):
			continue
		case errors.Is(err, metadata.ErrNotFound):
			return notFound()
		default:
			return err
		}
	}
	return errorf(ErrConflict, "tenant %q changed too often while being deleted, try again", name)
}

// ListTenants returns every tenant name, sorted.
func (s *Store) ListTenants(ctx context.Context) ([]string, error) {
	return s.listNames(ctx, metadata.TenantsPrefix)
}

// ---- namespaces ----

// CreateNamespace creates a namespace with the given policies (the zero
// Policies for defaults). The tenant must exist (ErrNotFound); replication
// clusters default to [LocalCluster] and must be allowed for the tenant and
// exist (ErrPrecondition); bundles default to StoreOptions.DefaultBundles.
// The deleted marker is ignored.
func (s *Store) CreateNamespace(ctx context.Context, ns naming.Namespace, p Policies) error {
	if ns.IsZero() {
		return errorf(ErrInvalid, "empty namespace name")
	}
	t, _, err := s.getTenantRecord(ctx, ns.Tenant())
	if err != nil {
		return err
	}
	if t.Deleting {
		return errorf(ErrConflict, "tenant %q is being deleted", ns.Tenant())
	}
	p = p.Clone()
	p.Deleted = false
	if p.Bundles == nil {
		b := NewBundlesData(s.opts.DefaultBundles)
		p.Bundles = &b
	}
	if len(p.ReplicationClusters) == 0 && s.opts.LocalCluster != "" {
		p.ReplicationClusters = []string{s.opts.LocalCluster}
	}
	if err := s.checkPolicies(ctx, ns, t.TenantInfo, &p); err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := s.md.Create(ctx, NamespaceKey(ns), b); err != nil {
		if errors.Is(err, metadata.ErrExists) {
			return errorf(ErrExists, "namespace %s already exists", ns)
		}
		return err
	}
	// Re-check the tenant: if a delete marked or removed it meanwhile, back
	// out so that no namespace outlives its tenant.
	t, _, err = s.getTenantRecord(ctx, ns.Tenant())
	if err == nil && !t.Deleting {
		return nil
	}
	if derr := s.md.Delete(context.WithoutCancel(ctx), NamespaceKey(ns), metadata.AnyVersion); derr != nil && !errors.Is(derr, metadata.ErrNotFound) {
		return fmt.Errorf("tenants: back out namespace %s after its tenant vanished: %w", ns, derr)
	}
	if err != nil {
		return err
	}
	return errorf(ErrConflict, "tenant %q is being deleted", ns.Tenant())
}

// checkPolicies normalizes and validates p for namespace ns of tenant t,
// including that replication clusters are allowed and exist.
func (s *Store) checkPolicies(ctx context.Context, ns naming.Namespace, t TenantInfo, p *Policies) error {
	p.Normalize()
	if err := p.Validate(); err != nil {
		return err
	}
	for topic := range p.AuthPolicies.DestinationAuth {
		tp, _ := naming.ParseTopic(topic) // validated above
		if tp.NamespaceName() != ns {
			return errorf(ErrInvalid, "auth_policies.destination_auth: topic %s is not in namespace %s", topic, ns)
		}
	}
	return s.clustersAllowed(ctx, ns.Tenant(), t, "replication_clusters", p.ReplicationClusters)
}

// clustersAllowed checks that tenant (t) may use every cluster of clusters
// (the policy field) and that they exist.
func (s *Store) clustersAllowed(ctx context.Context, tenant string, t TenantInfo, field string, clusters []string) error {
	for _, c := range clusters {
		if !t.AllowsCluster(c) {
			return errorf(ErrPrecondition, "%s: tenant %q is not allowed to use cluster %q (allowed: %s)",
				field, tenant, c, strings.Join(t.AllowedClusters, ", "))
		}
	}
	return s.clustersExist(ctx, field, clusters)
}

// GetPolicies returns a namespace's policies, or ErrNotFound. Policies of a
// namespace being deleted are returned with Deleted set.
func (s *Store) GetPolicies(ctx context.Context, ns naming.Namespace) (Policies, error) {
	var p Policies
	if ns.IsZero() {
		return p, errorf(ErrInvalid, "empty namespace name")
	}
	kv, err := s.md.Get(ctx, NamespaceKey(ns))
	if errors.Is(err, metadata.ErrNotFound) {
		return p, errorf(ErrNotFound, "namespace %s does not exist", ns)
	}
	if err != nil {
		return p, err
	}
	if err := decode(kv, &p); err != nil {
		return p, err
	}
	p.Normalize()
	return p, nil
}

// UpdatePolicies applies fn to a namespace's policies, validates the result
// (including replication clusters against the tenant) and stores it with a
// compare-and-swap, retrying on concurrent changes. fn may run several times.
// It returns the stored policies.
func (s *Store) UpdatePolicies(ctx context.Context, ns naming.Namespace, fn func(*Policies) error) (Policies, error) {
	if ns.IsZero() {
		return Policies{}, errorf(ErrInvalid, "empty namespace name")
	}
	p, _, err := casUpdate(ctx, s.md, NamespaceKey(ns),
		func() error { return errorf(ErrNotFound, "namespace %s does not exist", ns) },
		func(p *Policies) error {
			p.Normalize()
			// An update clears a pending delete's marker; that delete's
			// final compare-and-swap then fails and it starts over.
			p.Deleted = false
			if err := fn(p); err != nil {
				return err
			}
			p.Deleted = false
			t, err := s.GetTenant(ctx, ns.Tenant())
			if err != nil {
				return err
			}
			return s.checkPolicies(ctx, ns, t, p)
		})
	return p, err
}

// DeleteNamespace deletes a namespace that has no topics: none listed by
// topics (when not nil) and no partitioned-topic metadata. ErrNotEmpty
// otherwise. While checking, the namespace is marked Deleted so brokers stop
// creating topics in it; the mark is removed again when the delete is refused.
func (s *Store) DeleteNamespace(ctx context.Context, ns naming.Namespace, topics TopicLister) error {
	if ns.IsZero() {
		return errorf(ErrInvalid, "empty namespace name")
	}
	key := NamespaceKey(ns)
	notFound := func() error { return errorf(ErrNotFound, "namespace %s does not exist", ns) }
	unmark := func() error {
		_, _, err := casUpdate(context.WithoutCancel(ctx), s.md, key, notFound, func(p *Policies) error {
			p.Deleted = false
			return nil
		})
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	listTopics := func() ([]string, error) {
		names, err := s.ListPartitionedTopics(ctx, ns)
		if err == nil && len(names) == 0 && topics != nil {
			names, err = topics.ListTopics(ctx, ns)
		}
		if err != nil {
			return nil, fmt.Errorf("list topics of %s: %w", ns, err)
		}
		return names, nil
	}
	notEmpty := func(names []string) error {
		return errorf(ErrNotEmpty, "namespace %s still has %d topic(s), e.g. %s; delete them first", ns, len(names), names[0])
	}
	// Refuse a namespace with topics before marking it deleted: the mark
	// makes it vanish for every broker until it is lifted again.
	if _, err := s.md.Get(ctx, key); errors.Is(err, metadata.ErrNotFound) {
		return notFound()
	}
	if names, err := listTopics(); err != nil {
		return err
	} else if len(names) > 0 {
		return notEmpty(names)
	}
	for range maxCASAttempts {
		_, kv, err := casUpdate(ctx, s.md, key, notFound, func(p *Policies) error {
			p.Deleted = true
			return nil
		})
		if err != nil {
			return err
		}
		// A topic created before the mark took effect.
		names, err := listTopics()
		if err != nil {
			if uerr := unmark(); uerr != nil {
				return errors.Join(err, uerr)
			}
			return err
		}
		if len(names) > 0 {
			if err := unmark(); err != nil {
				return err
			}
			return notEmpty(names)
		}
		err = s.md.Delete(ctx, key, kv.ModRevision)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, metadata.ErrBadVersion):
			continue
		case errors.Is(err, metadata.ErrNotFound):
			return notFound()
		default:
			return err
		}
	}
	return errorf(ErrConflict, "namespace %s changed too often while being deleted, try again", ns)
}

// ListNamespaces returns the full names ("tenant/ns") of a tenant's
// namespaces, sorted. ErrNotFound when the tenant does not exist.
func (s *Store) ListNamespaces(ctx context.Context, tenant string) ([]string, error) {
	if _, _, err := s.getTenantRecord(ctx, tenant); err != nil {
		return nil, err
	}
	names, err := s.listNames(ctx, metadata.NamespacesPrefix+tenant+"/")
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		names[i] = tenant + "/" + n
	}
	return names, nil
}

// ---- partitioned topics ----

// CreatePartitionedTopic records a partitioned topic with the given number of
// partitions (>= 1). The namespace must exist and not be being deleted
// (ErrNotFound); a partition name is rejected (ErrInvalid).
func (s *Store) CreatePartitionedTopic(ctx context.Context, t naming.Topic, partitions int) error {
	if t.IsZero() {
		return errorf(ErrInvalid, "empty topic name")
	}
	if t.IsPartition() {
		return errorf(ErrInvalid, "%s is a partition name; a partitioned topic cannot end in -partition-N", t)
	}
	if err := CheckRange("number of partitions", int64(partitions), 1, MaxPartitions, ""); err != nil {
		return err
	}
	if err := checkPartitionNames(t, partitions); err != nil {
		return err
	}
	live := func() error {
		p, err := s.GetPolicies(ctx, t.NamespaceName())
		if err != nil {
			return err
		}
		if p.Deleted {
			return errorf(ErrNotFound, "namespace %s is being deleted", t.NamespaceName())
		}
		return nil
	}
	if err := live(); err != nil {
		return err
	}
	b, _ := json.Marshal(PartitionedTopicMetadata{Partitions: partitions})
	if _, err := s.md.Create(ctx, PartitionedTopicKey(t), b); err != nil {
		if errors.Is(err, metadata.ErrExists) {
			return errorf(ErrExists, "partitioned topic %s already exists", t)
		}
		return err
	}
	if err := live(); err != nil {
		if derr := s.md.Delete(context.WithoutCancel(ctx), PartitionedTopicKey(t), metadata.AnyVersion); derr != nil && !errors.Is(derr, metadata.ErrNotFound) {
			return errors.Join(err, derr)
		}
		return err
	}
	return nil
}

// checkPartitionNames refuses a topic name too long to have partitions
// 0..partitions-1: the longest partition name would be invalid, and no
// client could produce to it.
func checkPartitionNames(t naming.Topic, partitions int) error {
	last := t.Partition(partitions - 1).LocalName()
	if err := naming.ValidateTopicLocal(last); err != nil {
		return errorf(ErrInvalid, "topic name %s is too long for %d partitions: %s", t, partitions, nameMsg(err))
	}
	return nil
}

// GetPartitionedTopic returns a partitioned topic's metadata, or ErrNotFound.
func (s *Store) GetPartitionedTopic(ctx context.Context, t naming.Topic) (PartitionedTopicMetadata, error) {
	var m PartitionedTopicMetadata
	kv, err := s.md.Get(ctx, PartitionedTopicKey(t))
	if errors.Is(err, metadata.ErrNotFound) {
		return m, errorf(ErrNotFound, "partitioned topic %s does not exist", t)
	}
	if err != nil {
		return m, err
	}
	err = decode(kv, &m)
	return m, err
}

// UpdatePartitionedTopic raises the number of partitions; lowering it (or
// keeping it) is ErrInvalid, as partitions can only be added.
func (s *Store) UpdatePartitionedTopic(ctx context.Context, t naming.Topic, partitions int) error {
	_, _, err := casUpdate(ctx, s.md, PartitionedTopicKey(t),
		func() error { return errorf(ErrNotFound, "partitioned topic %s does not exist", t) },
		func(m *PartitionedTopicMetadata) error {
			if err := CheckRange("number of partitions", int64(partitions), 1, MaxPartitions, ""); err != nil {
				return err
			}
			if partitions <= m.Partitions {
				return errorf(ErrInvalid, "partitions can only be increased: %s has %d, asked for %d", t, m.Partitions, partitions)
			}
			if err := checkPartitionNames(t, partitions); err != nil {
				return err
			}
			m.Partitions = partitions
			return nil
		})
	return err
}

// DeletePartitionedTopic removes a partitioned topic's metadata (not its
// partitions' data, which the broker deletes).
func (s *Store) DeletePartitionedTopic(ctx context.Context, t naming.Topic) error {
	err := s.md.Delete(ctx, PartitionedTopicKey(t), metadata.AnyVersion)
	if errors.Is(err, metadata.ErrNotFound) {
		return errorf(ErrNotFound, "partitioned topic %s does not exist", t)
	}
	return err
}

// ListPartitionedTopics returns the full names of a namespace's partitioned
// topics, sorted.
func (s *Store) ListPartitionedTopics(ctx context.Context, ns naming.Namespace) ([]string, error) {
	names, err := s.listNames(ctx, metadata.PartitionedTopicsPrefix+ns.String()+"/")
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		names[i] = naming.Persistent + "://" + ns.String() + "/" + n
	}
	return names, nil
}
