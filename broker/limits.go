package broker

import "sync"

// publishBuffer counts the bytes of sends the broker holds (received, not
// yet answered) against MaxMessagePublishBufferBytes. Producer streams stop
// reading while it is full.
type publishBuffer struct {
	limit int64

	mu    sync.Mutex
	bytes int64
	room  chan struct{} // closed once bytes fall below the limit; nil while not full
}

func newPublishBuffer(limit int64) *publishBuffer { return &publishBuffer{limit: limit} }

func (b *publishBuffer) add(n int64) {
	b.mu.Lock()
	b.bytes += n
	b.mu.Unlock()
}

func (b *publishBuffer) release(n int64) {
	b.mu.Lock()
	b.bytes -= n
	if b.room != nil && b.bytes < b.limit {
		close(b.room)
		b.room = nil
	}
	b.mu.Unlock()
}

// full returns nil when there is room, else a channel closed once there is.
func (b *publishBuffer) full() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bytes < b.limit {
		return nil
	}
	if b.room == nil {
		b.room = make(chan struct{})
	}
	return b.room
}

// used returns the bytes held.
func (b *publishBuffer) used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}
