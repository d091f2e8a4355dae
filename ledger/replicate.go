package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/strata-mq/strata/api/bookiepb"
)

// ErrSegmentChanged: the segment a re-replication worked on changed in
// metadata meanwhile (another worker replaced the bookie, or the ledger was
// recovered); read the metadata again and decide anew.
var ErrSegmentChanged = errors.New("ledger: segment changed during re-replication")

// ReplicationStats counts what a re-replication copied.
type ReplicationStats struct {
	Entries, Bytes int64
}

// SegmentEnd returns the last entry of segment seg, and whether the segment
// is closed: an earlier segment ends where the next begins, the last one at
// the ledger's last entry once the ledger is closed. An open ledger's last
// segment is still being written and has no end yet.
func (m Metadata) SegmentEnd(seg int) (last int64, closed bool) {
	if seg+1 < len(m.Segments) {
		return m.Segments[seg+1].FirstEntryID - 1, true
	}
	return m.LastEntryID, m.State == StateClosed
}

// ReplacementBookie picks a writable bookie outside exclude to take a lost
// bookie's place (the placement rules of new ensembles).
func (c *Client) ReplacementBookie(ctx context.Context, exclude []string) (string, error) {
	picked, err := c.selectBookies(ctx, 1, exclude)
	if err != nil {
		return "", err
	}
	return picked[0], nil
}

// ReplaceBookie re-replicates one closed segment of a ledger: every entry of
// segment seg that old stored (its slot is in the entry's write set) is read
// from another replica, checked against its digest and written to target
// with a recovery add, exactly as the writer made it (header, LAC and
// length included); then target takes old's place in the segment's
// ensemble (compare-and-swap, so a concurrent change is never overwritten:
// ErrSegmentChanged). target must be a live bookie outside the segment's
// ensemble. The segment must be closed: an open ledger's last segment is
// still being written, and must be recovered (OpenRecover) first.
func (c *Client) ReplaceBookie(ctx context.Context, id int64, seg int, old, target string) (Metadata, ReplicationStats, error) {
	var st ReplicationStats
	md, err := c.Metadata(ctx, id)
	if err != nil {
		return md, st, err
	}
	if seg < 0 || seg >= len(md.Segments) {
		return md, st, fmt.Errorf("%w: ledger %d has no segment %d", ErrInvalid, id, seg)
	}
	ens := md.Segments[seg].Ensemble
	slot := slices.Index(ens, old)
	switch {
	case slot < 0:
		return md, st, fmt.Errorf("%w: bookie %s is not in segment %d of ledger %d", ErrSegmentChanged, old, seg, id)
	case slices.Contains(ens, target):
		return md, st, fmt.Errorf("%w: bookie %s is already in segment %d of ledger %d", ErrInvalid, target, seg, id)
	case md.State == StateInRecovery && seg == len(md.Segments)-1:
		return md, st, fmt.Errorf("%w: ledger %d is being recovered", ErrSegmentChanged, id)
	}
	first := md.Segments[seg].FirstEntryID
	last, closed := md.SegmentEnd(seg)
	if !closed {
		return md, st, fmt.Errorf("%w: segment %d of ledger %d is still being written; recover the ledger first", ErrInvalid, seg, id)
	}
	var ids []int64
	for e := first; e <= last; e++ {
		if slices.Contains(writeSet(e, md.EnsembleSize, md.WriteQuorum), slot) {
			ids = append(ids, e)
		}
	}
	if len(ids) > 0 {
		if st, err = c.copyEntries(ctx, md, ids, old, target); err != nil {
			return md, st, err
		}
	}
	md, err = c.updateMetadata(ctx, md, func(m *Metadata) (bool, error) {
		if seg >= len(m.Segments) || m.Segments[seg].FirstEntryID != first {
			return false, fmt.Errorf("%w: segment %d of ledger %d no longer starts at entry %d", ErrSegmentChanged, seg, id, first)
		}
		if l, ok := m.SegmentEnd(seg); !ok || l != last {
			return false, fmt.Errorf("%w: segment %d of ledger %d no longer ends at entry %d", ErrSegmentChanged, seg, id, last)
		}
		switch m.Segments[seg].Ensemble[slot] {
		case target:
			return false, nil // done by another worker
		case old:
			m.Segments[seg].Ensemble[slot] = target
			return true, nil
		default:
			return false, fmt.Errorf("%w: slot %d of segment %d of ledger %d holds %s now", ErrSegmentChanged, slot, seg, id, m.Segments[seg].Ensemble[slot])
		}
	})
	if err == nil {
		c.log.Info("re-replicated ledger segment", "ledger", id, "segment", seg, "from", old, "to", target,
			"entries", st.Entries, "bytes", st.Bytes)
	}
	return md, st, err
}

// copyEntries copies entries ids of md from their other replicas to target,
// in chunks so that memory stays bounded.
func (c *Client) copyEntries(ctx context.Context, md Metadata, ids []int64, old, target string) (ReplicationStats, error) {
	var st ReplicationStats
	key := MasterKey(md.Password)
	cli, err := c.bookie(ctx, target)
	if err != nil {
		return st, fmt.Errorf("%w: bookie %s: %v", ErrUnavailable, target, err)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cli.Add(actx)
	if err != nil {
		return st, fmt.Errorf("%w: add stream to bookie %s: %v", ErrUnavailable, target, err)
	}
	const chunk = 128
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		bodies, err := c.readBodies(ctx, md, ids[:n], old)
		if err != nil {
			return st, err
		}
		for i, id := range ids[:n] {
			if err := stream.Send(&bookiepb.AddRequest{LedgerId: md.ID, EntryId: id, MasterKey: key, Body: bodies[i], Recovery: true}); err != nil {
				return st, fmt.Errorf("%w: send to bookie %s: %v", ErrUnavailable, target, err)
			}
		}
		for range n {
			resp, err := stream.Recv()
			if err != nil {
				return st, fmt.Errorf("%w: bookie %s: %v", ErrUnavailable, target, err)
			}
			if resp.Code != bookiepb.Code_OK {
				return st, fmt.Errorf("bookie %s refused entry %d of ledger %d: %s: %s", target, resp.EntryId, md.ID, resp.Code, resp.Message)
			}
		}
		for _, b := range bodies {
			st.Entries++
			st.Bytes += int64(len(b))
		}
		ids = ids[n:]
	}
	if err := stream.CloseSend(); err != nil {
		return st, fmt.Errorf("%w: bookie %s: %v", ErrUnavailable, target, err)
	}
	if _, err := stream.Recv(); err != nil && !errors.Is(err, io.EOF) {
		return st, fmt.Errorf("%w: bookie %s: %v", ErrUnavailable, target, err)
	}
	return st, nil
}

// readBodies returns the verified envelopes of ids, read from the replicas
// of each entry's write set other than skip: in one batch from the first
// such replica, then entry by entry from the others.
func (c *Client) readBodies(ctx context.Context, md Metadata, ids []int64, skip string) ([][]byte, error) {
	out := make([][]byte, len(ids))
	index := make(map[int64]int, len(ids))
	byBookie := map[string][]int64{}
	replicas := func(id int64) []string {
		return slices.DeleteFunc(md.WriteSet(id), func(b string) bool { return b == skip })
	}
	for i, id := range ids {
		index[id] = i
		if r := replicas(id); len(r) > 0 {
			byBookie[r[0]] = append(byBookie[r[0]], id)
		}
	}
	for b, bids := range byBookie {
		rctx, cancel := c.withTimeout(ctx)
		cli, err := c.bookie(rctx, b)
		var resp *bookiepb.ReadEntriesResponse
		if err == nil {
			resp, err = cli.ReadEntries(rctx, &bookiepb.ReadEntriesRequest{LedgerId: md.ID, EntryIds: bids, MaxBytes: 16 << 20})
		}
		cancel()
		if err != nil {
			continue // entry by entry below
		}
		for _, r := range resp.Entries {
			i, ok := index[r.EntryId]
			if !ok || r.Code != bookiepb.Code_OK {
				continue
			}
			if _, _, err := bookiepb.VerifyEntry(r.Body, md.ID, r.EntryId); err == nil {
				out[i] = r.Body
			}
		}
	}
	for i, id := range ids {
		if out[i] != nil {
			continue
		}
		var errs []error
		for _, b := range replicas(id) {
			rctx, cancel := c.withTimeout(ctx)
			cli, err := c.bookie(rctx, b)
			var resp *bookiepb.ReadEntryResponse
			if err == nil {
				resp, err = cli.ReadEntry(rctx, &bookiepb.ReadEntryRequest{LedgerId: md.ID, EntryId: id})
			}
			cancel()
			if err == nil {
				_, _, err = bookiepb.VerifyEntry(resp.Body, md.ID, id)
			}
			if err == nil {
				out[i] = resp.Body
				break
			}
			errs = append(errs, fmt.Errorf("bookie %s: %w", b, err))
		}
		if out[i] == nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: ledger %d entry %d has no readable replica besides %s: %v", ErrUnavailable, md.ID, id, skip, errors.Join(errs...))
		}
	}
	return out, nil
}
