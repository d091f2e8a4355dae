package ledger

import "sync"

// callbackQueue runs add callbacks on one goroutine, in the order they were
// queued. Queuing never blocks, so it is safe under the writer's lock, and a
// callback may call back into the writer.
type callbackQueue struct {
	mu     sync.Mutex
	items  []callback
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

type callback struct {
	fn      func(entryID int64, err error)
	entryID int64
	err     error
}

func newCallbackQueue() *callbackQueue {
	q := &callbackQueue{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return q
}

func (q *callbackQueue) push(fn func(int64, error), entryID int64, err error) {
	if fn == nil {
		return
	}
	q.mu.Lock()
	if q.closed {
		// Nothing ordered remains after close; never leave a caller waiting.
		q.mu.Unlock()
		go fn(entryID, err)
		return
	}
	q.items = append(q.items, callback{fn, entryID, err})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *callbackQueue) run() {
	defer close(q.done)
	var batch []callback
	for {
		q.mu.Lock()
		batch = append(batch[:0], q.items...)
		clear(q.items)
		q.items = q.items[:0]
		closed := q.closed
		q.mu.Unlock()
		for _, cb := range batch {
			cb.fn(cb.entryID, cb.err)
		}
		if len(batch) == 0 {
			if closed {
				return
			}
			<-q.wake
		}
	}
}

// close lets the goroutine exit once the callbacks already queued have run.
// It does not wait, so a callback may close its own writer.
func (q *callbackQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
