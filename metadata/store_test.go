package metadata_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCreateGetPutDelete(t *testing.T) {
	s, _ := testutil.Store(t)
	ctx := ctxT(t)

	if _, err := s.Get(ctx, "/a"); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	rev, err := s.Create(ctx, "/a", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/a", []byte("v2")); !errors.Is(err, metadata.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	kv, err := s.Get(ctx, "/a")
	if err != nil || string(kv.Value) != "v1" || kv.ModRevision != rev || kv.Key != "/a" {
		t.Fatalf("get = %+v, %v; want v1 at rev %d", kv, err, rev)
	}
	// CAS with a stale revision fails and leaves the value alone.
	rev2, err := s.Put(ctx, "/a", []byte("v2"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "/a", []byte("v3"), rev); !errors.Is(err, metadata.ErrBadVersion) {
		t.Fatalf("stale put: %v, want ErrBadVersion", err)
	}
	if kv, _ := s.Get(ctx, "/a"); string(kv.Value) != "v2" {
		t.Fatalf("value after stale put = %q, want v2", kv.Value)
	}
	if err := s.Delete(ctx, "/a", rev); !errors.Is(err, metadata.ErrBadVersion) {
		t.Fatalf("stale delete: %v, want ErrBadVersion", err)
	}
	if err := s.Delete(ctx, "/a", rev2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "/a", []byte("x"), rev2); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("CAS put on deleted key: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "/a", metadata.AnyVersion); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("delete missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Put(ctx, "/b", []byte("any"), metadata.AnyVersion); err != nil {
		t.Fatalf("unconditional put: %v", err)
	}
}

func TestListPaged(t *testing.T) {
	s, _ := testutil.Store(t)
	ctx := ctxT(t)
	var want []string
	for i := 0; i < 25; i++ {
		k := fmt.Sprintf("/l/k%02d", i)
		want = append(want, k)
		if _, err := s.Create(ctx, k, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Create(ctx, "/lx", []byte("outside the prefix"))
	var got []string
	opts := metadata.ListOptions{Limit: 7}
	pages := 0
	for {
		p, err := s.List(ctx, "/l/", opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, kv := range p.KVs {
			got = append(got, kv.Key)
		}
		if !p.More {
			break
		}
		opts.After = p.KVs[len(p.KVs)-1].Key
	}
	if pages != 4 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages=%d got %v, want 4 pages of %v", pages, got, want)
	}
	all, err := metadata.ListAll(ctx, s, "/l/", true)
	if err != nil || len(all) != 25 || all[0].Value != nil {
		t.Fatalf("ListAll keys-only: %d keys, err %v", len(all), err)
	}
	n, err := s.DeletePrefix(ctx, "/l/")
	if err != nil || n != 25 {
		t.Fatalf("DeletePrefix = %d, %v; want 25", n, err)
	}
	if _, err := s.Get(ctx, "/lx"); err != nil {
		t.Fatalf("DeletePrefix removed a key outside the prefix: %v", err)
	}
}

func TestWatch(t *testing.T) {
	s, _ := testutil.Store(t)
	ctx := ctxT(t)
	wch := s.Watch(ctx, "/w/", 0)
	s.Create(ctx, "/w/a", []byte("1"))
	s.Create(ctx, "/other", []byte("x"))
	s.Delete(ctx, "/w/a", metadata.AnyVersion)
	var evs []metadata.Event
	for len(evs) < 2 {
		select {
		case wr := <-wch:
			if wr.Err != nil {
				t.Fatal(wr.Err)
			}
			evs = append(evs, wr.Events...)
		case <-ctx.Done():
			t.Fatal("timed out waiting for watch events")
		}
	}
	if evs[0].Type != metadata.EventPut || evs[0].KV.Key != "/w/a" || string(evs[0].KV.Value) != "1" ||
		evs[1].Type != metadata.EventDelete || evs[1].KV.Key != "/w/a" {
		t.Fatalf("events = %+v", evs)
	}
}

func TestSessionBoundKeysExpire(t *testing.T) {
	s, _ := testutil.Store(t)
	ctx := ctxT(t)
	sess, err := s.NewSession(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/owner", []byte("me"), metadata.WithSession(sess)); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: stop keep-alives without revoking.
	sess.Orphan()
	testutil.WaitFor(t, 15*time.Second, func() error {
		if _, err := s.Get(ctx, "/owner"); !errors.Is(err, metadata.ErrNotFound) {
			return fmt.Errorf("key still present (err %v)", err)
		}
		return nil
	})

	sess2, err := s.NewSession(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, "/owner2", []byte("me"), metadata.WithSession(sess2))
	sess2.Close() // graceful: keys go at once
	if _, err := s.Get(ctx, "/owner2"); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("key survived session close: %v", err)
	}
	if _, err := s.Create(ctx, "/owner3", []byte("me"), metadata.WithSession(sess2)); !errors.Is(err, metadata.ErrSessionExpired) {
		t.Fatalf("create on closed session: %v, want ErrSessionExpired", err)
	}
}

func TestIDGeneratorUniqueAcrossGenerators(t *testing.T) {
	s, _ := testutil.Store(t)
	ctx := ctxT(t)
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		gen := metadata.NewIDGenerator(s, metadata.LedgerIDKey, int64(g*3+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				id, err := gen.Next(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d issued twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	ids := make([]int64, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if len(ids) != 200 || ids[0] < 1 {
		t.Fatalf("got %d ids starting at %d", len(ids), ids[0])
	}
}

// TestIDGeneratorNextAbove: a generator whose reserved block lies below an
// id another generator issued skips to a fresh block above it, and a floor
// above the counter moves the counter past it.
func TestIDGeneratorNextAbove(t *testing.T) {
	s, _ := testutil.Store(t)
	ctx := ctxT(t)
	low := metadata.NewIDGenerator(s, metadata.LedgerIDKey, 16)
	high := metadata.NewIDGenerator(s, metadata.LedgerIDKey, 16)
	first, err := low.Next(ctx) // low reserves 1..16
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := 0; i < 3; i++ { // high reserves 17..32
		if last, err = high.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if first != 1 || last != 19 {
		t.Fatalf("ids %d and %d, want 1 and 19", first, last)
	}
	if id, err := low.Next(ctx); err != nil || id != 2 {
		t.Fatalf("Next from the reserved block = %d, %v; want 2", id, err)
	}
	above, err := low.NextAbove(ctx, last)
	if err != nil || above != 33 {
		t.Fatalf("NextAbove(%d) = %d, %v; want 33 (a fresh block)", last, above, err)
	}
	if id, err := low.NextAbove(ctx, above); err != nil || id != 34 {
		t.Fatalf("NextAbove(%d) = %d, %v; want 34 (from the new block)", above, id, err)
	}
	if id, err := high.NextAbove(ctx, 1000); err != nil || id != 1001 {
		t.Fatalf("NextAbove(1000) above the counter = %d, %v; want 1001", id, err)
	}
	if id, err := low.NextAbove(ctx, 34); err != nil || id != 35 {
		t.Fatalf("NextAbove(34) = %d, %v; want 35", id, err)
	}
	if id, err := low.NextAbove(ctx, 1001); err != nil || id != 1017 {
		t.Fatalf("NextAbove(1001) after the counter jumped = %d, %v; want 1017", id, err)
	}
}

// TestGuardedWrites: writes guarded by another key's revision happen only
// while it is unchanged, and a failed guard is told apart from the write's
// own condition failing.
func TestGuardedWrites(t *testing.T) {
	s, _ := testutil.Store(t)
	ctx := ctxT(t)
	owner, err := s.Create(ctx, "/g/owner", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	g := metadata.WithGuard("/g/owner", owner)
	rev, err := s.Create(ctx, "/g/k", []byte("1"), g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/g/k", []byte("1"), g); !errors.Is(err, metadata.ErrExists) {
		t.Fatalf("guarded create of an existing key: %v, want ErrExists", err)
	}
	if rev, err = s.Put(ctx, "/g/k", []byte("2"), rev, g); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "/g/k", []byte("x"), rev-1, g); !errors.Is(err, metadata.ErrBadVersion) {
		t.Fatalf("guarded put at a stale version: %v, want ErrBadVersion", err)
	}
	if _, err := s.Put(ctx, "/g/any", []byte("x"), metadata.AnyVersion, g); err != nil {
		t.Fatalf("guarded unconditional put: %v", err)
	}
	// A new owner rewrites the guard key: the old owner's writes all fail.
	if _, err := s.Put(ctx, "/g/owner", []byte("b"), owner); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "/g/k", []byte("3"), rev, g); !errors.Is(err, metadata.ErrGuardFailed) {
		t.Fatalf("put after the guard changed: %v, want ErrGuardFailed", err)
	}
	if _, err := s.Create(ctx, "/g/new", []byte("3"), g); !errors.Is(err, metadata.ErrGuardFailed) {
		t.Fatalf("create after the guard changed: %v, want ErrGuardFailed", err)
	}
	if err := s.Delete(ctx, "/g/k", metadata.AnyVersion, g); !errors.Is(err, metadata.ErrGuardFailed) {
		t.Fatalf("delete after the guard changed: %v, want ErrGuardFailed", err)
	}
	if kv, err := s.Get(ctx, "/g/k"); err != nil || string(kv.Value) != "2" {
		t.Fatalf("guarded key after failed writes: %q %v", kv.Value, err)
	}
	if _, err := s.Get(ctx, "/g/new"); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("a failed guarded create left the key: %v", err)
	}
	owner2, _ := s.Get(ctx, "/g/owner")
	g2 := metadata.WithGuard("/g/owner", owner2.ModRevision)
	if err := s.Delete(ctx, "/g/k", metadata.AnyVersion, g2); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "/g/k", metadata.AnyVersion, g2); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("guarded delete of a missing key: %v, want ErrNotFound", err)
	}
}

func TestEmbeddedSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	client, peer := testutil.FreeAddr(t), testutil.FreeAddr(t)
	start := func() (*metadata.Embedded, metadata.Store) {
		e, err := metadata.StartEmbedded(metadata.EmbedConfig{Dir: dir, ClientAddr: client, PeerAddr: peer})
		if err != nil {
			t.Fatal(err)
		}
		s, err := metadata.NewEtcdStore(metadata.EtcdConfig{Endpoints: e.Endpoints()})
		if err != nil {
			t.Fatal(err)
		}
		return e, s
	}
	ctx := ctxT(t)
	e, s := start()
	if _, err := s.Create(ctx, "/persist", []byte("yes")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	e.Close()
	e, s = start()
	defer e.Close()
	defer s.Close()
	kv, err := s.Get(ctx, "/persist")
	if err != nil || string(kv.Value) != "yes" {
		t.Fatalf("after restart: %q, %v", kv.Value, err)
	}
}
