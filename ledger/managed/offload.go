package managed

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/offload"
)

// Tiered storage, the managed-ledger half: when to offload a closed ledger,
// the two-phase record of the offload in the ledger list, deleting the
// bookie copy after the deletion lag, and (offload_read.go) reading
// offloaded ledgers back. docs/tiered-storage.md ("The managed ledger")
// describes the protocol.
//
// One goroutine, offloadLoop, does every offload of a managed ledger, so at
// most one offload runs per managed ledger and per ledger. Metadata changes
// go through updateInfo under metaMu (compare-and-swap on the ledger list);
// uploads and object deletes happen outside metaMu.

// OffloadState is the state of the latest offload run (Pulsar's
// OffloadProcessStatus states).
type OffloadState string

// Offload states.
const (
	OffloadNotRun  OffloadState = "NOT_RUN"
	OffloadRunning OffloadState = "RUNNING"
	OffloadSuccess OffloadState = "SUCCESS"
	OffloadError   OffloadState = "ERROR"
)

// OffloadStatus reports the latest offload run, manual or automatic (runs
// that found nothing to offload leave it unchanged).
type OffloadStatus struct {
	State OffloadState `json:"status"`
	// LastError is the error of the latest run, if it failed.
	LastError string `json:"lastError"`
	// FirstUnoffloaded is the first entry not offloaded: the start of the
	// oldest ledger without a complete offload (or the next position to be
	// written when every ledger is offloaded).
	FirstUnoffloaded Position `json:"firstUnoffloadedMessage"`
}

// OffloadResult reports what one offload run moved to the object store.
type OffloadResult struct {
	// Ledgers offloaded by this run, oldest first.
	Ledgers []int64 `json:"ledgers"`
	// Entries and Bytes (payload) of those ledgers.
	Entries int64 `json:"entries"`
	Bytes   int64 `json:"bytes"`
	// FirstUnoffloaded as in OffloadStatus, after the run.
	FirstUnoffloaded Position `json:"firstUnoffloadedMessage"`
}

// OffloadStats are the tiered-storage figures of Stats. Sizes are payload
// bytes; the Total fields count since this instance opened the log.
type OffloadStats struct {
	State OffloadState `json:"status"`
	// OffloadedLedgers is the number of ledgers with a complete offload.
	OffloadedLedgers int `json:"offloadedLedgers"`
	// BookieSize is the bytes still stored on bookies: every ledger whose
	// bookie copy was not deleted, the current one included.
	BookieSize int64 `json:"bookieSize"`
	// NotOffloadedSize is the bytes stored only on bookies (ledgers without a
	// complete offload, the current one included); ThresholdBytes bounds it.
	NotOffloadedSize int64 `json:"notOffloadedSize"`
	// OffloadedBytesTotal and OffloadedLedgersTotal count completed offloads.
	OffloadedBytesTotal   int64 `json:"offloadedBytesTotal"`
	OffloadedLedgersTotal int64 `json:"offloadedLedgersTotal"`
	// ErrorsTotal counts failed offload attempts: a ledger's upload or
	// its recording, or the cleanup of an interrupted attempt.
	ErrorsTotal int64 `json:"offloadErrorsTotal"`
	// LastDuration is how long the latest successful ledger offload took
	// (reading from bookies, uploading, recording).
	LastDuration time.Duration `json:"lastOffloadDurationNs"`
	// OpenReaders is the number of cached readers of offloaded ledgers.
	OpenReaders int `json:"openReaders"`
}

// offloader is the tiered-storage state of a managed ledger.
type offloader struct {
	kick    chan struct{} // wakes offloadLoop (rollover, manual request)
	readers readerCache
	mu      struct {
		sync.Mutex
		queue   []*offloadReq // manual requests, served in order
		manual  int           // manual requests queued or running
		stopped bool          // offloadLoop ended: no more requests
		state   OffloadState
		lastErr string
		backoff time.Duration // of automatic runs after a failure; 0 after a success
		retryAt time.Time     // no automatic run before this
		// Objects of trimmed ledgers and bookie copies whose deletion
		// failed, retried at every check (lost on restart).
		objectRetry []OffloadContext
		bookieRetry map[int64]bool
		// uncertain holds, by ledger, offloads whose completion write failed
		// with an unknown outcome: the record may say complete, so their
		// objects are kept and the completion is retried.
		uncertain map[int64]OffloadContext
		// Counters for Stats.
		bytesTotal, ledgersTotal, errorsTotal int64
		lastDuration                          time.Duration
	}
}

// offloadReq is a manual offload request; done (buffered) gets the outcome.
type offloadReq struct {
	ctx context.Context
	// pick returns the ledgers to offload, when the request is served.
	pick func() []LedgerInfo
	done chan offloadOutcome
}

type offloadOutcome struct {
	res OffloadResult
	err error
}

func newOffloader() *offloader {
	o := &offloader{kick: make(chan struct{}, 1)}
	o.mu.state = OffloadNotRun
	o.mu.bookieRetry = make(map[int64]bool)
	o.mu.uncertain = make(map[int64]OffloadContext)
	o.readers.m = make(map[int64]*cachedReader)
	return o
}

// offloadEnabled reports whether an offload store is configured.
func (ml *ManagedLedger) offloadEnabled() bool { return ml.opts.Offload.Store != nil }

// kickOffload wakes the offloader (after a rollover); it never blocks.
func (ml *ManagedLedger) kickOffload() {
	select {
	case ml.off.kick <- struct{}{}:
	default:
	}
}

// Offload offloads closed ledgers, oldest first, until at most keepBytes of
// the log are not offloaded (the current ledger counts but is never
// offloaded), and waits for the run — like pulsar-admin topics offload
// --size-threshold. It fails with ErrOffloadInProgress while another manual
// offload is queued or running, ErrOffloadDisabled without a store.
// Cancelling ctx stops the run; a ledger being uploaded then stays not
// offloaded.
func (ml *ManagedLedger) Offload(ctx context.Context, keepBytes int64) (OffloadResult, error) {
	pick, err := ml.keepPicker(keepBytes)
	if err != nil {
		return OffloadResult{}, err
	}
	return ml.offloadAndWait(ctx, pick)
}

// TriggerOffload starts what Offload does in the background and returns at
// once; OffloadStatus says RUNNING until the run ends.
func (ml *ManagedLedger) TriggerOffload(keepBytes int64) error {
	pick, err := ml.keepPicker(keepBytes)
	if err != nil {
		return err
	}
	_, err = ml.queueOffload(context.Background(), pick)
	return err
}

// OffloadPrefix offloads every closed ledger before the one holding before
// (Pulsar's offloadPrefix: the admin PUT .../offload with a message id) and
// waits; otherwise as Offload.
func (ml *ManagedLedger) OffloadPrefix(ctx context.Context, before Position) (OffloadResult, error) {
	return ml.offloadAndWait(ctx, ml.prefixPicker(before))
}

// TriggerOffloadPrefix starts what OffloadPrefix does in the background and
// returns at once.
func (ml *ManagedLedger) TriggerOffloadPrefix(before Position) error {
	_, err := ml.queueOffload(context.Background(), ml.prefixPicker(before))
	return err
}

func (ml *ManagedLedger) keepPicker(keepBytes int64) (func() []LedgerInfo, error) {
	if keepBytes < 0 {
		return nil, fmt.Errorf("managed ledger %s: offload: keepBytes %d must be >= 0", ml.name, keepBytes)
	}
	return func() []LedgerInfo { return ml.offloadCandidatesNow(keepBytes, -1) }, nil
}

func (ml *ManagedLedger) prefixPicker(before Position) func() []LedgerInfo {
	return func() []LedgerInfo {
		var out []LedgerInfo
		for _, li := range ml.offloadCandidatesNow(-1, 0) { // every closed ledger
			if li.LedgerID < before.LedgerID {
				out = append(out, li)
			}
		}
		return out
	}
}

func (ml *ManagedLedger) offloadAndWait(ctx context.Context, pick func() []LedgerInfo) (OffloadResult, error) {
	req, err := ml.queueOffload(ctx, pick)
	if err != nil {
		return OffloadResult{}, err
	}
	select {
	case out := <-req.done:
		return out.res, out.err
	case <-ctx.Done():
		return OffloadResult{}, ctx.Err()
	}
}

func (ml *ManagedLedger) queueOffload(ctx context.Context, pick func() []LedgerInfo) (*offloadReq, error) {
	if !ml.offloadEnabled() {
		return nil, fmt.Errorf("%w: %s", ErrOffloadDisabled, ml.name)
	}
	ml.mu.Lock()
	err := ml.usableLocked()
	ml.mu.Unlock()
	if err != nil {
		return nil, err
	}
	req := &offloadReq{ctx: ctx, pick: pick, done: make(chan offloadOutcome, 1)}
	ml.off.mu.Lock()
	if ml.off.mu.stopped {
		ml.off.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrClosed, ml.name)
	}
	if ml.off.mu.manual > 0 {
		ml.off.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrOffloadInProgress, ml.name)
	}
	ml.off.mu.manual++
	ml.off.mu.queue = append(ml.off.mu.queue, req)
	ml.off.mu.state, ml.off.mu.lastErr = OffloadRunning, ""
	ml.off.mu.Unlock()
	ml.kickOffload()
	return req, nil
}

// OffloadStatus returns the state of the latest offload run.
func (ml *ManagedLedger) OffloadStatus() OffloadStatus {
	ml.off.mu.Lock()
	st := OffloadStatus{State: ml.off.mu.state, LastError: ml.off.mu.lastErr}
	ml.off.mu.Unlock()
	ml.mu.Lock()
	st.FirstUnoffloaded = ml.firstUnoffloadedLocked()
	ml.mu.Unlock()
	return st
}

// firstUnoffloadedLocked returns the first entry of the oldest ledger
// without a complete offload. ml.mu must be held.
func (ml *ManagedLedger) firstUnoffloadedLocked() Position {
	for _, li := range ml.mu.info.Ledgers {
		if !offloaded(li) {
			return ml.normalizeLocked(Position{li.LedgerID, 0})
		}
	}
	lc := ml.mu.lastConfirmed
	return Position{lc.LedgerID, lc.EntryID + 1}
}

// offloaded reports whether li has a complete offload.
func offloaded(li LedgerInfo) bool { return li.Offload != nil && li.Offload.Complete }

// offloadCounters adds the run-time counters to st.
func (ml *ManagedLedger) offloadCounters(st *OffloadStats) {
	ml.off.mu.Lock()
	st.State = ml.off.mu.state
	st.OffloadedBytesTotal, st.OffloadedLedgersTotal = ml.off.mu.bytesTotal, ml.off.mu.ledgersTotal
	st.ErrorsTotal, st.LastDuration = ml.off.mu.errorsTotal, ml.off.mu.lastDuration
	ml.off.mu.Unlock()
	st.OpenReaders = ml.off.readers.len()
}

// offloadCandidates returns the ledgers to offload, oldest first: closed,
// non-empty ledgers without a complete offload, taken while the bytes not
// offloaded (curSize, the current ledger's size, included) exceed keepBytes
// (>= 0), or while they were closed at least maxAgeMs ago (>= 0). The
// current ledger cur, and anything after it, is never offloaded.
func offloadCandidates(ledgers []LedgerInfo, cur, curSize, keepBytes, maxAgeMs, nowMs int64) []LedgerInfo {
	left := curSize
	for _, li := range ledgers {
		if !offloaded(li) && li.LedgerID != cur {
			left += li.Size
		}
	}
	var out []LedgerInfo
	for _, li := range ledgers {
		if li.LedgerID == cur || li.Timestamp == 0 {
			break // the current ledger, and anything not closed
		}
		if offloaded(li) || li.Entries == 0 {
			continue
		}
		bySize := keepBytes >= 0 && left > keepBytes
		byAge := maxAgeMs >= 0 && nowMs-li.Timestamp >= maxAgeMs
		if !bySize && !byAge {
			break // newer ledgers are smaller in neither sense
		}
		out = append(out, li)
		left -= li.Size
	}
	return out
}

// offloadLoop serves manual requests and runs the automatic checks until
// the managed ledger closes; closing cancels an upload in progress.
func (ml *ManagedLedger) offloadLoop() {
	defer ml.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ml.wg.Add(1)
	go func() {
		defer ml.wg.Done()
		select {
		case <-ml.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	// The first check runs at once: it cleans up after a previous owner
	// that stopped mid-offload.
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ml.stop:
			ml.failQueuedOffloads()
			return
		case <-timer.C:
		case <-ml.off.kick:
		}
		select {
		case <-ml.stop: // also ready: stop first
			ml.failQueuedOffloads()
			return
		default:
		}
		ml.serveManualOffloads(ctx)
		ml.offloadCheck(ctx)
		timer.Reset(ml.nextOffloadCheck())
	}
}

// serveManualOffloads runs the queued manual requests in order.
func (ml *ManagedLedger) serveManualOffloads(ctx context.Context) {
	for {
		ml.off.mu.Lock()
		if len(ml.off.mu.queue) == 0 {
			ml.off.mu.Unlock()
			return
		}
		req := ml.off.mu.queue[0]
		ml.off.mu.queue = ml.off.mu.queue[1:]
		ml.off.mu.Unlock()

		rctx, rcancel := context.WithCancel(req.ctx)
		stop := context.AfterFunc(ctx, rcancel) // closing cancels it too
		var out offloadOutcome
		if out.err = ml.cleanupIncomplete(rctx); out.err == nil {
			todo := req.pick()
			out.res, out.err = ml.offloadRun(rctx, func() []LedgerInfo {
				for len(todo) > 0 && ml.isOffloaded(todo[0].LedgerID) {
					todo = todo[1:]
				}
				return todo
			}, true)
		} else {
			ml.off.mu.Lock()
			ml.off.mu.errorsTotal++
			ml.off.mu.Unlock()
			ml.finishRun(out.err, true)
		}
		stop()
		rcancel()
		ml.off.mu.Lock()
		ml.off.mu.manual--
		ml.off.mu.Unlock()
		req.done <- out
	}
}

// failQueuedOffloads fails manual requests left when the log closes.
func (ml *ManagedLedger) failQueuedOffloads() {
	ml.off.mu.Lock()
	ml.off.mu.stopped = true
	queue := ml.off.mu.queue
	ml.off.mu.queue = nil
	ml.off.mu.manual -= len(queue)
	ml.off.mu.Unlock()
	for _, req := range queue {
		req.done <- offloadOutcome{err: fmt.Errorf("%w: %s", ErrClosed, ml.name)}
	}
}

// nextOffloadCheck returns the wait before the next automatic check.
func (ml *ManagedLedger) nextOffloadCheck() time.Duration {
	d := ml.opts.Offload.CheckInterval
	ml.off.mu.Lock()
	defer ml.off.mu.Unlock()
	if len(ml.off.mu.queue) > 0 {
		return 0
	}
	if until := time.Until(ml.off.mu.retryAt); until > 0 {
		d = min(d, until)
	}
	return d
}

// offloadCheck is one automatic round: close idle readers, retry failed
// deletions, delete bookie copies past the deletion lag, clean up
// incomplete offloads and offload what the policy asks for — the last two
// not during the backoff after a failure.
func (ml *ManagedLedger) offloadCheck(ctx context.Context) {
	ml.mu.Lock()
	err := ml.usableLocked()
	ml.mu.Unlock()
	if err != nil {
		return
	}
	ml.off.readers.closeIdle(ml.opts.Offload.ReaderIdleTimeout)
	ml.retryObjectDeletes(ctx)
	ml.deleteBookieCopies(ctx, ml.opts.Offload.Policy().DeletionLag)

	ml.off.mu.Lock()
	wait := time.Now().Before(ml.off.mu.retryAt)
	ml.off.mu.Unlock()
	if wait {
		return
	}
	if err = ml.cleanupIncomplete(ctx); err != nil {
		ml.off.mu.Lock()
		ml.off.mu.errorsTotal++
		ml.off.mu.Unlock()
		ml.finishRun(err, false)
	} else {
		// The policy is read again before every ledger, so a change stops
		// (or widens) a run between two ledgers.
		_, err = ml.offloadRun(ctx, func() []LedgerInfo {
			pol := ml.opts.Offload.Policy()
			maxAge := int64(-1)
			if pol.ThresholdSeconds >= 0 {
				maxAge = pol.ThresholdSeconds * 1000
			}
			return ml.offloadCandidatesNow(pol.ThresholdBytes, maxAge)
		}, false)
	}
	ml.off.mu.Lock()
	defer ml.off.mu.Unlock()
	switch {
	case err == nil:
		ml.off.mu.backoff, ml.off.mu.retryAt = 0, time.Time{}
	case ctx.Err() != nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrFenced):
	default:
		b := ml.off.mu.backoff * 2
		b = min(max(b, ml.opts.Offload.RetryMin), ml.opts.Offload.RetryMax)
		ml.off.mu.backoff, ml.off.mu.retryAt = b, time.Now().Add(b)
		ml.log.Warn("offload failed; retrying later", "err", err, "in", b)
	}
}

// offloadCandidatesNow applies offloadCandidates to the current ledger list.
func (ml *ManagedLedger) offloadCandidatesNow(keepBytes, maxAgeMs int64) []LedgerInfo {
	if keepBytes < 0 && maxAgeMs < 0 {
		return nil
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	cur, curSize := ml.currentLocked()
	return offloadCandidates(ml.mu.info.Ledgers, cur, curSize, keepBytes, maxAgeMs, ml.opts.Clock().UnixMilli())
}

// offloadRun offloads ledgers one at a time, oldest first, and stops at the
// first failure. next returns the ledgers still to offload: a manual run
// fixes them at its start, an automatic run asks the policy again each time.
// A run with nothing to do changes the status only when it is manual.
func (ml *ManagedLedger) offloadRun(ctx context.Context, next func() []LedgerInfo, manual bool) (OffloadResult, error) {
	var res OffloadResult
	var err error
	started := false
	for {
		ml.mu.Lock()
		err = ml.usableLocked()
		ml.mu.Unlock()
		if err != nil {
			break
		}
		cands := next()
		if len(cands) == 0 {
			break
		}
		if !started {
			started = true
			ml.off.mu.Lock()
			ml.off.mu.state, ml.off.mu.lastErr = OffloadRunning, ""
			ml.off.mu.Unlock()
		}
		li := cands[0]
		start := time.Now()
		var done bool
		if done, err = ml.offloadLedger(ctx, li.LedgerID); err != nil {
			ml.off.mu.Lock()
			ml.off.mu.errorsTotal++
			ml.off.mu.Unlock()
			err = fmt.Errorf("managed ledger %s: offload ledger %d: %w", ml.name, li.LedgerID, err)
			break
		}
		if !done {
			continue // trimmed meanwhile
		}
		res.Ledgers = append(res.Ledgers, li.LedgerID)
		res.Entries += li.Entries
		res.Bytes += li.Size
		ml.off.mu.Lock()
		ml.off.mu.bytesTotal += li.Size
		ml.off.mu.ledgersTotal++
		ml.off.mu.lastDuration = time.Since(start)
		ml.off.mu.Unlock()
		ml.log.Info("offloaded ledger", "ledger", li.LedgerID, "entries", li.Entries, "bytes", li.Size, "took", time.Since(start))
	}
	if !started && !manual {
		return res, err
	}
	ml.mu.Lock()
	res.FirstUnoffloaded = ml.firstUnoffloadedLocked()
	ml.mu.Unlock()
	ml.finishRun(err, manual)
	return res, err
}

// finishRun records the outcome of a run in the status; an automatic run
// leaves the RUNNING of a queued manual request alone.
func (ml *ManagedLedger) finishRun(err error, manual bool) {
	ml.off.mu.Lock()
	defer ml.off.mu.Unlock()
	if !manual && ml.off.mu.manual > 0 {
		return
	}
	if err != nil {
		ml.off.mu.state, ml.off.mu.lastErr = OffloadError, err.Error()
	} else {
		ml.off.mu.state, ml.off.mu.lastErr = OffloadSuccess, ""
	}
}

// offloadLedger offloads one closed ledger with the two-phase protocol:
//
//  1. record a fresh UUID and its object keys, Complete=false (CAS), after
//     deleting the objects of an earlier incomplete attempt;
//  2. upload the data and index objects (WriteLedger deletes what it
//     uploaded if it fails);
//  3. set Complete=true and the timestamp (CAS), only if the ledger still
//     carries our UUID; if it does not, or another owner fenced us, our
//     objects can never be completed and are deleted.
//
// A crash between 1 and 3 leaves an incomplete record, which the next check
// (of this or the next owner) cleans up; no record is ever complete without
// both objects. It reports false when the ledger left the log meanwhile.
func (ml *ManagedLedger) offloadLedger(ctx context.Context, id int64) (bool, error) {
	li, ok := ml.ledgerInfo(id)
	if !ok || offloaded(li) {
		return false, nil
	}
	if old := li.Offload; old != nil {
		if err := offload.DeleteLedger(ctx, ml.opts.Offload.Store, old.DataKey, old.IndexKey); err != nil {
			return false, fmt.Errorf("delete objects of the incomplete offload %s: %w", old.UUID, err)
		}
	}
	uuid := newUUID()
	dataKey, indexKey := offload.ObjectKeys(ml.opts.Offload.KeyPrefix, ml.name, id, uuid)
	oc := OffloadContext{UUID: uuid, Driver: ml.opts.Offload.Driver, DataKey: dataKey, IndexKey: indexKey}

	// Phase 1.
	err := ml.casOffload(ctx, id, li.Offload, func(l *LedgerInfo) {
		rec := oc
		l.Offload = &rec
	})
	if errors.Is(err, errLedgerGone) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record offload %s: %w", uuid, err)
	}

	// Phase 2.
	r, err := ml.reader(ctx, id)
	if err != nil {
		return false, fmt.Errorf("open ledger on bookies: %w", err)
	}
	md := r.Metadata()
	md.Password = nil // the index must not carry the ledger's password
	meta, err := json.Marshal(md)
	if err != nil {
		return false, err
	}
	desc := offload.LedgerDescriptor{LedgerID: id, LastEntryID: li.Entries - 1, Length: li.Size, Metadata: meta}
	src := newBookieSource(r, desc.LastEntryID, ml.opts.Offload.Write.ReadBatch, li.Size/li.Entries)
	_, err = offload.WriteLedger(ctx, ml.opts.Offload.Store, src, desc, dataKey, indexKey, ml.opts.Offload.Write)
	src.wait()
	if err != nil {
		return false, fmt.Errorf("offload %s: %w", uuid, err)
	}

	// Phase 3.
	return ml.completeOffload(ctx, id, oc, false)
}

// completeOffload is phase 3 of offloadLedger: it marks the offload oc of
// ledger id complete if the ledger still carries oc's UUID. When it cannot
// (the ledger was trimmed or carries another UUID, or another owner fenced
// us: the compare-and-swap failed, so the record is not complete), the
// objects are deleted, as nobody can complete that UUID any more. Any other
// failure leaves the outcome unknown — the record may say complete — so the
// objects stay and the completion is retried by cleanupIncomplete. retry
// says this is such a retry: a fence then may come from our own earlier
// write having succeeded, and the objects stay too.
func (ml *ManagedLedger) completeOffload(ctx context.Context, id int64, oc OffloadContext, retry bool) (bool, error) {
	now := ml.opts.Clock().UnixMilli()
	err := ml.casOffload(ctx, id, &oc, func(l *LedgerInfo) {
		l.Offload.Complete, l.Offload.Timestamp = true, now
	})
	ml.off.mu.Lock()
	delete(ml.off.mu.uncertain, id)
	ml.off.mu.Unlock()
	if err == nil {
		return true, nil
	}
	conflict := errors.Is(err, errLedgerGone) || errors.Is(err, ErrOffloadConflict)
	if conflict || (errors.Is(err, ErrFenced) && !retry) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if derr := offload.DeleteLedger(dctx, ml.opts.Offload.Store, oc.DataKey, oc.IndexKey); derr != nil {
			ml.log.Warn("delete objects of an offload that cannot complete", "ledger", id, "uuid", oc.UUID, "err", derr)
		}
		cancel()
		if errors.Is(err, errLedgerGone) {
			return false, nil
		}
	} else if !errors.Is(err, ErrFenced) {
		ml.off.mu.Lock()
		ml.off.mu.uncertain[id] = oc
		ml.off.mu.Unlock()
	}
	return false, fmt.Errorf("complete offload %s: %w", oc.UUID, err)
}

// errLedgerGone: the ledger left the log (trimmed) during an offload.
var errLedgerGone = errors.New("managed ledger: ledger no longer in the log")

// casOffload applies mutate to ledger id in the ledger list, if the ledger's
// offload record still has the UUID of expect (nil: none). It takes metaMu;
// the list cannot change between the check and the compare-and-swap.
func (ml *ManagedLedger) casOffload(ctx context.Context, id int64, expect *OffloadContext, mutate func(*LedgerInfo)) error {
	ml.metaMu.Lock()
	defer ml.metaMu.Unlock()
	li, ok := ml.ledgerInfo(id)
	if !ok {
		return fmt.Errorf("%w: ledger %d", errLedgerGone, id)
	}
	if uuidOf(li.Offload) != uuidOf(expect) {
		return fmt.Errorf("%w: ledger %d carries offload %q, expected %q", ErrOffloadConflict, id, uuidOf(li.Offload), uuidOf(expect))
	}
	return ml.updateInfo(ctx, func(info *mlInfo) error {
		for i := range info.Ledgers {
			if info.Ledgers[i].LedgerID == id {
				mutate(&info.Ledgers[i])
			}
		}
		return nil
	})
}

func uuidOf(oc *OffloadContext) string {
	if oc == nil {
		return ""
	}
	return oc.UUID
}

// isOffloaded reports whether ledger id has a complete offload or left the
// log.
func (ml *ManagedLedger) isOffloaded(id int64) bool {
	li, ok := ml.ledgerInfo(id)
	return !ok || offloaded(li)
}

// ledgerInfo returns ledger id's record in the current list.
func (ml *ManagedLedger) ledgerInfo(id int64) (LedgerInfo, bool) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	for _, li := range ml.mu.info.Ledgers {
		if li.LedgerID == id {
			return li, true
		}
	}
	return LedgerInfo{}, false
}

// cleanupIncomplete deletes the objects of incomplete offloads (a failed
// attempt, or a previous owner that stopped mid-offload) and clears their
// records. Only offloadLoop offloads, so when it runs this no attempt is in
// progress in this instance; a fenced previous owner can no longer
// complete its attempt.
func (ml *ManagedLedger) cleanupIncomplete(ctx context.Context) error {
	ml.mu.Lock()
	var stale []LedgerInfo
	for _, li := range ml.mu.info.Ledgers {
		if li.Offload != nil && !li.Offload.Complete {
			stale = append(stale, li)
		}
	}
	ml.mu.Unlock()
	for _, li := range stale {
		oc := li.Offload
		ml.off.mu.Lock()
		unc, uncertain := ml.off.mu.uncertain[li.LedgerID]
		ml.off.mu.Unlock()
		if uncertain && unc.UUID == oc.UUID {
			if _, err := ml.completeOffload(ctx, li.LedgerID, *oc, true); err != nil {
				return fmt.Errorf("managed ledger %s: ledger %d: %w", ml.name, li.LedgerID, err)
			}
			continue
		}
		if err := offload.DeleteLedger(ctx, ml.opts.Offload.Store, oc.DataKey, oc.IndexKey); err != nil {
			return fmt.Errorf("managed ledger %s: clean up incomplete offload %s of ledger %d: %w", ml.name, oc.UUID, li.LedgerID, err)
		}
		err := ml.casOffload(ctx, li.LedgerID, oc, func(l *LedgerInfo) { l.Offload = nil })
		if err != nil && !errors.Is(err, errLedgerGone) {
			return fmt.Errorf("managed ledger %s: clear incomplete offload %s of ledger %d: %w", ml.name, oc.UUID, li.LedgerID, err)
		}
		ml.log.Info("cleaned up incomplete offload", "ledger", li.LedgerID, "uuid", oc.UUID)
	}
	return nil
}

// deleteBookieCopies deletes the bookie copy of every offloaded ledger whose
// offload completed at least lag ago (lag >= 0): BookieDeleted=true is
// recorded (CAS) first, then the ledger is deleted (bookies garbage-collect
// its entries). Deletes that fail are retried at the next check.
func (ml *ManagedLedger) deleteBookieCopies(ctx context.Context, lag time.Duration) {
	var ids []int64
	if lag >= 0 {
		now := ml.opts.Clock().UnixMilli()
		ml.mu.Lock()
		for _, li := range ml.mu.info.Ledgers {
			if offloaded(li) && !li.Offload.BookieDeleted && now-li.Offload.Timestamp >= lag.Milliseconds() {
				ids = append(ids, li.LedgerID)
			}
		}
		ml.mu.Unlock()
	}
	if len(ids) > 0 {
		ml.metaMu.Lock()
		err := ml.updateInfo(ctx, func(info *mlInfo) error {
			for i := range info.Ledgers {
				li := &info.Ledgers[i]
				if offloaded(*li) && slices.Contains(ids, li.LedgerID) {
					li.Offload.BookieDeleted = true
				}
			}
			return nil
		})
		ml.metaMu.Unlock()
		if err != nil {
			ml.log.Warn("record deletion of offloaded ledgers from bookies", "ledgers", ids, "err", err)
			return
		}
		ml.mu.Lock()
		for _, id := range ids {
			delete(ml.mu.readers, id)
		}
		ml.mu.Unlock()
	}
	ml.off.mu.Lock()
	for id := range ml.off.mu.bookieRetry {
		ids = append(ids, id)
	}
	clear(ml.off.mu.bookieRetry)
	ml.off.mu.Unlock()
	for _, id := range ids {
		if err := ml.opts.Ledgers.Delete(ctx, id); err != nil {
			ml.log.Warn("delete offloaded ledger from bookies", "ledger", id, "err", err)
			ml.off.mu.Lock()
			ml.off.mu.bookieRetry[id] = true
			ml.off.mu.Unlock()
			continue
		}
		ml.log.Debug("deleted offloaded ledger from bookies", "ledger", id)
	}
}

// dropOffloaded closes the readers of ledgers that left the log (trimmed or
// deleted) and deletes their objects; deletes that fail are retried at the
// offloader's next check. Call it without metaMu (store I/O).
func (ml *ManagedLedger) dropOffloaded(ctx context.Context, gone []LedgerInfo) {
	for _, li := range gone {
		ml.off.readers.evict(li.LedgerID)
		if li.Offload == nil {
			continue
		}
		if !ml.offloadEnabled() {
			ml.log.Warn("no offload store configured: objects of a deleted ledger stay", "ledger", li.LedgerID,
				"data", li.Offload.DataKey, "index", li.Offload.IndexKey)
			continue
		}
		if err := offload.DeleteLedger(ctx, ml.opts.Offload.Store, li.Offload.DataKey, li.Offload.IndexKey); err != nil {
			ml.log.Warn("delete objects of a deleted ledger; retrying later", "ledger", li.LedgerID, "err", err)
			ml.off.mu.Lock()
			ml.off.mu.objectRetry = append(ml.off.mu.objectRetry, *li.Offload)
			ml.off.mu.Unlock()
		}
	}
}

// retryObjectDeletes retries the object deletes dropOffloaded could not do.
func (ml *ManagedLedger) retryObjectDeletes(ctx context.Context) {
	ml.off.mu.Lock()
	pending := ml.off.mu.objectRetry
	ml.off.mu.objectRetry = nil
	ml.off.mu.Unlock()
	for i, oc := range pending {
		if err := offload.DeleteLedger(ctx, ml.opts.Offload.Store, oc.DataKey, oc.IndexKey); err != nil {
			ml.off.mu.Lock()
			ml.off.mu.objectRetry = append(ml.off.mu.objectRetry, pending[i:]...)
			ml.off.mu.Unlock()
			return
		}
	}
}

// bookieSource reads a closed ledger from bookies for WriteLedger, up to
// depth batches ahead: while the writer frames and uploads a batch, the next
// ones are on their way from the bookies (a bookie serves concurrent reads
// faster than one at a time). Call wait before dropping it.
type bookieSource struct {
	r         *ledger.Reader
	lastEntry int64
	depth     int
	ahead     []*sourceBatch // batches being read ahead, in order
}

// sourceReadAhead bounds the bytes bookieSource reads ahead (by the
// ledger's average entry size); at most maxSourceDepth batches.
const (
	sourceReadAhead = 8 << 20
	maxSourceDepth  = 2
)

// newBookieSource returns a source for entries 0..lastEntry of r, reading
// ahead by batches of batch entries of about avgEntry bytes.
func newBookieSource(r *ledger.Reader, lastEntry int64, batch int, avgEntry int64) *bookieSource {
	depth := int(min(int64(maxSourceDepth), sourceReadAhead/max(1, int64(batch)*avgEntry)))
	return &bookieSource{r: r, lastEntry: lastEntry, depth: depth}
}

type sourceBatch struct {
	first, last int64
	done        chan struct{}
	es          []ledger.Entry
	err         error
}

func (s *bookieSource) ReadEntries(ctx context.Context, first, last int64) ([]offload.Entry, error) {
	var es []ledger.Entry
	var err error
	if len(s.ahead) > 0 && s.ahead[0].first == first && s.ahead[0].last == last {
		b := s.ahead[0]
		s.ahead = s.ahead[1:]
		<-b.done
		es, err = b.es, b.err
	} else {
		s.wait()
		es, err = s.r.Read(ctx, first, last)
	}
	if err != nil {
		return nil, fmt.Errorf("read ledger %d entries %d..%d from bookies: %w", s.r.ID(), first, last, err)
	}
	n, next := last-first+1, last+1
	if k := len(s.ahead); k > 0 {
		next = s.ahead[k-1].last + 1
	}
	for len(s.ahead) < s.depth && next <= s.lastEntry {
		b := &sourceBatch{first: next, last: min(next+n-1, s.lastEntry), done: make(chan struct{})}
		s.ahead = append(s.ahead, b)
		next = b.last + 1
		go func() {
			defer close(b.done)
			b.es, b.err = s.r.Read(ctx, b.first, b.last)
		}()
	}
	out := make([]offload.Entry, len(es))
	for i, e := range es {
		out[i] = offload.Entry{ID: e.ID, Payload: e.Payload}
	}
	return out, nil
}

// wait waits for the batches being read ahead and drops them.
func (s *bookieSource) wait() {
	for _, b := range s.ahead {
		<-b.done
	}
	s.ahead = nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
