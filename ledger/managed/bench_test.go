package managed_test

import (
	"context"
	"sync"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
)

// BenchmarkAppendManagedVsRaw compares 1 KiB appends through the managed
// ledger with the raw ledger client on the same bookie (fsync on).
//
//	go test -run '^$' -bench AppendManagedVsRaw -benchtime 30000x ./ledger/managed/
func BenchmarkAppendManagedVsRaw(b *testing.B) {
	payload := make([]byte, 1024)
	const window = 4096
	b.Run("raw", func(b *testing.B) {
		e := newEnv(b, 1, nil)
		w, err := e.opts.Ledgers.Create(context.Background(), ledger.CreateOptions{EnsembleSize: 1, WriteQuorum: 1, AckQuorum: 1})
		if err != nil {
			b.Fatal(err)
		}
		sem := make(chan struct{}, window)
		var wg sync.WaitGroup
		b.SetBytes(1024)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			sem <- struct{}{}
			wg.Add(1)
			w.AppendAsync(payload, func(int64, error) { <-sem; wg.Done() })
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
		w.Close(context.Background())
	})
	b.Run("managed", func(b *testing.B) {
		e := newEnv(b, 1, func(o *managed.Options) { o.MaxEntriesPerLedger = 50000 })
		ml := e.open(b, "public/default/bench")
		sem := make(chan struct{}, window)
		var wg sync.WaitGroup
		b.SetBytes(1024)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			sem <- struct{}{}
			wg.Add(1)
			ml.AppendAsync(payload, 1, func(managed.Position, error) { <-sem; wg.Done() })
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
	})
}

// BenchmarkTailingReadLatency measures append -> cursor sees it, with a
// reader waiting on the log's notification.
//
//	go test -run '^$' -bench TailingReadLatency -benchtime 5000x ./ledger/managed/
func BenchmarkTailingReadLatency(b *testing.B) {
	e := newEnv(b, 1, nil)
	ml := e.open(b, "public/default/tail")
	ctx := context.Background()
	c, err := ml.OpenCursor(ctx, "tail", managed.Latest)
	if err != nil {
		b.Fatal(err)
	}
	h := hdr.New(1, 10_000_000, 3)
	sent := make(chan time.Time, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < b.N; {
			wait := ml.Wait()
			es, err := c.Read(ctx, 100, 1<<20)
			if err != nil {
				b.Error(err)
				return
			}
			if len(es) == 0 {
				<-wait
				continue
			}
			for range es {
				h.RecordValue(time.Since(<-sent).Microseconds())
			}
			got += len(es)
		}
	}()
	payload := make([]byte, 1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sent <- time.Now()
		if _, err := ml.Append(ctx, payload, 1); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1000, "p50-ms")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1000, "p99-ms")
}
