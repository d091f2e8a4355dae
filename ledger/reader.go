package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
)

// Entry is one ledger entry as returned by reads.
type Entry struct {
	ID      int64
	Payload []byte
	// Length is the ledger's cumulative payload length up to and including
	// this entry (from the entry's envelope).
	Length int64
}

// Reader reads a ledger opened without writing: a closed ledger (possibly
// after recovering it) or, without recovery, an open one up to its LAC.
type Reader struct {
	c  *Client
	md Metadata

	mu struct {
		sync.Mutex
		lac int64
	}
}

// ID returns the ledger id.
func (r *Reader) ID() int64 { return r.md.ID }

// Metadata returns the metadata the reader was opened with.
func (r *Reader) Metadata() Metadata { return r.md.clone() }

// LastAddConfirmed returns the highest readable entry id known (-1: none).
func (r *Reader) LastAddConfirmed() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.lac
}

// IsClosed reports whether the ledger was closed when opened.
func (r *Reader) IsClosed() bool { return r.md.State == StateClosed }

func (r *Reader) raiseLAC(lac int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lac > r.mu.lac {
		r.mu.lac = lac
	}
	return r.mu.lac
}

// Open opens a ledger for reading without recovery: a closed ledger reads up
// to its last entry; an open one up to the LAC its bookies report (see
// ReadLAC and WaitLAC to follow a writer). It never disturbs the writer.
func (c *Client) Open(ctx context.Context, id int64, password []byte) (*Reader, error) {
	md, err := c.Metadata(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := checkPassword(md, password); err != nil {
		return nil, err
	}
	r := &Reader{c: c, md: md}
	r.mu.lac = md.LastEntryID
	if md.State != StateClosed {
		r.mu.lac = md.lastSegment().FirstEntryID - 1
		if _, err := r.ReadLAC(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func checkPassword(md Metadata, password []byte) error {
	if string(md.Password) != string(password) {
		return fmt.Errorf("%w: ledger %d", ErrUnauthorized, md.ID)
	}
	return nil
}

// Read returns entries first..last inclusive. Each entry comes from the
// first replica of its write set that returns it with a valid digest; an
// entry whose every answering replica is corrupt fails with ErrCorrupt.
func (r *Reader) Read(ctx context.Context, first, last int64) ([]Entry, error) {
	if lac := r.LastAddConfirmed(); last > lac {
		return nil, fmt.Errorf("%w: entry %d is beyond the last readable entry %d of ledger %d", ErrNoEntry, last, lac, r.md.ID)
	}
	return r.c.read(ctx, r.md, first, last)
}

// ReadLAC asks the current ensemble for its LAC (no fencing) and raises the
// reader's LAC. It needs answers covering every write set, like recovery.
func (r *Reader) ReadLAC(ctx context.Context) (int64, error) {
	if r.md.State == StateClosed {
		return r.LastAddConfirmed(), nil
	}
	seg := r.md.lastSegment()
	type res struct {
		slot int
		lac  int64
		ok   bool
	}
	ch := make(chan res, len(seg.Ensemble))
	for slot, b := range seg.Ensemble {
		go func() {
			rctx, cancel := r.c.withTimeout(ctx)
			defer cancel()
			cli, err := r.c.bookie(rctx, b)
			if err != nil {
				ch <- res{slot: slot}
				return
			}
			resp, err := cli.ReadLAC(rctx, &bookiepb.ReadLACRequest{LedgerId: r.md.ID})
			if code, isCode := bookiepb.CodeOf(err); err != nil && isCode && code == bookiepb.Code_NO_LEDGER {
				ch <- res{slot: slot, lac: -1, ok: true}
				return
			}
			if err != nil {
				ch <- res{slot: slot}
				return
			}
			ch <- res{slot: slot, lac: resp.Lac, ok: true}
		}()
	}
	known := make([]bool, len(seg.Ensemble))
	best := seg.FirstEntryID - 1
	for range seg.Ensemble {
		x := <-ch
		if x.ok {
			known[x.slot] = true
			best = max(best, x.lac)
		}
		if covered(known, r.md.EnsembleSize, r.md.WriteQuorum, r.md.AckQuorum) {
			return r.raiseLAC(best), nil
		}
	}
	return r.LastAddConfirmed(), fmt.Errorf("%w: ledger %d: too few bookies answered the LAC read", ErrRecovery, r.md.ID)
}

// WaitLAC long-polls the ensemble until the LAC exceeds prev or timeout
// passes, and returns the reader's LAC.
func (r *Reader) WaitLAC(ctx context.Context, prev int64, timeout time.Duration) (int64, error) {
	if lac := r.LastAddConfirmed(); lac > prev || r.md.State == StateClosed {
		return lac, nil
	}
	seg := r.md.lastSegment()
	ctx, cancel := context.WithTimeout(ctx, timeout+r.c.opts.ReadTimeout)
	defer cancel()
	ch := make(chan int64, len(seg.Ensemble))
	for _, b := range seg.Ensemble {
		go func() {
			cli, err := r.c.bookie(ctx, b)
			if err != nil {
				ch <- -2
				return
			}
			resp, err := cli.WaitLAC(ctx, &bookiepb.WaitLACRequest{LedgerId: r.md.ID, PreviousLac: prev, TimeoutMs: timeout.Milliseconds()})
			if err != nil {
				ch <- -2
				return
			}
			ch <- resp.Lac
		}()
	}
	// Done on the first advance, or once E-Qa+1 bookies report none (then no
	// ack quorum can have confirmed more).
	quiet := 0
	for range seg.Ensemble {
		lac := <-ch
		if lac > prev {
			return r.raiseLAC(lac), nil
		}
		if quiet++; quiet >= r.md.EnsembleSize-r.md.AckQuorum+1 {
			break
		}
	}
	return r.LastAddConfirmed(), nil
}

// read fetches first..last of a ledger described by md. Entries are grouped
// by their first replica and fetched in batches; entries that fail there are
// retried one by one on the other replicas of their write set.
func (c *Client) read(ctx context.Context, md Metadata, first, last int64) ([]Entry, error) {
	if first < 0 || last < first {
		return nil, fmt.Errorf("%w: read range %d..%d", ErrInvalid, first, last)
	}
	n := last - first + 1
	out := make([]Entry, n)
	got := make([]bool, n)
	byBookie := map[string][]int64{}
	for id := first; id <= last; id++ {
		b := md.WriteSet(id)[0]
		byBookie[b] = append(byBookie[b], id)
	}
	var wg sync.WaitGroup
	for b, ids := range byBookie {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.readBatch(ctx, md.ID, b, ids, func(id int64, e Entry) {
				out[id-first], got[id-first] = e, true
			})
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] {
			continue
		}
		id := first + int64(i)
		e, err := c.readEntry(ctx, md, id, 1)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// readBatch reads ids from one bookie in chunks, calling found for each
// entry that verifies. Failures are left for per-entry fail-over.
func (c *Client) readBatch(ctx context.Context, ledgerID int64, bookieID string, ids []int64, found func(int64, Entry)) {
	const chunk = 256
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		req := &bookiepb.ReadEntriesRequest{LedgerId: ledgerID, EntryIds: ids[:n], MaxBytes: 8 << 20}
		rctx, cancel := c.withTimeout(ctx)
		cli, err := c.bookie(rctx, bookieID)
		var resp *bookiepb.ReadEntriesResponse
		if err == nil {
			resp, err = cli.ReadEntries(rctx, req)
		}
		cancel()
		if err != nil || len(resp.Entries) == 0 {
			return
		}
		for _, r := range resp.Entries {
			if r.Code != bookiepb.Code_OK {
				continue
			}
			if h, payload, err := bookiepb.VerifyEntry(r.Body, ledgerID, r.EntryId); err == nil {
				found(r.EntryId, Entry{ID: r.EntryId, Payload: payload, Length: h.Length})
			} else {
				c.log.Warn("entry failed digest check; trying another replica", "ledger", ledgerID, "entry", r.EntryId, "bookie", bookieID, "err", err)
			}
		}
		ids = ids[len(resp.Entries):]
	}
}

// readEntry reads one entry trying the replicas of its write set in order,
// starting at replica index start.
func (c *Client) readEntry(ctx context.Context, md Metadata, id int64, start int) (Entry, error) {
	replicas := md.WriteSet(id)
	var corrupt, missing int
	var lastErr error
	for i := 0; i < len(replicas); i++ {
		b := replicas[(start+i)%len(replicas)]
		rctx, cancel := c.withTimeout(ctx)
		cli, err := c.bookie(rctx, b)
		var resp *bookiepb.ReadEntryResponse
		if err == nil {
			resp, err = cli.ReadEntry(rctx, &bookiepb.ReadEntryRequest{LedgerId: md.ID, EntryId: id})
		}
		cancel()
		if err != nil {
			if code, ok := bookiepb.CodeOf(err); ok && (code == bookiepb.Code_NO_ENTRY || code == bookiepb.Code_NO_LEDGER) {
				missing++
			} else {
				lastErr = fmt.Errorf("bookie %s: %w", b, err)
			}
			continue
		}
		h, payload, err := bookiepb.VerifyEntry(resp.Body, md.ID, id)
		if err != nil {
			corrupt++
			lastErr = fmt.Errorf("bookie %s: %w", b, err)
			c.log.Warn("entry failed digest check; trying another replica", "ledger", md.ID, "entry", id, "bookie", b, "err", err)
			continue
		}
		return Entry{ID: id, Payload: payload, Length: h.Length}, nil
	}
	switch {
	case ctx.Err() != nil:
		return Entry{}, ctx.Err()
	case corrupt > 0 && corrupt+missing == len(replicas):
		return Entry{}, fmt.Errorf("%w: ledger %d entry %d: %v", ErrCorrupt, md.ID, id, lastErr)
	case missing == len(replicas):
		return Entry{}, fmt.Errorf("%w: ledger %d entry %d on none of %v", ErrNoEntry, md.ID, id, replicas)
	case corrupt > 0:
		return Entry{}, fmt.Errorf("%w: ledger %d entry %d (other replicas unreachable): %v", ErrCorrupt, md.ID, id, lastErr)
	default:
		return Entry{}, fmt.Errorf("ledger %d entry %d: no replica answered: %w", md.ID, id, errors.Join(ErrUnavailable, lastErr))
	}
}
