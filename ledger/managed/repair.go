package managed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-mq/strata/ledger"
)

// Logs written before ledger ids were kept increasing along the ledger list
// (mlInfo.LastLedgerID) can list a ledger with a lower id after a higher one:
// a topic that moved to a broker whose id block was lower. Positions there do
// not order along the log, and cursors skip the later ledgers. Opening such a
// log renumbers it: every ledger from the first one out of order onwards is
// copied, entry for entry, into a new ledger with an id above all others, and
// the list names the copies. Entry ids and the order of the log stay; only
// the ledger ids change, recorded in mlInfo.Renumbered so that positions
// persisted (cursors) or held by clients (acknowledgements, reader starts)
// under the old ids still name the same entries.

// outOfOrder returns the index of the first ledger whose id is not above every
// earlier one, or -1.
func outOfOrder(ledgers []LedgerInfo) int {
	var top int64
	for i, li := range ledgers {
		if i > 0 && li.LedgerID <= top {
			return i
		}
		top = max(top, li.LedgerID)
	}
	return -1
}

// renumber copies info.Ledgers[from:] into new ledgers with increasing ids
// above floor, rewriting info (list, Renumbered, LastLedgerID, Terminated).
// It returns the replaced ledgers, to delete once the new list is stored,
// and the copies, to delete if it is not. metaMu must be held (Open).
func (ml *ManagedLedger) renumber(ctx context.Context, info *mlInfo, from int, floor int64) (replaced []LedgerInfo, copies []int64, err error) {
	ml.log.Warn("ledger ids of this log are out of order (written before ids were kept increasing); renumbering by copying",
		"ledgers", len(info.Ledgers)-from, "first", info.Ledgers[from].LedgerID)
	start := time.Now()
	defer func() {
		if err != nil {
			ml.deleteLedgers(copies)
		}
	}()
	renamed := make(map[int64]int64)
	for i := from; i < len(info.Ledgers); i++ {
		old := info.Ledgers[i]
		id, err := ml.copyLedger(ctx, old, floor)
		if err != nil {
			return nil, copies, fmt.Errorf("managed ledger %s: renumber ledger %d: %w", ml.name, old.LedgerID, err)
		}
		copies = append(copies, id)
		floor = id
		renamed[old.LedgerID] = id
		replaced = append(replaced, old)
		info.Ledgers[i] = LedgerInfo{LedgerID: id, Entries: old.Entries, Size: old.Size, Timestamp: old.Timestamp,
			FirstPublishTime: old.FirstPublishTime, LastPublishTime: old.LastPublishTime}
	}
	if info.Renumbered == nil {
		info.Renumbered = make(map[int64]int64)
	}
	for o, n := range renamed {
		info.Renumbered[o] = n
	}
	info.LastLedgerID = floor
	if t := info.Terminated; t != nil {
		info.Terminated = &Position{info.renumbered(t.LedgerID), t.EntryID}
	}
	ml.log.Warn("renumbered out-of-order ledgers", "renamed", renamed, "took", time.Since(start))
	return replaced, copies, nil
}

// copyLedger writes every entry of the closed ledger li into a new ledger
// with an id above floor and closes it.
func (ml *ManagedLedger) copyLedger(ctx context.Context, li LedgerInfo, floor int64) (int64, error) {
	w, err := ml.createLedger(ctx, floor)
	if err != nil {
		return 0, err
	}
	const batch = 256
	for first := int64(0); first < li.Entries; first += batch {
		last := min(first+batch, li.Entries) - 1
		es, err := ml.readLedger(ctx, li, nil, first, last)
		if err == nil && int64(len(es)) != last-first+1 {
			err = fmt.Errorf("read %d entries of %d..%d", len(es), first, last)
		}
		if err != nil {
			w.Abandon()
			return w.ID(), err
		}
		errs := make(chan error, len(es))
		for i, e := range es {
			want := first + int64(i)
			w.AppendAsync(e.Data, func(id int64, err error) {
				if err == nil && id != want {
					err = fmt.Errorf("copy of entry %d landed at %d", want, id)
				}
				errs <- err
			})
		}
		for range es {
			if err := <-errs; err != nil {
				w.Abandon()
				return w.ID(), err
			}
		}
	}
	if err := w.Close(ctx); err != nil {
		return w.ID(), err
	}
	return w.ID(), nil
}

// deleteLedgers deletes ledgers from bookies, logging failures.
func (ml *ManagedLedger) deleteLedgers(ids []int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := ml.opts.Ledgers.Delete(ctx, id); err != nil && !errors.Is(err, ledger.ErrNotFound) {
			ml.log.Warn("delete ledger", "ledger", id, "err", err)
		}
	}
}

// renumbered returns the ledger id that replaced id, or id.
func (i mlInfo) renumbered(id int64) int64 {
	if n, ok := i.Renumbered[id]; ok {
		return n
	}
	return id
}

// canonicalLocked maps a position named with a ledger id replaced by
// renumbering to the same entry in the copy. ml.mu must be held.
func (ml *ManagedLedger) canonicalLocked(p Position) Position {
	p.LedgerID = ml.mu.info.renumbered(p.LedgerID)
	return p
}

// pruneRenumbered forgets renumberings whose copy left the list (trimmed).
func (i *mlInfo) pruneRenumbered() {
	for o, n := range i.Renumbered {
		listed := false
		for _, li := range i.Ledgers {
			if li.LedgerID == n {
				listed = true
				break
			}
		}
		if !listed {
			delete(i.Renumbered, o)
		}
	}
	if len(i.Renumbered) == 0 {
		i.Renumbered = nil
	}
}
