package ordered

import (
	"sync"
	"testing"
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
