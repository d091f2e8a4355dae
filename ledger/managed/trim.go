package managed

import (
	"context"
	"slices"
)

// TrimResult reports what a trim reclaimed.
type TrimResult struct {
	Ledgers []int64 `json:"ledgers"`
	Entries int64   `json:"entries"`
	Bytes   int64   `json:"bytes"`
}

// Trim deletes whole ledgers that every durable cursor has consumed and that
// are outside retention: oldest first, stopping at the first ledger that is
// still needed. The current ledger is never deleted. Deleted ledgers are
// removed from the ledger list (compare-and-swap) and then from bookies and,
// if offloaded, from the object store.
func (ml *ManagedLedger) Trim(ctx context.Context) (TrimResult, error) {
	res, doomed, err := ml.trim(ctx)
	if err == nil {
		ml.dropOffloaded(ctx, doomed) // store I/O: after metaMu
	}
	return res, err
}

// trim removes the ledgers to delete from the list and from bookies, and
// returns them.
func (ml *ManagedLedger) trim(ctx context.Context) (TrimResult, []LedgerInfo, error) {
	ml.metaMu.Lock()
	defer ml.metaMu.Unlock()

	ml.mu.Lock()
	if err := ml.usableLocked(); err != nil {
		ml.mu.Unlock()
		return TrimResult{}, nil, err
	}
	cursors := make([]*Cursor, 0, len(ml.mu.cursors))
	for _, c := range ml.mu.cursors {
		cursors = append(cursors, c)
	}
	ml.mu.Unlock()
	// With no durable cursor everything written is consumed.
	slowest := ml.LastConfirmed()
	for _, c := range cursors {
		if md := c.MarkDeletePosition(); md.Less(slowest) {
			slowest = md
		}
	}

	ret := ml.opts.Retention()
	now := ml.opts.Clock().UnixMilli()
	ml.mu.Lock()
	ledgers := slices.Clone(ml.mu.info.Ledgers)
	cur, total := ml.currentLocked()
	for _, li := range ledgers {
		total += li.Size
	}
	ml.mu.Unlock()

	var res TrimResult
	var sizeToDelete int64
	var doomed []LedgerInfo
	for _, li := range ledgers {
		if li.LedgerID == cur || li.Timestamp == 0 {
			break // the current ledger, and anything not closed, stays
		}
		consumed := li.LedgerID < slowest.LedgerID || (li.LedgerID == slowest.LedgerID && slowest.EntryID >= li.Entries-1)
		if !consumed {
			break
		}
		sizeToDelete += li.Size
		expired := ret.Time >= 0 && now-li.Timestamp >= ret.Time.Milliseconds()
		overQuota := ret.Size >= 0 && total-sizeToDelete >= ret.Size
		if !expired && !overQuota {
			break
		}
		doomed = append(doomed, li)
		res.Ledgers = append(res.Ledgers, li.LedgerID)
		res.Entries += li.Entries
		res.Bytes += li.Size
	}
	if len(doomed) == 0 {
		return res, nil, nil
	}
	err := ml.updateInfo(ctx, func(info *mlInfo) error {
		info.Ledgers = slices.DeleteFunc(info.Ledgers, func(li LedgerInfo) bool {
			return slices.ContainsFunc(doomed, func(d LedgerInfo) bool { return d.LedgerID == li.LedgerID })
		})
		info.pruneRenumbered()
		return nil
	})
	if err != nil {
		return TrimResult{}, nil, err
	}
	ml.mu.Lock()
	for _, d := range doomed {
		delete(ml.mu.readers, d.LedgerID)
	}
	// Move non-durable cursors out of deleted ledgers.
	for c := range ml.mu.nonDurable {
		c.mu.Lock()
		c.mu.readPos = ml.normalizeLocked(c.mu.readPos)
		c.mu.Unlock()
	}
	ml.mu.Unlock()
	for _, d := range doomed {
		if d.Offload == nil || !d.Offload.BookieDeleted {
			if err := ml.opts.Ledgers.Delete(ctx, d.LedgerID); err != nil {
				ml.log.Warn("delete trimmed ledger", "ledger", d.LedgerID, "err", err)
			}
		}
	}
	ml.log.Info("trimmed ledgers", "ledgers", res.Ledgers, "entries", res.Entries, "bytes", res.Bytes)
	return res, doomed, nil
}
