package offload

import (
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
		q      []queued
		head   int   // q[head:] are queued
		qBytes int64 // reserved + queued entry bytes
		end    bool  // the producer reached the ledger's last entry
		err    error // the producer failed
	}
	dataReady  chan struct{} // signalled when the queue becomes non-empty or the producer stops
	spaceReady chan struct{} // signalled when the consumer takes entries

	// Producer-only state: entries decoded but not yet published, and
	// budget reserved in bulk but not yet used.
	pending []queued
	credit  int64

	batch []queued // the consumer's scratch space
}

// queued is a decoded entry and its reference to the chunk it is in.
type queued struct {
	e Entry
	c *chunk
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
	cr := &chunkReader{pool: s.r.pool, beforeRead: s.flush}
	idx := s.r.idx
	var err error
	for b := idx.findBlock(s.start); b < len(idx.blocks) && err == nil; b++ {
		err = s.r.scanBlock(s.ctx, cr, b, s.start, idx.lastEntryID, s)
	}
	s.flush()
	cr.release()
	s.mu.Lock()
	if err != nil {
		s.mu.err = err
	} else {
		s.mu.end = true
	}
	s.mu.Unlock()
	signal(s.dataReady)
}

// reserve implements entrySink: take n bytes of budget, waiting for room
// (an entry larger than the budget goes alone into an empty queue). Budget
// is taken from the queue in bulk and spent locally, so the common case
// costs no lock.
func (s *stream) reserve(ctx context.Context, n int64) error {
	if s.credit >= n {
		s.credit -= n
		return nil
	}
	s.flush()
	budget := s.r.streamBudget
	for {
		s.mu.Lock()
		s.mu.qBytes -= s.credit // hand back the remainder first
		s.credit = 0
		if s.mu.qBytes == 0 || s.mu.qBytes+n <= budget {
			extra := max(0, min(budget-s.mu.qBytes-n, budget/8))
			s.mu.qBytes += n + extra
			s.credit = extra
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

// emit implements entrySink; the entry is published by the next flush.
func (s *stream) emit(e Entry, c *chunk) error {
	s.pending = append(s.pending, queued{e, c})
	return nil
}

// flush implements entrySink: publish the pending entries.
func (s *stream) flush() {
	if len(s.pending) == 0 {
		return
	}
	s.mu.Lock()
	wasEmpty := s.mu.head == len(s.mu.q)
	s.mu.q = append(s.mu.q, s.pending...)
	s.mu.Unlock()
	clear(s.pending)
	s.pending = s.pending[:0]
	if wasEmpty {
		signal(s.dataReady)
	}
}

// errStreamEnded: the stream ended before the entries a Read wanted; the
// reader validates ranges, so this means a bug or an inconsistent index.
var errStreamEnded = errors.New("read-ahead stream ended early")

// take passes entries first..last from the stream to visit, dropping any
// queued entries before first. The caller checked s.next <= first. The
// entries' bytes stay counted against the budget until visited, so a slow
// visitor holds the producer back.
func (s *stream) take(ctx context.Context, first, last int64, visit visitor) error {
	for s.next <= last {
		s.mu.Lock()
		avail := s.mu.q[s.mu.head:]
		if len(avail) == 0 {
			err, end := s.mu.err, s.mu.end
			s.mu.Unlock()
			if err != nil {
				return err
			}
			if end {
				return fmt.Errorf("entry %d: %w", s.next, errStreamEnded)
			}
			select {
			case <-s.dataReady:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		k := min(int64(len(avail)), last-s.next+1)
		s.batch = append(s.batch[:0], avail[:k]...)
		clear(avail[:k]) // the batch holds the references now
		s.mu.head += int(k)
		if s.mu.head == len(s.mu.q) {
			s.mu.q, s.mu.head = s.mu.q[:0], 0
		} else if s.mu.head > 1024 && s.mu.head > len(s.mu.q)/2 {
			n := copy(s.mu.q, s.mu.q[s.mu.head:])
			clear(s.mu.q[n:])
			s.mu.q, s.mu.head = s.mu.q[:n], 0
		}
		s.mu.Unlock()

		var freed int64
		var err error
		used, dropped := chunkRun{keep: visit.keep}, chunkRun{}
		for i, q := range s.batch {
			freed += FrameHeaderLen + int64(len(q.e.Payload))
			switch {
			case err != nil || q.e.ID < first:
				dropped.add(q.c) // after a failure, or skipped
			case q.e.ID != s.next:
				dropped.add(q.c)
				err = fmt.Errorf("read-ahead stream yielded entry %d, want %d: %w", q.e.ID, s.next, ErrCorrupt)
			default:
				used.add(q.c)
				err = visit.fn(q.e)
			}
			if err == nil {
				s.next++
			}
			s.batch[i] = queued{}
		}
		used.flush()
		dropped.flush()
		s.mu.Lock()
		s.mu.qBytes -= freed
		s.mu.Unlock()
		signal(s.spaceReady)
		if err != nil {
			return err
		}
	}
	return nil
}
