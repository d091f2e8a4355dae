package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// changeEnsemble replaces failed bookies. The new ensemble takes effect at
// LAC+1 — the first entry not yet acknowledged — recorded in metadata with a
// compare-and-swap (a recovery writer keeps it in memory until it closes the
// ledger). Then every pending entry whose write set includes a replaced slot
// loses that slot's ack and is resent to the new bookie; acks from the other
// bookies stand. Acknowledgements are held back until the change is done.
// Bookies failing meanwhile are handled in further rounds.
func (w *Writer) changeEnsemble() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		w.mu.Lock()
		if w.mu.err != nil {
			w.mu.changing = false
			w.mu.Unlock()
			return
		}
		failed := maps.Clone(w.mu.failed)
		md := w.mu.md.clone()
		lac := w.mu.lac
		exclude := append(slices.Clone(md.lastSegment().Ensemble), w.mu.excluded...)
		w.mu.Unlock()

		slots := slices.Sorted(maps.Keys(failed))
		repl, err := w.c.selectBookies(ctx, len(slots), exclude)
		if err != nil {
			err = fmt.Errorf("ledger %d: replace bookies %v: %w", w.id, slices.Collect(maps.Values(failed)), err)
			if w.recovery && errors.Is(err, ErrNotEnoughBookies) && w.continueDegraded(err) {
				return
			}
			w.abortChange(err)
			return
		}
		ensemble := slices.Clone(md.lastSegment().Ensemble)
		for i, slot := range slots {
			ensemble[slot] = repl[i]
		}
		newMD, err := w.recordEnsemble(ctx, md, lac, ensemble)
		if err != nil {
			w.abortChange(err)
			return
		}
		w.c.log.Info("ledger ensemble changed", "ledger", w.id, "firstEntry", lac+1, "ensemble", ensemble)

		w.mu.Lock()
		if w.mu.err != nil {
			w.mu.changing = false
			w.mu.Unlock()
			return
		}
		w.mu.md = newMD
		now := time.Now()
		for _, slot := range slots {
			w.mu.streams[slot] = newAddStream(w, slot, ensemble[slot])
			delete(w.mu.failed, slot)
		}
		for _, op := range w.mu.pending {
			for _, slot := range writeSet(op.entryID, newMD.EnsembleSize, newMD.WriteQuorum) {
				if _, replaced := failed[slot]; replaced {
					op.acks &^= 1 << slot
					op.sentAt = now
					w.sendLocked(op, slot)
				}
			}
		}
		if len(w.mu.failed) > 0 {
			w.mu.Unlock()
			continue // more bookies failed during the change
		}
		w.mu.changing = false
		w.completeLocked()
		w.mu.Unlock()
		return
	}
}

// recordEnsemble makes ensemble current from entry lac+1: the last segment is
// replaced if it starts there (none of its entries was acknowledged), else a
// segment is appended.
func (w *Writer) recordEnsemble(ctx context.Context, md Metadata, lac int64, ensemble []string) (Metadata, error) {
	apply := func(m *Metadata) error {
		last := &m.Segments[len(m.Segments)-1]
		switch {
		case last.FirstEntryID == lac+1:
			last.Ensemble = ensemble
		case last.FirstEntryID < lac+1:
			m.Segments = append(m.Segments, Segment{FirstEntryID: lac + 1, Ensemble: ensemble})
		default:
			return fmt.Errorf("ledger %d: last segment starts at %d beyond LAC+1 = %d", w.id, last.FirstEntryID, lac+1)
		}
		return nil
	}
	if w.recovery {
		next := md.clone()
		return next, apply(&next)
	}
	return w.c.updateMetadata(ctx, md, func(m *Metadata) (bool, error) {
		switch m.State {
		case StateClosed:
			return false, fmt.Errorf("%w: ledger %d was closed", ErrClosed, w.id)
		case StateInRecovery:
			return false, fmt.Errorf("%w: ledger %d is being recovered", ErrFenced, w.id)
		}
		return true, apply(m)
	})
}

// continueDegraded lets a recovery writer go on without replacements when
// every write set still has an ack quorum of live bookies: recovery must be
// able to close a ledger even when a bookie is gone and no spare exists. The
// recovered tail is then under-replicated on the missing slots. A normal
// writer never does this; it fails with ErrNotEnoughBookies instead.
func (w *Writer) continueDegraded(cause error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, qw, qa := w.mu.md.EnsembleSize, w.mu.md.WriteQuorum, w.mu.md.AckQuorum
	for i := 0; i < e; i++ {
		live := 0
		for k := 0; k < qw; k++ {
			if _, failed := w.mu.failed[(i+k)%e]; !failed {
				live++
			}
		}
		if live < qa {
			return false
		}
	}
	w.c.log.Warn("recovery continues without replacing failed bookies", "ledger", w.id, "cause", cause)
	w.mu.changing = false
	w.completeLocked()
	return true
}

func (w *Writer) abortChange(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mu.changing = false
	w.failLocked(err)
}
