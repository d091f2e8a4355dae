package broker

import "sync"

// outbox is an unbounded FIFO feeding one stream's sender goroutine. Pushing
// never blocks, so dispatchers and append callbacks never wait on a slow
// client; what a client may have queued is bounded elsewhere (permits,
// pending sends).
type outbox[T any] struct {
	mu       sync.Mutex
	items    []T
	closed   bool
	draining bool // run returns once everything queued is sent
	wake     chan struct{}
}

func newOutbox[T any]() *outbox[T] { return &outbox[T]{wake: make(chan struct{}, 1)} }

func (q *outbox[T]) push(v T) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns everything queued (appending to dst).
func (q *outbox[T]) take(dst []T) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.items...)
	clear(q.items)
	q.items = q.items[:0]
	return dst
}

func (q *outbox[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.items = nil
	q.mu.Unlock()
}

// drain makes run return after sending what is queued.
func (q *outbox[T]) drain() {
	q.mu.Lock()
	q.draining = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run sends queued items with send until it fails, done is closed, or the
// outbox was drained.
func (q *outbox[T]) run(done <-chan struct{}, send func(T) error) error {
	var batch []T
	for {
		select {
		case <-q.wake:
		case <-done:
			return nil
		}
		batch = q.take(batch[:0])
		for _, v := range batch {
			if err := send(v); err != nil {
				return err
			}
		}
		clear(batch)
		q.mu.Lock()
		finished := q.draining && len(q.items) == 0
		q.mu.Unlock()
		if finished {
			return nil
		}
	}
}
