package managed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-mq/strata/metadata"
)

// InitialPosition says where a new cursor starts.
type InitialPosition int

const (
	// Latest: only entries appended after the cursor's creation.
	Latest InitialPosition = iota
	// Earliest: every entry still in the log.
	Earliest
)

// Cursor tracks one subscription's (or reader's) progress: the mark-delete
// position (every entry at or before it is acknowledged), the individually
// acknowledged ranges above it, and the read position (the next entry to
// deliver). Durable cursors are persisted in batches; non-durable ones live
// in memory only and do not hold back trimming.
//
// Lock order: Cursor.mu before ManagedLedger.mu.
type Cursor struct {
	ml      *ManagedLedger
	name    string
	durable bool
	// creating is closed once a new durable cursor is persisted (nil for
	// cursors loaded at open); createErr is set before if that failed.
	creating  chan struct{}
	createErr error

	persistMu sync.Mutex // serializes persistence of this cursor

	mu struct {
		sync.Mutex
		markDelete Position
		acked      rangeSet
		readPos    Position
		dirty      bool
		version    int64 // ModRevision of the persisted state, 0 if never stored
		lastActive time.Time
		active     bool
		closed     bool
		props      map[string]int64
		// batch: partly acknowledged batch entries above markDelete and
		// the messages of each still unacknowledged (batchacks.go).
		batch map[Position][]int64
	}
}

// cursorState is a durable cursor's persisted form.
type cursorState struct {
	MarkDelete Position `json:"markDelete"`
	// Ranges are individually acknowledged [ledgerId, fromEntry, toEntry]
	// triples above the mark-delete position, capped (see Options).
	Ranges     [][3]int64       `json:"ranges,omitempty"`
	LastActive int64            `json:"lastActive,omitempty"`
	Properties map[string]int64 `json:"properties,omitempty"`
	// BatchAcks are partly acknowledged batch entries above the mark-delete
	// position: [ledgerId, entryId, unacknowledged-message words...].
	BatchAcks [][]int64 `json:"batchAcks,omitempty"`
}

// Name returns the cursor's name.
func (c *Cursor) Name() string { return c.name }

// Durable reports whether the cursor is persisted.
func (c *Cursor) Durable() bool { return c.durable }

// readCursors reads the persisted state of every durable cursor of the log.
func (ml *ManagedLedger) readCursors(ctx context.Context) (map[string]cursorState, map[string]int64, error) {
	kvs, err := metadata.ListAll(ctx, ml.opts.Metadata, cursorsPrefix(ml.name), false)
	if err != nil {
		return nil, nil, fmt.Errorf("managed ledger %s: list cursors: %w", ml.name, err)
	}
	states, versions := make(map[string]cursorState, len(kvs)), make(map[string]int64, len(kvs))
	for _, kv := range kvs {
		name := kv.Key[len(cursorsPrefix(ml.name)):]
		var st cursorState
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			return nil, nil, fmt.Errorf("managed ledger %s: cursor %s: corrupt state: %w", ml.name, name, err)
		}
		states[name], versions[name] = st, kv.ModRevision
	}
	return states, versions, nil
}

// cursorLedgerFloor returns the highest ledger id named by floor or by any
// persisted cursor position.
func (ml *ManagedLedger) cursorLedgerFloor(ctx context.Context, floor int64) (int64, error) {
	states, _, err := ml.readCursors(ctx)
	if err != nil {
		return 0, err
	}
	for _, st := range states {
		floor = max(floor, st.MarkDelete.LedgerID)
		for _, r := range st.Ranges {
			floor = max(floor, r[0])
		}
	}
	return floor, nil
}

// loadCursors recovers every durable cursor of the log. Positions named
// with ledger ids that renumbering replaced are mapped to the copies (and
// persisted so at the next flush).
func (ml *ManagedLedger) loadCursors(ctx context.Context) error {
	states, versions, err := ml.readCursors(ctx)
	if err != nil {
		return err
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	for name, st := range states {
		c := &Cursor{ml: ml, name: name, durable: true}
		c.mu.markDelete = ml.canonicalLocked(st.MarkDelete)
		renamed := c.mu.markDelete != st.MarkDelete
		rs := make([]ackRange, 0, len(st.Ranges))
		for _, r := range st.Ranges {
			if r[1] < 0 || r[1] > r[2] {
				continue // not a range; acknowledgements lost this way are redelivered
			}
			id := ml.mu.info.renumbered(r[0])
			renamed = renamed || id != r[0]
			rs = append(rs, ackRange{id, r[1], r[2]})
		}
		slices.SortFunc(rs, func(a, b ackRange) int { return a.lo().Compare(b.lo()) })
		c.mu.acked.rs = rs
		c.mu.acked.removeUpTo(c.mu.markDelete)
		c.mu.dirty = renamed
		c.mu.version = versions[name]
		c.mu.lastActive = time.UnixMilli(st.LastActive)
		c.mu.props = st.Properties
		c.mu.active = true
		c.mu.readPos = ml.nextLocked(c.mu.markDelete)
		c.loadBatchLocked(st.BatchAcks, ml.mu.info.renumbered)
		ml.mu.cursors[name] = c
	}
	return nil
}

// OpenCursor returns the durable cursor name, creating it at the initial
// position if it does not exist. Several consumers of one subscription share
// one cursor. A cursor being created is in the cursor list from the start,
// so trimming keeps what it must read; a concurrent OpenCursor of the same
// name waits for the creation and gets the same cursor.
func (ml *ManagedLedger) OpenCursor(ctx context.Context, name string, initial InitialPosition) (*Cursor, error) {
	ml.mu.Lock()
	if err := ml.usableLocked(); err != nil {
		ml.mu.Unlock()
		return nil, err
	}
	if c, ok := ml.mu.cursors[name]; ok {
		ml.mu.Unlock()
		if c.creating != nil {
			select {
			case <-c.creating:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if c.createErr != nil {
				return nil, c.createErr
			}
		}
		return c, nil
	}
	c := &Cursor{ml: ml, name: name, durable: true, creating: make(chan struct{})}
	if initial == Earliest {
		first := ml.firstPositionLocked()
		c.mu.markDelete = Position{first.LedgerID, first.EntryID - 1}
	} else {
		c.mu.markDelete = ml.mu.lastConfirmed
	}
	c.mu.readPos = ml.nextLocked(c.mu.markDelete)
	c.mu.lastActive = ml.opts.Clock()
	c.mu.active = true
	ml.mu.cursors[name] = c
	ml.mu.Unlock()

	err := ml.createCursor(ctx, c)
	if err != nil {
		ml.mu.Lock()
		if ml.mu.cursors[name] == c {
			delete(ml.mu.cursors, name)
		}
		ml.mu.Unlock()
		c.createErr = err
	}
	close(c.creating)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// createCursor persists a new cursor, guarded by ownership of the log.
// Another client may have created it meanwhile (a broker of an older
// build): its state is adopted.
func (ml *ManagedLedger) createCursor(ctx context.Context, c *Cursor) error {
	c.mu.Lock()
	data, _ := json.Marshal(c.stateLocked(ml.opts.MaxUnackedRangesToPersist))
	c.mu.Unlock()
	key := cursorKey(ml.name, c.name)
	rev, err := ml.guarded(func(g metadata.PutOption) (int64, error) {
		return ml.opts.Metadata.Create(ctx, key, data, g)
	})
	if errors.Is(err, metadata.ErrExists) {
		kv, gerr := ml.opts.Metadata.Get(ctx, key)
		var st cursorState
		if gerr == nil {
			gerr = json.Unmarshal(kv.Value, &st)
		}
		if gerr != nil {
			return fmt.Errorf("managed ledger %s: cursor %s created by another client: %w", ml.name, c.name, gerr)
		}
		c.mu.Lock()
		ml.mu.Lock()
		c.mu.markDelete = ml.canonicalLocked(st.MarkDelete)
		c.mu.readPos = ml.nextLocked(c.mu.markDelete)
		ml.mu.Unlock()
		c.mu.props = st.Properties
		c.mu.Unlock()
		rev, err = kv.ModRevision, nil
	}
	if err != nil {
		return fmt.Errorf("managed ledger %s: create cursor %s: %w", ml.name, c.name, err)
	}
	c.mu.Lock()
	c.mu.version = rev
	c.mu.Unlock()
	return nil
}

// guarded runs a cursor write under metaMu with the ledger list's revision
// as its guard: only the owner that wrote the list last writes cursors. A
// failed guard means another owner took the log over: this instance is
// fenced and writes nothing more.
func (ml *ManagedLedger) guarded(write func(metadata.PutOption) (int64, error)) (int64, error) {
	ml.metaMu.Lock()
	defer ml.metaMu.Unlock()
	ml.mu.Lock()
	if ml.mu.state == stateFenced {
		err := ml.stateErrLocked()
		ml.mu.Unlock()
		return 0, err
	}
	g := metadata.WithGuard(infoKey(ml.name), ml.mu.version)
	ml.mu.Unlock()
	rev, err := write(g)
	if errors.Is(err, metadata.ErrGuardFailed) {
		ml.fence(err)
		return 0, fmt.Errorf("%w: %s: ledger list changed by another owner", ErrFenced, ml.name)
	}
	return rev, err
}

// NewNonDurableCursor returns an in-memory cursor whose first entry to read
// is the first valid position at or after start.
func (ml *ManagedLedger) NewNonDurableCursor(start Position) *Cursor {
	c := &Cursor{ml: ml, name: "reader", durable: false}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	start = ml.normalizeLocked(ml.canonicalLocked(start))
	c.mu.markDelete = Position{start.LedgerID, start.EntryID - 1}
	c.mu.readPos = start
	c.mu.active = true
	ml.mu.nonDurable[c] = struct{}{}
	return c
}

// FirstPosition returns the position of the oldest entry in the log.
func (ml *ManagedLedger) FirstPosition() Position {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.firstPositionLocked()
}

// Cursor returns an open durable cursor by name.
func (ml *ManagedLedger) Cursor(name string) (*Cursor, bool) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	c, ok := ml.mu.cursors[name]
	return c, ok
}

// Cursors returns the durable cursors.
func (ml *ManagedLedger) Cursors() []*Cursor {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	out := make([]*Cursor, 0, len(ml.mu.cursors))
	for _, c := range ml.mu.cursors {
		out = append(out, c)
	}
	return out
}

// DeleteCursor removes a durable cursor and its persisted state.
func (ml *ManagedLedger) DeleteCursor(ctx context.Context, name string) error {
	ml.mu.Lock()
	c, ok := ml.mu.cursors[name]
	if ok && c.creating != nil {
		select {
		case <-c.creating:
		default:
			ok = false // not created yet: nothing to delete
		}
	}
	if ok {
		delete(ml.mu.cursors, name)
	}
	ml.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrCursorNotFound, name)
	}
	c.mu.Lock()
	c.mu.closed = true
	c.mu.Unlock()
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	_, err := ml.guarded(func(g metadata.PutOption) (int64, error) {
		return 0, ml.opts.Metadata.Delete(ctx, cursorKey(ml.name, name), metadata.AnyVersion, g)
	})
	if err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("managed ledger %s: delete cursor %s: %w", ml.name, name, err)
	}
	return nil
}

func (ml *ManagedLedger) usableLocked() error {
	switch ml.mu.state {
	case stateClosed, stateFenced:
		return ml.stateErrLocked()
	}
	return nil
}

// Close detaches a non-durable cursor; durable cursors stay until deleted.
func (c *Cursor) Close() {
	if c.durable {
		return
	}
	c.ml.mu.Lock()
	delete(c.ml.mu.nonDurable, c)
	c.ml.mu.Unlock()
}

// SetActive marks whether consumers are attached; the entry cache keeps
// entries only for active cursors.
func (c *Cursor) SetActive(active bool) {
	c.mu.Lock()
	c.mu.active = active
	c.mu.lastActive = c.ml.opts.Clock()
	c.mu.Unlock()
}

// MarkDeletePosition returns the position up to which everything is acknowledged.
func (c *Cursor) MarkDeletePosition() Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.markDelete
}

// ReadPosition returns the next position to read.
func (c *Cursor) ReadPosition() Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.readPos
}

// AckRanges returns how many individually acknowledged ranges exist above
// the mark-delete position.
func (c *Cursor) AckRanges() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.acked.len()
}

// AckedRangesString lists up to limit individually acknowledged ranges in
// Pulsar's notation, "[(3:4..3:7],(4:-1..4:2]]" (open-closed intervals), and
// reports how many were left out.
func (c *Cursor) AckedRangesString(limit int) (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	b.WriteByte('[')
	rs := c.mu.acked.rs
	for i, r := range rs[:min(len(rs), limit)] {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(%d:%d..%d:%d]", r.LedgerID, r.From-1, r.LedgerID, r.To)
	}
	b.WriteByte(']')
	return b.String(), max(len(rs)-limit, 0)
}

// HasMore reports whether entries remain to be read.
func (c *Cursor) HasMore() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.ml.LastConfirmed().Less(c.mu.readPos)
}

// Read returns up to max entries from the read position, skipping entries
// already acknowledged, and advances the read position past them.
func (c *Cursor) Read(ctx context.Context, max int, maxBytes int64) ([]Entry, error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: cursor %s", ErrClosed, c.name)
	}
	from := c.mu.readPos
	c.mu.Unlock()
	for {
		entries, next, err := c.ml.Read(ctx, from, max, maxBytes)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.mu.readPos != from && c.mu.readPos.Less(next) {
			// Reset concurrently: drop this read.
			c.mu.Unlock()
			return nil, nil
		}
		c.mu.readPos = next
		out := entries[:0]
		for _, e := range entries {
			if !c.isAckedLocked(e.Position) {
				out = append(out, e)
			}
		}
		c.mu.Unlock()
		c.ml.evictCache()
		if len(out) > 0 || len(entries) == 0 {
			return out, nil
		}
		from = next // everything read was acknowledged already: read on
	}
}

func (c *Cursor) isAckedLocked(p Position) bool {
	return !c.mu.markDelete.Less(p) || c.mu.acked.contains(p)
}

// IsAcked reports whether p was acknowledged.
func (c *Cursor) IsAcked(p Position) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isAckedLocked(p)
}

// Ack acknowledges positions individually. Positions at or below the
// mark-delete position are ignored; positions that are not entries of the
// log fail with ErrInvalidPosition (and nothing is acknowledged).
func (c *Cursor) Ack(positions ...Position) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return fmt.Errorf("%w: cursor %s", ErrClosed, c.name)
	}
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	if len(c.ml.mu.info.Renumbered) > 0 {
		positions = slices.Clone(positions)
		for i, p := range positions {
			positions[i] = c.ml.canonicalLocked(p)
		}
	}
	for _, p := range positions {
		if p.EntryID < 0 || (c.mu.markDelete.Less(p) && !c.ml.existsLocked(p)) {
			return fmt.Errorf("%w: %s is not an entry of %s", ErrInvalidPosition, p, c.ml.name)
		}
	}
	changed := false
	for _, p := range positions {
		if c.mu.markDelete.Less(p) && c.mu.acked.add(p) {
			changed = true
		}
		delete(c.mu.batch, p)
	}
	if changed {
		c.advanceLocked()
	}
	return nil
}

// AckCumulative acknowledges every entry up to and including p.
func (c *Cursor) AckCumulative(p Position) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return fmt.Errorf("%w: cursor %s", ErrClosed, c.name)
	}
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	p = c.ml.canonicalLocked(p)
	if p.EntryID >= 0 && !c.mu.markDelete.Less(p) {
		return nil
	}
	if !c.ml.existsLocked(p) {
		return fmt.Errorf("%w: %s is not an entry of %s", ErrInvalidPosition, p, c.ml.name)
	}
	c.mu.markDelete = p
	c.mu.acked.removeUpTo(p)
	c.advanceLocked()
	return nil
}

// advanceLocked moves the mark-delete position over acknowledged ranges that
// continue it, keeps the read position after it, and marks the cursor dirty.
// c.mu and ml.mu must be held.
func (c *Cursor) advanceLocked() {
	for {
		r, ok := c.mu.acked.first()
		if !ok || r.lo() != c.ml.nextLocked(c.mu.markDelete) {
			break
		}
		c.mu.markDelete = r.hi()
		c.mu.acked.removeUpTo(r.hi())
	}
	if !c.mu.markDelete.Less(c.mu.readPos) {
		c.mu.readPos = c.ml.nextLocked(c.mu.markDelete)
	}
	c.dropBatchLocked()
	c.mu.dirty = true
}

// Rewind moves the read position back to the first unacknowledged entry, so
// that every unacknowledged entry is read again.
func (c *Cursor) Rewind() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.readPos = c.ml.nextLocked(c.mu.markDelete)
}

// SeekRead moves only the read position (for redelivering specific entries
// the caller tracks); it never goes below the mark-delete position.
func (c *Cursor) SeekRead(p Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	p = c.ml.canonicalLocked(p)
	if !c.mu.markDelete.Less(p) {
		p = c.ml.nextLocked(c.mu.markDelete)
	}
	c.mu.readPos = p
}

// Reset moves the cursor so that p is the next entry delivered: everything
// before p counts as acknowledged, everything from p on as unacknowledged.
func (c *Cursor) Reset(p Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	p = c.ml.normalizeLocked(c.ml.canonicalLocked(p))
	c.mu.markDelete = Position{p.LedgerID, p.EntryID - 1}
	c.mu.acked.clear()
	clear(c.mu.batch)
	c.mu.readPos = p
	c.mu.dirty = true
}

// Backlog returns the number of unacknowledged entries.
func (c *Cursor) Backlog() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	lc := c.ml.mu.lastConfirmed
	if !c.mu.markDelete.Less(lc) {
		return 0
	}
	return c.ml.countLocked(c.mu.markDelete, lc) - c.mu.acked.countIn(c.mu.markDelete, lc)
}

// stateLocked returns the persisted form, with at most maxRanges ranges.
func (c *Cursor) stateLocked(maxRanges int) cursorState {
	st := cursorState{MarkDelete: c.mu.markDelete, LastActive: c.mu.lastActive.UnixMilli(), Properties: c.mu.props}
	for i, r := range c.mu.acked.rs {
		if i >= maxRanges {
			break
		}
		st.Ranges = append(st.Ranges, [3]int64{r.LedgerID, r.From, r.To})
	}
	st.BatchAcks = c.batchStateLocked(maxRanges)
	return st
}

// Flush persists the cursor now if it changed. Only the log's owner
// writes: the write is guarded by the ledger list's revision, and a cursor
// changed or deleted behind this owner's back is never written over or
// created again — another owner has the log.
func (c *Cursor) Flush(ctx context.Context) error {
	if !c.durable {
		return nil
	}
	if c.creating != nil {
		select {
		case <-c.creating:
		default:
			return nil // its creation persists it
		}
	}
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	c.mu.Lock()
	if !c.mu.dirty || c.mu.closed || c.createErr != nil {
		c.mu.Unlock()
		return nil
	}
	st := c.stateLocked(c.ml.opts.MaxUnackedRangesToPersist)
	version := c.mu.version
	c.mu.dirty = false
	c.mu.Unlock()

	data, _ := json.Marshal(st)
	rev, err := c.ml.guarded(func(g metadata.PutOption) (int64, error) {
		return c.ml.opts.Metadata.Put(ctx, cursorKey(c.ml.name, c.name), data, version, g)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.mu.dirty = true
		if errors.Is(err, metadata.ErrBadVersion) || errors.Is(err, metadata.ErrNotFound) {
			c.ml.fence(err)
			err = fmt.Errorf("%w: %v", ErrFenced, err)
		}
		return fmt.Errorf("managed ledger %s: persist cursor %s: %w", c.ml.name, c.name, err)
	}
	c.mu.version = rev
	return nil
}

// persistCursors flushes every dirty durable cursor.
func (ml *ManagedLedger) persistCursors(ctx context.Context) error {
	var errs []error
	for _, c := range ml.Cursors() {
		if err := c.Flush(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// evictCache drops cached entries every active cursor has read.
func (ml *ManagedLedger) evictCache() {
	ml.mu.Lock()
	cursors := make([]*Cursor, 0, len(ml.mu.cursors)+len(ml.mu.nonDurable))
	for _, c := range ml.mu.cursors {
		cursors = append(cursors, c)
	}
	for c := range ml.mu.nonDurable {
		cursors = append(cursors, c)
	}
	lc := ml.mu.lastConfirmed
	ml.mu.Unlock()
	slowest := Position{lc.LedgerID, lc.EntryID + 1}
	for _, c := range cursors {
		c.mu.Lock()
		if c.mu.active && c.mu.readPos.Less(slowest) {
			slowest = c.mu.readPos
		}
		c.mu.Unlock()
	}
	ml.cache.evictBefore(slowest)
}

// Properties returns a copy of the cursor's persisted properties.
func (c *Cursor) Properties() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.mu.props))
	for k, v := range c.mu.props {
		out[k] = v
	}
	return out
}

// SetProperties replaces the cursor's properties; they are persisted with
// its position (state snapshots such as deduplication use them).
func (c *Cursor) SetProperties(props map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.props = make(map[string]int64, len(props))
	for k, v := range props {
		c.mu.props[k] = v
	}
	c.mu.dirty = true
}
