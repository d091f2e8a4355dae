package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/internal/ordered"
)

// Writer appends entries to an open ledger. Appends are pipelined: many may
// be in flight, and their callbacks run strictly in entry-id order, each only
// after the entry and every earlier one reached the ack quorum.
type Writer struct {
	c         *Client
	id        int64
	masterKey []byte
	// recovery writers re-replicate a ledger's tail during recovery: their
	// adds carry the recovery flag (accepted on fenced bookies) and their
	// ensemble changes stay in memory until the recovery closes the ledger.
	recovery bool
	cbs      *ordered.Queue[int64]
	stopWD   chan struct{}

	mu struct {
		sync.Mutex
		md            Metadata
		streams       []*addStream // by ensemble slot
		excluded      []string     // bookies that failed this writer
		lastAddPushed int64
		lac           int64
		length        int64 // cumulative payload bytes of pushed entries
		lacLength     int64 // cumulative payload bytes up to lac
		pending       []*pendingAdd
		changing      bool           // an ensemble change is in progress
		failed        map[int]string // slot -> failed bookie awaiting replacement
		err           error          // terminal: every later add fails with it
		closing       bool
		drained       chan struct{} // closed once closing and nothing is pending
		closeErr      error
		closed        bool
	}
}

type pendingAdd struct {
	entryID int64
	length  int64
	body    []byte
	acks    uint64 // bit per ensemble slot that acknowledged
	sentAt  time.Time
	cb      func(int64, error)
}

func newWriter(c *Client, md Metadata, key []byte, lac, length int64, recovery bool) *Writer {
	w := &Writer{c: c, id: md.ID, masterKey: key, recovery: recovery, cbs: ordered.New[int64](), stopWD: make(chan struct{})}
	w.mu.md = md
	w.mu.lastAddPushed, w.mu.lac = lac, lac
	w.mu.length, w.mu.lacLength = length, length
	w.mu.failed = make(map[int]string)
	w.mu.drained = make(chan struct{})
	ens := md.lastSegment().Ensemble
	w.mu.Lock()
	w.mu.streams = make([]*addStream, len(ens))
	for slot, id := range ens {
		w.mu.streams[slot] = newAddStream(w, slot, id)
	}
	w.mu.Unlock()
	go w.watchdog()
	return w
}

// ID returns the ledger id.
func (w *Writer) ID() int64 { return w.id }

// LastAddConfirmed returns the highest entry id acknowledged so far (-1: none).
func (w *Writer) LastAddConfirmed() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.lac
}

// Length returns the payload bytes acknowledged so far.
func (w *Writer) Length() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.lacLength
}

// Metadata returns the writer's current view of the ledger metadata.
func (w *Writer) Metadata() Metadata {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.md.clone()
}

// Err returns the terminal error of the writer (ErrFenced, ...), or nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.err
}

// Append adds an entry and waits for its acknowledgement.
func (w *Writer) Append(ctx context.Context, payload []byte) (int64, error) {
	type result struct {
		id  int64
		err error
	}
	ch := make(chan result, 1)
	w.AppendAsync(payload, func(id int64, err error) { ch <- result{id, err} })
	select {
	case r := <-ch:
		return r.id, r.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// AppendAsync adds an entry without waiting. cb runs once, on the writer's
// callback goroutine, with the entry id or an error; callbacks run in entry
// order. payload must not be modified afterwards.
func (w *Writer) AppendAsync(payload []byte, cb func(entryID int64, err error)) {
	if len(payload) > w.c.opts.MaxEntrySize {
		w.cbs.Push(cb, -1, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(payload), w.c.opts.MaxEntrySize))
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pushLocked(payload, w.mu.length+int64(len(payload)), cb)
}

// pushLocked assigns the next entry id and sends the entry to its write set.
// w.mu must be held.
func (w *Writer) pushLocked(payload []byte, length int64, cb func(int64, error)) {
	if w.mu.err != nil || w.mu.closing {
		err := w.mu.err
		if err == nil {
			err = ErrClosed
		}
		w.cbs.Push(cb, -1, err)
		return
	}
	id := w.mu.lastAddPushed + 1
	w.mu.lastAddPushed = id
	w.mu.length = length
	op := &pendingAdd{entryID: id, length: length, cb: cb, sentAt: time.Now()}
	op.body = bookiepb.PackEntry(bookiepb.EntryHeader{LedgerID: w.id, EntryID: id, LAC: w.mu.lac, Length: length}, payload)
	w.mu.pending = append(w.mu.pending, op)
	for _, slot := range writeSet(id, w.mu.md.EnsembleSize, w.mu.md.WriteQuorum) {
		if _, failed := w.mu.failed[slot]; !failed {
			w.sendLocked(op, slot)
		}
	}
}

func (w *Writer) sendLocked(op *pendingAdd, slot int) {
	w.mu.streams[slot].send(&bookiepb.AddRequest{
		LedgerId: w.id, EntryId: op.entryID, MasterKey: w.masterKey, Body: op.body, Recovery: w.recovery,
	})
}

// pendingLocked finds the pending add of entryID, nil if it is not pending.
func (w *Writer) pendingLocked(entryID int64) *pendingAdd {
	if len(w.mu.pending) == 0 {
		return nil
	}
	i := entryID - w.mu.pending[0].entryID
	if i < 0 || i >= int64(len(w.mu.pending)) {
		return nil
	}
	return w.mu.pending[i]
}

func (w *Writer) onAddResponse(s *addStream, resp *bookiepb.AddResponse) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.streams[s.slot] != s || resp.LedgerId != w.id {
		return // a reply from a replaced bookie
	}
	switch resp.Code {
	case bookiepb.Code_OK:
		if op := w.pendingLocked(resp.EntryId); op != nil {
			op.acks |= 1 << s.slot
			w.completeLocked()
		}
	case bookiepb.Code_FENCED:
		w.failLocked(fmt.Errorf("%w: bookie %s: %s", ErrFenced, s.bookieID, resp.Message))
	case bookiepb.Code_UNAUTHORIZED:
		w.failLocked(fmt.Errorf("%w: bookie %s: %s", ErrUnauthorized, s.bookieID, resp.Message))
	default:
		// Read-only, I/O error, shutting down...: replace the bookie.
		go s.fail(fmt.Errorf("bookie %s add entry %d: %s: %s", s.bookieID, resp.EntryId, resp.Code, resp.Message))
	}
}

// completeLocked acknowledges, in entry order, every pending add at the
// head of the queue that reached the ack quorum. Nothing is acknowledged
// during an ensemble change. w.mu must be held.
func (w *Writer) completeLocked() {
	for !w.mu.changing && len(w.mu.pending) > 0 {
		op := w.mu.pending[0]
		if bits.OnesCount64(op.acks) < w.mu.md.AckQuorum {
			break
		}
		w.mu.pending[0] = nil
		w.mu.pending = w.mu.pending[1:]
		w.mu.lac, w.mu.lacLength = op.entryID, op.length
		w.cbs.Push(op.cb, op.entryID, nil)
	}
	w.checkDrainedLocked()
}

func (w *Writer) checkDrainedLocked() {
	if w.mu.closing && (len(w.mu.pending) == 0 || w.mu.err != nil) {
		select {
		case <-w.mu.drained:
		default:
			close(w.mu.drained)
		}
	}
}

// failLocked puts the writer in a terminal error state, failing every
// pending add. w.mu must be held.
func (w *Writer) failLocked(err error) {
	if w.mu.err != nil {
		return
	}
	w.mu.err = err
	for _, op := range w.mu.pending {
		w.cbs.Push(op.cb, op.entryID, err)
	}
	w.mu.pending = nil
	for _, s := range w.mu.streams {
		s.stop()
	}
	w.c.log.Warn("ledger writer failed", "ledger", w.id, "err", err)
	w.checkDrainedLocked()
}

// bookieFailed starts replacing the bookie of a failed stream.
func (w *Writer) bookieFailed(s *addStream, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.err != nil || w.mu.streams[s.slot] != s {
		return
	}
	if _, ok := w.mu.failed[s.slot]; ok {
		return
	}
	w.c.log.Warn("bookie failed during adds; changing ensemble", "ledger", w.id, "bookie", s.bookieID, "slot", s.slot, "err", err)
	w.c.quarantine(s.bookieID)
	w.mu.failed[s.slot] = s.bookieID
	w.mu.excluded = append(w.mu.excluded, s.bookieID)
	if !w.mu.changing {
		w.mu.changing = true
		go w.changeEnsemble()
	}
}

// watchdog treats bookies that leave adds unanswered for AddTimeout as failed.
func (w *Writer) watchdog() {
	t := time.NewTicker(max(w.c.opts.AddTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.stopWD:
			return
		}
		var slow []*addStream
		w.mu.Lock()
		now := time.Now()
		for _, op := range w.mu.pending {
			if now.Sub(op.sentAt) < w.c.opts.AddTimeout {
				break
			}
			for _, slot := range writeSet(op.entryID, w.mu.md.EnsembleSize, w.mu.md.WriteQuorum) {
				if _, failed := w.mu.failed[slot]; !failed && op.acks&(1<<slot) == 0 {
					slow = append(slow, w.mu.streams[slot])
				}
			}
		}
		w.mu.Unlock()
		for _, s := range slow {
			s.fail(fmt.Errorf("bookie %s: add unanswered for %v", s.bookieID, w.c.opts.AddTimeout))
		}
	}
}

// Close waits for pending adds to complete (or fail), then records the
// ledger CLOSED at the last acknowledged entry, and returns nil once it is.
// It is idempotent. If ctx ends first, the writer is abandoned (Abandon):
// nothing of it keeps running. A fenced writer returns ErrFenced and leaves the
// metadata to the recoverer; if the ledger was closed by someone else at a
// different end, Close also returns ErrFenced.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.mu.closed {
		err := w.mu.closeErr
		w.mu.Unlock()
		return err
	}
	w.mu.closing = true
	w.checkDrainedLocked()
	drained := w.mu.drained
	w.mu.Unlock()

	select {
	case <-drained:
	case <-ctx.Done():
		// Give up as a crash would: pending adds fail, the streams stop,
		// and the ledger stays OPEN for a recoverer to close.
		w.Abandon()
		return ctx.Err()
	}
	w.mu.Lock()
	err, lac, length, md := w.mu.err, w.mu.lac, w.mu.lacLength, w.mu.md.clone()
	streams := slices.Clone(w.mu.streams)
	w.mu.Unlock()
	if err == nil {
		// Let replicas beyond the ack quorum finish, within the add timeout.
		wctx, cancel := context.WithTimeout(ctx, w.c.opts.AddTimeout)
		for _, s := range streams {
			s.waitIdle(wctx)
		}
		cancel()
	}
	// A writer that failed for another reason than fencing (bookies lost)
	// still closes the ledger at its LAC: entries beyond it were never
	// acknowledged and are not part of the ledger, so a caller may safely
	// re-append them elsewhere.
	if !w.recovery && !errors.Is(err, ErrFenced) {
		err = w.closeMetadata(ctx, md, lac, length)
	}
	w.shutdown(err)
	return err
}

func (w *Writer) closeMetadata(ctx context.Context, md Metadata, lac, length int64) error {
	md, err := w.c.updateMetadata(ctx, md, func(m *Metadata) (bool, error) {
		switch m.State {
		case StateClosed:
			if m.LastEntryID == lac && m.Length == length {
				return false, nil
			}
			return false, fmt.Errorf("%w: ledger %d closed by another client at entry %d (writer at %d)", ErrFenced, w.id, m.LastEntryID, lac)
		case StateInRecovery:
			return false, fmt.Errorf("%w: ledger %d is being recovered", ErrFenced, w.id)
		}
		m.State, m.LastEntryID, m.Length = StateClosed, lac, length
		return true, nil
	})
	if err == nil {
		w.mu.Lock()
		w.mu.md = md
		w.mu.Unlock()
	}
	return err
}

// shutdown releases the streams and goroutines; err is what later Close calls return.
func (w *Writer) shutdown(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.closed {
		return
	}
	w.mu.closed, w.mu.closeErr = true, err
	for _, s := range w.mu.streams {
		s.stop()
	}
	close(w.stopWD)
	w.cbs.Close()
}

// Abandon drops the writer without closing the ledger, as a crashed writer
// would: the ledger stays OPEN until another client recovers it. Pending
// adds fail with ErrClosed.
func (w *Writer) Abandon() {
	w.mu.Lock()
	w.mu.closing = true
	w.failLocked(ErrClosed)
	w.mu.Unlock()
	w.shutdown(ErrClosed)
}

// Read reads entries first..last (inclusive, at most the LAC) of the ledger
// being written.
func (w *Writer) Read(ctx context.Context, first, last int64) ([]Entry, error) {
	md := w.Metadata()
	if lac := w.LastAddConfirmed(); last > lac {
		return nil, fmt.Errorf("%w: entry %d is beyond the last confirmed entry %d of ledger %d", ErrNoEntry, last, lac, w.id)
	}
	return w.c.read(ctx, md, first, last)
}
