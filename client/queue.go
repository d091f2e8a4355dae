package client

import (
	"context"
	"sync"
)

// msgQueue buffers received messages for Receive. Its size is bounded by
// the consumers' flow-control permits.
type msgQueue struct {
	mu     sync.Mutex
	items  []Message
	err    error // set when the consumer failed for good
	closed bool
	wake   chan struct{}
}

func newMsgQueue() *msgQueue { return &msgQueue{wake: make(chan struct{}, 1)} }

func (q *msgQueue) push(ms ...Message) {
	q.mu.Lock()
	q.items = append(q.items, ms...)
	q.mu.Unlock()
	q.signal()
}

func (q *msgQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// drop removes the queued messages of one partition consumer.
func (q *msgQueue) drop(pc *partitionConsumer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.items[:0]
	for _, m := range q.items {
		if m.consumer != pc {
			kept = append(kept, m)
		}
	}
	clear(q.items[len(kept):])
	q.items = kept
}

// close ends the queue: what is still buffered is dropped (the broker
// redelivers it elsewhere) and pop returns err.
func (q *msgQueue) close(err error) {
	q.mu.Lock()
	q.closed, q.err = true, err
	clear(q.items)
	q.items = nil
	q.mu.Unlock()
	q.signal()
}

// pop waits for the next message.
func (q *msgQueue) pop(ctx context.Context) (Message, error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 && !q.closed {
			m := q.items[0]
			q.items[0] = Message{}
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more {
				q.signal()
			}
			return m, nil
		}
		if q.closed {
			err := q.err
			q.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return Message{}, err
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

func (q *msgQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
