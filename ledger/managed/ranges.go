package managed

import "sort"

// ackRange is a closed interval of entry ids of one ledger.
type ackRange struct {
	LedgerID int64
	From, To int64 // inclusive
}

func (r ackRange) lo() Position { return Position{r.LedgerID, r.From} }
func (r ackRange) hi() Position { return Position{r.LedgerID, r.To} }

// rangeSet is a sorted set of disjoint, non-adjacent ack ranges: the
// individually acknowledged positions above a cursor's mark-delete position.
// Ranges never span ledgers.
type rangeSet struct {
	rs []ackRange
}

// contains reports whether p is in the set.
func (s *rangeSet) contains(p Position) bool {
	i := s.search(p)
	return i < len(s.rs) && s.rs[i].LedgerID == p.LedgerID && s.rs[i].From <= p.EntryID
}

// search returns the index of the first range whose end is >= p.
func (s *rangeSet) search(p Position) int {
	return sort.Search(len(s.rs), func(i int) bool { return !s.rs[i].hi().Less(p) })
}

// add inserts one position, merging with adjacent ranges of the same ledger.
// It reports whether p was new.
func (s *rangeSet) add(p Position) bool {
	i := s.search(p)
	if i < len(s.rs) && s.rs[i].LedgerID == p.LedgerID && s.rs[i].From <= p.EntryID {
		return false
	}
	joinPrev := i > 0 && s.rs[i-1].LedgerID == p.LedgerID && s.rs[i-1].To == p.EntryID-1
	joinNext := i < len(s.rs) && s.rs[i].LedgerID == p.LedgerID && s.rs[i].From == p.EntryID+1
	switch {
	case joinPrev && joinNext:
		s.rs[i-1].To = s.rs[i].To
		s.rs = append(s.rs[:i], s.rs[i+1:]...)
	case joinPrev:
		s.rs[i-1].To = p.EntryID
	case joinNext:
		s.rs[i].From = p.EntryID
	default:
		s.rs = append(s.rs, ackRange{})
		copy(s.rs[i+1:], s.rs[i:])
		s.rs[i] = ackRange{p.LedgerID, p.EntryID, p.EntryID}
	}
	return true
}

// removeUpTo drops every position <= p.
func (s *rangeSet) removeUpTo(p Position) {
	i := 0
	for i < len(s.rs) && !p.Less(s.rs[i].hi()) {
		i++
	}
	s.rs = s.rs[i:]
	if len(s.rs) > 0 && s.rs[0].LedgerID == p.LedgerID && s.rs[0].From <= p.EntryID {
		s.rs[0].From = p.EntryID + 1
	}
}

// first returns the lowest range.
func (s *rangeSet) first() (ackRange, bool) {
	if len(s.rs) == 0 {
		return ackRange{}, false
	}
	return s.rs[0], true
}

// count returns the number of positions in the set.
func (s *rangeSet) count() int64 {
	var n int64
	for _, r := range s.rs {
		n += r.To - r.From + 1
	}
	return n
}

// countIn returns how many positions of the set lie within [lo, hi].
func (s *rangeSet) countIn(lo, hi Position) int64 {
	var n int64
	for _, r := range s.rs {
		if r.hi().Less(lo) {
			continue
		}
		if hi.Less(r.lo()) {
			break
		}
		from, to := r.From, r.To
		if r.LedgerID == lo.LedgerID && from < lo.EntryID {
			from = lo.EntryID
		}
		if r.LedgerID == hi.LedgerID && to > hi.EntryID {
			to = hi.EntryID
		}
		if to >= from {
			n += to - from + 1
		}
	}
	return n
}

func (s *rangeSet) clear() { s.rs = nil }

func (s *rangeSet) len() int { return len(s.rs) }
