package managed

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// ErrNoPublishTime: seek by time needs Options.PublishTime.
var ErrNoPublishTime = errors.New("managed ledger: entries carry no publish time (Options.PublishTime unset)")

// FindByTime returns the position of the first entry published at or after
// t (Unix ms), or the position after the last entry if there is none. It
// skips ledgers by their recorded publish times, then binary-searches the
// entries of the one that holds t.
func (ml *ManagedLedger) FindByTime(ctx context.Context, t int64) (Position, error) {
	if ml.opts.PublishTime == nil {
		return Position{}, ErrNoPublishTime
	}
	ml.mu.Lock()
	type span struct {
		id, entries, last int64
	}
	var spans []span
	for _, v := range ml.viewLocked() {
		last := int64(0)
		for _, li := range ml.mu.info.Ledgers {
			if li.LedgerID == v.id {
				last = li.LastPublishTime
			}
		}
		if v.current {
			last = ml.mu.cur.lastPublish
		}
		if v.entries > 0 {
			spans = append(spans, span{v.id, v.entries, last})
		}
	}
	lc := ml.mu.lastConfirmed
	ml.mu.Unlock()

	for _, s := range spans {
		if s.last != 0 && s.last < t {
			continue
		}
		var searchErr error
		i := sort.Search(int(s.entries), func(i int) bool {
			if searchErr != nil {
				return true
			}
			p := Position{s.id, int64(i)}
			es, _, err := ml.Read(ctx, p, 1, 1)
			if err == nil && (len(es) == 0 || es[0].Position != p) {
				// Trimmed meanwhile: the read moved on to a later entry.
				err = fmt.Errorf("%w: %s is no longer in the log", ErrInvalidPosition, p)
			}
			if err != nil {
				searchErr = fmt.Errorf("read %s: %w", p, err)
				return true
			}
			pt, err := ml.opts.PublishTime(es[0].Data)
			if err != nil {
				searchErr = fmt.Errorf("publish time of %d:%d: %w", s.id, i, err)
				return true
			}
			return pt >= t
		})
		if searchErr != nil {
			return Position{}, fmt.Errorf("managed ledger %s: seek by time: %w", ml.name, searchErr)
		}
		if i < int(s.entries) {
			return Position{s.id, int64(i)}, nil
		}
	}
	return Position{lc.LedgerID, lc.EntryID + 1}, nil
}
