package bookie

import (
	"sync"

	"github.com/strata-mq/strata/api/bookiepb"
)

// ledgerState is the in-memory view of one ledger on this bookie. The journal
// goroutine is the only writer; RPC handlers read it under ledgers.mu.
type ledgerState struct {
	known     bool // a record exists (persisted or in the group being committed)
	rec       ledgerRecord
	lac       int64 // max piggybacked LAC over durable entries
	lastEntry int64 // highest durable entry id, -1 if none
	// watchers are closed when lac advances (long-poll WaitLAC).
	watchers []chan struct{}
}

// ledgers caches ledger states, loading them from storage on first use.
type ledgers struct {
	st *store
	mu struct {
		sync.Mutex
		m map[int64]*ledgerState
	}
}

func newLedgers(st *store) *ledgers {
	l := &ledgers{st: st}
	l.mu.m = make(map[int64]*ledgerState)
	return l
}

// get returns the state of a ledger, loading it from storage when it is not
// cached, and caches it. The returned pointer stays valid until the ledger
// is dropped; read its fields under l.mu. The journal (which makes ledgers
// known) and long polls (whose watchers must be found) use it; reads use
// snapshot, which does not cache ledgers this bookie does not have, so that
// asking for arbitrary ids does not grow the cache.
func (l *ledgers) get(id int64) (*ledgerState, error) {
	return l.lookup(id, true)
}

func (l *ledgers) lookup(id int64, cacheUnknown bool) (*ledgerState, error) {
	l.mu.Lock()
	s, ok := l.mu.m[id]
	l.mu.Unlock()
	if ok {
		return s, nil
	}
	// Load outside the lock; a concurrent loader may win, both read the same data.
	rec, known, err := l.st.ledgerRecord(id)
	if err != nil {
		return nil, err
	}
	s = &ledgerState{known: known, rec: rec, lac: -1, lastEntry: -1}
	if known {
		last, body, err := l.st.lastEntry(id)
		if err != nil {
			return nil, err
		}
		s.lastEntry = last
		if last >= 0 {
			if h, err := bookiepb.ParseEntryHeader(body); err == nil {
				s.lac = h.LAC
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.mu.m[id]; ok {
		return cur, nil
	}
	if known || cacheUnknown {
		l.mu.m[id] = s
	}
	return s, nil
}

// snapshot returns (known, fenced, lac, lastEntry) of a ledger.
func (l *ledgers) snapshot(id int64) (known, fenced bool, lac, last int64, err error) {
	s, err := l.lookup(id, false)
	if err != nil {
		return false, false, -1, -1, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return s.known, s.rec.fenced, s.lac, s.lastEntry, nil
}

// advance records a durable entry and wakes LAC watchers if the LAC moved.
func (l *ledgers) advance(s *ledgerState, entryID, lac int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if entryID > s.lastEntry {
		s.lastEntry = entryID
	}
	if lac > s.lac {
		s.lac = lac
		for _, w := range s.watchers {
			close(w)
		}
		s.watchers = nil
	}
}

// watch returns the current LAC and, when it is not above prev, a channel
// closed on the next advance.
func (l *ledgers) watch(s *ledgerState, prev int64) (int64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.lac > prev {
		return s.lac, nil
	}
	w := make(chan struct{})
	s.watchers = append(s.watchers, w)
	return s.lac, w
}

// unwatch removes a long poll's watcher that was not woken (timeout, caller
// gone), and the state of a ledger this bookie does not have once nobody
// watches it.
func (l *ledgers) unwatch(id int64, s *ledgerState, w <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range s.watchers {
		if c == w {
			s.watchers = append(s.watchers[:i], s.watchers[i+1:]...)
			break
		}
	}
	if !s.known && len(s.watchers) == 0 && l.mu.m[id] == s {
		delete(l.mu.m, id)
	}
}

// counts returns how many ledger states are cached and how many long polls
// wait on them.
func (l *ledgers) counts() (states, watchers int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.mu.m {
		watchers += len(s.watchers)
	}
	return len(l.mu.m), watchers
}

// forget drops cached states (after their data was deleted), waking watchers.
func (l *ledgers) forget(ids []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if s, ok := l.mu.m[id]; ok {
			for _, w := range s.watchers {
				close(w)
			}
			delete(l.mu.m, id)
		}
	}
}
