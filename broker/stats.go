package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// topicStats counts a topic's traffic; rates are derived per interval.
type topicStats struct {
	entriesIn      atomic.Int64
	in, out        meter // messages and bytes published, dispatched
	acks           atomic.Int64
	publishLatency *latencyObserver
}

func newTopicStats() *topicStats { return &topicStats{publishLatency: &latencyObserver{}} }

func (s *topicStats) published(msgs, bytes int, d time.Duration) {
	s.entriesIn.Add(1)
	s.in.add(msgs, bytes)
	s.publishLatency.observe(d)
}

func (s *topicStats) dispatched(msgs, bytes int) { s.out.add(msgs, bytes) }

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

// rates are a topic's rates over the last measurement interval.
type rates struct {
	rateIn, thrIn, rateOut, thrOut float64
}

// rates returns the topic's rates, recomputed when the last measurement is
// at least 5 s old (so frequent readers do not jitter them).
func (t *Topic) rates() rates {
	var r rates
	r.rateIn, r.thrIn = t.stats.in.rates()
	r.rateOut, r.thrOut = t.stats.out.rates()
	return r
}

// meter counts messages and bytes (of a topic's traffic in or out, a
// producer, consumer or subscription) and derives their rates over windows
// of at least 5 s.
type meter struct {
	msgs, bytes atomic.Int64

	mu                  sync.Mutex
	at                  time.Time
	lastMsgs, lastBytes int64
	msgRate, byteRate   float64
}

func (m *meter) add(msgs, bytes int) {
	m.msgs.Add(int64(msgs))
	m.bytes.Add(int64(bytes))
}

// rates returns messages/s and bytes/s over the last window.
func (m *meter) rates() (msgRate, byteRate float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	msgs, bytes := m.msgs.Load(), m.bytes.Load()
	if m.at.IsZero() {
		m.at, m.lastMsgs, m.lastBytes = now, msgs, bytes
		return 0, 0
	}
	if el := now.Sub(m.at).Seconds(); el >= 5 {
		m.msgRate, m.byteRate = float64(msgs-m.lastMsgs)/el, float64(bytes-m.lastBytes)/el
		m.at, m.lastMsgs, m.lastBytes = now, msgs, bytes
	}
	return m.msgRate, m.byteRate
}
