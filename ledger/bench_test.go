package ledger_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/ledger"
)

// BenchmarkAppend measures acknowledged appends (fsync before every ack) with
// many adds in flight: entries/s, MB/s and add latency percentiles.
//
//	go test -run '^$' -bench Append -benchtime 20000x ./ledger/
//
// STRATA_BENCH_RATE=N paces appends at N entries/s to measure latency below
// saturation.
func BenchmarkAppend(b *testing.B) {
	cases := []struct {
		name      string
		bookies   int
		e, qw, qa int
		size      int
	}{
		{"E1Qw1Qa1/1KiB", 1, 1, 1, 1, 1 << 10},
		{"E3Qw3Qa2/1KiB", 3, 3, 3, 2, 1 << 10},
		{"E1Qw1Qa1/64KiB", 1, 1, 1, 1, 64 << 10},
	}
	rate, _ := strconv.Atoi(os.Getenv("STRATA_BENCH_RATE"))
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cl := testcluster.New(b, testcluster.Config{Bookies: c.bookies})
			lc := cl.LedgerClient()
			ctx := context.Background()
			w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: c.e, WriteQuorum: c.qw, AckQuorum: c.qa})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close(ctx)
			payload := make([]byte, c.size)
			h := hdr.New(1, int64(10*time.Second/time.Microsecond), 3)
			// Bound the bytes in flight like a broker would (~8 MiB).
			window := make(chan struct{}, max(64, (8<<20)/c.size))
			var mu sync.Mutex
			var wg sync.WaitGroup
			var interval time.Duration
			if rate > 0 {
				interval = time.Second / time.Duration(rate)
			}
			b.SetBytes(int64(c.size))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if interval > 0 {
					if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
						time.Sleep(d)
					}
				}
				window <- struct{}{}
				wg.Add(1)
				sent := time.Now()
				w.AppendAsync(payload, func(_ int64, err error) {
					if err != nil {
						b.Error(err)
					}
					mu.Lock()
					h.RecordValue(time.Since(sent).Microseconds())
					mu.Unlock()
					<-window
					wg.Done()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
			b.ReportMetric(float64(h.ValueAtQuantile(50))/1000, "p50-ms")
			b.ReportMetric(float64(h.ValueAtQuantile(99))/1000, "p99-ms")
		})
	}
}
