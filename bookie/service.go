package bookie

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/internal/testfault"
)

// maxInflightPerStream bounds the adds of one stream awaiting their reply; the
// stream stops reading (and gRPC flow control pushes back on the client) when
// it is reached.
const maxInflightPerStream = 8192

// maxWaitLAC caps a long poll.
const maxWaitLAC = time.Minute

type service struct {
	bookiepb.UnimplementedBookieServer
	b *Bookie
}

// replyQueue is an unbounded FIFO of add replies for one stream. The journal
// pushes without ever blocking; the stream's sender pops.
type replyQueue struct {
	mu     sync.Mutex
	items  []*bookiepb.AddResponse
	notify chan struct{}
}

func (q *replyQueue) push(r *bookiepb.AddResponse) {
	q.mu.Lock()
	q.items = append(q.items, r)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *replyQueue) popAll(dst []*bookiepb.AddResponse) []*bookiepb.AddResponse {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.items...)
	clear(q.items)
	q.items = q.items[:0]
	return dst
}

func (s *service) Add(stream bookiepb.Bookie_AddServer) error {
	b := s.b
	ctx := stream.Context()
	q := &replyQueue{notify: make(chan struct{}, 1)}
	inflight := make(chan struct{}, maxInflightPerStream)
	sendErr := make(chan error, 1)
	go func() {
		var batch []*bookiepb.AddResponse
		for {
			select {
			case <-q.notify:
			case <-ctx.Done():
				return
			}
			batch = q.popAll(batch[:0])
			for _, r := range batch {
				if r.Code == bookiepb.Code_OK && b.opts.Hooks.OnAck != nil {
					b.opts.Hooks.OnAck(EntryRef{r.LedgerId, r.EntryId})
				}
				if err := stream.Send(r); err != nil {
					sendErr <- err
					return
				}
				<-inflight
			}
		}
	}()
	reply := func(ledgerID, entryID int64, code bookiepb.Code, msg string) {
		r := &bookiepb.AddResponse{LedgerId: ledgerID, EntryId: entryID, Code: code, Message: msg}
		if d := b.replyDelay(code, ledgerID, entryID); d > 0 {
			time.AfterFunc(d, func() { q.push(r) })
			return
		}
		q.push(r)
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			// Half-closed: deliver every outstanding reply before ending.
			for i := 0; i < cap(inflight); i++ {
				select {
				case inflight <- struct{}{}:
				case err := <-sendErr:
					return err
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case inflight <- struct{}{}:
		case err := <-sendErr:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
		if b.opts.Hooks.DropAdd != nil && b.opts.Hooks.DropAdd(EntryRef{req.LedgerId, req.EntryId}) {
			<-inflight // lost on the way: never applied, never answered
			continue
		}
		if code, msg := b.validateAdd(req); code != bookiepb.Code_OK {
			b.metrics.addEntries.WithLabelValues(code.String()).Inc()
			reply(req.LedgerId, req.EntryId, code, msg)
			continue
		}
		h, _ := bookiepb.ParseEntryHeader(req.Body)
		start := time.Now()
		ledgerID, entryID, size := req.LedgerId, req.EntryId, len(req.Body)
		op := &journalOp{
			kind: opAdd, ledgerID: ledgerID, entryID: entryID, lac: h.LAC,
			masterKey: req.MasterKey, body: req.Body, recovery: req.Recovery,
			done: func(r opResult) {
				b.metrics.addEntries.WithLabelValues(r.code.String()).Inc()
				if r.code == bookiepb.Code_OK {
					b.metrics.addBytes.Add(float64(size))
					b.metrics.addLatency.Observe(time.Since(start).Seconds())
				}
				reply(ledgerID, entryID, r.code, r.msg)
			},
		}
		if testfault.On(testfault.BookieAckBeforeWrite) {
			// Broken on purpose (tests only): answer now, journal later.
			done := op.done
			op.done = func(r opResult) { b.metrics.addEntries.WithLabelValues(r.code.String()).Inc() }
			done(opResult{code: bookiepb.Code_OK})
			time.AfterFunc(200*time.Millisecond, func() { b.journal.submit(op) })
			continue
		}
		if !b.journal.submit(op) {
			reply(ledgerID, entryID, bookiepb.Code_SHUTTING_DOWN, "bookie shutting down")
		}
	}
}

func (b *Bookie) replyDelay(code bookiepb.Code, ledgerID, entryID int64) time.Duration {
	if b.opts.Hooks.ReplyDelay == nil || code != bookiepb.Code_OK {
		return 0
	}
	return b.opts.Hooks.ReplyDelay(EntryRef{ledgerID, entryID})
}

func (b *Bookie) readDelay(ledgerID, entryID int64) time.Duration {
	if b.opts.Hooks.ReadDelay == nil {
		return 0
	}
	return b.opts.Hooks.ReadDelay(EntryRef{ledgerID, entryID})
}

// validateAdd rejects malformed or unacceptable adds before they reach the journal.
func (b *Bookie) validateAdd(req *bookiepb.AddRequest) (bookiepb.Code, string) {
	switch {
	case req.LedgerId < 0 || req.EntryId < 0:
		return bookiepb.Code_BAD_REQUEST, fmt.Sprintf("invalid ledger %d / entry %d", req.LedgerId, req.EntryId)
	case len(req.Body) > b.opts.MaxEntrySize:
		return bookiepb.Code_TOO_LARGE, fmt.Sprintf("entry of %d bytes exceeds the maximum of %d", len(req.Body), b.opts.MaxEntrySize)
	case len(req.MasterKey) == 0 || len(req.MasterKey) > 255:
		return bookiepb.Code_UNAUTHORIZED, "a master key of 1..255 bytes is required"
	}
	h, err := bookiepb.ParseEntryHeader(req.Body)
	if err != nil {
		return bookiepb.Code_BAD_REQUEST, err.Error()
	}
	if h.LedgerID != req.LedgerId || h.EntryID != req.EntryId {
		return bookiepb.Code_BAD_REQUEST, fmt.Sprintf("envelope names ledger %d entry %d, request names ledger %d entry %d",
			h.LedgerID, h.EntryID, req.LedgerId, req.EntryId)
	}
	if b.failed.Load() {
		return bookiepb.Code_IO_ERROR, "bookie storage failed; read-only"
	}
	if b.draining.Load() {
		return bookiepb.Code_READ_ONLY, "bookie is being decommissioned"
	}
	if b.readOnly.Load() && !req.Recovery {
		return bookiepb.Code_READ_ONLY, "bookie is read-only (disk usage above threshold)"
	}
	return bookiepb.Code_OK, ""
}

func checkLedgerID(id int64) error {
	if id < 0 {
		return bookiepb.Error(bookiepb.Code_BAD_REQUEST, "invalid ledger id %d", id)
	}
	return nil
}

func (s *service) ReadEntry(ctx context.Context, req *bookiepb.ReadEntryRequest) (*bookiepb.ReadEntryResponse, error) {
	b := s.b
	if err := checkLedgerID(req.LedgerId); err != nil {
		return nil, err
	}
	if req.EntryId < -1 {
		return nil, bookiepb.Error(bookiepb.Code_BAD_REQUEST, "invalid entry id %d", req.EntryId)
	}
	if req.Fence {
		// A recovery read: once the fence is durable, every add accepted
		// before it is committed, so what this bookie lacks it never gets.
		if _, err := b.fence(req.LedgerId, req.MasterKey); err != nil {
			return nil, err
		}
	}
	if d := b.readDelay(req.LedgerId, req.EntryId); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	known, _, lac, _, err := b.ledgers.snapshot(req.LedgerId)
	if err != nil {
		return nil, bookiepb.Error(bookiepb.Code_IO_ERROR, "%v", err)
	}
	if !known {
		b.metrics.readEntries.WithLabelValues(bookiepb.Code_NO_LEDGER.String()).Inc()
		return nil, bookiepb.Error(bookiepb.Code_NO_LEDGER, "ledger %d not found on bookie %s", req.LedgerId, b.id)
	}
	id, body := req.EntryId, []byte(nil)
	if id == -1 {
		id, body, err = b.st.lastEntry(req.LedgerId)
		if err == nil && id < 0 {
			err = errNoEntry
		}
	} else {
		body, err = b.st.getEntry(req.LedgerId, id)
	}
	if errors.Is(err, errNoEntry) {
		b.metrics.readEntries.WithLabelValues(bookiepb.Code_NO_ENTRY.String()).Inc()
		return nil, bookiepb.Error(bookiepb.Code_NO_ENTRY, "ledger %d entry %d not found on bookie %s", req.LedgerId, req.EntryId, b.id)
	}
	if err != nil {
		return nil, bookiepb.Error(bookiepb.Code_IO_ERROR, "read ledger %d entry %d: %v", req.LedgerId, req.EntryId, err)
	}
	b.metrics.readEntries.WithLabelValues(bookiepb.Code_OK.String()).Inc()
	b.metrics.readBytes.Add(float64(len(body)))
	return &bookiepb.ReadEntryResponse{EntryId: id, Body: body, Lac: lac}, nil
}

func (s *service) ReadEntries(ctx context.Context, req *bookiepb.ReadEntriesRequest) (*bookiepb.ReadEntriesResponse, error) {
	b := s.b
	if err := checkLedgerID(req.LedgerId); err != nil {
		return nil, err
	}
	if len(req.EntryIds) > 100000 {
		return nil, bookiepb.Error(bookiepb.Code_BAD_REQUEST, "%d entries in one request (max 100000)", len(req.EntryIds))
	}
	known, _, lac, _, err := b.ledgers.snapshot(req.LedgerId)
	if err != nil {
		return nil, bookiepb.Error(bookiepb.Code_IO_ERROR, "%v", err)
	}
	if !known {
		return nil, bookiepb.Error(bookiepb.Code_NO_LEDGER, "ledger %d not found on bookie %s", req.LedgerId, b.id)
	}
	maxBytes := req.MaxBytes
	if maxBytes <= 0 || maxBytes > 16<<20 {
		maxBytes = 16 << 20
	}
	resp := &bookiepb.ReadEntriesResponse{Lac: lac}
	var total int64
	for _, id := range req.EntryIds {
		if total >= maxBytes {
			break
		}
		r := &bookiepb.EntryResult{EntryId: id}
		switch body, err := b.st.getEntry(req.LedgerId, id); {
		case id < 0:
			r.Code = bookiepb.Code_BAD_REQUEST
		case errors.Is(err, errNoEntry):
			r.Code = bookiepb.Code_NO_ENTRY
		case err != nil:
			r.Code = bookiepb.Code_IO_ERROR
		default:
			r.Body = body
			total += int64(len(body))
		}
		b.metrics.readEntries.WithLabelValues(r.Code.String()).Inc()
		resp.Entries = append(resp.Entries, r)
	}
	b.metrics.readBytes.Add(float64(total))
	return resp, nil
}

func (s *service) ReadLAC(ctx context.Context, req *bookiepb.ReadLACRequest) (*bookiepb.ReadLACResponse, error) {
	if err := checkLedgerID(req.LedgerId); err != nil {
		return nil, err
	}
	known, _, lac, _, err := s.b.ledgers.snapshot(req.LedgerId)
	if err != nil {
		return nil, bookiepb.Error(bookiepb.Code_IO_ERROR, "%v", err)
	}
	if !known {
		return nil, bookiepb.Error(bookiepb.Code_NO_LEDGER, "ledger %d not found on bookie %s", req.LedgerId, s.b.id)
	}
	return &bookiepb.ReadLACResponse{Lac: lac}, nil
}

func (s *service) WaitLAC(ctx context.Context, req *bookiepb.WaitLACRequest) (*bookiepb.WaitLACResponse, error) {
	b := s.b
	if err := checkLedgerID(req.LedgerId); err != nil {
		return nil, err
	}
	st, err := b.ledgers.get(req.LedgerId)
	if err != nil {
		return nil, bookiepb.Error(bookiepb.Code_IO_ERROR, "%v", err)
	}
	timeout := time.Duration(min(max(req.TimeoutMs, 0), maxWaitLAC.Milliseconds())) * time.Millisecond
	lac, wake := b.ledgers.watch(st, req.PreviousLac)
	if wake != nil {
		t := time.NewTimer(timeout)
		defer t.Stop()
		var err error
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		case <-b.ctx.Done():
			err = bookiepb.Error(bookiepb.Code_SHUTTING_DOWN, "bookie shutting down")
		}
		b.ledgers.unwatch(req.LedgerId, st, wake)
		if err != nil {
			return nil, err
		}
		_, _, lac, _, _ = b.ledgers.snapshot(req.LedgerId)
	}
	resp := &bookiepb.WaitLACResponse{Lac: lac}
	if lac > req.PreviousLac {
		if body, err := b.st.getEntry(req.LedgerId, req.PreviousLac+1); err == nil {
			resp.Entry = body
		}
	}
	return resp, nil
}

func (s *service) Fence(ctx context.Context, req *bookiepb.FenceRequest) (*bookiepb.FenceResponse, error) {
	if err := checkLedgerID(req.LedgerId); err != nil {
		return nil, err
	}
	r, err := s.b.fence(req.LedgerId, req.MasterKey)
	if err != nil {
		return nil, err
	}
	return &bookiepb.FenceResponse{LastEntryId: r.lastEntryID, LastEntry: r.lastEntry, Lac: r.lac}, nil
}

// fence marks a ledger fenced through the journal and returns once the fence
// is durable, with the last entry stored here. It waits even if the caller
// goes away, so that a reply always means "persisted".
func (b *Bookie) fence(ledgerID int64, masterKey []byte) (opResult, error) {
	if len(masterKey) == 0 || len(masterKey) > 255 {
		return opResult{}, bookiepb.Error(bookiepb.Code_UNAUTHORIZED, "fencing needs the ledger's master key")
	}
	res := make(chan opResult, 1)
	if !b.journal.submit(&journalOp{kind: opFence, ledgerID: ledgerID, masterKey: masterKey, done: func(r opResult) { res <- r }}) {
		return opResult{}, bookiepb.Error(bookiepb.Code_SHUTTING_DOWN, "bookie shutting down")
	}
	r := <-res
	if r.code != bookiepb.Code_OK {
		return r, bookiepb.Error(r.code, "fence ledger %d: %s", ledgerID, r.msg)
	}
	return r, nil
}

func (s *service) Info(ctx context.Context, _ *bookiepb.InfoRequest) (*bookiepb.InfoResponse, error) {
	b := s.b
	used, total, _ := b.opts.DiskUsage(b.opts.DataDir)
	inst, _, _ := readCookieFile(cookiePath(b.opts.DataDir))
	return &bookiepb.InfoResponse{
		BookieId: b.id, ReadOnly: b.ReadOnly(), FreeBytes: total - used, TotalBytes: total,
		InstanceId: inst.InstanceID, MaxEntrySize: int64(b.opts.MaxEntrySize),
	}, nil
}
