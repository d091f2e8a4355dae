// Package managed is the managed ledger: a topic's durable log as a chain of
// ledgers listed in etcd, with rollover, an entry cache for tailing readers,
// durable and non-durable cursors, seek by time and retention trimming. It
// follows Pulsar's ManagedLedger; see docs/storage-protocol.md.
package managed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/strata-mq/strata/internal/ordered"
	"github.com/strata-mq/strata/internal/testfault"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/offload"
)

type mlState int

const (
	stateOpen       mlState = iota // appends go to the current ledger
	stateRolling                   // switching ledgers; appends queue
	stateNoLedger                  // creating a ledger failed; the next append retries
	stateTerminated                // no more appends
	stateFenced                    // another owner took over
	stateClosed
)

// ManagedLedger is one topic's log. Only the owning broker writes it;
// opening it elsewhere fences this instance.
type ManagedLedger struct {
	name  string
	opts  Options
	log   *slog.Logger
	cbs   *ordered.Queue[Position]
	cache *entryCache
	off   *offloader

	// rollMu serializes switching writers (roll, Close, Terminate): it is
	// held while appends in flight drain and a ledger closes. Lock order:
	// rollMu, then metaMu.
	rollMu sync.Mutex
	// metaMu serializes read-modify-write cycles of the ledger list and
	// cursor writes (which are guarded by the list's revision); it is held
	// across metadata I/O only, never with mu.
	metaMu sync.Mutex

	mu struct {
		sync.Mutex
		state         mlState
		info          mlInfo
		version       int64
		writer        *ledger.Writer
		cur           currentLedger
		queue         []*appendOp // waiting for a writable ledger, in order
		inflight      int         // sent to the writer, callback not yet run
		idle          chan struct{}
		lastConfirmed Position
		cursors       map[string]*Cursor
		nonDurable    map[*Cursor]struct{}
		readers       map[int64]*ledger.Reader
		retry         time.Duration // backoff of ledger creation retries
		retryPending  bool          // a retry is scheduled
		failedEmpty   int           // ledgers in a row that failed before taking an entry
		requeued      int           // failed appends put back at the queue's head since the last switch
		notify        chan struct{} // closed and replaced on the next append once waited on
		waited        bool          // someone holds notify
	}
	stop chan struct{}
	wg   sync.WaitGroup
}

// currentLedger tracks the ledger being written.
type currentLedger struct {
	id           int64
	entries      int64 // acknowledged
	size         int64 // acknowledged bytes
	pushed       int64 // sent to the writer (acknowledged or in flight)
	pushedSize   int64
	created      time.Time
	firstPublish int64
	lastPublish  int64
}

type appendOp struct {
	data        []byte
	publishTime int64
	cb          func(Position, error)
	at          time.Time // when it was accepted
}

// Entry is one entry read from the log.
type Entry struct {
	Position Position
	Data     []byte
}

// Open opens (creating if needed) the managed ledger name, recovering its
// last ledger with fencing — which stops any previous owner — and starting a
// fresh ledger for writes.
func Open(ctx context.Context, name string, opts Options) (*ManagedLedger, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ml := &ManagedLedger{
		name: name, opts: opts, log: opts.Logger.With("topic", name),
		cbs: ordered.New[Position](), cache: newEntryCache(opts.CacheMaxBytes), off: newOffloader(), stop: make(chan struct{}),
	}
	if opts.Offload.Store != nil {
		dataKey, _ := offload.ObjectKeys(opts.Offload.KeyPrefix, name, 0, newUUID())
		if err := offload.ValidateKey(dataKey); err != nil {
			return nil, fmt.Errorf("managed ledger %s: offload keys: %w", name, err)
		}
	}
	ml.mu.cursors = make(map[string]*Cursor)
	ml.mu.nonDurable = make(map[*Cursor]struct{})
	ml.mu.readers = make(map[int64]*ledger.Reader)
	ml.mu.notify = make(chan struct{})
	// A previous owner may still roll over while we take over; its change
	// of the ledger list makes ours fail, and we start again with the list
	// that includes its new ledger (whose recovery then fences it).
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if err = ml.initialize(ctx); !errors.Is(err, ErrFenced) {
			break
		}
		ml.log.Info("ledger list changed while opening; retrying", "err", err)
	}
	if err != nil {
		ml.cbs.Close()
		return nil, err
	}
	if err := ml.loadCursors(ctx); err != nil {
		ml.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	ml.wg.Add(1)
	go ml.background()
	if ml.offloadEnabled() {
		ml.wg.Add(1)
		go ml.offloadLoop()
	}
	return ml, nil
}

// Name returns the managed ledger's name.
func (ml *ManagedLedger) Name() string { return ml.name }

func (ml *ManagedLedger) initialize(ctx context.Context) error {
	ml.metaMu.Lock()
	defer ml.metaMu.Unlock()
	info, version, err := loadInfo(ctx, ml.opts.Metadata, ml.name)
	if err != nil {
		return err
	}
	floor := info.ledgerIDFloor()
	if info.LastLedgerID == 0 && len(info.Ledgers) > 0 {
		// Written before the floor was recorded: ledgers dropped as empty
		// may have had higher ids, and cursors may still name them.
		if floor, err = ml.cursorLedgerFloor(ctx, floor); err != nil {
			return err
		}
	}
	// Recover every ledger not yet recorded as closed (normally only the
	// last one): this fences a previous owner.
	var empty []int64
	for i := range info.Ledgers {
		li := &info.Ledgers[i]
		if li.Timestamp != 0 {
			continue
		}
		r, err := ml.opts.Ledgers.OpenRecover(ctx, li.LedgerID, ml.opts.Password)
		if errors.Is(err, ledger.ErrNotFound) {
			empty = append(empty, li.LedgerID)
			continue
		}
		if err != nil {
			return fmt.Errorf("managed ledger %s: recover ledger %d: %w", ml.name, li.LedgerID, err)
		}
		md := r.Metadata()
		li.Entries, li.Size, li.Timestamp = md.LastEntryID+1, md.Length, ml.opts.Clock().UnixMilli()
		if li.Entries > 0 {
			li.FirstPublishTime, li.LastPublishTime = ml.publishTimes(ctx, r)
		} else {
			empty = append(empty, li.LedgerID)
		}
	}
	kept := info.Ledgers[:0]
	for _, li := range info.Ledgers {
		if li.Entries > 0 || li.Offload != nil {
			kept = append(kept, li)
		}
	}
	info.Ledgers = kept
	var replaced []LedgerInfo
	var copies []int64
	if k := outOfOrder(info.Ledgers); k >= 0 && !testfault.On(testfault.LedgerIDsUnordered) {
		if replaced, copies, err = ml.renumber(ctx, &info, k, floor); err != nil {
			return err
		}
		floor = info.LastLedgerID
	}
	info.LastLedgerID = floor // dropped ledgers' ids stay used: cursors may name them
	last := Position{-1, -1}
	if n := len(info.Ledgers); n > 0 {
		last = Position{info.Ledgers[n-1].LedgerID, info.Ledgers[n-1].Entries - 1}
	}
	var w *ledger.Writer
	if info.Terminated == nil {
		if w, err = ml.createLedger(ctx, floor); err != nil {
			return err
		}
		if err = info.appendLedger(w.ID()); err != nil {
			w.Abandon()
			ml.deleteLedgers(append(copies, w.ID()))
			return err
		}
	}
	version, err = ml.storeInfo(ctx, info, version)
	if err != nil {
		if w != nil {
			w.Abandon()
			copies = append(copies, w.ID())
		}
		ml.deleteLedgers(copies)
		return err
	}
	for _, li := range replaced {
		if li.Offload == nil || !li.Offload.BookieDeleted {
			empty = append(empty, li.LedgerID)
		}
	}
	ml.deleteLedgers(empty)
	ml.dropOffloaded(ctx, replaced)
	for _, li := range replaced {
		delete(ml.mu.readers, li.LedgerID) // opened to copy it; Open has not returned, no lock needed
	}
	ml.mu.info, ml.mu.version = info, version
	ml.mu.lastConfirmed = last
	if w == nil {
		ml.mu.state = stateTerminated
	} else {
		ml.mu.writer = w
		ml.mu.cur = currentLedger{id: w.ID(), created: ml.opts.Clock()}
	}
	return nil
}

// publishTimes reads the first and last entries' publish times.
func (ml *ManagedLedger) publishTimes(ctx context.Context, r *ledger.Reader) (first, last int64) {
	if ml.opts.PublishTime == nil {
		return 0, 0
	}
	lac := r.LastAddConfirmed()
	if es, err := r.Read(ctx, 0, 0); err == nil {
		first, _ = ml.opts.PublishTime(es[0].Payload)
	}
	if es, err := r.Read(ctx, lac, lac); err == nil {
		last, _ = ml.opts.PublishTime(es[0].Payload)
	}
	return first, last
}

// createLedger creates a ledger for appends whose id is above floor, the
// highest id the log has used (mlInfo.ledgerIDFloor).
func (ml *ManagedLedger) createLedger(ctx context.Context, floor int64) (*ledger.Writer, error) {
	opts := ledger.CreateOptions{
		EnsembleSize: ml.opts.EnsembleSize, WriteQuorum: ml.opts.WriteQuorum, AckQuorum: ml.opts.AckQuorum,
		Password: ml.opts.Password, Custom: map[string]string{"managedLedger": ml.name}, IDAbove: floor,
	}
	if testfault.On(testfault.LedgerIDsUnordered) {
		opts.IDAbove = 0 // broken on purpose (tests only)
	}
	w, err := ml.opts.Ledgers.Create(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("managed ledger %s: create ledger: %w", ml.name, err)
	}
	return w, nil
}

// storeInfo writes the ledger list with compare-and-swap; a conflict means
// another owner changed it, and this instance is fenced.
func (ml *ManagedLedger) storeInfo(ctx context.Context, info mlInfo, version int64) (int64, error) {
	data, err := encodeInfo(info)
	if err != nil {
		return 0, err
	}
	rev, err := ml.opts.Metadata.Put(ctx, infoKey(ml.name), data, version)
	if errors.Is(err, metadata.ErrBadVersion) || errors.Is(err, metadata.ErrNotFound) {
		return 0, fmt.Errorf("%w: %s: ledger list changed by another owner", ErrFenced, ml.name)
	}
	if err != nil {
		return 0, fmt.Errorf("managed ledger %s: store ledger list: %w", ml.name, err)
	}
	return rev, nil
}

// updateInfo applies fn to the ledger list and stores it; metaMu must be
// held. An error from fn leaves the list unchanged.
func (ml *ManagedLedger) updateInfo(ctx context.Context, fn func(*mlInfo) error) error {
	return ml.updateInfoThen(ctx, fn, nil)
}

// updateInfoThen is updateInfo that also runs then (under ml.mu) in the same
// critical section that installs the new list, so readers never see a state
// between the two.
func (ml *ManagedLedger) updateInfoThen(ctx context.Context, fn func(*mlInfo) error, then func()) error {
	ml.mu.Lock()
	info, version := ml.mu.info.clone(), ml.mu.version
	ml.mu.Unlock()
	if err := fn(&info); err != nil {
		return err
	}
	rev, err := ml.storeInfo(ctx, info, version)
	if err != nil {
		if errors.Is(err, ErrFenced) {
			ml.fence(err)
		}
		return err
	}
	ml.mu.Lock()
	ml.mu.info, ml.mu.version = info, rev
	if then != nil {
		then()
	}
	ml.mu.Unlock()
	return nil
}

// Append adds an entry and waits for its position.
func (ml *ManagedLedger) Append(ctx context.Context, data []byte, publishTime int64) (Position, error) {
	type res struct {
		p   Position
		err error
	}
	ch := make(chan res, 1)
	ml.AppendAsync(data, publishTime, func(p Position, err error) { ch <- res{p, err} })
	select {
	case r := <-ch:
		return r.p, r.err
	case <-ctx.Done():
		return Position{}, ctx.Err()
	}
}

// AppendAsync adds an entry; cb runs once with its position or an error, in
// append order. publishTime (Unix ms) feeds seek by time and retention.
func (ml *ManagedLedger) AppendAsync(data []byte, publishTime int64, cb func(Position, error)) {
	op := &appendOp{data: data, publishTime: publishTime, cb: cb, at: time.Now()}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	switch ml.mu.state {
	case stateOpen:
		if ml.fullLocked() {
			// Full counting in-flight appends: later ones go to the next ledger.
			ml.mu.queue = append(ml.mu.queue, op)
			ml.startRollLocked()
			return
		}
		ml.sendLocked(op)
	case stateRolling:
		ml.mu.queue = append(ml.mu.queue, op)
	case stateNoLedger:
		ml.mu.queue = append(ml.mu.queue, op)
		if !ml.mu.retryPending { // else the scheduled retry picks it up
			ml.startRollLocked()
		}
	default:
		ml.cbs.Push(cb, Position{}, ml.stateErrLocked())
	}
}

func (ml *ManagedLedger) stateErrLocked() error {
	switch ml.mu.state {
	case stateTerminated:
		return fmt.Errorf("%w: %s", ErrTerminated, ml.name)
	case stateFenced:
		return fmt.Errorf("%w: %s", ErrFenced, ml.name)
	case stateClosed:
		return fmt.Errorf("%w: %s", ErrClosed, ml.name)
	}
	return nil
}

// sendLocked hands op to the current writer. ml.mu must be held.
func (ml *ManagedLedger) sendLocked(op *appendOp) {
	w := ml.mu.writer
	ml.mu.inflight++
	ml.mu.cur.pushed++
	ml.mu.cur.pushedSize += int64(len(op.data))
	w.AppendAsync(op.data, func(id int64, err error) { ml.onAppended(w, op, id, err) })
}

func (ml *ManagedLedger) onAppended(w *ledger.Writer, op *appendOp, id int64, err error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	ml.mu.inflight--
	defer func() {
		if ml.mu.inflight == 0 && ml.mu.idle != nil {
			close(ml.mu.idle)
			ml.mu.idle = nil
		}
	}()
	switch {
	case err == nil:
		ml.mu.failedEmpty = 0
		pos := Position{w.ID(), id}
		c := &ml.mu.cur
		c.entries, c.size = id+1, c.size+int64(len(op.data))
		if op.publishTime > 0 {
			if c.firstPublish == 0 {
				c.firstPublish = op.publishTime
			}
			c.lastPublish = max(c.lastPublish, op.publishTime)
		}
		ml.mu.lastConfirmed = pos
		ml.cache.insert(pos, op.data)
		ml.wakeLocked()
		ml.cbs.Push(op.cb, pos, nil)
		if ml.mu.state == stateOpen && ml.fullLocked() {
			ml.startRollLocked()
		}
	case errors.Is(err, ledger.ErrFenced):
		ml.cbs.Push(op.cb, Position{}, fmt.Errorf("%w: %s: %v", ErrFenced, ml.name, err))
		ml.fenceLocked(err)
	case errors.Is(err, ledger.ErrTooLarge):
		ml.cbs.Push(op.cb, Position{}, err)
	default:
		// The ledger failed (bookies lost): the entry was not acknowledged
		// and the ledger will be closed at its LAC, so append it again to a
		// new ledger, ahead of anything queued later.
		if ml.mu.state >= stateTerminated {
			ml.cbs.Push(op.cb, Position{}, ml.stateErrLocked())
			return
		}
		if ml.mu.requeued == 0 {
			ml.log.Warn("ledger append failed; rolling to a new ledger", "ledger", w.ID(), "err", err)
		}
		// Failures arrive in entry order; they go before anything queued
		// since, keeping the append order.
		i := ml.mu.requeued
		ml.mu.queue = append(ml.mu.queue, nil)
		copy(ml.mu.queue[i+1:], ml.mu.queue[i:])
		ml.mu.queue[i] = op
		ml.mu.requeued++
		if ml.mu.state == stateOpen {
			var wait time.Duration
			if ml.mu.cur.id == w.ID() && ml.mu.cur.entries == 0 {
				// The ledger failed before taking an entry: its bookies
				// are down but still registered, and the next ledger would
				// likely land on them too. Back off rather than create
				// ledgers in a loop until their registrations expire.
				ml.mu.failedEmpty++
				wait = min(50*time.Millisecond<<min(ml.mu.failedEmpty-1, 6), 2*time.Second)
			}
			ml.startRollAfterLocked(wait)
		}
	}
}

// fullLocked reports whether the current ledger must roll over by entries
// or size, counting appends in flight. (Age is checked by agedLocked, off
// the append path.)
func (ml *ManagedLedger) fullLocked() bool {
	c := &ml.mu.cur
	if c.pushed >= ml.opts.MaxEntriesPerLedger || c.pushedSize >= ml.opts.MaxSizePerLedger {
		return ml.opts.MinLedgerAge <= 0 || ml.opts.Clock().Sub(c.created) >= ml.opts.MinLedgerAge
	}
	return false
}

// agedLocked reports whether a non-empty current ledger reached MaxLedgerAge.
func (ml *ManagedLedger) agedLocked() bool {
	c := &ml.mu.cur
	return c.pushed > 0 && ml.opts.Clock().Sub(c.created) >= ml.opts.MaxLedgerAge
}

// startRollLocked switches appends to a queue and rolls in the background.
func (ml *ManagedLedger) startRollLocked() { ml.startRollAfterLocked(0) }

// startRollAfterLocked switches appends to a queue and rolls in the
// background after wait (unless the managed ledger closes first).
func (ml *ManagedLedger) startRollAfterLocked(wait time.Duration) {
	ml.mu.state = stateRolling
	ml.wg.Add(1)
	go func() {
		defer ml.wg.Done()
		if wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ml.stop:
				return
			}
		}
		ml.roll()
	}()
}

// roll closes the current ledger once its in-flight appends are done,
// records it, creates a new ledger and sends the queued appends to it, in
// order. Rollover neither loses nor reorders appends.
func (ml *ManagedLedger) roll() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ml.rollMu.Lock()
	defer ml.rollMu.Unlock()
	old := ml.drainWriter()
	if old != nil {
		if err := ml.closeCurrent(ctx, old); err != nil {
			ml.failQueue(err)
			return
		}
	}
	ml.mu.Lock()
	floor := ml.mu.info.ledgerIDFloor() // only writer switches (rollMu) raise it
	ml.mu.Unlock()
	w, err := ml.createLedger(ctx, floor)
	if err == nil {
		ml.metaMu.Lock()
		err = ml.updateInfo(ctx, func(info *mlInfo) error { return info.appendLedger(w.ID()) })
		ml.metaMu.Unlock()
		if err != nil {
			w.Abandon()
			ml.opts.Ledgers.Delete(ctx, w.ID())
		}
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if err != nil {
		if ml.mu.state != stateRolling {
			return
		}
		// Keep the appends and retry: a bookie outage is waited out up to
		// AddTimeout; older appends fail.
		ml.mu.state = stateNoLedger
		ml.expireQueueLocked(fmt.Errorf("%w: %s: %v", ErrNoLedger, ml.name, err))
		ml.mu.retry = min(max(2*ml.mu.retry, 100*time.Millisecond), 2*time.Second)
		ml.log.Warn("no ledger for appends; retrying", "err", err, "in", ml.mu.retry, "queued", len(ml.mu.queue))
		ml.mu.retryPending = true
		time.AfterFunc(ml.mu.retry, func() {
			ml.mu.Lock()
			defer ml.mu.Unlock()
			ml.mu.retryPending = false
			if ml.mu.state == stateNoLedger && len(ml.mu.queue) > 0 {
				ml.startRollLocked()
			}
		})
		return
	}
	ml.mu.retry = 0
	if ml.mu.state != stateRolling {
		// Closed or fenced meanwhile.
		w.Abandon()
		return
	}
	ml.mu.writer = w
	ml.mu.cur = currentLedger{id: w.ID(), created: ml.opts.Clock()}
	ml.mu.state = stateOpen
	ml.mu.requeued = 0
	ml.log.Debug("rolled over", "ledger", w.ID())
	ml.flushQueueLocked()
}

// flushQueueLocked sends queued appends, in order, until the new ledger is
// full; the rest waits for the next rollover. ml.mu must be held.
func (ml *ManagedLedger) flushQueueLocked() {
	i := 0
	for ; i < len(ml.mu.queue); i++ {
		if ml.fullLocked() {
			break
		}
		ml.sendLocked(ml.mu.queue[i])
	}
	clear(ml.mu.queue[:i])
	ml.mu.queue = ml.mu.queue[i:]
	if len(ml.mu.queue) > 0 {
		ml.startRollLocked()
	} else {
		ml.mu.queue = nil
	}
}

// drainWriter waits until every append sent to the current writer has
// completed and returns the writer (nil if none).
func (ml *ManagedLedger) drainWriter() *ledger.Writer {
	ml.mu.Lock()
	w := ml.mu.writer
	var idle chan struct{}
	if ml.mu.inflight > 0 {
		if ml.mu.idle == nil {
			ml.mu.idle = make(chan struct{})
		}
		idle = ml.mu.idle
	}
	ml.mu.Unlock()
	if idle != nil {
		<-idle
	}
	return w
}

// closeCurrent closes the drained current ledger and records its final
// entries, size and publish times (dropping it if empty). rollMu must be
// held.
func (ml *ManagedLedger) closeCurrent(ctx context.Context, w *ledger.Writer) error {
	err := w.Close(ctx)
	if errors.Is(err, ledger.ErrFenced) {
		ml.fence(err)
		return fmt.Errorf("%w: %s", ErrFenced, ml.name)
	}
	if err != nil {
		// The ledger stays OPEN in its own metadata; the next owner
		// recovers it. Our record below is still exact: it comes from the
		// acknowledged appends.
		ml.log.Warn("closing ledger failed", "ledger", w.ID(), "err", err)
	}
	ml.mu.Lock()
	cur := ml.mu.cur
	ml.mu.Unlock()
	// The writer stays current for readers until the list records the
	// ledger's final extent.
	ml.metaMu.Lock()
	defer ml.metaMu.Unlock()
	err = ml.updateInfoThen(ctx, func(info *mlInfo) error {
		n := len(info.Ledgers)
		if n == 0 || info.Ledgers[n-1].LedgerID != cur.id {
			return nil
		}
		if cur.entries == 0 {
			info.Ledgers = info.Ledgers[:n-1]
			return nil
		}
		li := &info.Ledgers[n-1]
		li.Entries, li.Size, li.Timestamp = cur.entries, cur.size, ml.opts.Clock().UnixMilli()
		li.FirstPublishTime, li.LastPublishTime = cur.firstPublish, cur.lastPublish
		return nil
	}, func() { ml.mu.writer = nil })
	if err == nil && cur.entries == 0 {
		ml.opts.Ledgers.Delete(ctx, cur.id)
	}
	if err == nil {
		ml.kickOffload()
	}
	return err
}

// expireQueueLocked fails queued appends older than AddTimeout. ml.mu must
// be held.
func (ml *ManagedLedger) expireQueueLocked(err error) {
	cutoff := time.Now().Add(-ml.opts.AddTimeout)
	i := 0
	for ; i < len(ml.mu.queue) && ml.mu.queue[i].at.Before(cutoff); i++ {
		ml.cbs.Push(ml.mu.queue[i].cb, Position{}, err)
	}
	clear(ml.mu.queue[:i])
	ml.mu.queue = ml.mu.queue[i:]
}

// failQueue fails every queued append with err.
func (ml *ManagedLedger) failQueue(err error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	queue := ml.mu.queue
	ml.mu.queue = nil
	for _, op := range queue {
		ml.cbs.Push(op.cb, Position{}, err)
	}
	if ml.mu.state == stateRolling {
		ml.mu.state = stateNoLedger
	}
}

// fence stops this instance: another owner took the log over.
func (ml *ManagedLedger) fence(cause error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	ml.fenceLocked(cause)
}

func (ml *ManagedLedger) fenceLocked(cause error) {
	if ml.mu.state == stateFenced || ml.mu.state == stateClosed {
		return
	}
	ml.log.Warn("managed ledger fenced by another owner", "cause", cause)
	ml.mu.state = stateFenced
	queue := ml.mu.queue
	ml.mu.queue = nil
	for _, op := range queue {
		ml.cbs.Push(op.cb, Position{}, fmt.Errorf("%w: %s", ErrFenced, ml.name))
	}
	ml.wakeLocked()
}

// IsFenced reports whether another owner took the log over.
func (ml *ManagedLedger) IsFenced() bool {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.state == stateFenced
}

// LastConfirmed returns the position of the last acknowledged entry
// ((-1,-1) for an empty log).
func (ml *ManagedLedger) LastConfirmed() Position {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.lastConfirmed
}

// Wait returns a channel closed at the next append (or state change).
func (ml *ManagedLedger) Wait() <-chan struct{} {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	ml.mu.waited = true
	return ml.mu.notify
}

// wakeLocked wakes everyone waiting for the next append. ml.mu must be held.
func (ml *ManagedLedger) wakeLocked() {
	if ml.mu.waited {
		close(ml.mu.notify)
		ml.mu.notify = make(chan struct{})
		ml.mu.waited = false
	}
}

// background runs time-based rollover, cursor persistence and trimming.
func (ml *ManagedLedger) background() {
	defer ml.wg.Done()
	tick := min(ml.opts.CursorPersistInterval, ml.opts.MaxLedgerAge/4, ml.opts.TrimInterval)
	t := time.NewTicker(max(tick, 10*time.Millisecond))
	defer t.Stop()
	lastTrim := time.Now()
	for {
		select {
		case <-t.C:
		case <-ml.stop:
			return
		}
		ml.mu.Lock()
		if ml.mu.state == stateOpen && (ml.fullLocked() || ml.agedLocked()) {
			ml.startRollLocked()
		}
		ml.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ml.persistCursors(ctx)
		if time.Since(lastTrim) >= ml.opts.TrimInterval {
			lastTrim = time.Now()
			if _, err := ml.Trim(ctx); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrFenced) {
				ml.log.Warn("trim failed", "err", err)
			}
		}
		cancel()
	}
}

// Close stops appends, waits for in-flight ones, closes the current ledger,
// persists every cursor and releases resources. Queued appends fail.
func (ml *ManagedLedger) Close(ctx context.Context) error {
	ml.mu.Lock()
	if ml.mu.state == stateClosed {
		ml.mu.Unlock()
		return nil
	}
	wasFenced := ml.mu.state == stateFenced
	ml.mu.state = stateClosed
	queue := ml.mu.queue
	ml.mu.queue = nil
	for _, op := range queue {
		ml.cbs.Push(op.cb, Position{}, fmt.Errorf("%w: %s", ErrClosed, ml.name))
	}
	ml.wakeLocked()
	ml.mu.Unlock()

	close(ml.stop)
	ml.rollMu.Lock()
	var err error
	if wasFenced {
		ml.mu.Lock()
		w := ml.mu.writer
		ml.mu.Unlock()
		if w != nil {
			w.Abandon() // fails its pending appends...
		}
		ml.drainWriter() // ...whose callbacks must run before ours close
	} else if w := ml.drainWriter(); w != nil {
		err = ml.closeCurrent(ctx, w)
	}
	ml.rollMu.Unlock()
	if !wasFenced {
		if perr := ml.persistCursors(ctx); err == nil {
			err = perr
		}
	}
	ml.wg.Wait()
	ml.off.readers.closeAll()
	ml.cbs.Close()
	if errors.Is(err, ErrFenced) && wasFenced {
		err = nil
	}
	return err
}

// Abandon drops the managed ledger as a crashed owner would: nothing is
// closed or persisted, appends in flight fail, and the next owner recovers
// the log. For tests and fault injection.
func (ml *ManagedLedger) Abandon() {
	ml.mu.Lock()
	if ml.mu.state == stateClosed {
		ml.mu.Unlock()
		return
	}
	ml.mu.state = stateClosed
	queue := ml.mu.queue
	ml.mu.queue = nil
	for _, op := range queue {
		ml.cbs.Push(op.cb, Position{}, fmt.Errorf("%w: %s", ErrClosed, ml.name))
	}
	w := ml.mu.writer
	ml.wakeLocked()
	ml.mu.Unlock()
	close(ml.stop)
	if w != nil {
		w.Abandon()
	}
	ml.drainWriter()
	ml.wg.Wait()
	ml.off.readers.closeAll()
	ml.cbs.Close()
}

// Terminate seals the log: no more appends are accepted, and the position
// of the last entry is recorded and returned.
func (ml *ManagedLedger) Terminate(ctx context.Context) (Position, error) {
	ml.mu.Lock()
	switch ml.mu.state {
	case stateTerminated:
		p := ml.mu.lastConfirmed
		ml.mu.Unlock()
		return p, nil
	case stateFenced, stateClosed:
		err := ml.stateErrLocked()
		ml.mu.Unlock()
		return Position{}, err
	}
	ml.mu.state = stateTerminated
	queue := ml.mu.queue
	ml.mu.queue = nil
	for _, op := range queue {
		ml.cbs.Push(op.cb, Position{}, fmt.Errorf("%w: %s", ErrTerminated, ml.name))
	}
	ml.mu.Unlock()

	ml.rollMu.Lock()
	defer ml.rollMu.Unlock()
	if w := ml.drainWriter(); w != nil {
		if err := ml.closeCurrent(ctx, w); err != nil {
			return Position{}, err
		}
	}
	last := ml.LastConfirmed()
	ml.metaMu.Lock()
	err := ml.updateInfo(ctx, func(info *mlInfo) error { info.Terminated = &last; return nil })
	ml.metaMu.Unlock()
	if err != nil {
		return Position{}, err
	}
	ml.mu.Lock()
	ml.wakeLocked() // readers waiting for entries that will never come
	ml.mu.Unlock()
	return last, nil
}

// IsTerminated reports whether the log accepts no more appends.
func (ml *ManagedLedger) IsTerminated() bool {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.state == stateTerminated
}

// Delete closes the log and deletes its ledgers, cursors and metadata.
func (ml *ManagedLedger) Delete(ctx context.Context) error {
	if err := ml.Close(ctx); err != nil && !errors.Is(err, ErrFenced) {
		return err
	}
	ml.mu.Lock()
	ledgers := ml.mu.info.Ledgers
	ml.mu.Unlock()
	if _, err := ml.opts.Metadata.DeletePrefix(ctx, cursorsPrefix(ml.name)); err != nil {
		return fmt.Errorf("managed ledger %s: delete cursors: %w", ml.name, err)
	}
	if err := ml.opts.Metadata.Delete(ctx, infoKey(ml.name), metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("managed ledger %s: delete: %w", ml.name, err)
	}
	for _, li := range ledgers {
		if err := ml.opts.Ledgers.Delete(ctx, li.LedgerID); err != nil {
			ml.log.Warn("delete ledger", "ledger", li.LedgerID, "err", err)
		}
	}
	ml.dropOffloaded(ctx, ledgers)
	return nil
}
