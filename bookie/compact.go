package bookie

import (
	"bytes"
	"context"
	"fmt"

	"github.com/strata-mq/strata/api/bookiepb"
)

// compactBatchBytes bounds the entries one relocation op carries.
const compactBatchBytes = 4 << 20

// compaction reports what one pass reclaimed.
type compaction struct {
	removed  int   // segments deleted
	moved    int64 // entry bytes relocated
	freed    int64 // segment bytes deleted
	vacating int   // segments emptied by relocation, deleted after a checkpoint
}

// compact reclaims entry-log space, as BookKeeper's entry-log compaction
// does. It looks only at segments before the durable checkpoint (a restart
// replays none of them). A segment whose entries all belong to deleted
// ledgers (no ledger record left) is deleted; one with less than
// CompactionThreshold of its entry bytes alive has its live entries appended
// again through the journal — synced like any add, and only where the index
// still points into the segment — and is deleted once a checkpoint has made
// the new index durable.
func (b *Bookie) compact(ctx context.Context) (compaction, error) {
	var res compaction
	log := b.st.log
	until := b.journal.durableSegment()
	alive := map[int64]bool{}
	isAlive := func(id int64) (bool, error) {
		if a, ok := alive[id]; ok {
			return a, nil
		}
		_, ok, err := b.st.ledgerRecord(id)
		alive[id] = ok
		return ok, err
	}
	var vacated []*segment
	for _, seq := range log.seqs() {
		if seq >= until || ctx.Err() != nil {
			break
		}
		seg := log.segment(seq)
		if seg == nil {
			continue
		}
		counts, err := segmentCounts(seg)
		if err != nil {
			return res, err
		}
		var total, live int64
		for id, n := range counts {
			total += n
			ok, err := isAlive(id)
			if err != nil {
				return res, err
			}
			if ok {
				live += n
			}
		}
		switch {
		case live == 0:
			if err := log.remove(seq); err != nil {
				return res, err
			}
			res.removed++
			res.freed += seg.size
		case float64(live) < b.opts.CompactionThreshold*float64(total):
			moved, err := b.relocate(ctx, seg, isAlive)
			if err != nil {
				return res, err
			}
			res.moved += moved
			vacated = append(vacated, seg)
		}
	}
	if len(vacated) == 0 {
		return res, nil
	}
	res.vacating = len(vacated)
	if err := b.checkpoint(); err != nil {
		return res, err
	}
	for _, seg := range vacated {
		if err := log.remove(seg.seq); err != nil {
			return res, err
		}
		res.removed++
		res.freed += seg.size
	}
	res.vacating = 0
	return res, nil
}

// segmentCounts returns a sealed segment's entry bytes per ledger, scanning
// it when its meta file was lost.
func segmentCounts(seg *segment) (map[int64]int64, error) {
	if seg.ledgers != nil {
		return seg.ledgers, nil
	}
	counts := make(map[int64]int64)
	if _, _, err := scan(seg, func(m mutation) error {
		if m.kind == mutAdd {
			counts[m.ledger] += int64(len(m.data))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("bookie: scan journal segment %s: %w", seg.path, err)
	}
	seg.ledgers = counts // only compaction reads counts of segments before the checkpoint
	if err := writeMeta(seg); err != nil {
		return nil, err
	}
	return counts, nil
}

// relocate moves the live entries of seg to the end of the log.
func (b *Bookie) relocate(ctx context.Context, seg *segment, isAlive func(int64) (bool, error)) (int64, error) {
	var batch []relocation
	var size, moved int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res := make(chan opResult, 1)
		if !b.journal.submit(&journalOp{kind: opRelocate, relocs: batch, done: func(r opResult) { res <- r }}) {
			return ErrClosed
		}
		if r := <-res; r.code != bookiepb.Code_OK {
			return fmt.Errorf("bookie: relocate entries of %s: %s", seg.path, r.msg)
		}
		moved += size
		batch, size = nil, 0
		return nil
	}
	_, _, err := scan(seg, func(m mutation) error {
		if m.kind != mutAdd || ctx.Err() != nil {
			return ctx.Err()
		}
		ok, err := isAlive(m.ledger)
		if err != nil || !ok {
			return err
		}
		batch = append(batch, relocation{ledgerID: m.ledger, entryID: m.entry, body: bytes.Clone(m.data),
			from: location{seq: seg.seq, off: m.off, len: int64(len(m.data))}})
		if size += int64(len(m.data)); size >= compactBatchBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return moved, err
}

// checkpoint asks the journal for a checkpoint and waits until it is durable.
func (b *Bookie) checkpoint() error {
	res := make(chan opResult, 1)
	if !b.journal.submit(&journalOp{kind: opCheckpoint, done: func(r opResult) { res <- r }}) {
		return ErrClosed
	}
	if r := <-res; r.code != bookiepb.Code_OK {
		return fmt.Errorf("bookie: checkpoint: %s", r.msg)
	}
	return nil
}
