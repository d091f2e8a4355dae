package broker

import (
	"sync/atomic"
	"time"
)

// topicStats counts a topic's traffic; rates are derived per interval.
type topicStats struct {
	msgsIn, bytesIn   atomic.Int64
	msgsOut, bytesOut atomic.Int64
	acks              atomic.Int64
	publishLatency    *latencyObserver
}

func newTopicStats() *topicStats { return &topicStats{publishLatency: &latencyObserver{}} }

func (s *topicStats) published(msgs, bytes int, d time.Duration) {
	s.msgsIn.Add(int64(msgs))
	s.bytesIn.Add(int64(bytes))
	s.publishLatency.observe(d)
}

func (s *topicStats) dispatched(msgs, bytes int) {
	s.msgsOut.Add(int64(msgs))
	s.bytesOut.Add(int64(bytes))
}

func (s *topicStats) acked(n int) { s.acks.Add(int64(n)) }

// latencyObserver forwards observations to the metrics histogram once set.
type latencyObserver struct {
	fn atomic.Pointer[func(time.Duration)]
}

func (l *latencyObserver) observe(d time.Duration) {
	if f := l.fn.Load(); f != nil {
		(*f)(d)
	}
}
