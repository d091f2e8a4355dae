package managed

import (
	"fmt"
	"math/bits"
	"slices"
)

// Batch-index acknowledgements: a batch entry holds several messages, and a
// consumer may acknowledge some of them. The cursor keeps, per partly
// acknowledged entry above the mark-delete position, the messages still
// unacknowledged (bit i for message i, in 64-bit words: Pulsar's layout),
// persists them with its position, and acknowledges the entry once none is
// left. A redelivered entry carries the set, so consumers skip what was
// acknowledged.

// AckBatchIndexes records that of entry p only the messages whose bits are
// set in unacked are still unacknowledged, on top of what earlier partial
// acknowledgements of p recorded. complete reports that the whole entry is
// now acknowledged (it was already, or no message is left).
func (c *Cursor) AckBatchIndexes(p Position, unacked []int64) (complete bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return false, fmt.Errorf("%w: cursor %s", ErrClosed, c.name)
	}
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	p = c.ml.canonicalLocked(p)
	if p.EntryID < 0 {
		return false, fmt.Errorf("%w: %s is not an entry of %s", ErrInvalidPosition, p, c.ml.name)
	}
	if c.isAckedLocked(p) {
		return true, nil
	}
	if !c.ml.existsLocked(p) {
		return false, fmt.Errorf("%w: %s is not an entry of %s", ErrInvalidPosition, p, c.ml.name)
	}
	left := slices.Clone(unacked)
	if prev, ok := c.mu.batch[p]; ok {
		// A message stays unacknowledged only if no acknowledgement so
		// far covered it.
		for i := range left {
			if i < len(prev) {
				left[i] &= prev[i]
			} else {
				left[i] = 0
			}
		}
	}
	c.mu.dirty = true
	if setBits(left) == 0 {
		delete(c.mu.batch, p)
		c.mu.acked.add(p)
		c.advanceLocked()
		return true, nil
	}
	if c.mu.batch == nil {
		c.mu.batch = make(map[Position][]int64)
	}
	c.mu.batch[p] = left
	return false, nil
}

// BatchAckSet returns the messages of entry p still unacknowledged when some
// of them were acknowledged by index, else nil (none were, or all).
func (c *Cursor) BatchAckSet(p Position) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.mu.batch[p])
}

// setBits counts the set bits of a bitset.
func setBits(words []int64) int {
	n := 0
	for _, w := range words {
		n += bits.OnesCount64(uint64(w))
	}
	return n
}

// dropBatchLocked forgets the partial acknowledgements of entries at or
// before the mark-delete position or fully acknowledged. c.mu must be held.
func (c *Cursor) dropBatchLocked() {
	for p := range c.mu.batch {
		if !c.mu.markDelete.Less(p) || c.mu.acked.contains(p) {
			delete(c.mu.batch, p)
		}
	}
}

// batchStateLocked returns the partial acknowledgements to persist, in
// position order, at most max of them, as [ledger, entry, words...].
func (c *Cursor) batchStateLocked(max int) [][]int64 {
	if len(c.mu.batch) == 0 {
		return nil
	}
	ps := make([]Position, 0, len(c.mu.batch))
	for p := range c.mu.batch {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, Position.Compare)
	out := make([][]int64, 0, min(len(ps), max))
	for _, p := range ps[:min(len(ps), max)] {
		out = append(out, append([]int64{p.LedgerID, p.EntryID}, c.mu.batch[p]...))
	}
	return out
}

// loadBatchLocked restores persisted partial acknowledgements; malformed
// ones are dropped (those messages are delivered again).
func (c *Cursor) loadBatchLocked(state [][]int64, renumbered func(int64) int64) {
	for _, b := range state {
		if len(b) < 3 || b[1] < 0 || setBits(b[2:]) == 0 {
			continue
		}
		p := Position{renumbered(b[0]), b[1]}
		if c.mu.batch == nil {
			c.mu.batch = make(map[Position][]int64)
		}
		c.mu.batch[p] = slices.Clone(b[2:])
	}
	c.dropBatchLocked()
}
