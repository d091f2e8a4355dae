package offload

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-mq/strata/internal/s3test"
	"github.com/strata-mq/strata/internal/testutil"
)

// Benchmark knobs (environment):
//
//	STRATA_OFFLOAD_BENCH_MB     ledger size in MiB (default 64; 1024 for 1 GiB)
//	STRATA_OFFLOAD_BENCH_BLOCK  block size in MiB (default min(64, size/8))
//	STRATA_OFFLOAD_BENCH_RA_KB  ReaderOptions.ReadAheadBytes in KiB (default: the default)
//	STRATA_OFFLOAD_BENCH_IO_KB  ReaderOptions.IOBufferSize in KiB (default: the default)
//
// Run: go test -run '^$' -bench . -benchtime 3x ./offload/
const benchEntrySize = 1024

func benchSizes(b *testing.B) (ledgerBytes int64, blockSize int) {
	mb := testutil.EnvInt(b, "STRATA_OFFLOAD_BENCH_MB", 64)
	block := testutil.EnvInt(b, "STRATA_OFFLOAD_BENCH_BLOCK", min(64, max(1, mb/8)))
	return int64(mb) << 20, block << 20
}

// genSource yields n entries of benchEntrySize bytes cut from a random
// pool, without holding the ledger in memory.
type genSource struct {
	n    int64
	pool []byte
}

func newGenSource(ledgerBytes int64) *genSource {
	pool := make([]byte, 1<<20+benchEntrySize)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	return &genSource{n: ledgerBytes / benchEntrySize, pool: pool}
}

func (g *genSource) payload(id int64) []byte {
	off := (id * 4099) % (1 << 20)
	return g.pool[off : off+benchEntrySize]
}

func (g *genSource) ReadEntries(_ context.Context, first, last int64) ([]Entry, error) {
	out := make([]Entry, 0, last-first+1)
	for id := first; id <= last; id++ {
		out = append(out, Entry{ID: id, Payload: g.payload(id)})
	}
	return out, nil
}

func (g *genSource) desc() LedgerDescriptor {
	return LedgerDescriptor{LedgerID: 1, LastEntryID: g.n - 1, Length: g.n * benchEntrySize}
}

// genReader yields n bytes from the pool (the raw-upload baseline).
type genReader struct {
	left int64
	pool []byte
	off  int
}

func (r *genReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), r.left)], r.pool[r.off:])
	r.off = (r.off + n) % (1 << 20)
	r.left -= int64(n)
	return n, nil
}

func benchStore(b *testing.B) (*s3test.Server, *S3Store) {
	srv := s3test.Start(b)
	return srv, newTestS3Store(b, srv, func(o *S3Options) { o.PartSize = DefaultS3PartSize })
}

func mbps(bytes int64, d time.Duration) float64 {
	return float64(bytes) / (1 << 20) / d.Seconds()
}

// BenchmarkSequentialReplay replays an offloaded ledger of 1 KiB entries
// through LedgerReader, 100 entries per call like a dispatcher, once with
// ReadFunc and once with Read, and in the same iterations fetches the same
// data object with raw minio-go ranged GETs of one block each into a
// reused buffer. It reports the three rates and the ratios to raw. Rates
// count data-object bytes (payload plus framing).
func BenchmarkSequentialReplay(b *testing.B) {
	ledgerBytes, blockSize := benchSizes(b)
	_, store := benchStore(b)
	ctx := context.Background()
	src := newGenSource(ledgerBytes)
	desc := src.desc()
	dataKey, indexKey := ObjectKeys("bench", "t/n/replay", 1, "u")
	res, err := WriteLedger(ctx, store, src, desc, dataKey, indexKey, WriteOptions{BlockSize: blockSize})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var readTime, funcTime, rawTime time.Duration
	ropts := ReaderOptions{
		ReadAheadBytes: int64(testutil.EnvInt(b, "STRATA_OFFLOAD_BENCH_RA_KB", DefaultReadAheadBytes>>10)) << 10,
		IOBufferSize:   testutil.EnvInt(b, "STRATA_OFFLOAD_BENCH_IO_KB", DefaultIOBufferSize>>10) << 10,
	}

	// replay reads the whole ledger in 100-entry steps with step and
	// checks the payload bytes seen.
	replay := func(step func(r *LedgerReader, first, last int64) (int64, error)) time.Duration {
		start := time.Now()
		r, err := OpenLedger(ctx, store, dataKey, indexKey, ropts)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		var got int64
		for first := int64(0); first <= desc.LastEntryID; first += 100 {
			n, err := step(r, first, min(first+99, desc.LastEntryID))
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		if got != desc.Length {
			b.Fatalf("replayed %d payload bytes, want %d", got, desc.Length)
		}
		return time.Since(start)
	}

	b.ResetTimer()
	for b.Loop() {
		// Raw ranged GETs, one per block, into a reused buffer.
		start := time.Now()
		for off := int64(0); off < res.DataBytes; off += int64(blockSize) {
			var opts minio.GetObjectOptions
			if err := opts.SetRange(off, min(off+int64(blockSize), res.DataBytes)-1); err != nil {
				b.Fatal(err)
			}
			body, _, _, err := store.core.GetObject(ctx, store.Bucket(), dataKey, opts)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(discard{}, body, buf); err != nil {
				b.Fatal(err)
			}
			body.Close()
		}
		rawTime += time.Since(start)

		// LedgerReader.ReadFunc: payloads borrowed, buffers recycled.
		funcTime += replay(func(r *LedgerReader, first, last int64) (int64, error) {
			var n int64
			err := r.ReadFunc(ctx, first, last, func(e Entry) error {
				n += int64(len(e.Payload))
				return nil
			})
			return n, err
		})

		// LedgerReader.Read: payloads handed over (fresh memory).
		readTime += replay(func(r *LedgerReader, first, last int64) (int64, error) {
			entries, err := r.Read(ctx, first, last)
			var n int64
			for _, e := range entries {
				n += int64(len(e.Payload))
			}
			return n, err
		})
	}
	n := int64(b.N) * res.DataBytes
	raw, fn, rd := mbps(n, rawTime), mbps(n, funcTime), mbps(n, readTime)
	b.ReportMetric(raw, "rawGET-MB/s")
	b.ReportMetric(fn, "ReadFunc-MB/s")
	b.ReportMetric(rd, "Read-MB/s")
	b.ReportMetric(fn/raw, "ReadFunc/raw")
	b.ReportMetric(rd/raw, "Read/raw")
	b.Logf("ledger %d MiB in %d-byte entries, %d blocks of %d MiB: raw ranged GET %.0f MB/s, ReadFunc %.0f MB/s (%.2f), Read %.0f MB/s (%.2f)",
		ledgerBytes>>20, benchEntrySize, res.Blocks, blockSize>>20, raw, fn, fn/raw, rd, rd/raw)
}

// discard is io.Discard without its ReaderFrom, so io.CopyBuffer uses the
// given buffer (the raw baseline reads in 1 MiB calls, like the reader).
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkUpload offloads a ledger of 1 KiB entries with WriteLedger and,
// in the same iterations, uploads as many bytes with a raw minio-go
// PutObject of unknown size using the store's part size and concurrency.
func BenchmarkUpload(b *testing.B) {
	ledgerBytes, blockSize := benchSizes(b)
	_, store := benchStore(b)
	ctx := context.Background()
	src := newGenSource(ledgerBytes)
	desc := src.desc()
	var writeTime, rawTime time.Duration
	var dataBytes, rawBytes int64

	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		dataKey, indexKey := ObjectKeys("bench", "t/n/upload", 1, fmt.Sprint(i))
		rawKey := "bench/raw/" + fmt.Sprint(i)
		writer := func() {
			start := time.Now()
			res, err := WriteLedger(ctx, store, src, desc, dataKey, indexKey, WriteOptions{BlockSize: blockSize})
			if err != nil {
				b.Fatal(err)
			}
			writeTime += time.Since(start)
			dataBytes = res.DataBytes
		}
		raw := func() {
			size := dataBytes
			if size == 0 { // first iteration: the framed size is not known yet
				size = desc.Length + (desc.LastEntryID+1)*FrameHeaderLen
			}
			start := time.Now()
			_, err := store.Client().PutObject(ctx, store.Bucket(), rawKey, &genReader{left: size, pool: src.pool}, -1, minio.PutObjectOptions{
				PartSize:              uint64(store.opts.PartSize),
				ConcurrentStreamParts: true,
				NumThreads:            uint(store.opts.UploadConcurrency),
			})
			if err != nil {
				b.Fatal(err)
			}
			rawTime += time.Since(start)
			rawBytes += size
		}
		// Alternate the order so neither always runs on a busier disk.
		if i%2 == 1 {
			writer()
			raw()
		} else {
			raw()
			writer()
		}

		b.StopTimer()
		_ = DeleteLedger(ctx, store, dataKey, indexKey)
		_ = store.Delete(ctx, rawKey)
		b.StartTimer()
	}
	write, raw := mbps(int64(b.N)*dataBytes, writeTime), mbps(rawBytes, rawTime)
	b.ReportMetric(write, "writer-MB/s")
	b.ReportMetric(raw, "rawPut-MB/s")
	b.ReportMetric(write/raw, "ratio")
	b.Logf("ledger %d MiB in %d-byte entries, %d MiB blocks, %d MiB parts x%d: WriteLedger %.0f MB/s, raw PutObject %.0f MB/s, ratio %.2f",
		ledgerBytes>>20, benchEntrySize, blockSize>>20, store.opts.PartSize>>20, store.opts.UploadConcurrency, write, raw, write/raw)
}
