package broker

import (
	"container/heap"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/ledger/managed"
)

// delayIndex holds the positions of delayed messages (DeliverAt /
// DeliverAfter) of a Shared or Key_Shared subscription until they are due;
// payloads stay in the log, so an entry costs 32 bytes of memory. The index
// needs no persistence: delayed messages are unacknowledged, so a new owner
// reads them again from the cursor and re-indexes them.
type delayIndex []delayed

type delayed struct {
	at     int64 // Unix ms
	ledger int64
	entry  int64
	key    uint32
	hasKey bool
}

func (h delayIndex) Len() int           { return len(h) }
func (h delayIndex) Less(i, j int) bool { return h[i].at < h[j].at }
func (h delayIndex) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayIndex) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *delayIndex) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// delayLocked records a delayed entry. s.mu must be held.
func (s *Subscription) delayLocked(it replayItem, at int64) {
	heap.Push(&s.mu.delayed, delayed{at: at, ledger: it.pos.LedgerID, entry: it.pos.EntryID, key: it.key, hasKey: it.hasKey})
}

// releaseDueLocked moves due entries to the replay queue and returns when
// the next one is due (zero if none). s.mu must be held.
func (s *Subscription) releaseDueLocked(now time.Time) time.Time {
	ms := now.UnixMilli()
	for len(s.mu.delayed) > 0 && s.mu.delayed[0].at <= ms {
		d := heap.Pop(&s.mu.delayed).(delayed)
		s.addReplayLocked(replayItem{pos: managed.Position{LedgerID: d.ledger, EntryID: d.entry}, key: d.key, hasKey: d.hasKey})
	}
	if len(s.mu.delayed) == 0 {
		return time.Time{}
	}
	return time.UnixMilli(s.mu.delayed[0].at)
}

// supportsDelay: delayed delivery applies to Shared and Key_Shared
// subscriptions (others deliver at once, as Pulsar).
func (s *Subscription) supportsDelayLocked() bool {
	return s.mu.subType == clientpb.SubscriptionType_SHARED || s.mu.subType == clientpb.SubscriptionType_KEY_SHARED
}
