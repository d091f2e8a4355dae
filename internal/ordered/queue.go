// Package ordered runs callbacks on one goroutine in the order they were
// queued. Queuing never blocks, so it is safe under a caller's lock, and a
// callback may call back into its caller.
package ordered

import "sync"

// Queue is an ordered callback queue for callbacks of type func(T, error).
type Queue[T any] struct {
	mu     sync.Mutex
	items  []callback[T]
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

type callback[T any] struct {
	fn  func(T, error)
	v   T
	err error
}

// New starts a queue.
func New[T any]() *Queue[T] {
	q := &Queue[T]{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return q
}

// Push queues fn(v, err). After Close, fn runs on a goroutine of its own.
func (q *Queue[T]) Push(fn func(T, error), v T, err error) {
	if fn == nil {
		return
	}
	q.mu.Lock()
	if q.closed {
		// Nothing ordered remains after close; never leave a caller waiting.
		q.mu.Unlock()
		go fn(v, err)
		return
	}
	q.items = append(q.items, callback[T]{fn, v, err})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue[T]) run() {
	defer close(q.done)
	var batch []callback[T]
	for {
		q.mu.Lock()
		batch = append(batch[:0], q.items...)
		clear(q.items)
		q.items = q.items[:0]
		closed := q.closed
		q.mu.Unlock()
		for _, cb := range batch {
			cb.fn(cb.v, cb.err)
		}
		clear(batch) // callbacks run: what they hold (entries, streams) may go
		if len(batch) == 0 {
			if closed {
				return
			}
			<-q.wake
		}
	}
}

// Close lets the goroutine exit once the callbacks already queued have run.
// It does not wait, so a callback may close its own owner.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
