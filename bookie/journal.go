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
	opDrop
)

// journalOp is one request to the journal. done is called exactly once,
// from the journal goroutine, after the op's group is durable (or failed).
type journalOp struct {
	kind      opKind
	ledgerID  int64
	entryID   int64
	lac       int64 // piggybacked LAC from the envelope header
	masterKey []byte
	body      []byte
	recovery  bool
	dropIDs   []int64
	done      func(opResult)
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
// concurrent requests into groups, writes each group as one Badger
// transaction and makes it durable with one sync (Badger's SyncWrites), and
// only then completes the group's requests. Checks that must be ordered with
// writes — fencing, the master key — are made here, at apply time, so that an
// add applied after a fence is always rejected and an add applied before it
// is always visible to the fence's reply.
type journal struct {
	st      *store
	ledgers *ledgers
	opts    *Options
	log     *slog.Logger
	metrics *metrics

	ops  chan *journalOp
	quit chan struct{}
	done chan struct{}

	failOnce sync.Once
	onFail   func(error) // called once when a commit fails
}

func newJournal(st *store, l *ledgers, opts *Options, m *metrics, onFail func(error)) *journal {
	return &journal{
		st: st, ledgers: l, opts: opts, log: opts.Logger, metrics: m, onFail: onFail,
		ops:  make(chan *journalOp, 8192),
		quit: make(chan struct{}),
		done: make(chan struct{}),
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

// stop makes run return after failing the ops still queued.
func (j *journal) stop() {
	close(j.quit)
	<-j.done
}

func (j *journal) run() {
	defer close(j.done)
	var group []*journalOp
	var timer *time.Timer
	for {
		var first *journalOp
		select {
		case first = <-j.ops:
		case <-j.quit:
			j.drain()
			return
		}
		if first.kind == opDrop {
			j.drop(first)
			continue
		}
		group = append(group[:0], first)
		size := len(first.body)
		var deferred *journalOp // a drop found while collecting: runs after the group
	collect:
		for size < j.opts.GroupBytes {
			select {
			case op := <-j.ops:
				if op.kind == opDrop {
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
				if op.kind == opDrop {
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
		if deferred != nil {
			j.drop(deferred)
		}
	}
}

func (j *journal) drain() {
	for {
		select {
		case op := <-j.ops:
			op.done(opResult{code: bookiepb.Code_SHUTTING_DOWN, msg: "bookie shutting down"})
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
// Ordering rule: the group is committed and synced before any op in it is
// acknowledged.
func (j *journal) commitGroup(group []*journalOp) {
	start := time.Now()
	results := make([]opResult, len(group))
	var ok []applied
	txn := j.st.db.NewTransaction(true)
	var commitErr error
	commit := func() error {
		err := j.opts.Hooks.commit(txn.Commit)
		txn = j.st.db.NewTransaction(true)
		return err
	}
	set := func(key, val []byte) error {
		err := txn.Set(key, val)
		if errors.Is(err, badger.ErrTxnTooBig) {
			// Commit (and sync) what we have before starting a new
			// transaction, so every transaction is durable on its own.
			if err := commit(); err != nil {
				return err
			}
			err = txn.Set(key, val)
		}
		return err
	}
	for i, op := range group {
		st, err := j.ledgers.get(op.ledgerID)
		if err != nil {
			results[i] = opResult{code: bookiepb.Code_IO_ERROR, msg: err.Error()}
			continue
		}
		if code, msg := j.check(st, op); code != bookiepb.Code_OK {
			results[i] = opResult{code: code, msg: msg}
			continue
		}
		recordChanged := j.applyState(st, op)
		if recordChanged {
			j.ledgers.mu.Lock()
			rec := st.rec.encode()
			j.ledgers.mu.Unlock()
			if commitErr = set(ledgerKey(op.ledgerID), rec); commitErr != nil {
				break
			}
		}
		if op.kind == opAdd {
			if commitErr = set(entryKey(op.ledgerID, op.entryID), op.body); commitErr != nil {
				break
			}
		}
		ok = append(ok, applied{op: op, state: st})
	}
	if commitErr == nil {
		commitErr = commit()
	}
	txn.Discard()
	if commitErr != nil {
		j.failOnce.Do(func() { j.onFail(commitErr) })
		for i := range group {
			if results[i].code == bookiepb.Code_OK {
				results[i] = opResult{code: bookiepb.Code_IO_ERROR, msg: fmt.Sprintf("journal commit failed: %v", commitErr)}
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

// drop deletes ledgers' data. It runs between groups because Badger's range
// delete blocks writes.
func (j *journal) drop(op *journalOp) {
	err := j.st.dropLedgers(op.dropIDs)
	if err == nil {
		j.ledgers.forget(op.dropIDs)
		op.done(opResult{code: bookiepb.Code_OK})
		return
	}
	op.done(opResult{code: bookiepb.Code_IO_ERROR, msg: err.Error()})
}

func (h *Hooks) commit(fn func() error) error {
	if h.Commit != nil {
		return h.Commit(fn)
	}
	return fn()
}
