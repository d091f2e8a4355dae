package offload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
)

// stream is one read-ahead stream: a goroutine (run) that fetches blocks
// from the stream's start onwards and queues decoded entries, holding at
// most the reader's per-stream budget of entry bytes; and a consumer side
// (take) used by one Read at a time, which the reader guarantees by
// leasing streams.
type stream struct {
	r      *LedgerReader
	ctx    context.Context
	cancel context.CancelFunc
	start  int64

	// next is the id of the next entry take will return. Only the lessee
	// (or r.mu's holder while idle) touches it.
	next int64

	// The queue between producer and consumer.
	mu struct {
		sync.Mutex
		q      []Entry
		head   int   // q[head:] are queued
		qBytes int64 // reserved + queued entry bytes
		end    bool  // the producer reached the ledger's last entry
		err    error // the producer failed
	}
	dataReady  chan struct{} // signalled when the queue becomes non-empty or the producer stops
	spaceReady chan struct{} // signalled when the consumer takes entries
}

func newStream(r *LedgerReader, start int64) *stream {
	s := &stream{
		r:          r,
		start:      start,
		next:       start,
		dataReady:  make(chan struct{}, 1),
		spaceReady: make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(r.ctx)
	return s
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// stop cancels the producer; it exits on its own.
func (s *stream) stop() { s.cancel() }

func (s *stream) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.err != nil
}

// run is the producer goroutine.
func (s *stream) run() {
	br := bufio.NewReaderSize(nil, s.r.opts.IOBufferSize)
	idx := s.r.idx
	var err error
	for b := idx.findBlock(s.start); b < len(idx.blocks) && err == nil; b++ {
		err = s.r.scanBlock(s.ctx, br, b, s.start, idx.lastEntryID, s)
	}
	s.mu.Lock()
	if err != nil {
		s.mu.err = err
	} else {
		s.mu.end = true
	}
	s.mu.Unlock()
	signal(s.dataReady)
}

// reserve implements entrySink: wait until the queue has room for n bytes
// (an entry larger than the budget goes alone into an empty queue).
func (s *stream) reserve(ctx context.Context, n int64) error {
	for {
		s.mu.Lock()
		if s.mu.qBytes == 0 || s.mu.qBytes+n <= s.r.streamBudget {
			s.mu.qBytes += n
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-s.spaceReady:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// emit implements entrySink.
func (s *stream) emit(e Entry) {
	s.mu.Lock()
	wasEmpty := s.mu.head == len(s.mu.q)
	s.mu.q = append(s.mu.q, e)
	s.mu.Unlock()
	if wasEmpty {
		signal(s.dataReady)
	}
}

// errStreamEnded: the stream ended before the entries a Read wanted; the
// reader validates ranges, so this means a bug or an inconsistent index.
var errStreamEnded = errors.New("read-ahead stream ended early")

// take returns entries first..last from the stream, dropping any queued
// entries before first. The caller checked s.next <= first.
func (s *stream) take(ctx context.Context, first, last int64) ([]Entry, error) {
	out := make([]Entry, 0, last-first+1)
	for s.next <= last {
		s.mu.Lock()
		avail := s.mu.q[s.mu.head:]
		if len(avail) == 0 {
			err, end := s.mu.err, s.mu.end
			s.mu.Unlock()
			if err != nil {
				return nil, err
			}
			if end {
				return nil, fmt.Errorf("entry %d: %w", s.next, errStreamEnded)
			}
			select {
			case <-s.dataReady:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		k := min(int64(len(avail)), last-s.next+1)
		var freed int64
		for _, e := range avail[:k] {
			if e.ID != s.next {
				s.mu.Unlock()
				return nil, fmt.Errorf("read-ahead stream yielded entry %d, want %d: %w", e.ID, s.next, ErrCorrupt)
			}
			if e.ID >= first {
				out = append(out, e)
			}
			freed += FrameHeaderLen + int64(len(e.Payload))
			s.next++
		}
		clear(avail[:k]) // drop references to handed-out payloads
		s.mu.head += int(k)
		if s.mu.head == len(s.mu.q) {
			s.mu.q, s.mu.head = s.mu.q[:0], 0
		} else if s.mu.head > 1024 && s.mu.head > len(s.mu.q)/2 {
			n := copy(s.mu.q, s.mu.q[s.mu.head:])
			clear(s.mu.q[n:])
			s.mu.q, s.mu.head = s.mu.q[:n], 0
		}
		s.mu.qBytes -= freed
		s.mu.Unlock()
		signal(s.spaceReady)
	}
	return out, nil
}
