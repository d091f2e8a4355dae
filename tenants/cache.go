package tenants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/metadata"
)

// CacheOptions configures a Cache.
type CacheOptions struct {
	// RetryInterval is the first wait before reloading after a watch fails;
	// it doubles up to 30 s while reloads keep failing. 500 ms when 0.
	RetryInterval time.Duration
	// Logger receives watch failures; slog.Default() when nil.
	Logger *slog.Logger
}

// ChangeKind says what a Change is about.
type ChangeKind int

// Change kinds.
const (
	// ClusterChanged: a cluster was created, updated or deleted.
	ClusterChanged ChangeKind = iota + 1
	// TenantChanged: a tenant was created, updated or deleted.
	TenantChanged
	// NamespaceChanged: a namespace was created, its policies changed, or it
	// was deleted.
	NamespaceChanged
	// CacheReloaded: the cache lost its watch and reloaded everything; any
	// value may have changed.
	CacheReloaded
	// TopicPoliciesChanged: a topic's policies were set, changed or removed
	// (Name is the topic's path "tenant/ns/topic").
	TopicPoliciesChanged
)

// String returns the kind's name.
func (k ChangeKind) String() string {
	switch k {
	case ClusterChanged:
		return "cluster"
	case TenantChanged:
		return "tenant"
	case NamespaceChanged:
		return "namespace"
	case CacheReloaded:
		return "reloaded"
	case TopicPoliciesChanged:
		return "topic policies"
	}
	return fmt.Sprintf("ChangeKind(%d)", int(k))
}

// Change describes one change seen by a Cache.
type Change struct {
	// Kind says what changed.
	Kind ChangeKind
	// Name is the cluster, the tenant or the namespace ("tenant/ns"); empty
	// for CacheReloaded.
	Name string
	// Deleted is true when the object was removed.
	Deleted bool
}

type cached[T any] struct {
	v   T
	rev int64 // ModRevision of the stored value
}

// Cache is an in-memory copy of the clusters, tenants and namespace policies
// in the configuration store, kept current by etcd watches so that every
// broker sees admin changes within milliseconds and without a restart.
//
// It lists each prefix after its watch is established (metadata.Store.Watch
// returns only then), so no change is missed; an event already reflected in
// the listing is recognised by its ModRevision and skipped. When a watch
// fails (etcd compacted past it, lost its leader, …) the cache reloads
// everything and reports CacheReloaded.
//
// Reads never block on etcd and return copies the caller may modify.
type Cache struct {
	md   metadata.Store
	opts CacheOptions
	log  *slog.Logger

	mu struct {
		sync.RWMutex
		clusters   map[string]cached[ClusterData]
		tenants    map[string]cached[tenantRecord]
		namespaces map[string]cached[Policies]
		topics     map[string]cached[TopicPolicies] // by "tenant/ns/topic"
	}
	subs struct {
		sync.Mutex
		next int
		fns  map[int]func(Change)
	}

	cancel context.CancelFunc
	done   chan struct{}
}

var cachePrefixes = []string{metadata.ClustersPrefix, metadata.TenantsPrefix, metadata.NamespacesPrefix, metadata.TopicPoliciesPrefix}

// NewCache loads the configuration and starts watching it. It returns once
// the first load is complete, or an error when it cannot load before ctx
// ends. Close stops the watches.
func NewCache(ctx context.Context, md metadata.Store, opts CacheOptions) (*Cache, error) {
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 500 * time.Millisecond
	}
	c := &Cache{md: md, opts: opts, log: opts.Logger, done: make(chan struct{})}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.subs.fns = map[int]func(Change){}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	// The watches live as long as the cache, but the first load must give
	// up when the caller's ctx ends.
	stop := context.AfterFunc(ctx, cancel)
	events, watchCancel, err := c.load(runCtx)
	if !stop() {
		if err == nil {
			watchCancel()
			err = ctx.Err()
		}
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tenants: load configuration cache: %w", err)
	}
	go c.run(runCtx, events, watchCancel)
	return c, nil
}

// Close stops watching and waits for the cache's goroutine to end.
func (c *Cache) Close() {
	c.cancel()
	<-c.done
}

// Subscribe calls fn for every change, after the cache reflects it. Calls
// come one at a time from the cache's goroutine, so fn must not block; it
// may read the cache. The returned function unsubscribes.
func (c *Cache) Subscribe(fn func(Change)) (unsubscribe func()) {
	c.subs.Lock()
	defer c.subs.Unlock()
	id := c.subs.next
	c.subs.next++
	c.subs.fns[id] = fn
	return func() {
		c.subs.Lock()
		defer c.subs.Unlock()
		delete(c.subs.fns, id)
	}
}

// Cluster returns a cluster's data.
func (c *Cache) Cluster(name string) (ClusterData, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.mu.clusters[name]
	return e.v.Clone(), ok
}

// Clusters returns the cluster names, sorted.
func (c *Cache) Clusters() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return sortedKeys(c.mu.clusters)
}

// Tenant returns a tenant's configuration.
func (c *Cache) Tenant(name string) (TenantInfo, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.mu.tenants[name]
	return e.v.TenantInfo.Clone(), ok
}

// Tenants returns the tenant names, sorted.
func (c *Cache) Tenants() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return sortedKeys(c.mu.tenants)
}

// Policies returns a namespace's policies; ok is false when the namespace
// does not exist or is being deleted.
func (c *Cache) Policies(ns naming.Namespace) (Policies, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.mu.namespaces[ns.String()]
	if !ok || e.v.Deleted {
		return Policies{}, false
	}
	return e.v.Clone(), true
}

// TopicPolicies returns the policies set on a topic (a partition's are its
// partitioned topic's); false when none are set.
func (c *Cache) TopicPolicies(t naming.Topic) (TopicPolicies, bool) {
	if t.IsPartition() {
		t = t.PartitionedParent()
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.mu.topics[t.Path()]
	return e.v.clone(), ok
}

// Namespaces returns the full names of a tenant's live namespaces (not
// being deleted), sorted.
func (c *Cache) Namespaces(tenant string) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for k, e := range c.mu.namespaces {
		if strings.HasPrefix(k, tenant+"/") && !e.v.Deleted {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// load starts a watch on every prefix, then lists them and replaces the
// cache's content. It returns the watch channels and their cancel function.
func (c *Cache) load(ctx context.Context) ([]<-chan metadata.WatchResponse, context.CancelFunc, error) {
	wctx, cancel := context.WithCancel(ctx)
	chans := make([]<-chan metadata.WatchResponse, len(cachePrefixes))
	for i, p := range cachePrefixes {
		// Watch returns once etcd has registered the watch, so listing
		// afterwards cannot miss a change.
		chans[i] = c.md.Watch(wctx, p, 0)
	}
	clusters := map[string]cached[ClusterData]{}
	tenants := map[string]cached[tenantRecord]{}
	namespaces := map[string]cached[Policies]{}
	topics := map[string]cached[TopicPolicies]{}
	for _, p := range cachePrefixes {
		kvs, err := metadata.ListAll(ctx, c.md, p, false)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		for _, kv := range kvs {
			name := strings.TrimPrefix(kv.Key, p)
			var err error
			switch p {
			case metadata.ClustersPrefix:
				err = put(clusters, name, kv)
			case metadata.TenantsPrefix:
				err = put(tenants, name, kv)
			case metadata.NamespacesPrefix:
				err = put(namespaces, name, kv)
			case metadata.TopicPoliciesPrefix:
				err = put(topics, name, kv)
			}
			if err != nil {
				c.log.Warn("tenants cache: skipping undecodable value", "key", kv.Key, "err", err)
			}
		}
	}
	for k, e := range namespaces {
		e.v.Normalize()
		namespaces[k] = e
	}
	c.mu.Lock()
	c.mu.clusters, c.mu.tenants, c.mu.namespaces, c.mu.topics = clusters, tenants, namespaces, topics
	c.mu.Unlock()
	return chans, cancel, nil
}

func put[T any](m map[string]cached[T], name string, kv metadata.KV) error {
	if old, ok := m[name]; ok && old.rev >= kv.ModRevision {
		return nil // already reflected (an event replayed after a listing)
	}
	var v T
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return err
	}
	m[name] = cached[T]{v: v, rev: kv.ModRevision}
	return nil
}

func remove[T any](m map[string]cached[T], name string, rev int64) bool {
	old, ok := m[name]
	if !ok || old.rev >= rev {
		return false
	}
	delete(m, name)
	return true
}

// run applies watch events until the cache is closed, reloading after a
// watch failure.
func (c *Cache) run(ctx context.Context, chans []<-chan metadata.WatchResponse, watchCancel context.CancelFunc) {
	defer close(c.done)
	for {
		err := c.consume(ctx, chans)
		watchCancel()
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("tenants cache: watch failed, reloading", "err", err)
		wait := c.opts.RetryInterval
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			chans, watchCancel, err = c.load(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("tenants cache: reload failed", "err", err, "retry_in", wait)
			wait = min(2*wait, 30*time.Second)
		}
		c.notify(Change{Kind: CacheReloaded})
	}
}

// consume applies events from the watch channels until one fails or ctx ends.
func (c *Cache) consume(ctx context.Context, chans []<-chan metadata.WatchResponse) error {
	merged := make(chan metadata.WatchResponse)
	var wg sync.WaitGroup
	fwdCtx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		wg.Wait()
	}()
	for _, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case wr, ok := <-ch:
					if !ok {
						wr = metadata.WatchResponse{Err: errors.New("watch channel closed")}
					}
					select {
					case merged <- wr:
					case <-fwdCtx.Done():
						return
					}
					if !ok || wr.Err != nil {
						return
					}
				case <-fwdCtx.Done():
					return
				}
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr := <-merged:
			if wr.Err != nil {
				return wr.Err
			}
			for _, ev := range wr.Events {
				if ch, ok := c.apply(ev); ok {
					c.notify(ch)
				}
			}
		}
	}
}

// apply updates the cache with one event and reports the change, if any.
func (c *Cache) apply(ev metadata.Event) (Change, bool) {
	var ch Change
	var prefix string
	switch {
	case strings.HasPrefix(ev.KV.Key, metadata.ClustersPrefix):
		ch.Kind, prefix = ClusterChanged, metadata.ClustersPrefix
	case strings.HasPrefix(ev.KV.Key, metadata.TenantsPrefix):
		ch.Kind, prefix = TenantChanged, metadata.TenantsPrefix
	case strings.HasPrefix(ev.KV.Key, metadata.NamespacesPrefix):
		ch.Kind, prefix = NamespaceChanged, metadata.NamespacesPrefix
	case strings.HasPrefix(ev.KV.Key, metadata.TopicPoliciesPrefix):
		ch.Kind, prefix = TopicPoliciesChanged, metadata.TopicPoliciesPrefix
	default:
		return ch, false
	}
	ch.Name = strings.TrimPrefix(ev.KV.Key, prefix)
	ch.Deleted = ev.Type == metadata.EventDelete

	c.mu.Lock()
	defer c.mu.Unlock()
	changed := true
	var err error
	switch {
	case ch.Deleted && ch.Kind == ClusterChanged:
		changed = remove(c.mu.clusters, ch.Name, ev.KV.ModRevision)
	case ch.Deleted && ch.Kind == TenantChanged:
		changed = remove(c.mu.tenants, ch.Name, ev.KV.ModRevision)
	case ch.Deleted && ch.Kind == TopicPoliciesChanged:
		changed = remove(c.mu.topics, ch.Name, ev.KV.ModRevision)
	case ch.Deleted:
		changed = remove(c.mu.namespaces, ch.Name, ev.KV.ModRevision)
	case ch.Kind == ClusterChanged:
		changed, err = putChanged(c.mu.clusters, ch.Name, ev.KV)
	case ch.Kind == TenantChanged:
		changed, err = putChanged(c.mu.tenants, ch.Name, ev.KV)
	case ch.Kind == TopicPoliciesChanged:
		changed, err = putChanged(c.mu.topics, ch.Name, ev.KV)
	default:
		changed, err = putChanged(c.mu.namespaces, ch.Name, ev.KV)
		if e, ok := c.mu.namespaces[ch.Name]; ok && changed {
			e.v.Normalize()
			c.mu.namespaces[ch.Name] = e
		}
	}
	if err != nil {
		c.log.Warn("tenants cache: skipping undecodable value", "key", ev.KV.Key, "err", err)
		return ch, false
	}
	return ch, changed
}

func putChanged[T any](m map[string]cached[T], name string, kv metadata.KV) (bool, error) {
	if old, ok := m[name]; ok && old.rev >= kv.ModRevision {
		return false, nil
	}
	return true, put(m, name, kv)
}

func (c *Cache) notify(ch Change) {
	c.subs.Lock()
	fns := make([]func(Change), 0, len(c.subs.fns))
	for _, fn := range c.subs.fns {
		fns = append(fns, fn)
	}
	c.subs.Unlock()
	for _, fn := range fns {
		fn(ch)
	}
}
