package offload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/s3test"
)

// storeCase is one driver the shared tests run against.
type storeCase struct {
	name string
	// open returns a fresh, empty store; srv is set for S3.
	open func(t *testing.T) (BlobStore, *s3test.Server)
}

// storeCases runs every shared test against both drivers.
var storeCases = []storeCase{
	{"fs", func(t *testing.T) (BlobStore, *s3test.Server) {
		st, err := NewFSStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return st, nil
	}},
	{"s3", func(t *testing.T) (BlobStore, *s3test.Server) {
		srv := s3test.Start(t)
		return newTestS3Store(t, srv, nil), srv
	}},
}

// newTestS3Store returns a store on srv; tweak may change the options.
func newTestS3Store(t testing.TB, srv *s3test.Server, tweak func(*S3Options)) *S3Store {
	t.Helper()
	opts := S3Options{
		Endpoint:   srv.URL(),
		Region:     srv.Region,
		Bucket:     srv.Bucket,
		AccessKey:  srv.AccessKey,
		SecretKey:  srv.SecretKey,
		PathStyle:  true,
		MaxRetries: 2,
		PartSize:   MinS3PartSize,
	}
	if tweak != nil {
		tweak(&opts)
	}
	st, err := NewS3Store(opts)
	if err != nil {
		t.Fatalf("NewS3Store: %v", err)
	}
	if err := st.Check(testCtx(t)); err != nil {
		t.Fatalf("Check: %v", err)
	}
	return st
}

// forEachStore runs fn as a subtest per driver.
func forEachStore(t *testing.T, fn func(t *testing.T, store BlobStore, srv *s3test.Server)) {
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			store, srv := sc.open(t)
			fn(t, store, srv)
		})
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// memSource is a LedgerSource over entries in memory.
type memSource struct {
	entries []Entry
	// before, when set, runs at the start of every ReadEntries call.
	before func(first, last int64) error
	calls  atomic.Int64
}

func (s *memSource) ReadEntries(ctx context.Context, first, last int64) ([]Entry, error) {
	s.calls.Add(1)
	if s.before != nil {
		if err := s.before(first, last); err != nil {
			return nil, err
		}
	}
	if first < 0 || last >= int64(len(s.entries)) || first > last {
		return nil, fmt.Errorf("memSource: bad range %d..%d", first, last)
	}
	return s.entries[first : last+1], nil
}

func (s *memSource) desc(id int64, meta []byte) LedgerDescriptor {
	var n int64
	for _, e := range s.entries {
		n += int64(len(e.Payload))
	}
	return LedgerDescriptor{LedgerID: id, LastEntryID: int64(len(s.entries)) - 1, Length: n, Metadata: meta}
}

// genEntries makes n entries with payload sizes from size(i).
func genEntries(rng *rand.Rand, n int, size func(i int) int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		p := make([]byte, size(i))
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		out[i] = Entry{ID: int64(i), Payload: p}
	}
	return out
}

// checkEntries fails unless got is exactly want[first..last].
func checkEntries(t testing.TB, got []Entry, want []Entry, first, last int64) {
	t.Helper()
	if int64(len(got)) != last-first+1 {
		t.Fatalf("read %d..%d: got %d entries, want %d", first, last, len(got), last-first+1)
	}
	for i, e := range got {
		w := want[first+int64(i)]
		if e.ID != w.ID || !bytes.Equal(e.Payload, w.Payload) {
			t.Fatalf("read %d..%d: entry %d: got id %d (%d bytes), want id %d (%d bytes)",
				first, last, i, e.ID, len(e.Payload), w.ID, len(w.Payload))
		}
	}
}

// readObject returns an object's bytes and metadata.
func readObject(t testing.TB, store BlobStore, key string) ([]byte, map[string]string) {
	t.Helper()
	ctx := testCtx(t)
	info, err := store.Head(ctx, key)
	if err != nil {
		t.Fatalf("head %q: %v", key, err)
	}
	rc, err := store.GetRange(ctx, key, 0, -1)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b, info.Metadata
}

// rewriteObject replaces an object by mutate(its bytes) with metadata
// changed by mutMeta (either may be nil).
func rewriteObject(t testing.TB, store BlobStore, key string, mutate func([]byte) []byte, mutMeta func(map[string]string)) {
	t.Helper()
	b, meta := readObject(t, store, key)
	if mutate != nil {
		b = mutate(bytes.Clone(b))
	}
	if mutMeta != nil {
		mutMeta(meta)
	}
	if err := store.Put(testCtx(t), key, bytes.NewReader(b), int64(len(b)), meta); err != nil {
		t.Fatalf("rewrite %q: %v", key, err)
	}
}

// countingStore wraps a BlobStore and measures the bytes read out of
// GetRange bodies and how many bodies are open at once.
type countingStore struct {
	BlobStore
	fetched   atomic.Int64 // bytes read from GetRange bodies
	gets      atomic.Int64 // GetRange calls
	open      atomic.Int64 // bodies not yet closed
	maxOpen   atomic.Int64
	mu        sync.Mutex
	onFetched func(total int64) // called after every body read, if set
}

func (c *countingStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := c.BlobStore.GetRange(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	c.gets.Add(1)
	n := c.open.Add(1)
	for {
		m := c.maxOpen.Load()
		if n <= m || c.maxOpen.CompareAndSwap(m, n) {
			break
		}
	}
	return &countingBody{rc: rc, c: c}, nil
}

type countingBody struct {
	rc     io.ReadCloser
	c      *countingStore
	closed atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	total := b.c.fetched.Add(int64(n))
	b.c.mu.Lock()
	f := b.c.onFetched
	b.c.mu.Unlock()
	if f != nil && n > 0 {
		f(total)
	}
	return n, err
}

func (b *countingBody) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.c.open.Add(-1)
	}
	return b.rc.Close()
}
