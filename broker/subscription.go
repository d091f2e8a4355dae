package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/ledger/managed"
)

// maxReplay bounds the entries waiting for redelivery (or for their key's
// consumer); above it the dispatcher stops reading new entries.
const maxReplay = 10000

// Subscription dispatches a cursor's entries to its consumers with the
// semantics of its type:
//   - Exclusive: one consumer; another is rejected.
//   - Failover: one active consumer (lowest priority level, then name; for
//     partition i the i-th), the others stand by and take over on disconnect.
//   - Shared: round-robin over consumers with permits; no ordering; a gone
//     consumer's unacknowledged entries go to the others.
//   - Key_Shared: an entry's key picks its consumer on a hash ring; an entry
//     is held back while earlier entries of its key are unacknowledged at
//     another consumer, so per-key order survives consumers joining/leaving.
//
// One goroutine (run) dispatches; consumers add permits, acks and
// redelivery requests from their own goroutines under mu.
type Subscription struct {
	t       *Topic
	name    string
	cursor  *managed.Cursor
	durable bool
	log     *slog.Logger

	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	limits dispatchLimits
	// stopped is cancelled with stop: it interrupts the dispatcher's waits
	// (dispatch rate, reads) without a watcher goroutine per round.
	stopped    context.Context
	cancelStop context.CancelFunc

	redelivered meter // messages put back for redelivery

	// replicated: the subscription's position is kept in step with the
	// clusters the topic replicates to (replsubs.go).
	replicated atomic.Bool

	mu struct {
		sync.Mutex
		subType   clientpb.SubscriptionType
		typeSet   bool
		consumers []*Consumer
		active    *Consumer
		pending   map[managed.Position]*delivery
		replay    []replayItem // sorted by position
		// reordered counts insertions into replay ahead of its last
		// entry (redeliveries), which make a snapshot of replay stale.
		reordered    uint64
		replayKeys   map[uint32]int
		redeliveries map[managed.Position]uint32
		flights      map[uint32]*keyFlight
		delayed      delayIndex
		nextDue      time.Time // when the earliest delayed entry is due
		// readRetry is when a read that failed (bookies unreachable) is
		// tried again; readBackoff the wait before that, doubled per failure.
		readRetry   time.Time
		readBackoff time.Duration
		ring        []ringPoint
		rr          int
		closed      bool
		// snapshots are the snapshot markers a replicated subscription
		// read and has not consumed past yet, oldest first.
		snapshots []snapshotAt
		// snapshotRead: a snapshot marker was read since the last check.
		snapshotRead bool
	}
}

type delivery struct {
	c      *Consumer
	n      int
	key    uint32
	hasKey bool
}

type replayItem struct {
	pos    managed.Position
	key    uint32
	hasKey bool
}

type keyFlight struct {
	c     *Consumer
	count int
}

type ringPoint struct {
	hash uint32
	c    *Consumer
}

func newSubscription(t *Topic, c *managed.Cursor) *Subscription {
	s := &Subscription{t: t, name: c.Name(), cursor: c, durable: c.Durable(), log: t.log.With("subscription", c.Name()),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.stopped, s.cancelStop = context.WithCancel(context.Background())
	s.mu.pending = make(map[managed.Position]*delivery)
	s.mu.replayKeys = make(map[uint32]int)
	s.mu.redeliveries = make(map[managed.Position]uint32)
	s.mu.flights = make(map[uint32]*keyFlight)
	s.updateDispatchRate(t.policies())
	if s.durable && c.Properties()[replicatedSubProp] == 1 {
		s.replicated.Store(true)
	}
	go s.run()
	return s
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// A failed read is retried after minReadRetry, doubling per failure up to
// maxReadRetry, even when nothing else wakes the dispatcher.
const (
	minReadRetry = 100 * time.Millisecond
	maxReadRetry = 5 * time.Second
)

// run is the dispatch loop.
func (s *Subscription) run() {
	defer close(s.done)
	for {
		dataWait := s.t.ml.Wait()
		progress, wantData := s.dispatch()
		s.mu.Lock()
		read := s.mu.snapshotRead
		s.mu.snapshotRead = false
		s.mu.Unlock()
		if read {
			s.syncReplicated()
		}
		if progress {
			continue
		}
		var data <-chan struct{}
		if wantData {
			data = dataWait
		}
		var due <-chan time.Time
		s.mu.Lock()
		at := s.mu.nextDue
		if r := s.mu.readRetry; !r.IsZero() && (at.IsZero() || r.Before(at)) {
			at = r
		}
		if !at.IsZero() {
			due = time.After(time.Until(at))
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-data:
		case <-due:
		case <-s.stop:
			return
		}
	}
}

// stopDispatcher ends the dispatch loop.
func (s *Subscription) stopDispatcher() {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return
	}
	s.mu.closed = true
	s.mu.Unlock()
	s.cancelStop()
	close(s.stop)
	<-s.done
}

// close disconnects every consumer with cause and stops dispatching.
func (s *Subscription) close(cause error) {
	s.mu.Lock()
	consumers := append([]*Consumer(nil), s.mu.consumers...)
	s.mu.Unlock()
	for _, c := range consumers {
		c.kill(cause)
	}
	s.stopDispatcher()
	s.cursor.Close()
	if !s.durable {
		s.t.mu.Lock()
		delete(s.t.mu.readers, s)
		s.t.mu.Unlock()
	}
}

// takersLocked returns the consumers entries may go to now: with permits
// and room in their outbox (a consumer that does not read its stream stops
// getting entries once its outbox holds MaxConsumerOutboxBytes, whatever
// permits it granted). s.mu must be held.
func (s *Subscription) takersLocked() []*Consumer {
	var cs []*Consumer
	switch s.mu.subType {
	case clientpb.SubscriptionType_EXCLUSIVE, clientpb.SubscriptionType_FAILOVER:
		if s.mu.active != nil {
			cs = []*Consumer{s.mu.active}
		}
	default:
		cs = s.mu.consumers
	}
	out := cs[:0:0]
	for _, c := range cs {
		if c.canTake() {
			out = append(out, c)
		}
	}
	return out
}

// budgetLocked returns the permits and the outbox room (bytes) of the
// consumers entries may go to now. s.mu must be held.
func (s *Subscription) budgetLocked() (permits, room int64) {
	for _, c := range s.takersLocked() {
		permits += c.permits
		room += c.out.room()
	}
	return permits, room
}

// dispatch sends what it can: first entries to redeliver, then new ones.
// progress reports that something was sent; wantData that the dispatcher
// waits for new entries (it has permits but read nothing).
func (s *Subscription) dispatch() (progress, wantData bool) {
	s.mu.Lock()
	if s.mu.closed || len(s.mu.consumers) == 0 {
		s.mu.Unlock()
		return false, false
	}
	s.mu.nextDue = s.releaseDueLocked(time.Now())
	permits, room := s.budgetLocked()
	if permits <= 0 {
		s.mu.Unlock()
		return false, false
	}
	batch := int(min(permits, int64(s.t.b.opts.DispatchBatch)))
	readBytes := min(room, 8<<20)
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(s.stopped, 30*time.Second) // stopping interrupts a wait on the dispatch rate
	defer cancel()
	batch, err := s.dispatchBudget(ctx, batch)
	if err != nil {
		return false, false
	}
	s.mu.Lock()
	replay := append([]replayItem(nil), s.mu.replay[:min(len(s.mu.replay), batch)]...)
	replayFull := len(s.mu.replay) >= maxReplay
	reordered := s.mu.reordered
	s.mu.Unlock()
	if len(replay) > 0 {
		if s.dispatchReplay(ctx, replay, reordered) {
			return true, false
		}
	}
	if replayFull {
		return false, false
	}
	entries, err := s.cursor.Read(ctx, batch, readBytes)
	if err != nil {
		if !errors.Is(err, managed.ErrClosed) {
			s.mu.Lock()
			s.mu.readBackoff = min(max(2*s.mu.readBackoff, minReadRetry), maxReadRetry)
			s.mu.readRetry = time.Now().Add(s.mu.readBackoff)
			s.log.Warn("read failed; retrying", "err", err, "in", s.mu.readBackoff)
			s.mu.Unlock()
		}
		return false, false
	}
	s.mu.Lock()
	s.mu.readRetry, s.mu.readBackoff = time.Time{}, 0
	s.mu.Unlock()
	if len(entries) == 0 {
		return false, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		md, payload, err := pulsarpb.DecodeEntry(e.Data)
		if err != nil {
			s.log.Error("skipping undecodable entry", "position", e.Position, "err", err)
			continue
		}
		if isMarker(md) {
			// The broker's own: never delivered, acknowledged here.
			if pulsarpb.MarkerType(md.GetMarkerType()) == pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_SNAPSHOT {
				s.onSnapshotMarkerLocked(e.Position, payload)
			}
			if s.durable {
				if err := s.cursor.Ack(e.Position); err != nil {
					s.log.Warn("acknowledge a marker", "position", e.Position, "err", err)
				}
			}
			s.mu.snapshotRead = true
			progress = true
			continue
		}
		item := replayItem{pos: e.Position}
		if s.mu.subType == clientpb.SubscriptionType_KEY_SHARED {
			item.key, item.hasKey = keyHash(md.Key()), true
		}
		if at := md.GetDeliverAtTime(); at > time.Now().UnixMilli() && s.supportsDelayLocked() {
			s.delayLocked(item, at)
			if due := time.UnixMilli(at); s.mu.nextDue.IsZero() || due.Before(s.mu.nextDue) {
				s.mu.nextDue = due
			}
			progress = true // consumed from the cursor: keep reading
			continue
		}
		if item.hasKey {
			if s.mu.replayKeys[item.key] > 0 {
				s.addReplayLocked(item) // earlier entries of this key wait: keep order
				continue
			}
		}
		if s.sendLocked(item, e.Data, md) {
			progress = true
		} else {
			s.addReplayLocked(item)
		}
	}
	return progress, false
}

// dispatchReplay sends entries waiting for (re)delivery, oldest first. It
// stops at the first entry it cannot send — except on Key_Shared, where only
// later entries of the same key must wait — so that permits arriving midway
// never let a later entry overtake an earlier one. It also stops when an
// entry was put back ahead of the snapshot (a consumer left or asked for
// redelivery meanwhile): that entry goes first, on the next round.
func (s *Subscription) dispatchReplay(ctx context.Context, items []replayItem, reordered uint64) bool {
	sent := false
	held := map[uint32]bool{}
	for _, it := range items {
		if it.hasKey && held[it.key] {
			continue
		}
		if s.cursor.IsAcked(it.pos) {
			s.mu.Lock()
			s.removeReplayLocked(it.pos)
			s.mu.Unlock()
			continue
		}
		es, _, err := s.t.ml.Read(ctx, it.pos, 1, 1)
		if err != nil || len(es) == 0 || es[0].Position != it.pos {
			// Gone (trimmed, expired): nothing to redeliver.
			s.mu.Lock()
			s.removeReplayLocked(it.pos)
			s.mu.Unlock()
			continue
		}
		md, err := pulsarpb.DecodeMetadata(es[0].Data)
		s.mu.Lock()
		if s.mu.reordered != reordered {
			s.mu.Unlock()
			return true // progress of a kind: dispatch again from the new head
		}
		if s.mu.closed || !s.inReplayLocked(it.pos) {
			s.mu.Unlock()
			continue
		}
		switch {
		case err != nil:
			s.removeReplayLocked(it.pos) // undecodable: cannot be delivered
		case s.sendLocked(it, es[0].Data, md):
			s.removeReplayLocked(it.pos)
			sent = true
		case it.hasKey:
			held[it.key] = true
		default:
			s.mu.Unlock()
			return sent
		}
		s.mu.Unlock()
	}
	return sent
}

// sendLocked hands an entry to the consumer its subscription type picks, if
// that consumer has permits and (Key_Shared) the key is free. s.mu must be held.
func (s *Subscription) sendLocked(it replayItem, entry []byte, md *pulsarpb.MessageMetadata) bool {
	c := s.pickLocked(it)
	if c == nil {
		return false
	}
	n := md.MessagesIn(len(entry))
	c.permits -= int64(n)
	d := &delivery{c: c, n: n, key: it.key, hasKey: it.hasKey}
	s.mu.pending[it.pos] = d
	c.unacked += n
	if it.hasKey {
		f := s.mu.flights[it.key]
		if f == nil {
			f = &keyFlight{c: c}
			s.mu.flights[it.key] = f
		}
		f.c = c
		f.count++
	}
	// Permits count every message of the entry: consumers give back the
	// ones an ack set makes them skip. Only batches have ack sets.
	var ackSet []int64
	if md.IsBatch() {
		ackSet = s.cursor.BatchAckSet(it.pos)
	}
	c.deliver(it.pos, entry, n, s.mu.redeliveries[it.pos], ackSet)
	s.charge(n, len(entry))
	return true
}

// pickLocked chooses the consumer for an entry, or nil to hold it back.
func (s *Subscription) pickLocked(it replayItem) *Consumer {
	switch s.mu.subType {
	case clientpb.SubscriptionType_EXCLUSIVE, clientpb.SubscriptionType_FAILOVER:
		if c := s.mu.active; c != nil && c.canTake() {
			return c
		}
		return nil
	case clientpb.SubscriptionType_SHARED:
		n := len(s.mu.consumers)
		for i := 0; i < n; i++ {
			c := s.mu.consumers[(s.mu.rr+i)%n]
			if c.canTake() {
				s.mu.rr = (s.mu.rr + i + 1) % n
				return c
			}
		}
		return nil
	case clientpb.SubscriptionType_KEY_SHARED:
		c := s.ringLookupLocked(it.key)
		if c == nil || !c.canTake() {
			return nil
		}
		if f := s.mu.flights[it.key]; f != nil && f.count > 0 && f.c != c {
			return nil // earlier entries of the key are still at another consumer
		}
		return c
	}
	return nil
}

func (s *Subscription) addReplayLocked(it replayItem) {
	i := sort.Search(len(s.mu.replay), func(i int) bool { return !s.mu.replay[i].pos.Less(it.pos) })
	if i < len(s.mu.replay) && s.mu.replay[i].pos == it.pos {
		return
	}
	if i < len(s.mu.replay) {
		s.mu.reordered++
	}
	s.mu.replay = append(s.mu.replay, replayItem{})
	copy(s.mu.replay[i+1:], s.mu.replay[i:])
	s.mu.replay[i] = it
	if it.hasKey {
		s.mu.replayKeys[it.key]++
	}
}

func (s *Subscription) inReplayLocked(p managed.Position) bool {
	i := sort.Search(len(s.mu.replay), func(i int) bool { return !s.mu.replay[i].pos.Less(p) })
	return i < len(s.mu.replay) && s.mu.replay[i].pos == p
}

func (s *Subscription) removeReplayLocked(p managed.Position) {
	i := sort.Search(len(s.mu.replay), func(i int) bool { return !s.mu.replay[i].pos.Less(p) })
	if i < len(s.mu.replay) && s.mu.replay[i].pos == p {
		if it := s.mu.replay[i]; it.hasKey {
			if s.mu.replayKeys[it.key]--; s.mu.replayKeys[it.key] <= 0 {
				delete(s.mu.replayKeys, it.key)
			}
		}
		s.mu.replay = append(s.mu.replay[:i], s.mu.replay[i+1:]...)
	}
}

// settleLocked forgets a delivery (acknowledged or moved to replay).
func (s *Subscription) settleLocked(p managed.Position) *delivery {
	d, ok := s.mu.pending[p]
	if !ok {
		return nil
	}
	delete(s.mu.pending, p)
	d.c.unacked -= d.n
	if d.hasKey {
		if f := s.mu.flights[d.key]; f != nil {
			if f.count--; f.count <= 0 {
				delete(s.mu.flights, d.key)
			}
		}
	}
	return d
}

// redeliverLocked moves a delivery back to replay, counting the redelivery.
func (s *Subscription) redeliverLocked(p managed.Position) {
	if d := s.settleLocked(p); d != nil {
		s.mu.redeliveries[p]++
		s.redelivered.add(1, 0)
		s.addReplayLocked(replayItem{pos: p, key: d.key, hasKey: d.hasKey})
	}
}

// rebuildRingLocked places every consumer on the hash ring (100 points each).
func (s *Subscription) rebuildRingLocked() {
	s.mu.ring = s.mu.ring[:0]
	for _, c := range s.mu.consumers {
		for i := 0; i < 100; i++ {
			s.mu.ring = append(s.mu.ring, ringPoint{hash: keyHash(fmt.Sprintf("%s#%d#%d", c.name, c.id, i)), c: c})
		}
	}
	sort.Slice(s.mu.ring, func(i, j int) bool { return s.mu.ring[i].hash < s.mu.ring[j].hash })
}

func (s *Subscription) ringLookupLocked(h uint32) *Consumer {
	if len(s.mu.ring) == 0 {
		return nil
	}
	i := sort.Search(len(s.mu.ring), func(i int) bool { return s.mu.ring[i].hash >= h })
	if i == len(s.mu.ring) {
		i = 0
	}
	return s.mu.ring[i].c
}
