package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/internal/testfault"
)

// OpenRecover opens a ledger for reading after making sure it is closed. If
// the ledger is still OPEN (its writer crashed or was replaced), it is
// recovered:
//
//  1. metadata OPEN -> IN_RECOVERY (compare-and-swap);
//  2. the current ensemble is fenced until every write set has at least
//     Qw-Qa+1 fenced bookies, so no ack quorum is left for the old writer,
//     which then fails with ErrFenced; the fence replies carry each bookie's
//     last entry and thereby the highest piggybacked LAC;
//  3. entries after that LAC are read and re-replicated to their full write
//     set until one is confirmed missing (Qw-Qa+1 replicas say so);
//  4. metadata -> CLOSED at the last recovered entry (compare-and-swap; a
//     concurrent recoverer that closed first wins and its result is adopted).
//
// Every entry ever acknowledged to the old writer ends up in the closed
// ledger; entries it never acknowledged may or may not.
func (c *Client) OpenRecover(ctx context.Context, id int64, password []byte) (*Reader, error) {
	md, err := c.Metadata(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := checkPassword(md, password); err != nil {
		return nil, err
	}
	if md.State != StateClosed {
		if md, err = c.recover(ctx, md, MasterKey(password)); err != nil {
			return nil, err
		}
	}
	r := &Reader{c: c, md: md}
	r.mu.lac = md.LastEntryID
	return r, nil
}

func (c *Client) recover(ctx context.Context, md Metadata, key []byte) (Metadata, error) {
	md, err := c.updateMetadata(ctx, md, func(m *Metadata) (bool, error) {
		if m.State != StateOpen {
			return false, nil
		}
		m.State = StateInRecovery
		return true, nil
	})
	if err != nil {
		return md, err
	}
	if md.State == StateClosed {
		return md, nil
	}
	lac, err := c.fence(ctx, md, key)
	if err != nil {
		return md, err
	}
	lac = max(lac, md.lastSegment().FirstEntryID-1)
	var length int64
	if lac >= 0 {
		e, err := c.readEntry(ctx, md, lac, 0)
		if err != nil {
			return md, fmt.Errorf("%w: ledger %d: read last confirmed entry %d: %v", ErrRecovery, md.ID, lac, err)
		}
		length = e.Length
	}
	c.log.Info("recovering ledger", "ledger", md.ID, "lac", lac)

	w := newWriter(c, md, key, lac, length, true)
	for id := lac + 1; ; id++ {
		e, found, err := c.recoveryRead(ctx, md, id, key)
		if err != nil {
			w.Abandon()
			return md, err
		}
		if !found {
			break
		}
		w.mu.Lock()
		w.pushLocked(e.Payload, e.Length, nil)
		w.mu.Unlock()
	}
	if err := w.Close(ctx); err != nil {
		return md, fmt.Errorf("%w: ledger %d: re-replicate recovered entries: %v", ErrRecovery, md.ID, err)
	}
	final := w.Metadata()
	last, end := w.LastAddConfirmed(), w.Length()
	md, err = c.updateMetadata(ctx, md, func(m *Metadata) (bool, error) {
		switch m.State {
		case StateClosed:
			return false, nil // another recoverer finished first
		case StateOpen:
			return false, fmt.Errorf("%w: ledger %d back in state OPEN during recovery", ErrRecovery, m.ID)
		}
		// Recovery changed the last segment and may have appended some;
		// earlier segments are kept as they are now, for a re-replication
		// may have replaced a bookie in one meanwhile.
		keep := len(md.Segments) - 1
		m.Segments = append(m.Segments[:keep:keep], final.Segments[keep:]...)
		m.State, m.LastEntryID, m.Length = StateClosed, last, end
		return true, nil
	})
	if err != nil {
		return md, err
	}
	c.log.Info("ledger recovered", "ledger", md.ID, "lastEntry", md.LastEntryID, "length", md.Length)
	return md, nil
}

// fence fences the current ensemble and returns the highest LAC carried by
// the bookies' last entries, once the answers cover every write set.
func (c *Client) fence(ctx context.Context, md Metadata, key []byte) (int64, error) {
	seg := md.lastSegment()
	type res struct {
		slot int
		lac  int64
		err  error
	}
	ch := make(chan res, len(seg.Ensemble))
	for slot, b := range seg.Ensemble {
		go func() {
			fctx, cancel := c.withTimeout(ctx)
			defer cancel()
			cli, err := c.bookie(fctx, b)
			if err != nil {
				ch <- res{slot: slot, err: err}
				return
			}
			var resp *bookiepb.FenceResponse
			if testfault.On(testfault.RecoverySkipFencing) {
				// Broken on purpose (tests only): read the last entry, fence nothing.
				var last *bookiepb.ReadEntryResponse
				if last, err = cli.ReadEntry(fctx, &bookiepb.ReadEntryRequest{LedgerId: md.ID, EntryId: -1}); err == nil {
					resp = &bookiepb.FenceResponse{LastEntryId: last.EntryId, LastEntry: last.Body}
				} else if code, ok := bookiepb.CodeOf(err); ok && (code == bookiepb.Code_NO_ENTRY || code == bookiepb.Code_NO_LEDGER) {
					resp, err = &bookiepb.FenceResponse{LastEntryId: -1}, nil
				}
			} else {
				resp, err = cli.Fence(fctx, &bookiepb.FenceRequest{LedgerId: md.ID, MasterKey: key})
			}
			if err != nil {
				ch <- res{slot: slot, err: fmt.Errorf("fence on bookie %s: %w", b, err)}
				return
			}
			lac := int64(-1)
			if resp.LastEntryId >= 0 {
				// A last entry failing its digest still counts as an answer
				// but contributes no LAC.
				if h, _, err := bookiepb.VerifyEntry(resp.LastEntry, md.ID, resp.LastEntryId); err == nil {
					lac = h.LAC
				}
			}
			ch <- res{slot: slot, lac: lac}
		}()
	}
	known := make([]bool, len(seg.Ensemble))
	best := int64(-1)
	var errs []error
	for range seg.Ensemble {
		r := <-ch
		if r.err != nil {
			if code, ok := bookiepb.CodeOf(r.err); ok && code == bookiepb.Code_UNAUTHORIZED {
				return -1, fmt.Errorf("%w: ledger %d: %v", ErrUnauthorized, md.ID, r.err)
			}
			errs = append(errs, r.err)
			continue
		}
		known[r.slot] = true
		best = max(best, r.lac)
		if covered(known, md.EnsembleSize, md.WriteQuorum, md.AckQuorum) {
			return best, nil
		}
	}
	return -1, fmt.Errorf("%w: ledger %d: fencing did not reach every write set: %v", ErrRecovery, md.ID, errors.Join(errs...))
}

// recoveryRead asks every replica of entry id for it with a fencing read:
// a replica answers only once it is fenced, durably, so an add it accepted
// before the fence — still queued behind a slow commit, say — is visible,
// and its "no such entry" is final (no ack can follow it). found is false
// once Qw-Qa+1 replicas report the entry missing; an entry that is neither
// found nor confirmed missing fails recovery. (An unfenced replica's "no"
// would not do: a replica the fence phase did not reach may still commit
// the entry and, with another replica, complete an ack quorum for the old
// writer.)
func (c *Client) recoveryRead(ctx context.Context, md Metadata, id int64, key []byte) (Entry, bool, error) {
	replicas := md.WriteSet(id)
	type res struct {
		e       Entry
		ok      bool
		missing bool
		err     error
	}
	ch := make(chan res, len(replicas))
	rctx, cancel := c.withTimeout(ctx)
	defer cancel()
	for _, b := range replicas {
		go func() {
			cli, err := c.bookie(rctx, b)
			if err != nil {
				ch <- res{err: err}
				return
			}
			fence := !testfault.On(testfault.RecoverySkipFencing) // broken on purpose in tests only
			resp, err := cli.ReadEntry(rctx, &bookiepb.ReadEntryRequest{LedgerId: md.ID, EntryId: id, Fence: fence, MasterKey: key})
			if err != nil {
				code, isCode := bookiepb.CodeOf(err)
				ch <- res{missing: isCode && (code == bookiepb.Code_NO_ENTRY || code == bookiepb.Code_NO_LEDGER), err: err}
				return
			}
			h, payload, err := bookiepb.VerifyEntry(resp.Body, md.ID, id)
			if err != nil {
				ch <- res{err: fmt.Errorf("bookie %s: %w", b, err)}
				return
			}
			ch <- res{e: Entry{ID: id, Payload: payload, Length: h.Length}, ok: true}
		}()
	}
	missing := 0
	var errs []error
	for range replicas {
		r := <-ch
		switch {
		case r.ok:
			return r.e, true, nil
		case r.missing:
			if missing++; missing >= md.WriteQuorum-md.AckQuorum+1 {
				return Entry{}, false, nil
			}
		default:
			errs = append(errs, r.err)
		}
	}
	return Entry{}, false, fmt.Errorf("%w: ledger %d entry %d neither found nor confirmed missing: %v", ErrRecovery, md.ID, id, errors.Join(errs...))
}
