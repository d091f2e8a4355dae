package managed

import (
	"fmt"
	"strconv"
	"strings"
)

// Position is an entry's place in a managed ledger: (ledgerId, entryId),
// ordered by ledger then entry. Ledger ids grow along the log. (L, -1) is the
// position just before the first entry of ledger L.
type Position struct {
	LedgerID int64 `json:"ledgerId"`
	EntryID  int64 `json:"entryId"`
}

// Compare returns -1, 0 or 1.
func (p Position) Compare(q Position) int {
	switch {
	case p.LedgerID < q.LedgerID:
		return -1
	case p.LedgerID > q.LedgerID:
		return 1
	case p.EntryID < q.EntryID:
		return -1
	case p.EntryID > q.EntryID:
		return 1
	}
	return 0
}

// Less reports p < q.
func (p Position) Less(q Position) bool { return p.Compare(q) < 0 }

// String formats p as "ledger:entry" (pulsar-admin's notation).
func (p Position) String() string { return fmt.Sprintf("%d:%d", p.LedgerID, p.EntryID) }

// ParsePosition parses "ledger:entry".
func ParsePosition(s string) (Position, error) {
	l, e, ok := strings.Cut(s, ":")
	if !ok {
		return Position{}, fmt.Errorf("%w: position %q is not ledger:entry", ErrInvalidPosition, s)
	}
	lid, err1 := strconv.ParseInt(l, 10, 64)
	eid, err2 := strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil || lid < 0 || eid < -1 {
		return Position{}, fmt.Errorf("%w: position %q", ErrInvalidPosition, s)
	}
	return Position{lid, eid}, nil
}

// maxPos returns the larger position.
func maxPos(a, b Position) Position {
	if a.Less(b) {
		return b
	}
	return a
}
