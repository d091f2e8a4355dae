package managed

import (
	"sort"
)

// LedgerStats describes one ledger of the log.
type LedgerStats struct {
	LedgerID  int64  `json:"ledgerId"`
	Entries   int64  `json:"entries"`
	Size      int64  `json:"size"`
	State     string `json:"state"` // "open" for the current ledger, else "closed"
	Offloaded bool   `json:"offloaded"`
	// OnBookies is false once an offloaded ledger's bookie copy was deleted.
	OnBookies bool `json:"onBookies"`
}

// CursorStats describes one cursor.
type CursorStats struct {
	Name         string   `json:"name"`
	Durable      bool     `json:"durable"`
	MarkDelete   Position `json:"markDeletePosition"`
	ReadPosition Position `json:"readPosition"`
	AckRanges    int      `json:"individuallyDeletedMessageRanges"`
	Backlog      int64    `json:"backlog"`
	Active       bool     `json:"active"`
}

// Stats is a snapshot of the managed ledger.
type Stats struct {
	Name          string        `json:"name"`
	State         string        `json:"state"`
	Entries       int64         `json:"numberOfEntries"`
	Size          int64         `json:"totalSize"`
	OffloadedSize int64         `json:"offloadedSize"`
	LastConfirmed Position      `json:"lastConfirmedEntry"`
	Terminated    *Position     `json:"terminatedPosition,omitempty"`
	Ledgers       []LedgerStats `json:"ledgers"`
	Cursors       []CursorStats `json:"cursors"`
	Cache         CacheStats    `json:"cache"`
	Offload       OffloadStats  `json:"offload"`
}

var stateNames = map[mlState]string{
	stateOpen: "LedgerOpened", stateRolling: "ClosingLedger", stateNoLedger: "WriteFailed",
	stateTerminated: "Terminated", stateFenced: "Fenced", stateClosed: "Closed",
}

// Stats returns a snapshot of the log, its ledgers and cursors.
func (ml *ManagedLedger) Stats() Stats {
	ml.mu.Lock()
	st := Stats{Name: ml.name, State: stateNames[ml.mu.state], LastConfirmed: ml.mu.lastConfirmed, Terminated: ml.mu.info.Terminated}
	for _, li := range ml.mu.info.Ledgers {
		ls := LedgerStats{LedgerID: li.LedgerID, Entries: li.Entries, Size: li.Size, State: "closed", OnBookies: true}
		if ml.mu.writer != nil && li.LedgerID == ml.mu.cur.id {
			ls.Entries, ls.Size, ls.State = ml.mu.cur.entries, ml.mu.cur.size, "open"
		}
		if li.Offload != nil && li.Offload.Complete {
			ls.Offloaded = true
			st.OffloadedSize += li.Size
			ls.OnBookies = !li.Offload.BookieDeleted
		}
		if ls.Offloaded {
			st.Offload.OffloadedLedgers++
		} else {
			st.Offload.NotOffloadedSize += ls.Size
		}
		if ls.OnBookies {
			st.Offload.BookieSize += ls.Size
		}
		st.Entries += ls.Entries
		st.Size += ls.Size
		st.Ledgers = append(st.Ledgers, ls)
	}
	cursors := make([]*Cursor, 0, len(ml.mu.cursors))
	for _, c := range ml.mu.cursors {
		cursors = append(cursors, c)
	}
	ml.mu.Unlock()
	for _, c := range cursors {
		c.mu.Lock()
		cs := CursorStats{Name: c.name, Durable: c.durable, MarkDelete: c.mu.markDelete, ReadPosition: c.mu.readPos,
			AckRanges: c.mu.acked.len(), Active: c.mu.active}
		c.mu.Unlock()
		cs.Backlog = c.Backlog()
		st.Cursors = append(st.Cursors, cs)
	}
	sort.Slice(st.Cursors, func(i, j int) bool { return st.Cursors[i].Name < st.Cursors[j].Name })
	st.Cache = ml.cache.stats()
	ml.offloadCounters(&st.Offload)
	return st
}
