package broker

import (
	"container/heap"
	"runtime"
	"slices"
	"testing"
)

// BenchmarkDelayIndexMemory measures the memory of one million pending
// delayed messages in the delay index (payloads stay in the log).
//
//	go test -run '^$' -bench DelayIndexMemory ./broker/
func BenchmarkDelayIndexMemory(b *testing.B) {
	const n = 1_000_000
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var h delayIndex
		for j := 0; j < n; j++ {
			heap.Push(&h, delayed{at: int64(n - j), ledger: 7, entry: int64(j), key: uint32(j)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/message")
		runtime.KeepAlive(h)
	}
}

func TestDelayIndexOrder(t *testing.T) {
	var h delayIndex
	for _, at := range []int64{50, 10, 30, 20, 40} {
		heap.Push(&h, delayed{at: at})
	}
	var got []int64
	for h.Len() > 0 {
		got = append(got, heap.Pop(&h).(delayed).at)
	}
	if want := []int64{10, 20, 30, 40, 50}; !slices.Equal(got, want) {
		t.Fatalf("delay index pops %v, want %v", got, want)
	}
}
