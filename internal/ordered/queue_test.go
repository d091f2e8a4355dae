package ordered

import (
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"
)

func TestOrderAndReentrancy(t *testing.T) {
	q := New[int]()
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	wg.Add(1000)
	for i := 0; i < 1000; i++ {
		q.Push(func(v int, _ error) {
			mu.Lock()
			got = append(got, v)
			mu.Unlock()
			if v == 10 {
				// A callback may queue more work without deadlocking.
				wg.Add(1)
				q.Push(func(int, error) { wg.Done() }, -1, nil)
			}
			wg.Done()
		}, i, nil)
	}
	wg.Wait()
	for i, v := range got {
		if v != i {
			t.Fatalf("callback %d saw %d", i, v)
		}
	}
	q.Close()
	done := make(chan struct{})
	q.Push(func(int, error) { close(done) }, 0, nil)
	<-done // pushes after Close still run
}

// TestRunCallbacksAreReleased: once a callback has run, the queue keeps
// nothing it captured alive (a batch's backing array used to hold the last
// batch of callbacks, and with them the entries they carried, until a
// larger batch came).
func TestRunCallbacksAreReleased(t *testing.T) {
	q := New[int]()
	defer q.Close()
	ran := make(chan struct{})
	push := func() weak.Pointer[[1 << 20]byte] {
		big := new([1 << 20]byte)
		q.Push(func(int, error) { big[0]++; close(ran) }, 0, nil)
		return weak.Make(big)
	}
	released := push()
	<-ran
	deadline := time.Now().Add(5 * time.Second)
	for released.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the queue still holds what a callback that ran captured")
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}
