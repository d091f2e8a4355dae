package managed

import (
	"context"
	"fmt"
	"sort"

	"github.com/strata-mq/strata/ledger"
)

// ledgerView is a snapshot of one ledger's extent for positioning.
type ledgerView struct {
	id      int64
	entries int64 // for the current ledger: entries confirmed so far
	current bool
}

// currentLocked returns the id and size of the ledger being written, or -1
// and 0 when there is none: between a rollover and the next ledger's
// creation ml.mu.cur still describes the closed ledger, which must not count
// twice. ml.mu must be held.
func (ml *ManagedLedger) currentLocked() (id, size int64) {
	if ml.mu.writer == nil {
		return -1, 0
	}
	return ml.mu.cur.id, ml.mu.cur.size
}

// viewLocked returns the ledgers of the log with their confirmed extents.
// ml.mu must be held.
func (ml *ManagedLedger) viewLocked() []ledgerView {
	out := make([]ledgerView, 0, len(ml.mu.info.Ledgers))
	for _, li := range ml.mu.info.Ledgers {
		v := ledgerView{id: li.LedgerID, entries: li.Entries}
		if ml.mu.writer != nil && li.LedgerID == ml.mu.cur.id {
			v.entries, v.current = ml.mu.cur.entries, true
		}
		out = append(out, v)
	}
	return out
}

// normalizeLocked moves p to the first valid position at or after it: past
// the end of a ledger to the start of the next non-empty one, and out of
// deleted ledgers. ml.mu must be held.
func (ml *ManagedLedger) normalizeLocked(p Position) Position {
	view := ml.viewLocked()
	i := sort.Search(len(view), func(i int) bool { return view[i].id >= p.LedgerID })
	if i < len(view) && view[i].id == p.LedgerID {
		if p.EntryID < view[i].entries || view[i].current {
			return Position{p.LedgerID, max(p.EntryID, 0)}
		}
		i++
	} else {
		p.EntryID = 0
	}
	for ; i < len(view); i++ {
		if view[i].entries > 0 || view[i].current {
			return Position{view[i].id, 0}
		}
	}
	// Past the end of the log: the next entry to be written.
	lc := ml.mu.lastConfirmed
	return Position{lc.LedgerID, lc.EntryID + 1}
}

// nextLocked returns the first valid position after p. ml.mu must be held.
func (ml *ManagedLedger) nextLocked(p Position) Position {
	return ml.normalizeLocked(Position{p.LedgerID, p.EntryID + 1})
}

// firstPositionLocked returns the position of the first entry of the log
// (or where it will be). ml.mu must be held.
func (ml *ManagedLedger) firstPositionLocked() Position {
	if len(ml.mu.info.Ledgers) == 0 {
		return ml.normalizeLocked(Position{0, 0})
	}
	return ml.normalizeLocked(Position{ml.mu.info.Ledgers[0].LedgerID, 0})
}

// countLocked returns how many entries lie in (after, upTo]. ml.mu must be held.
func (ml *ManagedLedger) countLocked(after, upTo Position) int64 {
	var n int64
	for _, v := range ml.viewLocked() {
		if v.id < after.LedgerID || v.id > upTo.LedgerID {
			continue
		}
		lo, hi := int64(0), v.entries-1
		if v.id == after.LedgerID {
			lo = max(lo, after.EntryID+1)
		}
		if v.id == upTo.LedgerID {
			hi = min(hi, upTo.EntryID)
		}
		if hi >= lo {
			n += hi - lo + 1
		}
	}
	return n
}

// existsLocked reports whether p is an entry of the log. ml.mu must be held.
func (ml *ManagedLedger) existsLocked(p Position) bool {
	if p.EntryID < 0 || ml.mu.lastConfirmed.Less(p) {
		return false
	}
	for _, v := range ml.viewLocked() {
		if v.id == p.LedgerID {
			return p.EntryID < v.entries
		}
	}
	return false
}

// Read returns up to maxEntries entries (and roughly maxBytes) starting at
// the first valid position at or after from, and the position after the
// last one returned. It returns no entries when from is past the end.
func (ml *ManagedLedger) Read(ctx context.Context, from Position, maxEntries int, maxBytes int64) ([]Entry, Position, error) {
	var out []Entry
	var size int64
	for len(out) < maxEntries && size < maxBytes {
		ml.mu.Lock()
		if ml.mu.state == stateClosed {
			ml.mu.Unlock()
			return out, from, fmt.Errorf("%w: %s", ErrClosed, ml.name)
		}
		from = ml.normalizeLocked(from)
		lc := ml.mu.lastConfirmed
		if lc.Less(from) {
			ml.mu.Unlock()
			break
		}
		var last int64
		var w *ledger.Writer
		var li LedgerInfo
		for _, v := range ml.viewLocked() {
			if v.id == from.LedgerID {
				last = v.entries - 1
				if v.current {
					w = ml.mu.writer
				}
			}
		}
		for _, l := range ml.mu.info.Ledgers {
			if l.LedgerID == from.LedgerID {
				li = l
			}
		}
		ml.mu.Unlock()

		n := min(int64(maxEntries-len(out)), last-from.EntryID+1)
		batch, ok := ml.cache.get(from, int(n), maxBytes-size)
		if !ok {
			var err error
			if batch, err = ml.readLedger(ctx, li, w, from.EntryID, from.EntryID+n-1); err != nil {
				return out, from, err
			}
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			out = append(out, e)
			size += int64(len(e.Data))
		}
		lastRead := batch[len(batch)-1].Position
		from = Position{lastRead.LedgerID, lastRead.EntryID + 1}
	}
	return out, from, nil
}

// readLedger reads entries first..last of one ledger from bookies or, for
// offloaded ledgers, the object store (see readOffloaded).
func (ml *ManagedLedger) readLedger(ctx context.Context, li LedgerInfo, w *ledger.Writer, first, last int64) ([]Entry, error) {
	if w == nil && offloaded(li) && (ml.canReadOffload(li.Offload) || li.Offload.BookieDeleted) {
		out, err := ml.readOffloaded(ctx, li, first, last)
		if err != nil {
			return nil, fmt.Errorf("managed ledger %s: read offloaded ledger %d: %w", ml.name, li.LedgerID, err)
		}
		return out, nil
	}
	var es []ledger.Entry
	var err error
	if w != nil {
		es, err = w.Read(ctx, first, last)
	} else {
		var r *ledger.Reader
		if r, err = ml.reader(ctx, li.LedgerID); err == nil {
			es, err = r.Read(ctx, first, last)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("managed ledger %s: read ledger %d entries %d..%d: %w", ml.name, li.LedgerID, first, last, err)
	}
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = Entry{Position: Position{li.LedgerID, e.ID}, Data: e.Payload}
	}
	return out, nil
}

// reader returns a cached read handle for a closed ledger.
func (ml *ManagedLedger) reader(ctx context.Context, id int64) (*ledger.Reader, error) {
	ml.mu.Lock()
	r, ok := ml.mu.readers[id]
	ml.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := ml.opts.Ledgers.Open(ctx, id, ml.opts.Password)
	if err != nil {
		return nil, err
	}
	if !r.IsClosed() {
		// Recorded closed in our list but still OPEN in its own metadata
		// (its close failed): it must be recovered before reading.
		if r, err = ml.opts.Ledgers.OpenRecover(ctx, id, ml.opts.Password); err != nil {
			return nil, err
		}
	}
	ml.mu.Lock()
	ml.mu.readers[id] = r
	ml.mu.Unlock()
	return r, nil
}
