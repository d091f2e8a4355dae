package ledger

import (
	"context"
	"fmt"
	"sync"

	"github.com/strata-mq/strata/api/bookiepb"
)

// addStream is a writer's add stream to the bookie in one ensemble slot. Its
// sender never blocks the writer: requests queue in memory and a goroutine
// writes them to the gRPC stream; another goroutine reads replies. Any
// stream failure is reported once to the writer as a bookie failure.
type addStream struct {
	w        *Writer
	slot     int
	bookieID string
	ctx      context.Context
	cancel   context.CancelFunc

	mu    sync.Mutex
	queue []*bookiepb.AddRequest
	dead  bool
	wake  chan struct{}
	// outstanding counts requests queued or sent but not yet answered.
	outstanding int
	idle        chan struct{} // closed when outstanding drops to 0, if waited on
}

func newAddStream(w *Writer, slot int, bookieID string) *addStream {
	ctx, cancel := context.WithCancel(context.Background())
	s := &addStream{w: w, slot: slot, bookieID: bookieID, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
	go s.run()
	return s
}

// send queues a request; it is dropped if the stream has failed (the
// ensemble change that follows resends what is pending).
func (s *addStream) send(req *bookiepb.AddRequest) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, req)
	s.outstanding++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *addStream) answered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outstanding--
	if s.outstanding == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// waitIdle waits until every request sent was answered (or the stream
// died), so that closing a writer does not cut off replicas still catching
// up beyond the ack quorum.
func (s *addStream) waitIdle(ctx context.Context) {
	s.mu.Lock()
	if s.dead || s.outstanding == 0 {
		s.mu.Unlock()
		return
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
	case <-s.ctx.Done():
	case <-ctx.Done():
	}
}

// stop ends the stream without reporting a failure.
func (s *addStream) stop() {
	s.mu.Lock()
	s.dead = true
	s.queue = nil
	s.mu.Unlock()
	s.cancel()
}

func (s *addStream) fail(err error) {
	s.mu.Lock()
	wasDead := s.dead
	s.dead = true
	s.queue = nil
	s.mu.Unlock()
	s.cancel()
	if !wasDead {
		s.w.bookieFailed(s, err)
	}
}

func (s *addStream) run() {
	cli, err := s.w.c.bookie(s.ctx, s.bookieID)
	if err != nil {
		s.fail(fmt.Errorf("connect bookie %s: %w", s.bookieID, err))
		return
	}
	stream, err := cli.Add(s.ctx)
	if err != nil {
		s.fail(fmt.Errorf("open add stream to bookie %s: %w", s.bookieID, err))
		return
	}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				s.fail(fmt.Errorf("bookie %s: %w", s.bookieID, err))
				return
			}
			s.answered()
			s.w.onAddResponse(s, resp)
		}
	}()
	var batch []*bookiepb.AddRequest
	for {
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
		s.mu.Lock()
		batch = append(batch[:0], s.queue...)
		clear(s.queue)
		s.queue = s.queue[:0]
		s.mu.Unlock()
		for _, req := range batch {
			if err := stream.Send(req); err != nil {
				s.fail(fmt.Errorf("send to bookie %s: %w", s.bookieID, err))
				return
			}
		}
		// The batch's backing array must not keep sent entries alive: the
		// writer holds what it still needs (pending adds).
		clear(batch)
	}
}
