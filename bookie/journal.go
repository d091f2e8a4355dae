package bookie

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/strata-mq/strata/api/bookiepb"
)

type opKind int

const (
	opAdd opKind = iota
	opFence
	opDrop       // ledgers deleted from metadata (garbage collection)
	opRelocate   // compaction moves live entries out of a segment
	opCheckpoint // a checkpoint asked for (compaction, tests)
)

// journalOp is one request to the journal. done is called exactly once,
// from the journal goroutine (for checkpoints: when the checkpoint is
// durable), after the op's group is durable (or failed).
type journalOp struct {
	kind      opKind
	ledgerID  int64
	entryID   int64
	lac       int64 // piggybacked LAC from the envelope header
	masterKey []byte
	body      []byte
	recovery  bool
	dropIDs   []int64
	relocs    []relocation
	done      func(opResult)
}

// relocation is an entry compaction moves, if the index still points at
// from.
type relocation struct {
	ledgerID, entryID int64
	body              []byte
	from              location
}

type opResult struct {
	code bookiepb.Code
	msg  string
	// For fences: the highest entry stored here after the fence.
	lastEntryID int64
	lastEntry   []byte
	lac         int64
}

// journal is the single writer of the bookie's storage. It collects
// concurrent requests into groups, writes each group as one record of the
// entry log, syncs it, then updates Badger's index, and only then completes
// the group's requests. Checks that must be ordered with writes — fencing,
// the master key — are made here, at apply time, so that an add applied
// after a fence is always rejected and an add applied before it is always
// visible to the fence's reply.
//
// Ordering rule: a group's record is synced before any write of the group is
// acknowledged, and once a write or sync failed nothing is written or
// acknowledged again (the data of the failed write may be gone from the page
// cache, so later records would follow a hole).
type journal struct {
	st      *store
	ledgers *ledgers
	opts    *Options
	log     *slog.Logger
	metrics *metrics

	ops  chan *journalOp
	quit chan struct{}
	done chan struct{}

	// Journal goroutine state.
	rb        recordBuilder
	writes    []pendingWrite
	failedErr error // the write or sync failure that stopped the journal
	cp        checkpointState

	failOnce sync.Once
	onFail   func(error) // called once when a write fails
}

// pendingWrite is an index change of the record being built.
type pendingWrite struct {
	kind          byte // mutAdd, mutRecord or mutErase
	ledger, entry int64
	off, n        int64 // adds: envelope offset in the record and length
	rec           []byte
}

func newJournal(st *store, l *ledgers, opts *Options, m *metrics, onFail func(error)) *journal {
	return &journal{
		st: st, ledgers: l, opts: opts, log: opts.Logger, metrics: m, onFail: onFail,
		ops:  make(chan *journalOp, 8192),
		quit: make(chan struct{}),
		done: make(chan struct{}),
		cp:   checkpointState{result: make(chan checkpointResult, 1)},
	}
}

// submit queues an op; it fails when the journal is stopping.
func (j *journal) submit(op *journalOp) bool {
	select {
	case j.ops <- op:
		return true
	case <-j.quit:
		return false
	}
}

// stop makes run return after failing the ops still queued, and waits for a
// checkpoint in progress.
func (j *journal) stop() {
	close(j.quit)
	<-j.done
}

// exclusive reports ops that run alone, between groups.
func exclusive(k opKind) bool { return k == opDrop || k == opRelocate || k == opCheckpoint }

func (j *journal) run() {
	defer close(j.done)
	var group []*journalOp
	var timer *time.Timer
	tick := time.NewTicker(max(j.opts.CheckpointInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		var first *journalOp
		select {
		case first = <-j.ops:
		case r := <-j.cp.result:
			j.checkpointFinished(r)
			continue
		case <-tick.C:
			j.maybeCheckpoint(nil)
			continue
		case <-j.quit:
			j.cp.wait() // a checkpoint in progress ends first, and no other begins
			queued := j.cp.queued
			j.cp.queued = nil
			select {
			case r := <-j.cp.result:
				j.checkpointFinished(r)
			default:
			}
			j.cp.queued = queued
			j.drain()
			return
		}
		if exclusive(first.kind) {
			j.runExclusive(first)
			continue
		}
		group = append(group[:0], first)
		size := len(first.body)
		var deferred *journalOp // an exclusive op found while collecting: runs after the group
	collect:
		for size < j.opts.GroupBytes {
			select {
			case op := <-j.ops:
				if exclusive(op.kind) {
					deferred = op
					break collect
				}
				group = append(group, op)
				size += len(op.body)
				continue
			default:
			}
			if j.opts.GroupWait <= 0 {
				break
			}
			if timer == nil {
				timer = time.NewTimer(j.opts.GroupWait)
			} else {
				timer.Reset(j.opts.GroupWait)
			}
			select {
			case op := <-j.ops:
				timer.Stop()
				if exclusive(op.kind) {
					deferred = op
					break collect
				}
				group = append(group, op)
				size += len(op.body)
			case <-timer.C:
				break collect
			}
		}
		j.commitGroup(group)
		clear(group) // committed: the entries' bytes may go
		if deferred != nil {
			j.runExclusive(deferred)
		}
		j.maybeCheckpoint(nil)
	}
}

func (j *journal) runExclusive(op *journalOp) {
	switch op.kind {
	case opDrop:
		j.drop(op)
	case opRelocate:
		j.relocate(op)
	case opCheckpoint:
		j.maybeCheckpoint(op)
		return
	}
	j.maybeCheckpoint(nil)
}

func (j *journal) drain() {
	stopped := opResult{code: bookiepb.Code_SHUTTING_DOWN, msg: "bookie shutting down"}
	for _, op := range append(j.cp.waiting, j.cp.queued...) {
		op.done(stopped)
	}
	j.cp.waiting, j.cp.queued = nil, nil
	for {
		select {
		case op := <-j.ops:
			op.done(stopped)
		default:
			return
		}
	}
}

// applied is an op that passed its checks and is part of the group's writes.
type applied struct {
	op    *journalOp
	state *ledgerState
}

// commitGroup checks, writes and syncs one group, then completes its ops.
func (j *journal) commitGroup(group []*journalOp) {
	start := time.Now()
	results := make([]opResult, len(group))
	var ok []applied
	j.begin()
	for i, op := range group {
		if j.failedErr != nil {
			break
		}
		st, err := j.ledgers.get(op.ledgerID)
		if err != nil {
			results[i] = opResult{code: bookiepb.Code_IO_ERROR, msg: err.Error()}
			continue
		}
		if code, msg := j.check(st, op); code != bookiepb.Code_OK {
			results[i] = opResult{code: code, msg: msg}
			continue
		}
		if j.applyState(st, op) {
			j.ledgers.mu.Lock()
			rec := st.rec.encode()
			j.ledgers.mu.Unlock()
			j.putRecord(op.ledgerID, rec)
		}
		if op.kind == opAdd {
			j.putAdd(op.ledgerID, op.entryID, op.body)
		}
		ok = append(ok, applied{op: op, state: st})
	}
	err := j.commit()
	if err != nil {
		for i := range group {
			if results[i].code == bookiepb.Code_OK {
				results[i] = opResult{code: bookiepb.Code_IO_ERROR, msg: err.Error()}
			}
		}
	} else {
		refs := make([]EntryRef, 0, len(ok))
		for _, a := range ok {
			if a.op.kind == opAdd {
				refs = append(refs, EntryRef{a.op.ledgerID, a.op.entryID})
				j.ledgers.advance(a.state, a.op.entryID, a.op.lac)
			}
		}
		if j.opts.Hooks.AfterCommit != nil {
			j.opts.Hooks.AfterCommit(refs)
		}
		for i, op := range group {
			if op.kind == opFence && results[i].code == bookiepb.Code_OK {
				results[i] = j.fenceResult(op.ledgerID)
			}
		}
	}
	j.metrics.observeGroup(len(group), time.Since(start))
	for i, op := range group {
		op.done(results[i])
	}
}

// begin starts a new record.
func (j *journal) begin() {
	j.rb.reset()
	j.writes = j.writes[:0]
}

func (j *journal) putAdd(ledger, entry int64, body []byte) {
	off := j.rb.add(ledger, entry, body)
	j.writes = append(j.writes, pendingWrite{kind: mutAdd, ledger: ledger, entry: entry, off: off, n: int64(len(body))})
}

func (j *journal) putRecord(ledger int64, rec []byte) {
	j.rb.record(ledger, rec)
	j.writes = append(j.writes, pendingWrite{kind: mutRecord, ledger: ledger, rec: rec})
}

// commit makes the record built since begin durable and indexes it. A record
// with nothing in it (fences of fenced ledgers, rejected adds) is not
// written: everything before it is durable already.
func (j *journal) commit() error {
	if j.failedErr != nil {
		return j.failedErr
	}
	if j.rb.empty() {
		return nil
	}
	seq, base, err := j.write(j.rb.finish())
	if err == nil {
		err = j.index(seq, base)
	}
	if err != nil {
		j.fail(err)
		return err
	}
	return nil
}

// write appends rec to the entry log — in a new segment when the current
// one is full — and syncs it (Hooks.Commit wraps both).
func (j *journal) write(rec []byte) (seq uint64, base int64, err error) {
	log := j.st.log
	if cur := log.cur; cur.size > 0 && cur.size+int64(len(rec)) > j.opts.SegmentSize {
		if err := j.roll(); err != nil {
			return 0, 0, err
		}
	}
	err = j.opts.Hooks.commit(func() error {
		if base, err = log.append(rec); err != nil {
			return err
		}
		return log.sync(*j.opts.JournalSync)
	})
	if err != nil {
		return 0, 0, err
	}
	cur := log.cur
	for _, w := range j.writes {
		if w.kind == mutAdd {
			cur.ledgers[w.ledger] += w.n
		}
	}
	j.cp.since += int64(len(rec))
	return cur.seq, base, nil
}

// roll seals the current segment and starts the next.
func (j *journal) roll() error {
	log := j.st.log
	if err := log.seal(); err != nil {
		return err
	}
	return log.startSegment(log.cur.seq + 1)
}

// index applies the record's writes to Badger (without sync: the record is
// the durable copy until a checkpoint).
func (j *journal) index(seq uint64, base int64) error {
	txn := j.st.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	set := func(key, val []byte, del bool) error {
		var err error
		for range 2 {
			if del {
				err = txn.Delete(key)
			} else {
				err = txn.Set(key, val)
			}
			if !errors.Is(err, badger.ErrTxnTooBig) {
				return err
			}
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = j.st.db.NewTransaction(true)
		}
		return err
	}
	for _, w := range j.writes {
		var err error
		switch w.kind {
		case mutAdd:
			err = set(indexKey(w.ledger, w.entry), location{seq: seq, off: base + w.off, len: w.n}.encode(), false)
		case mutRecord:
			err = set(ledgerKey(w.ledger), w.rec, false)
		case mutErase:
			err = set(legacyKey(w.ledger, w.entry), nil, true)
		}
		if err != nil {
			return fmt.Errorf("bookie: index write: %w", err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("bookie: index commit: %w", err)
	}
	return nil
}

// fail stops the journal for good: nothing is written or acknowledged after
// a failed write or sync.
func (j *journal) fail(err error) {
	if j.failedErr == nil {
		j.failedErr = fmt.Errorf("journal failed, bookie read-only: %w", err)
	}
	j.failOnce.Do(func() { j.onFail(err) })
}

// check decides whether op may be applied to the ledger's current state.
func (j *journal) check(st *ledgerState, op *journalOp) (bookiepb.Code, string) {
	j.ledgers.mu.Lock()
	defer j.ledgers.mu.Unlock()
	if st.known && !bytes.Equal(st.rec.masterKey, op.masterKey) {
		return bookiepb.Code_UNAUTHORIZED, fmt.Sprintf("wrong master key for ledger %d", op.ledgerID)
	}
	if op.kind == opAdd && st.rec.fenced && !op.recovery {
		return bookiepb.Code_FENCED, fmt.Sprintf("ledger %d is fenced", op.ledgerID)
	}
	return bookiepb.Code_OK, ""
}

// applyState updates the in-memory record for op and reports whether the
// persistent record changed.
func (j *journal) applyState(st *ledgerState, op *journalOp) bool {
	j.ledgers.mu.Lock()
	defer j.ledgers.mu.Unlock()
	changed := false
	if !st.known {
		st.known = true
		st.rec.masterKey = append([]byte(nil), op.masterKey...)
		changed = true
	}
	if op.kind == opFence && !st.rec.fenced {
		st.rec.fenced = true
		changed = true
	}
	return changed
}

func (j *journal) fenceResult(ledgerID int64) opResult {
	last, body, err := j.st.lastEntry(ledgerID)
	if err != nil {
		return opResult{code: bookiepb.Code_IO_ERROR, msg: err.Error()}
	}
	_, _, lac, _, _ := j.ledgers.snapshot(ledgerID)
	return opResult{code: bookiepb.Code_OK, lastEntryID: last, lastEntry: body, lac: lac}
}

// drop deletes ledgers: a durable record first, then Badger's range delete,
// which blocks writes and so runs between groups.
func (j *journal) drop(op *journalOp) {
	j.begin()
	for _, id := range op.dropIDs {
		j.rb.drop(id)
	}
	err := j.commit()
	if err == nil {
		if err = j.st.dropLedgers(op.dropIDs); err != nil {
			j.fail(err)
		}
	}
	if err == nil {
		j.ledgers.forget(op.dropIDs)
		op.done(opResult{code: bookiepb.Code_OK})
		return
	}
	op.done(opResult{code: bookiepb.Code_IO_ERROR, msg: err.Error()})
}

// relocate re-appends entries compaction moves out of a segment, each only
// if the index still points at its old place (a recovery add may have
// rewritten it, the ledger may be gone).
func (j *journal) relocate(op *journalOp) {
	j.begin()
	for _, r := range op.relocs {
		loc, err := j.st.locate(r.ledgerID, r.entryID)
		if errors.Is(err, errNoEntry) || (err == nil && loc != r.from) {
			continue
		}
		if err != nil {
			op.done(opResult{code: bookiepb.Code_IO_ERROR, msg: err.Error()})
			return
		}
		j.putAdd(r.ledgerID, r.entryID, r.body)
	}
	if err := j.commit(); err != nil {
		op.done(opResult{code: bookiepb.Code_IO_ERROR, msg: err.Error()})
		return
	}
	op.done(opResult{code: bookiepb.Code_OK})
}

func (h *Hooks) commit(fn func() error) error {
	if h.Commit != nil {
		return h.Commit(fn)
	}
	return fn()
}
