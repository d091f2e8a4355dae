package broker

import "sync"

// outbox is a FIFO feeding one stream's sender goroutine. Pushing never
// blocks, so dispatchers and append callbacks never wait on a slow client.
// It counts the bytes it holds (until sent) so that producers of items can
// stop at a limit: full reports it, and onRoom is called once a full
// outbox has drained to half the limit.
type outbox[T any] struct {
	size   func(T) int // bytes an item holds; nil counts nothing
	limit  int64       // full at this many bytes; 0: never
	onRoom func()      // called, without q.mu, when a full outbox drains to limit/2

	mu       sync.Mutex
	items    []T
	bytes    int64 // of items queued or being sent
	wasFull  bool
	drained  chan struct{} // closed once an overloaded outbox drained
	closed   bool
	draining bool // run returns once everything queued is sent
	wake     chan struct{}
}

func newOutbox[T any]() *outbox[T] { return &outbox[T]{wake: make(chan struct{}, 1)} }

// newBoundedOutbox returns an outbox that is full at limit bytes.
func newBoundedOutbox[T any](limit int64, size func(T) int, onRoom func()) *outbox[T] {
	return &outbox[T]{wake: make(chan struct{}, 1), limit: limit, size: size, onRoom: onRoom}
}

func (q *outbox[T]) sizeOf(v T) int64 {
	if q.size == nil {
		return 0
	}
	return int64(q.size(v))
}

func (q *outbox[T]) push(v T) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, v)
	q.bytes += q.sizeOf(v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// full reports whether the outbox holds its limit of bytes or more.
func (q *outbox[T]) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.limit > 0 && q.bytes >= q.limit {
		q.wasFull = true
		return true
	}
	return false
}

// overloaded returns nil while the outbox holds less than twice its
// limit, else a channel signalled when it drained to half the limit.
func (q *outbox[T]) overloaded() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.limit <= 0 || q.bytes < 2*q.limit {
		return nil
	}
	q.wasFull = true
	if q.drained == nil {
		q.drained = make(chan struct{})
	}
	return q.drained
}

// room returns how many bytes the outbox takes before it is full.
func (q *outbox[T]) room() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return max(q.limit-q.bytes, 0)
}

// sent accounts for an item the sender wrote.
func (q *outbox[T]) sent(v T) {
	n := q.sizeOf(v)
	if n == 0 {
		return
	}
	q.mu.Lock()
	q.bytes -= n
	room := q.wasFull && q.bytes <= q.limit/2
	if room {
		q.wasFull = false
		if q.drained != nil {
			close(q.drained)
			q.drained = nil
		}
	}
	q.mu.Unlock()
	if room && q.onRoom != nil {
		q.onRoom()
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
			q.sent(v)
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
