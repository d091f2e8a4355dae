package bookie

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/strata-mq/strata/api/bookiepb"
)

// A checkpoint makes Badger's index durable up to a point of the entry log,
// so that a restart replays only the records after it:
//
//  1. in the journal goroutine, the current segment is sealed and the next
//     one started; every record before the new segment is indexed already;
//  2. in the background, Badger is synced — its own Sync, then an fsync of
//     every file of its directory through fresh descriptors, as Badger only
//     logs some sync failures — while appends go on;
//  3. the new segment's number is written to CHECKPOINT (atomically, synced).
//
// A failure in 2 or 3 stops the journal like a failed write: the index may
// not be durable, and the records that would rebuild it must stay.
const checkpointFile = "CHECKPOINT"

type checkpointState struct {
	since   int64     // record bytes written since the last checkpoint began
	last    time.Time // when the last checkpoint began
	running bool
	wg      sync.WaitGroup
	result  chan checkpointResult
	waiting []*journalOp // asked for a checkpoint that begins after them
	queued  []*journalOp // asked while one was running: the next one is theirs
	durable atomic.Uint64
	// For the crash simulation (Hooks.CrashTest): Badger's content at the
	// running and at the last durable checkpoint.
	pendingSnap, durableSnap []byte
}

type checkpointResult struct {
	seq  uint64
	err  error
	took time.Duration
}

func (cp *checkpointState) wait() { cp.wg.Wait() }

// durableSegment is the first segment a restart replays.
func (j *journal) durableSegment() uint64 { return j.cp.durable.Load() }

// maybeCheckpoint begins a checkpoint when enough was written or enough time
// passed, or when op asks for one. Journal goroutine only.
func (j *journal) maybeCheckpoint(op *journalOp) {
	cp := &j.cp
	if op != nil {
		if j.failedErr != nil {
			op.done(opResult{code: bookiepb.Code_IO_ERROR, msg: j.failedErr.Error()})
			return
		}
		if cp.running {
			cp.queued = append(cp.queued, op)
			return
		}
		cp.waiting = append(cp.waiting, op)
	} else {
		due := cp.since >= j.opts.CheckpointBytes || (cp.since > 0 && time.Since(cp.last) >= j.opts.CheckpointInterval)
		if cp.running || j.failedErr != nil || !due {
			return
		}
	}
	if j.st.log.cur.size > 0 {
		if err := j.roll(); err != nil {
			j.fail(err)
			j.finishWaiters(err)
			return
		}
	}
	seq := j.st.log.cur.seq
	if j.opts.Hooks.CrashTest {
		snap, err := j.st.snapshot()
		if err != nil {
			j.fail(err)
			j.finishWaiters(err)
			return
		}
		cp.pendingSnap = snap
	}
	cp.since, cp.last, cp.running = 0, time.Now(), true
	cp.wg.Add(1)
	go func() {
		defer cp.wg.Done()
		start := time.Now()
		err := j.st.syncIndex()
		if err == nil {
			err = writeCheckpoint(j.st.log.dir, seq)
		}
		cp.result <- checkpointResult{seq: seq, err: err, took: time.Since(start)}
	}()
}

// checkpointNow checkpoints synchronously; for the start, before the journal
// goroutine runs.
func (j *journal) checkpointNow() error {
	if j.st.log.cur.size > 0 {
		if err := j.roll(); err != nil {
			return err
		}
	}
	seq := j.st.log.cur.seq
	if j.opts.Hooks.CrashTest {
		snap, err := j.st.snapshot()
		if err != nil {
			return err
		}
		j.cp.durableSnap = snap
	}
	if err := j.st.syncIndex(); err != nil {
		return err
	}
	if err := writeCheckpoint(j.st.log.dir, seq); err != nil {
		return err
	}
	j.cp.durable.Store(seq)
	j.cp.last = time.Now()
	return nil
}

// checkpointFinished records a finished checkpoint. Journal goroutine only.
func (j *journal) checkpointFinished(r checkpointResult) {
	cp := &j.cp
	cp.running = false
	if r.err != nil {
		err := fmt.Errorf("checkpoint: %w", r.err)
		j.fail(err)
		j.finishWaiters(err)
		return
	}
	cp.durable.Store(r.seq)
	cp.durableSnap, cp.pendingSnap = cp.pendingSnap, nil
	j.metrics.checkpoints.Inc()
	j.metrics.checkpointSeconds.Observe(r.took.Seconds())
	j.finishWaiters(nil)
	if len(cp.queued) > 0 {
		queued := cp.queued
		cp.queued = nil
		cp.waiting = append(cp.waiting, queued[1:]...)
		j.maybeCheckpoint(queued[0])
	}
}

// finishWaiters completes the ops waiting for the checkpoint that ended
// (with err), and, with abort, those queued for the next one.
func (j *journal) finishWaiters(err error) {
	res := opResult{code: bookiepb.Code_OK}
	if err != nil {
		res = opResult{code: bookiepb.Code_IO_ERROR, msg: err.Error()}
	}
	for _, op := range j.cp.waiting {
		op.done(res)
	}
	j.cp.waiting = nil
}

func writeCheckpoint(dir string, seq uint64) error {
	data, _ := json.Marshal(struct {
		Segment uint64 `json:"segment"`
	}{seq})
	return writeFileSynced(filepath.Join(dir, checkpointFile), data)
}

// readCheckpoint returns the first segment to replay (0: every segment).
func readCheckpoint(dir string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var c struct {
		Segment uint64 `json:"segment"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return 0, fmt.Errorf("bookie: corrupt %s: %w", checkpointFile, err)
	}
	return c.Segment, nil
}

// syncIndex makes everything written to Badger so far durable.
func (s *store) syncIndex() error {
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync index: %w", err)
	}
	dir := s.db.Opts().Dir
	names, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("sync index: %w", err)
	}
	for _, de := range names {
		if !de.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, de.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by a compaction meanwhile
		}
		if err != nil {
			return fmt.Errorf("sync index: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sync index file %s: %w", de.Name(), err)
		}
	}
	return syncDir(dir)
}

// snapshot returns Badger's content (for the crash simulation).
func (s *store) snapshot() ([]byte, error) {
	var buf bytes.Buffer
	if _, err := s.db.Backup(&buf, 0); err != nil {
		return nil, fmt.Errorf("snapshot index: %w", err)
	}
	return buf.Bytes(), nil
}

// replay brings the index up to date with the entry log after a restart:
// the records of every segment from the checkpoint on are applied again (in
// order; every write is idempotent). A torn record at the end of the last
// segment — a write a crash interrupted — is cut off; anywhere else it is
// corruption, and the bookie refuses to start rather than lose what follows.
func (s *store) replay(logger interface{ Warn(string, ...any) }) error {
	from, err := readCheckpoint(s.log.dir)
	if err != nil {
		return err
	}
	seqs := s.log.seqs()
	for i, seq := range seqs {
		seg := s.log.segment(seq)
		seg.sealed = true
		if seq < from {
			loadMeta(seg) // else compaction scans it when it needs the counts
			continue
		}
		seg.ledgers = make(map[int64]int64)
		valid, torn, err := s.replaySegment(seg)
		if err != nil {
			return fmt.Errorf("bookie: replay journal: %w (the bookie does not start on a damaged journal: what follows the damage would be lost)", err)
		}
		if torn {
			if i != len(seqs)-1 {
				return fmt.Errorf("bookie: journal segment %s is cut short at offset %d but later segments exist; "+
					"the bookie does not start on a damaged journal", seg.path, valid)
			}
			logger.Warn("journal ends in a torn record (a write cut by a crash); truncating", "segment", seg.path, "at", valid, "size", seg.size)
			if err := seg.f.Truncate(valid); err != nil {
				return fmt.Errorf("bookie: truncate journal segment %s: %w", seg.path, err)
			}
			seg.size = valid
		}
		if err := writeMeta(seg); err != nil {
			return err
		}
	}
	return nil
}

// replaySegment applies one segment's records to the index.
func (s *store) replaySegment(seg *segment) (int64, bool, error) {
	wb := s.db.NewWriteBatch()
	defer func() { wb.Cancel() }()
	valid, torn, err := scan(seg, func(m mutation) error {
		switch m.kind {
		case mutAdd:
			seg.ledgers[m.ledger] += int64(len(m.data))
			return wb.Set(indexKey(m.ledger, m.entry), location{seq: seg.seq, off: m.off, len: int64(len(m.data))}.encode())
		case mutRecord:
			return wb.Set(ledgerKey(m.ledger), bytes.Clone(m.data))
		case mutErase:
			return wb.Delete(legacyKey(m.ledger, m.entry))
		case mutDrop:
			if err := wb.Flush(); err != nil {
				return err
			}
			wb = s.db.NewWriteBatch()
			return s.dropLedgers([]int64{m.ledger})
		}
		return nil
	})
	if err != nil {
		return valid, torn, err
	}
	return valid, torn, wb.Flush()
}

// Crash stops the bookie as a power failure would: besides what Kill does,
// every write that was not synced is lost — the entry log is cut back to
// what its syncs covered and the index back to the last checkpoint. It needs
// Hooks.CrashTest (which keeps a copy of the index at each checkpoint). For
// durability tests: a test that passes with Kill but fails with Crash relies
// on writes nobody synced.
func (b *Bookie) Crash() error {
	if !b.opts.Hooks.CrashTest {
		return errors.New("bookie: Crash needs Options.Hooks.CrashTest")
	}
	var err error
	b.closed.Do(func() {
		b.killed.Store(true)
		b.grpc.Stop()
		if b.httpSrv != nil {
			b.httpSrv.Close()
		}
		b.cancel()
		b.journal.stop()
		b.wg.Wait()
		snap, from := b.journal.cp.durableSnap, b.journal.durableSegment()
		type cut struct {
			path   string
			synced int64
		}
		var cuts []cut
		for _, seq := range b.st.log.seqs() {
			if seg := b.st.log.segment(seq); seq >= from {
				cuts = append(cuts, cut{seg.path, seg.tracker.synced()})
			}
		}
		b.st.log.close()
		b.db.Close()
		for _, c := range cuts {
			if err = os.Truncate(c.path, c.synced); err != nil {
				return
			}
			os.Remove(metaPath(c.path))
		}
		dir := filepath.Join(b.opts.DataDir, "ledgers")
		if err = os.RemoveAll(dir); err != nil {
			return
		}
		var db *badger.DB
		if db, err = badger.Open(badgerOptions(dir, b.opts.Logger)); err != nil {
			return
		}
		err = db.Load(bytes.NewReader(snap), 16)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	})
	return err
}
