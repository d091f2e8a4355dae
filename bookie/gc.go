package bookie

import (
	"context"
	"fmt"
	"slices"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/metadata"
)

func (b *Bookie) gcLoop() {
	t := newTicker(b.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if n, err := b.collectGarbage(b.ctx); err != nil && b.ctx.Err() == nil {
				b.opts.Logger.Warn("garbage collection failed", "err", err)
			} else if n > 0 {
				b.opts.Logger.Info("garbage collection removed deleted ledgers", "ledgers", n)
			}
			res, err := b.compact(b.ctx)
			b.metrics.compactedSegments.Add(float64(res.removed))
			b.metrics.compactedBytes.Add(float64(res.freed))
			b.metrics.relocatedBytes.Add(float64(res.moved))
			if err != nil && b.ctx.Err() == nil {
				b.opts.Logger.Warn("entry log compaction failed", "err", err)
			} else if res.removed > 0 {
				b.opts.Logger.Info("entry log compacted", "segments", res.removed, "freed", res.freed, "moved", res.moved)
			}
		case <-b.ctx.Done():
			return
		}
	}
}

// collectGarbage removes ledgers whose metadata is gone from the index (their
// entries' space is reclaimed by compaction). Local ledgers are listed
// before metadata: a ledger's metadata is created before any of its entries
// reach a bookie, so a local ledger missing from a later metadata listing has
// been deleted.
func (b *Bookie) collectGarbage(ctx context.Context) (int, error) {
	local, err := b.st.ledgerIDs()
	if err != nil {
		return 0, fmt.Errorf("list local ledgers: %w", err)
	}
	if len(local) == 0 {
		return 0, nil
	}
	kvs, err := metadata.ListAll(ctx, b.opts.Metadata, metadata.LedgersPrefix, true)
	if err != nil {
		return 0, fmt.Errorf("list ledger metadata: %w", err)
	}
	live := make(map[int64]bool, len(kvs))
	for _, kv := range kvs {
		if id, err := metadata.ParseLedgerKey(kv.Key); err == nil {
			live[id] = true
		}
	}
	var dead []int64
	for _, id := range local {
		if !live[id] {
			dead = append(dead, id)
		}
	}
	if len(dead) == 0 {
		return 0, nil
	}
	slices.Sort(dead)
	res := make(chan opResult, 1)
	if !b.journal.submit(&journalOp{kind: opDrop, dropIDs: dead, done: func(r opResult) { res <- r }}) {
		return 0, ErrClosed
	}
	if r := <-res; r.code != bookiepb.Code_OK {
		return 0, fmt.Errorf("drop ledgers %v: %s", dead, r.msg)
	}
	b.metrics.gcLedgers.Add(float64(len(dead)))
	return len(dead), nil
}
