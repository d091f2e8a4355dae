package tenants

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
)

// changeLog collects a cache's notifications.
type changeLog struct {
	mu      sync.Mutex
	changes []Change
}

func (l *changeLog) add(c Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, c)
}

func (l *changeLog) has(want Change) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if slices.Contains(l.changes, want) {
		return nil
	}
	return fmt.Errorf("no %+v among %+v", want, l.changes)
}

func TestCacheSeesChangesLive(t *testing.T) {
	s, md := newTestStore(t)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, "acme", TenantInfo{AdminRoles: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	ns := naming.MustParseNamespace("acme/app")
	if err := s.CreateNamespace(ctx, ns, Policies{MessageTTLInSeconds: ptr(30)}); err != nil {
		t.Fatal(err)
	}

	c, err := NewCache(ctx, md, CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var log changeLog
	unsubscribe := c.Subscribe(log.add)
	defer unsubscribe()

	// The initial load.
	if got := c.Clusters(); !slices.Equal(got, []string{"east", "local", "west"}) {
		t.Fatalf("Clusters = %v", got)
	}
	if ti, ok := c.Tenant("acme"); !ok || !ti.IsAdmin("alice") {
		t.Fatalf("Tenant(acme) = %+v, %v", ti, ok)
	}
	if p, ok := c.Policies(ns); !ok || *p.MessageTTLInSeconds != 30 {
		t.Fatalf("Policies = %+v, %v", p, ok)
	}

	// An update through another Store is visible without restarting.
	other := NewStore(md, StoreOptions{LocalCluster: "local"})
	if _, err := other.UpdatePolicies(ctx, ns, func(p *Policies) error {
		p.MessageTTLInSeconds = ptr(90)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if p, _ := c.Policies(ns); p.MessageTTLInSeconds == nil || *p.MessageTTLInSeconds != 90 {
			return fmt.Errorf("ttl still %v", p.MessageTTLInSeconds)
		}
		return nil
	})
	testutil.WaitFor(t, 5*time.Second, func() error { return log.has(Change{Kind: NamespaceChanged, Name: "acme/app"}) })

	// Returned values are copies.
	p, _ := c.Policies(ns)
	*p.MessageTTLInSeconds = 1
	if p2, _ := c.Policies(ns); *p2.MessageTTLInSeconds != 90 {
		t.Fatalf("caller modified the cache")
	}

	// New tenants and namespaces, admin changes, deletions.
	if err := other.CreateTenant(ctx, "beta", TenantInfo{AdminRoles: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.UpdateTenant(ctx, "acme", func(ti *TenantInfo) error {
		ti.AdminRoles = []string{"carol"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := other.CreateNamespace(ctx, naming.MustParseNamespace("beta/x"), Policies{}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if ti, ok := c.Tenant("beta"); !ok || !ti.IsAdmin("bob") {
			return fmt.Errorf("beta not seen")
		}
		if ti, _ := c.Tenant("acme"); ti.IsAdmin("alice") || !ti.IsAdmin("carol") {
			return fmt.Errorf("acme admins still %v", ti.AdminRoles)
		}
		if got := c.Namespaces("beta"); !slices.Equal(got, []string{"beta/x"}) {
			return fmt.Errorf("beta namespaces %v", got)
		}
		return nil
	})
	if err := other.DeleteNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteCluster(ctx, "west"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if _, ok := c.Policies(ns); ok {
			return fmt.Errorf("deleted namespace still cached")
		}
		if _, ok := c.Cluster("west"); ok {
			return fmt.Errorf("deleted cluster still cached")
		}
		return log.has(Change{Kind: NamespaceChanged, Name: "acme/app", Deleted: true})
	})
	if err := log.has(Change{Kind: ClusterChanged, Name: "west", Deleted: true}); err != nil {
		t.Fatal(err)
	}

	// After unsubscribing no more notifications arrive.
	unsubscribe()
	log.mu.Lock()
	n := len(log.changes)
	log.mu.Unlock()
	if err := other.CreateTenant(ctx, "gamma", TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if _, ok := c.Tenant("gamma"); !ok {
			return fmt.Errorf("gamma not seen")
		}
		return nil
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.changes) != n {
		t.Fatalf("notified after unsubscribe: %+v", log.changes[n:])
	}
}

// TestCacheHidesNamespaceBeingDeleted: while DeleteNamespace makes its final
// check for topics, brokers must not see the namespace as live (so no topic
// appears meanwhile). Here a topic appears between the first check and the
// mark: the delete is refused and the namespace is live again.
func TestCacheHidesNamespaceBeingDeleted(t *testing.T) {
	s, md := newTestStore(t)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, "acme", TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	ns := naming.MustParseNamespace("acme/app")
	if err := s.CreateNamespace(ctx, ns, Policies{}); err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(ctx, md, CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	calls := 0
	lister := TopicListerFunc(func(context.Context, naming.Namespace) ([]string, error) {
		if calls++; calls == 1 {
			return nil, nil // the first check, unmarked: no topic yet
		}
		testutil.WaitFor(t, 5*time.Second, func() error {
			if _, ok := c.Policies(ns); ok {
				return fmt.Errorf("namespace being deleted is still live in the cache")
			}
			return nil
		})
		return []string{"persistent://acme/app/t"}, nil
	})
	if err := s.DeleteNamespace(ctx, ns, lister); err == nil {
		t.Fatal("delete with topics succeeded")
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if _, ok := c.Policies(ns); !ok {
			return fmt.Errorf("namespace not live again after the refused delete")
		}
		return nil
	})
}

func TestCacheNewFailsWhenContextEnds(t *testing.T) {
	_, md := newTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := NewCache(ctx, md, CacheOptions{}); err == nil {
		c.Close()
		t.Fatal("NewCache with a cancelled context succeeded")
	}
}

// flakyWatchStore lets a test break every running watch.
type flakyWatchStore struct {
	metadata.Store
	mu   sync.Mutex
	fail chan struct{}
}

func (f *flakyWatchStore) Watch(ctx context.Context, prefix string, fromRev int64) <-chan metadata.WatchResponse {
	inner := f.Store.Watch(ctx, prefix, fromRev)
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	out := make(chan metadata.WatchResponse)
	go func() {
		defer close(out)
		for {
			var wr metadata.WatchResponse
			select {
			case r, ok := <-inner:
				if !ok {
					return
				}
				wr = r
			case <-fail:
				wr = metadata.WatchResponse{Err: errors.New("injected watch failure")}
			case <-ctx.Done():
				return
			}
			select {
			case out <- wr:
			case <-ctx.Done():
				return
			}
			if wr.Err != nil {
				return
			}
		}
	}()
	return out
}

func (f *flakyWatchStore) breakWatches() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.fail)
	f.fail = make(chan struct{})
}

// TestCacheReloadsAfterWatchFailure: a change made while the watch is
// broken is picked up by the reload, and subscribers hear CacheReloaded.
func TestCacheReloadsAfterWatchFailure(t *testing.T) {
	s, md := newTestStore(t)
	ctx := context.Background()
	flaky := &flakyWatchStore{Store: md, fail: make(chan struct{})}
	c, err := NewCache(ctx, flaky, CacheOptions{RetryInterval: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var log changeLog
	c.Subscribe(log.add)

	flaky.breakWatches()
	if err := s.CreateTenant(ctx, "during-outage", TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if _, ok := c.Tenant("during-outage"); !ok {
			return fmt.Errorf("tenant created during the outage not seen")
		}
		return log.has(Change{Kind: CacheReloaded})
	})
	// And the new watch works.
	if err := s.CreateTenant(ctx, "after", TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if _, ok := c.Tenant("after"); !ok {
			return fmt.Errorf("tenant created after the reload not seen")
		}
		return nil
	})
}

// TestCacheApplySkipsStaleEvents: events already reflected in a listing
// (older ModRevision) must not overwrite or delete newer state.
func TestCacheApplySkipsStaleEvents(t *testing.T) {
	c := &Cache{log: slog.New(slog.DiscardHandler)}
	c.mu.clusters = map[string]cached[ClusterData]{}
	c.mu.tenants = map[string]cached[tenantRecord]{}
	c.mu.namespaces = map[string]cached[Policies]{}
	put := func(key, val string, rev int64) (Change, bool) {
		return c.apply(metadata.Event{Type: metadata.EventPut, KV: metadata.KV{Key: key, Value: []byte(val), ModRevision: rev}})
	}
	del := func(key string, rev int64) (Change, bool) {
		return c.apply(metadata.Event{Type: metadata.EventDelete, KV: metadata.KV{Key: key, ModRevision: rev}})
	}
	if ch, ok := put("/tenants/a", `{"adminRoles":["x"]}`, 10); !ok || ch != (Change{Kind: TenantChanged, Name: "a"}) {
		t.Fatalf("put = %+v %v", ch, ok)
	}
	if _, ok := put("/tenants/a", `{"adminRoles":["old"]}`, 9); ok {
		t.Fatalf("stale put applied")
	}
	if _, ok := del("/tenants/a", 8); ok {
		t.Fatalf("stale delete applied")
	}
	if ti, _ := c.Tenant("a"); !ti.IsAdmin("x") {
		t.Fatalf("tenant = %+v", ti)
	}
	if ch, ok := del("/tenants/a", 11); !ok || !ch.Deleted {
		t.Fatalf("delete = %+v %v", ch, ok)
	}
	if _, ok := del("/tenants/a", 12); ok {
		t.Fatalf("delete of a missing key reported a change")
	}
	if _, ok := put("/other/x", `{}`, 13); ok {
		t.Fatalf("key outside the cached prefixes applied")
	}
	if _, ok := put("/namespaces/a/b", `not json`, 14); ok {
		t.Fatalf("undecodable value applied")
	}
}
