package offload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/strata-mq/strata/internal/s3test"
)

// TestWriteFailuresLeaveNothing: whatever goes wrong while writing, the
// caller gets the cause and the store holds no object of the ledger.
func TestWriteFailuresLeaveNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		rng := rand.New(rand.NewPCG(3, 4))
		entries := genEntries(rng, 200, func(int) int { return 100 })
		srcErr := errors.New("bookie read failed")
		cases := []struct {
			name string
			src  func() LedgerSource
			desc func(LedgerDescriptor) LedgerDescriptor
			want error
		}{
			{"source error", func() LedgerSource {
				return &memSource{entries: entries, before: func(first, _ int64) error {
					if first >= 100 {
						return srcErr
					}
					return nil
				}}
			}, nil, srcErr},
			{"wrong entry id", func() LedgerSource {
				bad := append([]Entry(nil), entries...)
				bad[57] = Entry{ID: 58, Payload: bad[57].Payload}
				return &memSource{entries: bad}
			}, nil, ErrSourceMismatch},
			{"more bytes than Length", func() LedgerSource { return &memSource{entries: entries} },
				func(d LedgerDescriptor) LedgerDescriptor { d.Length--; return d }, ErrSourceMismatch},
			{"fewer bytes than Length", func() LedgerSource { return &memSource{entries: entries} },
				func(d LedgerDescriptor) LedgerDescriptor { d.Length++; return d }, ErrSourceMismatch},
			{"empty batch", func() LedgerSource { return emptySource{} }, nil, ErrSourceMismatch},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := testCtx(t)
				desc := (&memSource{entries: entries}).desc(5, nil)
				if tc.desc != nil {
					desc = tc.desc(desc)
				}
				prefix := KeyPrefix("fail", tc.name)
				dataKey, indexKey := ObjectKeys("fail", tc.name, 5, "u")
				_, err := WriteLedger(ctx, store, tc.src(), desc, dataKey, indexKey, WriteOptions{BlockSize: 1024, ReadBatch: 10})
				if !errors.Is(err, tc.want) {
					t.Fatalf("WriteLedger: %v, want %v", err, tc.want)
				}
				objs, err := store.List(ctx, prefix)
				if err != nil || len(objs) != 0 {
					t.Fatalf("after a failed write the store holds %+v (%v)", objs, err)
				}
			})
		}

		t.Run("context cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(testCtx(t))
			src := &memSource{entries: entries, before: func(first, _ int64) error {
				if first >= 50 {
					cancel()
				}
				return nil
			}}
			dataKey, indexKey := ObjectKeys("cancel", "t/n/x", 5, "u")
			if _, err := WriteLedger(ctx, store, src, src.desc(5, nil), dataKey, indexKey, WriteOptions{BlockSize: 1024, ReadBatch: 10}); !errors.Is(err, context.Canceled) {
				t.Fatalf("WriteLedger: %v, want context.Canceled", err)
			}
			if objs, _ := store.List(testCtx(t), "cancel/"); len(objs) != 0 {
				t.Fatalf("after a cancelled write the store holds %+v", objs)
			}
		})

		t.Run("partial batches", func(t *testing.T) {
			ctx := testCtx(t)
			src := &prefixSource{memSource{entries: entries}}
			dataKey, indexKey := ObjectKeys("partial", "t/n/x", 5, "u")
			if _, err := WriteLedger(ctx, store, src, src.desc(5, nil), dataKey, indexKey, WriteOptions{BlockSize: 1024, ReadBatch: 10}); err != nil {
				t.Fatalf("WriteLedger: %v", err)
			}
			r, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := r.Read(ctx, 0, 199)
			if err != nil {
				t.Fatal(err)
			}
			checkEntries(t, got, entries, 0, 199)
		})
	})
}

type emptySource struct{}

func (emptySource) ReadEntries(context.Context, int64, int64) ([]Entry, error) { return nil, nil }

// prefixSource returns at most 3 entries per call.
type prefixSource struct{ memSource }

func (s *prefixSource) ReadEntries(ctx context.Context, first, last int64) ([]Entry, error) {
	return s.memSource.ReadEntries(ctx, first, min(last, first+2))
}

func TestWriteValidation(t *testing.T) {
	ctx := testCtx(t)
	store, _ := NewFSStore(t.TempDir())
	src := &memSource{entries: []Entry{{0, []byte("a")}}}
	good := src.desc(1, nil)
	for _, tc := range []struct {
		name     string
		desc     LedgerDescriptor
		opts     WriteOptions
		data, ix string
	}{
		{"block too small", good, WriteOptions{BlockSize: 64}, "d", "i"},
		{"negative batch", good, WriteOptions{ReadBatch: -1}, "d", "i"},
		{"negative ledger", LedgerDescriptor{LedgerID: -1}, WriteOptions{}, "d", "i"},
		{"length of an empty ledger", LedgerDescriptor{LedgerID: 1, LastEntryID: -1, Length: 3}, WriteOptions{}, "d", "i"},
		{"same keys", good, WriteOptions{}, "d", "d"},
		{"bad key", good, WriteOptions{}, "d/../x", "i"},
	} {
		if _, err := WriteLedger(ctx, store, src, tc.desc, tc.data, tc.ix, tc.opts); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	var o WriteOptions
	o.EnsureDefaults()
	if o.BlockSize != DefaultBlockSize || o.ReadBatch != DefaultReadBatch {
		t.Fatalf("defaults %+v", o)
	}
}

// TestWriteS3ServerStoppedMidUpload stops the S3 server while the data
// object is half uploaded: WriteLedger fails, no index object exists, and
// after a restart the same ledger offloads and reads back fine.
func TestWriteS3ServerStoppedMidUpload(t *testing.T) {
	srv := s3test.Start(t)
	store := newTestS3Store(t, srv, func(o *S3Options) { o.MaxRetries = 1 })
	ctx := testCtx(t)

	// 24 MiB in 64 KiB entries: five 5 MiB parts. Stop the server when
	// the source is asked for the entries past 12 MiB, so at least two
	// parts are uploaded and more are still to come.
	rng := rand.New(rand.NewPCG(5, 6))
	entries := genEntries(rng, 384, func(int) int { return 64 << 10 })
	var stopped atomic.Bool
	src := &memSource{entries: entries, before: func(first, _ int64) error {
		if first >= 192 && stopped.CompareAndSwap(false, true) {
			srv.Stop()
		}
		return nil
	}}
	desc := src.desc(9, []byte("meta"))
	dataKey, indexKey := ObjectKeys("crash", "t/n/x", 9, "first")
	_, err := WriteLedger(ctx, store, src, desc, dataKey, indexKey, WriteOptions{BlockSize: 1 << 20, ReadBatch: 16})
	if err == nil {
		t.Fatal("WriteLedger succeeded with the server stopped mid-upload")
	}
	if !stopped.Load() {
		t.Fatal("the server was never stopped")
	}
	if errors.Is(err, context.Canceled) {
		t.Fatalf("WriteLedger reported its own cancellation, not the upload failure: %v", err)
	}
	t.Logf("WriteLedger with the server stopped: %v", err)

	srv.Start()
	if _, err := store.Head(ctx, indexKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("index object after the failed upload: %v, want ErrNotFound", err)
	}
	if _, err := store.Head(ctx, dataKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("data object after the failed upload: %v, want ErrNotFound", err)
	}
	if _, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenLedger after the failed upload: %v, want ErrNotFound", err)
	}

	// The restarted server works again: a new attempt (new uuid) succeeds.
	dataKey, indexKey = ObjectKeys("crash", "t/n/x", 9, "second")
	if _, err := WriteLedger(ctx, store, src, desc, dataKey, indexKey, WriteOptions{BlockSize: 1 << 20, ReadBatch: 16}); err != nil {
		t.Fatalf("WriteLedger after restart: %v", err)
	}
	r, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Read(ctx, 0, desc.LastEntryID)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, got, entries, 0, desc.LastEntryID)
	objs, err := store.List(ctx, KeyPrefix("crash", "t/n/x"))
	if err != nil || len(objs) != 2 {
		t.Fatalf("List after the good write: %+v, %v (want exactly the new data and index)", objs, err)
	}
}

// TestWriteStreamsWithBoundedMemory: the writer pulls entries only as the
// upload consumes bytes, so what it holds is about one read batch plus its
// write buffer, not the ledger.
func TestWriteStreamsWithBoundedMemory(t *testing.T) {
	ctx := testCtx(t)
	fs, _ := NewFSStore(t.TempDir())
	store := &consumingStore{BlobStore: fs}
	rng := rand.New(rand.NewPCG(7, 8))
	const entrySize, batch = 4 << 10, 16
	entries := genEntries(rng, 4096, func(int) int { return entrySize }) // 16 MiB
	var produced, maxAhead atomic.Int64
	src := &memSource{entries: entries, before: func(first, last int64) error {
		p := produced.Add((last - first + 1) * (entrySize + FrameHeaderLen))
		if ahead := p - store.consumed.Load(); ahead > maxAhead.Load() {
			maxAhead.Store(ahead)
		}
		return nil
	}}
	if _, err := WriteLedger(ctx, store, src, src.desc(1, nil), "d", "d-index", WriteOptions{BlockSize: 1 << 20, ReadBatch: batch}); err != nil {
		t.Fatal(err)
	}
	// Produced-but-not-uploaded: the batch being framed, the previous
	// one, the write buffer, and block headers/padding.
	limit := int64(2*batch*(entrySize+FrameHeaderLen) + writeBufferSize + 64<<10)
	if m := maxAhead.Load(); m > limit {
		t.Fatalf("the writer ran %d bytes ahead of the upload, limit %d", m, limit)
	}
	t.Logf("writer ran at most %d bytes ahead of the upload (limit %d)", maxAhead.Load(), limit)
}

// consumingStore counts the bytes Put has read from its reader.
type consumingStore struct {
	BlobStore
	consumed atomic.Int64
}

func (c *consumingStore) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	return c.BlobStore.Put(ctx, key, &countReader{r: r, n: &c.consumed}, size, meta)
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestDeleteLedger(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		ctx := testCtx(t)
		rng := rand.New(rand.NewPCG(9, 9))
		// Two tenants, three topics, two ledgers each.
		var keys [][2]string
		for _, topic := range []string{"acme/ns/a", "acme/ns/ab", "other/ns/a"} {
			for l := int64(1); l <= 2; l++ {
				src := &memSource{entries: genEntries(rng, 10, func(int) int { return 50 })}
				d, i := ObjectKeys("tiered", topic, l, fmt.Sprintf("u%d", l))
				if _, err := WriteLedger(ctx, store, src, src.desc(l, nil), d, i, WriteOptions{BlockSize: 256}); err != nil {
					t.Fatal(err)
				}
				keys = append(keys, [2]string{d, i})
			}
		}
		count := func(path string) int {
			objs, err := store.List(ctx, KeyPrefix("tiered", path))
			if err != nil {
				t.Fatal(err)
			}
			return len(objs)
		}
		if n := count("acme"); n != 8 {
			t.Fatalf("tenant acme holds %d objects, want 8", n)
		}
		if n := count("acme/ns/a"); n != 4 {
			t.Fatalf("topic acme/ns/a holds %d objects, want 4 (not topic ab's)", n)
		}
		if err := DeleteLedger(ctx, store, keys[0][0], keys[0][1]); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenLedger(ctx, store, keys[0][0], keys[0][1], ReaderOptions{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("OpenLedger of a deleted ledger: %v", err)
		}
		if err := DeleteLedger(ctx, store, keys[0][0], keys[0][1]); err != nil {
			t.Fatalf("deleting twice: %v", err)
		}
		if n, err := DeletePrefix(ctx, store, KeyPrefix("tiered", "acme")); err != nil || n != 6 {
			t.Fatalf("DeletePrefix(acme) = %d, %v; want 6", n, err)
		}
		if count("acme") != 0 || count("other") != 4 {
			t.Fatalf("after deleting tenant acme: acme %d, other %d objects", count("acme"), count("other"))
		}
		r, err := OpenLedger(ctx, store, keys[4][0], keys[4][1], ReaderOptions{})
		if err != nil {
			t.Fatalf("other tenant's ledger: %v", err)
		}
		r.Close()
	})
}
