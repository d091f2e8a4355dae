package managed_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-mq/strata/internal/s3test"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/offload"
)

// Offload benchmark knobs (environment):
//
//	STRATA_ML_OFFLOAD_BENCH_MB      bytes of 1 KiB messages in MiB (default 64; 1024 for 1 GiB)
//	STRATA_ML_OFFLOAD_BENCH_LEDGER  ledger size in MiB (default min(64, size/4))
//	STRATA_ML_OFFLOAD_BENCH_BLOCK   block size in MiB (default ledger size / 2)
//	STRATA_ML_OFFLOAD_BENCH_RA_MB   ReaderOptions.ReadAheadBytes in MiB (default 16)
//
// Run: go test -run '^$' -bench Offload -benchtime 3x ./ledger/managed/
const offloadBenchEntry = 1024

type offloadBenchSizes struct {
	total, ledger, block int64 // bytes
}

func offloadBenchConfig(b *testing.B) offloadBenchSizes {
	mb := testutil.EnvInt(b, "STRATA_ML_OFFLOAD_BENCH_MB", 64)
	ledgerMB := testutil.EnvInt(b, "STRATA_ML_OFFLOAD_BENCH_LEDGER", min(64, max(1, mb/4)))
	blockMB := testutil.EnvInt(b, "STRATA_ML_OFFLOAD_BENCH_BLOCK", max(1, ledgerMB/2))
	return offloadBenchSizes{total: int64(mb) << 20, ledger: int64(ledgerMB) << 20, block: int64(blockMB) << 20}
}

// offloadBench is a bookie, a versitygw server and a managed ledger
// offloading to it.
type offloadBench struct {
	sizes offloadBenchSizes
	srv   *s3test.Server
	store *offload.S3Store
	c     *testcluster.Cluster
	opts  managed.Options
	pool  []byte // random bytes the payloads are cut from
}

func newOffloadBench(b *testing.B) *offloadBench {
	sizes := offloadBenchConfig(b)
	srv := s3test.Start(b)
	store, err := offload.NewS3Store(offload.S3Options{
		Endpoint: srv.URL(), Region: srv.Region, Bucket: srv.Bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Check(context.Background()); err != nil {
		b.Fatal(err)
	}
	c := testcluster.New(b, testcluster.Config{Bookies: 1})
	pool := make([]byte, 1<<20+offloadBenchEntry)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	return &offloadBench{
		sizes: sizes, srv: srv, store: store, c: c, pool: pool,
		opts: managed.Options{
			Ledgers: c.LedgerClient(), Metadata: c.Store, Logger: c.Log,
			MaxEntriesPerLedger:   sizes.ledger / offloadBenchEntry,
			CacheMaxBytes:         1, // every read goes to the store
			CursorPersistInterval: time.Hour, TrimInterval: time.Hour,
			Retention: func() managed.Retention { return managed.Retention{Time: -1, Size: -1} },
			Offload: managed.OffloadOptions{
				Store: store, KeyPrefix: "bench", Driver: "s3",
				Write: offload.WriteOptions{BlockSize: int(sizes.block)},
				Read:  offload.ReaderOptions{ReadAheadBytes: int64(testutil.EnvInt(b, "STRATA_ML_OFFLOAD_BENCH_RA_MB", offload.DefaultReadAheadBytes>>20)) << 20},
				Policy: func() managed.OffloadPolicy {
					return managed.OffloadPolicy{ThresholdBytes: -1, ThresholdSeconds: -1, DeletionLag: -1}
				},
			},
		},
	}
}

func (ob *offloadBench) payload(i int64) []byte {
	off := (i * 4099) % (1 << 20)
	return ob.pool[off : off+offloadBenchEntry]
}

// fill opens a managed ledger, appends the configured bytes of 1 KiB
// messages and waits until every full ledger is closed.
func (ob *offloadBench) fill(b *testing.B, name string) *managed.ManagedLedger {
	ctx := context.Background()
	ml, err := managed.Open(ctx, name, ob.opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ml.Close(context.Background()) })
	n := ob.sizes.total / offloadBenchEntry
	sem := make(chan struct{}, 4096)
	var wg sync.WaitGroup
	for i := int64(0); i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		ml.AppendAsync(ob.payload(i), 1, func(_ managed.Position, err error) {
			if err != nil {
				b.Error(err)
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	full := int(ob.sizes.total / ob.sizes.ledger)
	deadline := time.Now().Add(time.Minute)
	for {
		closed := 0
		for _, l := range ml.Stats().Ledgers {
			if l.State == "closed" {
				closed++
			}
		}
		if closed >= full {
			return ml
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d ledgers closed, want %d", closed, full)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dataObjects returns the data keys and sizes of the log's offloaded ledgers.
func (ob *offloadBench) dataObjects(b *testing.B, ml *managed.ManagedLedger, name string) (keys []string, sizes []int64) {
	infos, err := ob.store.List(context.Background(), offload.KeyPrefix("bench", name))
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range infos {
		if len(o.Key) > 6 && o.Key[len(o.Key)-6:] == "-index" {
			continue
		}
		keys = append(keys, o.Key)
		sizes = append(sizes, o.Size)
	}
	return keys, sizes
}

func mbPerSec(bytes int64, d time.Duration) float64 { return float64(bytes) / (1 << 20) / d.Seconds() }

// blackhole is io.Discard without ReadFrom, so io.CopyBuffer uses our buffer.
type blackhole struct{}

func (blackhole) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkOffloadReplay replays offloaded 1 KiB messages through the
// managed ledger — a cursor reading 100 entries at a time, like a
// dispatcher, from versitygw — and, in the same iterations, downloads the
// same data objects with raw minio-go ranged GETs of one block each into a
// reused 1 MiB buffer. Both rates count data-object bytes.
//
//	go test -run '^$' -bench OffloadReplay -benchtime 3x ./ledger/managed/
func BenchmarkOffloadReplay(b *testing.B) {
	ob := newOffloadBench(b)
	const name = "bench/default/replay"
	ml := ob.fill(b, name)
	ctx := context.Background()
	// Terminating closes the current ledger: every ledger is offloaded, and
	// no writer is left to mind the bookie stopping below.
	if _, err := ml.Terminate(ctx); err != nil {
		b.Fatal(err)
	}
	res, err := ml.Offload(ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	// The replay needs no bookie; stopping it also stops its background
	// work (compactions after the fill) from skewing the figures.
	ob.c.StopBookie(0)
	keys, sizes := ob.dataObjects(b, ml, name)
	var objBytes int64
	for _, s := range sizes {
		objBytes += s
	}
	buf := make([]byte, 1<<20)
	cli := ob.store.Client()
	raw := func() time.Duration {
		start := time.Now()
		for k, key := range keys {
			for off := int64(0); off < sizes[k]; off += ob.sizes.block {
				var opts minio.GetObjectOptions
				if err := opts.SetRange(off, min(off+ob.sizes.block, sizes[k])-1); err != nil {
					b.Fatal(err)
				}
				obj, err := cli.GetObject(ctx, ob.store.Bucket(), key, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(blackhole{}, obj, buf); err != nil {
					b.Fatal(err)
				}
				obj.Close()
			}
		}
		return time.Since(start)
	}
	replay := func() time.Duration {
		start := time.Now()
		c := ml.NewNonDurableCursor(ml.FirstPosition())
		defer c.Close()
		var n, payload int64
		for {
			es, err := c.Read(ctx, 100, 8<<20)
			if err != nil {
				b.Fatal(err)
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				payload += int64(len(e.Data))
			}
			n += int64(len(es))
		}
		if n != res.Entries || payload != res.Bytes {
			b.Fatalf("replayed %d entries, %d bytes; offloaded %d, %d", n, payload, res.Entries, res.Bytes)
		}
		return time.Since(start)
	}
	var rawTime, mlTime time.Duration
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			rawTime += raw()
			mlTime += replay()
		} else {
			mlTime += replay()
			rawTime += raw()
		}
		i++
	}
	total := int64(b.N) * objBytes
	r, m := mbPerSec(total, rawTime), mbPerSec(total, mlTime)
	b.ReportMetric(r, "rawGET-MB/s")
	b.ReportMetric(m, "managed-MB/s")
	b.ReportMetric(m/r, "managed/raw")
	b.Logf("%d MiB of 1 KiB messages in %d ledgers of %d MiB, %d MiB blocks: raw ranged GET %.0f MB/s, managed-ledger replay %.0f MB/s (%.2f)",
		ob.sizes.total>>20, len(keys), ob.sizes.ledger>>20, ob.sizes.block>>20, r, m, m/r)
}

// BenchmarkOffloadUpload offloads every closed ledger of a freshly filled
// managed ledger (reading them from the bookie, uploading to versitygw) and,
// in the same iterations, uploads as many bytes with a raw minio-go
// PutObject of unknown size using the store's part size and concurrency. It
// also reports how fast the same ledgers read from the bookie alone.
//
//	go test -run '^$' -bench OffloadUpload -benchtime 3x ./ledger/managed/
func BenchmarkOffloadUpload(b *testing.B) {
	ob := newOffloadBench(b)
	ctx := context.Background()
	var offTime, rawTime, bkTime time.Duration
	var offBytes, rawBytes, bkBytes, objBytes int64
	b.ResetTimer()
	i := 0
	for b.Loop() {
		b.StopTimer()
		name := fmt.Sprintf("bench/default/upload-%d", i)
		ml := ob.fill(b, name)
		var ids []int64
		for _, l := range ml.Stats().Ledgers {
			if l.State == "closed" {
				ids = append(ids, l.LedgerID)
			}
		}
		// Bookie read rate of the same ledgers (warms nothing the offload
		// uses: the offloader opens its own reads).
		start := time.Now()
		for _, id := range ids {
			r, err := ob.opts.Ledgers.Open(ctx, id, nil)
			if err != nil {
				b.Fatal(err)
			}
			for first := int64(0); first <= r.LastAddConfirmed(); first += 100 {
				es, err := r.Read(ctx, first, min(first+99, r.LastAddConfirmed()))
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range es {
					bkBytes += int64(len(e.Payload))
				}
			}
		}
		bkTime += time.Since(start)
		b.StartTimer()

		doOffload := func() {
			start := time.Now()
			if _, err := ml.Offload(ctx, 0); err != nil {
				b.Fatal(err)
			}
			offTime += time.Since(start)
			_, sizes := ob.dataObjects(b, ml, name)
			objBytes = 0
			for _, s := range sizes {
				objBytes += s
			}
			offBytes += objBytes
		}
		rawPut := func() { // as many bytes as the data objects (of the previous iteration when first)
			start := time.Now()
			_, err := ob.store.Client().PutObject(ctx, ob.store.Bucket(), fmt.Sprintf("raw/%d", i), &poolReader{left: objBytes, pool: ob.pool}, -1,
				minio.PutObjectOptions{PartSize: offload.DefaultS3PartSize, ConcurrentStreamParts: true, NumThreads: offload.DefaultS3UploadConcurrency})
			if err != nil {
				b.Fatal(err)
			}
			rawTime += time.Since(start)
			rawBytes += objBytes
		}
		if i%2 == 0 { // offload first in the first iteration: rawPut needs its size
			doOffload()
			rawPut()
		} else {
			rawPut()
			doOffload()
		}
		b.StopTimer()
		ob.store.Delete(ctx, fmt.Sprintf("raw/%d", i))
		ml.Close(ctx)
		b.StartTimer()
		i++
	}
	o, r, k := mbPerSec(offBytes, offTime), mbPerSec(rawBytes, rawTime), mbPerSec(bkBytes, bkTime)
	b.ReportMetric(o, "offload-MB/s")
	b.ReportMetric(r, "rawPut-MB/s")
	b.ReportMetric(o/r, "offload/raw")
	b.ReportMetric(k, "bookieRead-MB/s")
	b.Logf("%d MiB of 1 KiB messages in ledgers of %d MiB, %d MiB blocks: offload %.0f MB/s, raw PutObject %.0f MB/s (%.2f); bookie reads alone %.0f MB/s",
		ob.sizes.total>>20, ob.sizes.ledger>>20, ob.sizes.block>>20, o, r, o/r, k)
}

// poolReader yields left bytes cut from pool (the raw-upload source).
type poolReader struct {
	left int64
	pool []byte
	off  int
}

func (r *poolReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), r.left)], r.pool[r.off:])
	r.off = (r.off + n) % (1 << 20)
	r.left -= int64(n)
	return n, nil
}
