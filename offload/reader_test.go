package offload

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/s3test"
)

// writeTestLedger offloads n entries of size(i) bytes and returns them.
func writeTestLedger(t testing.TB, store BlobStore, n, blockSize int, size func(i int) int) (entries []Entry, dataKey, indexKey string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), uint64(blockSize)))
	src := &memSource{entries: genEntries(rng, n, size)}
	dataKey, indexKey = ObjectKeys("r", "tenant/ns/topic", 3, "uuid")
	if _, err := WriteLedger(testCtx(t), store, src, src.desc(3, []byte("m")), dataKey, indexKey, WriteOptions{BlockSize: blockSize}); err != nil {
		t.Fatalf("WriteLedger: %v", err)
	}
	return src.entries, dataKey, indexKey
}

func TestReadRanges(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		rng := rand.New(rand.NewPCG(11, 12))
		entries, dataKey, indexKey := writeTestLedger(t, store, 400, 2048, func(i int) int {
			if i%50 == 49 {
				return 5000 // oversize
			}
			return rng.IntN(600)
		})
		last := int64(len(entries) - 1)
		for _, opts := range []ReaderOptions{
			{ReadAheadBytes: 16 << 10, IOBufferSize: 4096},
			{DisableReadAhead: true},
			{ReadAheadBytes: 1, ReadAheadStreams: 1, IOBufferSize: 4096}, // every entry exceeds the budget
		} {
			t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
				ctx := testCtx(t)
				r, err := OpenLedger(ctx, store, dataKey, indexKey, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				// Random sub-ranges.
				for range 100 {
					first := rng.Int64N(last + 1)
					end := min(last, first+rng.Int64N(60))
					got, err := r.Read(ctx, first, end)
					if err != nil {
						t.Fatalf("Read(%d, %d): %v", first, end, err)
					}
					checkEntries(t, got, entries, first, end)
				}
				// A sequential replay in batches, starting mid-block.
				for first := int64(3); first <= last; first += 17 {
					end := min(last, first+16)
					got, err := r.Read(ctx, first, end)
					if err != nil {
						t.Fatalf("Read(%d, %d): %v", first, end, err)
					}
					checkEntries(t, got, entries, first, end)
				}
				// Single entries at block edges, and skipping forward.
				for _, id := range []int64{0, last, 48, 49, 50, 51, 0, 10, 30, 31, 399} {
					got, err := r.Read(ctx, id, id)
					if err != nil {
						t.Fatalf("Read(%d): %v", id, err)
					}
					checkEntries(t, got, entries, id, id)
				}
				for _, rg := range [][2]int64{{-1, 0}, {5, 4}, {0, last + 1}, {last + 1, last + 1}} {
					if _, err := r.Read(ctx, rg[0], rg[1]); !errors.Is(err, ErrEntryOutOfRange) {
						t.Fatalf("Read(%d, %d): %v, want ErrEntryOutOfRange", rg[0], rg[1], err)
					}
				}
			})
		}
	})
}

// corruptionLedger: 100-byte entries in 1 KiB blocks, so every block but
// the last holds 8 frames of 116 bytes (968 bytes used, 56 of padding).
func corruptionLedger(t *testing.T, store BlobStore) ([]Entry, string, string) {
	return writeTestLedger(t, store, 40, 1024, func(int) int { return 100 })
}

func TestCorruptBlocks(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		const blk1 = 1024 // offset of block 1 (entries 8..15)
		cases := []struct {
			name string
			off  int64
		}{
			{"block magic", blk1 + 0},
			{"block version", blk1 + 5},
			{"block length", blk1 + 15},
			{"block first entry", blk1 + 23},
			{"block ledger id", blk1 + 31},
			{"block header checksum", blk1 + 37},
			{"frame length", blk1 + 40 + 3},
			{"frame entry id", blk1 + 40 + 11},
			{"frame checksum", blk1 + 40 + 12},
			{"first payload byte", blk1 + 40 + 16},
			{"payload of the 5th frame", blk1 + 40 + 4*116 + 16 + 50},
			{"last payload byte", blk1 + 40 + 8*116 - 1},
			{"padding", blk1 + 1023},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := testCtx(t)
				entries, dataKey, indexKey := corruptionLedger(t, store)
				r, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{IOBufferSize: 4096})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				rewriteObject(t, store, dataKey, func(b []byte) []byte { b[tc.off] ^= 0x40; return b }, nil)

				// Blocks 0 and 2 are intact and still read.
				for _, rg := range [][2]int64{{0, 7}, {16, 39}} {
					got, err := r.Read(ctx, rg[0], rg[1])
					if err != nil {
						t.Fatalf("Read(%d, %d) of an intact block: %v", rg[0], rg[1], err)
					}
					checkEntries(t, got, entries, rg[0], rg[1])
				}
				// Any read through the damaged part of block 1 fails as
				// corrupt, with and without read-ahead, and returns no
				// data. (Entries before the damage in the same block may
				// still be read: their frames verify.)
				for _, rg := range [][2]int64{{8, 16}, {0, 39}, {12, 20}} {
					got, err := r.Read(ctx, rg[0], rg[1])
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("Read(%d, %d): %v (%d entries), want ErrCorrupt", rg[0], rg[1], err, len(got))
					}
				}
				d, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{DisableReadAhead: true})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				if _, err := d.Read(ctx, 9, 16); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("direct Read: %v, want ErrCorrupt", err)
				}
			})
		}

		t.Run("index", func(t *testing.T) {
			ctx := testCtx(t)
			_, dataKey, indexKey := corruptionLedger(t, store)
			for _, off := range []int{0, 9, 30, 56, 60, 70} {
				rewriteObject(t, store, indexKey, func(b []byte) []byte { b[off] ^= 1; return b }, nil)
				if _, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{}); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("index byte %d flipped: %v, want ErrCorrupt", off, err)
				}
				rewriteObject(t, store, indexKey, func(b []byte) []byte { b[off] ^= 1; return b }, nil)
			}
			r, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{})
			if err != nil {
				t.Fatalf("restored index: %v", err)
			}
			r.Close()
		})
	})
}

func TestTruncatedObjects(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		ctx := testCtx(t)
		entries, dataKey, indexKey := corruptionLedger(t, store)
		early, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{DisableReadAhead: true})
		if err != nil {
			t.Fatal(err)
		}
		defer early.Close()
		// Cut the data object in the middle of block 2.
		rewriteObject(t, store, dataKey, func(b []byte) []byte { return b[:2048+500] }, nil)

		if _, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("OpenLedger of a truncated data object: %v, want ErrCorrupt", err)
		}
		// A reader opened before the truncation notices it on read.
		got, err := early.Read(ctx, 0, 15)
		if err != nil {
			t.Fatalf("intact blocks: %v", err)
		}
		checkEntries(t, got, entries, 0, 15)
		if _, err := early.Read(ctx, 16, 39); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read of the cut block: %v, want ErrCorrupt", err)
		}
		// Blocks 3 and 4 now start past the end of the object.
		if _, err := early.Read(ctx, 39, 39); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read past the end: %v, want ErrCorrupt", err)
		}

		rewriteObject(t, store, indexKey, func(b []byte) []byte { return b[:len(b)-10] }, nil)
		if _, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("OpenLedger with a truncated index: %v, want ErrCorrupt", err)
		}
	})
}

func TestMissingObjects(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		ctx := testCtx(t)
		_, dataKey, indexKey := corruptionLedger(t, store)
		r, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := store.Delete(ctx, dataKey); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("OpenLedger without data: %v, want ErrNotFound", err)
		}
		if _, err := r.Read(ctx, 0, 3); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Read after the data object was deleted: %v, want ErrNotFound", err)
		}
		if err := store.Delete(ctx, indexKey); err != nil {
			t.Fatal(err)
		}
		_, err = OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{})
		if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("OpenLedger without index: %v, want ErrNotFound", err)
		}
	})
}

func TestFormatVersionChecks(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		setVersion := func(v string) func(map[string]string) {
			return func(m map[string]string) {
				if v == "" {
					delete(m, MetaFormatVersion)
				} else {
					m[MetaFormatVersion] = v
				}
			}
		}
		cases := []struct {
			name   string
			mutate func(t *testing.T, dataKey, indexKey string)
		}{
			{"index metadata 2", func(t *testing.T, _, ix string) { rewriteObject(t, store, ix, nil, setVersion("2")) }},
			{"data metadata 2", func(t *testing.T, d, _ string) { rewriteObject(t, store, d, nil, setVersion("2")) }},
			{"index metadata missing", func(t *testing.T, _, ix string) { rewriteObject(t, store, ix, nil, setVersion("")) }},
			{"data metadata missing", func(t *testing.T, d, _ string) { rewriteObject(t, store, d, nil, setVersion("")) }},
			{"index header version 2", func(t *testing.T, _, ix string) {
				rewriteObject(t, store, ix, func(b []byte) []byte {
					x, err := decodeIndex(b)
					if err != nil {
						t.Fatal(err)
					}
					b = x.encode()
					b[5] = 2 // version field
					end := len(b) - 4
					crc := crc32.Checksum(b[:end], castagnoli)
					b[end], b[end+1], b[end+2], b[end+3] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
					return b
				}, nil)
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := testCtx(t)
				_, dataKey, indexKey := corruptionLedger(t, store)
				tc.mutate(t, dataKey, indexKey)
				_, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{})
				if !errors.Is(err, ErrUnsupportedVersion) || errors.Is(err, ErrCorrupt) {
					t.Fatalf("OpenLedger: %v, want ErrUnsupportedVersion", err)
				}
			})
		}
	})
}

func TestConcurrentReaders(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		ctx := testCtx(t)
		entries, dataKey, indexKey := writeTestLedger(t, store, 600, 4096, func(i int) int { return 100 + i%700 })
		last := int64(len(entries) - 1)
		r, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{ReadAheadBytes: 64 << 10, ReadAheadStreams: 3, IOBufferSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 99))
				if g%2 == 0 { // a cursor replaying from a random point
					for first := rng.Int64N(last / 2); first <= last; first += 10 {
						end := min(last, first+9)
						got, err := r.Read(ctx, first, end)
						if err != nil {
							errs <- fmt.Errorf("goroutine %d: Read(%d, %d): %w", g, first, end, err)
							return
						}
						if err := sameEntries(got, entries, first, end); err != nil {
							errs <- fmt.Errorf("goroutine %d: %w", g, err)
							return
						}
					}
					return
				}
				for range 60 { // random access
					first := rng.Int64N(last + 1)
					end := min(last, first+rng.Int64N(20))
					got, err := r.Read(ctx, first, end)
					if err != nil {
						errs <- fmt.Errorf("goroutine %d: Read(%d, %d): %w", g, first, end, err)
						return
					}
					if err := sameEntries(got, entries, first, end); err != nil {
						errs <- fmt.Errorf("goroutine %d: %w", g, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func sameEntries(got, want []Entry, first, last int64) error {
	if int64(len(got)) != last-first+1 {
		return fmt.Errorf("read %d..%d: %d entries", first, last, len(got))
	}
	for i, e := range got {
		w := want[first+int64(i)]
		if e.ID != w.ID || string(e.Payload) != string(w.Payload) {
			return fmt.Errorf("read %d..%d: entry %d differs", first, last, first+int64(i))
		}
	}
	return nil
}

// TestReadAheadBounded measures, through a counting store, how far the
// bytes fetched from the store run ahead of what Read has returned.
func TestReadAheadBounded(t *testing.T) {
	ctx := testCtx(t)
	fs, _ := NewFSStore(t.TempDir())
	const entrySize, blockSize, budget, ioBuf = 1000, 16 << 10, 64 << 10, 4096
	entries, dataKey, indexKey := writeTestLedger(t, fs, 4000, blockSize, func(int) int { return entrySize }) // ~4 MiB
	store := &countingStore{BlobStore: fs}
	r, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{ReadAheadBytes: budget, ReadAheadStreams: 1, IOBufferSize: ioBuf})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	idx := r.idx
	// Count only data-object bytes: forget the index fetch.
	indexBytes, indexGets := store.fetched.Load(), store.gets.Load()

	// endOffset is the data-object offset just past entry id's frame.
	endOffset := func(id int64) int64 {
		b := idx.findBlock(id)
		return idx.blocks[b].offset + BlockHeaderLen + (id-idx.blocks[b].firstEntryID+1)*(FrameHeaderLen+entrySize)
	}
	// Slack beyond the budget: the I/O buffer, a frame header read
	// before waiting for room, and a block header plus padding.
	const slack = ioBuf + FrameHeaderLen + BlockHeaderLen + FrameHeaderLen + entrySize
	const batch = 10
	var maxAhead int64
	for first := int64(0); first < int64(len(entries)); first += batch {
		end := first + batch - 1
		got, err := r.Read(ctx, first, end)
		if err != nil {
			t.Fatal(err)
		}
		checkEntries(t, got, entries, first, end)
		if first == 0 {
			// The stream keeps fetching in the background until the
			// budget is full.
			waitFor(t, 10*time.Second, func() error {
				if ahead := store.fetched.Load() - indexBytes - endOffset(end); ahead < budget-2*(entrySize+FrameHeaderLen) {
					return fmt.Errorf("read-ahead is %d bytes, want about %d", ahead, budget)
				}
				return nil
			})
		}
		ahead := store.fetched.Load() - indexBytes - endOffset(end)
		maxAhead = max(maxAhead, ahead)
		if ahead > budget+slack {
			t.Fatalf("after Read(%d, %d) the reader had fetched %d bytes ahead, bound %d", first, end, ahead, budget+slack)
		}
		if n := store.open.Load(); n > 1 {
			t.Fatalf("%d ranged GETs open at once for one sequential reader", n)
		}
	}
	// A sequential replay fetches every block once, in order.
	if f, size := store.fetched.Load()-indexBytes, idx.dataLen; f != size {
		t.Fatalf("replay fetched %d bytes of a %d-byte object", f, size)
	}
	if g := store.gets.Load() - indexGets; g != int64(len(idx.blocks)) {
		t.Fatalf("replay issued %d GETs for %d blocks", g, len(idx.blocks))
	}
	t.Logf("read-ahead peaked at %d bytes ahead (budget %d + slack %d)", maxAhead, budget, slack)
}

// gatedStore holds the reads of GetRange bodies of key until gate opens.
type gatedStore struct {
	BlobStore
	key  string
	gate chan struct{}
}

func (g *gatedStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := g.BlobStore.GetRange(ctx, key, off, length)
	if err != nil || key != g.key {
		return rc, err
	}
	return &gatedBody{rc: rc, ctx: ctx, gate: g.gate}, nil
}

type gatedBody struct {
	rc   io.ReadCloser
	ctx  context.Context
	gate chan struct{}
}

func (b *gatedBody) Read(p []byte) (int, error) {
	select {
	case <-b.gate:
	case <-b.ctx.Done():
		return 0, b.ctx.Err()
	}
	return b.rc.Read(p)
}

func (b *gatedBody) Close() error { return b.rc.Close() }

func TestReaderClose(t *testing.T) {
	ctx := testCtx(t)
	fs, _ := NewFSStore(t.TempDir())
	_, dataKey, indexKey := writeTestLedger(t, fs, 100, 1024, func(int) int { return 100 })
	counting := &countingStore{BlobStore: fs}
	store := &gatedStore{BlobStore: counting, key: dataKey, gate: make(chan struct{})}
	for _, opts := range []ReaderOptions{{}, {DisableReadAhead: true}} {
		r, err := OpenLedger(ctx, store, dataKey, indexKey, opts)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := r.Read(ctx, 10, 20) // blocks on the gate
			done <- err
		}()
		waitFor(t, 10*time.Second, func() error {
			if counting.open.Load() == 0 {
				return errors.New("the read has not started its GET")
			}
			return nil
		})
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("%+v: Read interrupted by Close: %v, want ErrClosed", opts, err)
		}
		// Close waited for the read-ahead goroutine, which closed its body.
		if n := counting.open.Load(); n != 0 && !opts.DisableReadAhead {
			t.Fatalf("%d GET bodies still open after Close", n)
		}
		if _, err := r.Read(ctx, 0, 1); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v, want ErrClosed", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		waitFor(t, 10*time.Second, func() error {
			if n := counting.open.Load(); n != 0 {
				return fmt.Errorf("%d bodies open", n)
			}
			return nil
		})
	}
}

// TestReadAheadStreams: more interleaved cursors than streams still read
// correctly; each cursor that owns a stream keeps it.
func TestReadAheadStreams(t *testing.T) {
	ctx := testCtx(t)
	fs, _ := NewFSStore(t.TempDir())
	entries, dataKey, indexKey := writeTestLedger(t, fs, 300, 2048, func(int) int { return 200 })
	store := &countingStore{BlobStore: fs}
	r, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{ReadAheadBytes: 32 << 10, ReadAheadStreams: 2, IOBufferSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cursors := []int64{0, 100, 200}
	for step := 0; step < 9; step++ { // the last cursor stops short of the end
		for c := range cursors {
			first := cursors[c]
			got, err := r.Read(ctx, first, first+9)
			if err != nil {
				t.Fatal(err)
			}
			checkEntries(t, got, entries, first, first+9)
			cursors[c] += 10
		}
	}
	r.mu.Lock()
	streams := len(r.mu.idle) + r.mu.leased
	r.mu.Unlock()
	if streams != 2 {
		t.Fatalf("%d streams, want the limit of 2", streams)
	}
}

func TestReaderOptionsValidate(t *testing.T) {
	for _, o := range []ReaderOptions{{ReadAheadBytes: -1}, {ReadAheadStreams: -1}, {IOBufferSize: 100}} {
		o.EnsureDefaults()
		if err := o.Validate(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	var o ReaderOptions
	o.EnsureDefaults()
	if o.ReadAheadBytes != DefaultReadAheadBytes || o.ReadAheadStreams != DefaultReadAheadStreams || o.IOBufferSize != DefaultIOBufferSize {
		t.Fatalf("defaults %+v", o)
	}
}

// TestReadFunc: borrowed payloads are right even while their buffers are
// recycled, mixed with Read on the same stream and across goroutines; an
// error from the callback stops the read.
func TestReadFunc(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		ctx := testCtx(t)
		entries, dataKey, indexKey := writeTestLedger(t, store, 2000, 8192, func(i int) int { return 300 + i%900 })
		last := int64(len(entries) - 1)
		for _, opts := range []ReaderOptions{
			{ReadAheadBytes: 64 << 10, IOBufferSize: 8192},
			{DisableReadAhead: true, IOBufferSize: 8192},
		} {
			r, err := OpenLedger(ctx, store, dataKey, indexKey, opts)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for g := range 4 {
				wg.Go(func() {
					var kept []Entry // entries from Read, checked at the end
					for first := int64(g * 100); first <= last; first += 50 {
						end := min(last, first+49)
						if (first/50)%3 == 0 {
							got, err := r.Read(ctx, first, end)
							if err != nil {
								errs <- err
								return
							}
							kept = append(kept, got...)
							continue
						}
						next := first
						err := r.ReadFunc(ctx, first, end, func(e Entry) error {
							if e.ID != next || string(e.Payload) != string(entries[e.ID].Payload) {
								return fmt.Errorf("ReadFunc gave entry %d (%d bytes), want %d", e.ID, len(e.Payload), next)
							}
							next++
							return nil
						})
						if err == nil && next != end+1 {
							err = fmt.Errorf("ReadFunc(%d, %d) stopped at %d", first, end, next)
						}
						if err != nil {
							errs <- err
							return
						}
					}
					// Payloads handed over by Read were never recycled.
					for _, e := range kept {
						if string(e.Payload) != string(entries[e.ID].Payload) {
							errs <- fmt.Errorf("payload of entry %d changed after Read returned it", e.ID)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("%+v: %v", opts, err)
			}

			stop := errors.New("enough")
			n := 0
			err = r.ReadFunc(ctx, 10, 100, func(Entry) error {
				if n++; n == 5 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || n != 5 {
				t.Fatalf("ReadFunc with a failing callback: %v after %d entries", err, n)
			}
			got, err := r.Read(ctx, 10, 100)
			if err != nil {
				t.Fatalf("Read after a failed ReadFunc: %v", err)
			}
			checkEntries(t, got, entries, 10, 100)
			if err := r.ReadFunc(ctx, 0, last+1, func(Entry) error { return nil }); !errors.Is(err, ErrEntryOutOfRange) {
				t.Fatalf("ReadFunc out of range: %v", err)
			}
			r.Close()
		}
	})
}

// TestReadFuncRecyclesBuffers: a ReadFunc replay allocates far less than
// the bytes it reads, because chunks go back to the pool.
func TestReadFuncRecyclesBuffers(t *testing.T) {
	ctx := testCtx(t)
	fs, _ := NewFSStore(t.TempDir())
	_, dataKey, indexKey := writeTestLedger(t, fs, 8000, 64<<10, func(int) int { return 1000 }) // ~8 MiB
	for _, opts := range []ReaderOptions{{ReadAheadBytes: 1 << 20, IOBufferSize: 64 << 10}, {DisableReadAhead: true, IOBufferSize: 64 << 10}} {
		r, err := OpenLedger(ctx, fs, dataKey, indexKey, opts)
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var n int64
		for first := int64(0); first < 8000; first += 100 {
			if err := r.ReadFunc(ctx, first, first+99, func(e Entry) error { n += int64(len(e.Payload)); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		r.Close()
		if n != 8000*1000 {
			t.Fatalf("read %d bytes", n)
		}
		limit := uint64(r.idx.dataLen / 4)
		if raceEnabled {
			limit = uint64(r.idx.dataLen) * 3 / 4 // sync.Pool drops a quarter of what it gets
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > limit {
			t.Fatalf("%+v: a ReadFunc replay of %d bytes allocated %d bytes", opts, r.idx.dataLen, alloc)
		} else {
			t.Logf("%+v: a ReadFunc replay of %d bytes allocated %d bytes", opts, r.idx.dataLen, alloc)
		}
	}
}

// TestReadFuncPanic: a panicking callback does not leak the stream.
func TestReadFuncPanic(t *testing.T) {
	ctx := testCtx(t)
	fs, _ := NewFSStore(t.TempDir())
	entries, dataKey, indexKey := writeTestLedger(t, fs, 100, 1024, func(int) int { return 100 })
	r, err := OpenLedger(ctx, fs, dataKey, indexKey, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the callback's panic did not propagate")
			}
		}()
		_ = r.ReadFunc(ctx, 0, 50, func(e Entry) error {
			if e.ID == 7 {
				panic("boom")
			}
			return nil
		})
	}()
	r.mu.Lock()
	leased := r.mu.leased
	r.mu.Unlock()
	if leased != 0 {
		t.Fatalf("%d streams still leased after a panic", leased)
	}
	got, err := r.Read(ctx, 8, 60)
	if err != nil {
		t.Fatalf("Read after a panic: %v", err)
	}
	checkEntries(t, got, entries, 8, 60)
}
