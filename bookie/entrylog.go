package bookie

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The entry log is the bookie's journal and the home of its entries, as
// BookKeeper's journal and entry logs in one: a directory of segment files
// written strictly in order by the journal goroutine, one record per group
// commit, each synced before any write of its group is acknowledged. Badger
// holds only the index (entry -> segment, offset, length) and the ledgers'
// state, written without sync and made durable by checkpoints (see
// checkpoint.go); after a crash the records since the last checkpoint are
// replayed into it. So the bookie owns the durability of every
// acknowledgement: a failed write or sync fails its group and stops the log.
//
// Segment files are named by a sequence number, "%016x.log"; a sealed
// segment has a "%016x.meta" beside it listing the entry bytes per ledger,
// which garbage collection uses to find segments worth compacting.

// JournalFile is the part of a file the entry log writes segments through.
// *os.File implements it; Hooks.JournalFile may wrap it to inject faults.
type JournalFile interface {
	io.Writer
	io.ReaderAt
	Sync() error
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
	Close() error
}

type segment struct {
	seq  uint64
	path string
	f    JournalFile

	// Written by the journal goroutine; read by compaction only for sealed
	// segments.
	size    int64 // bytes of whole records
	sealed  bool
	ledgers map[int64]int64 // entry bytes per ledger; nil until known

	// tracker counts the bytes the file's syncs covered (Hooks.CrashTest).
	tracker *syncTracker
}

// syncTracker records how much of a file its syncs made durable, for the
// crash simulation: only a Sync of the file itself counts.
type syncTracker struct {
	JournalFile
	mu            sync.Mutex
	size, durable int64
}

func (t *syncTracker) Write(p []byte) (int, error) {
	n, err := t.JournalFile.Write(p)
	t.mu.Lock()
	t.size += int64(n)
	t.mu.Unlock()
	return n, err
}

func (t *syncTracker) Sync() error {
	t.mu.Lock()
	size := t.size
	t.mu.Unlock()
	err := t.JournalFile.Sync()
	if err == nil {
		t.mu.Lock()
		t.durable = max(t.durable, size)
		t.mu.Unlock()
	}
	return err
}

func (t *syncTracker) Truncate(size int64) error {
	err := t.JournalFile.Truncate(size)
	if err == nil {
		t.mu.Lock()
		t.size, t.durable = size, min(t.durable, size)
		t.mu.Unlock()
	}
	return err
}

func (t *syncTracker) synced() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.durable
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x.log", seq) }

func metaPath(segPath string) string { return strings.TrimSuffix(segPath, ".log") + ".meta" }

type entryLog struct {
	dir   string
	hooks *Hooks

	mu   sync.RWMutex // guards segs (readers look segments up)
	segs map[uint64]*segment
	cur  *segment // journal goroutine only
}

// openEntryLog opens every segment in dir (creating dir).
func openEntryLog(dir string, hooks *Hooks) (*entryLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bookie: create journal dir: %w", err)
	}
	l := &entryLog{dir: dir, hooks: hooks, segs: make(map[uint64]*segment)}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bookie: list journal dir: %w", err)
	}
	for _, de := range names {
		name := de.Name()
		if !strings.HasSuffix(name, ".log") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 16, 64)
		if err != nil {
			continue
		}
		s, err := l.openSegment(seq, os.O_RDWR)
		if err != nil {
			l.close()
			return nil, err
		}
		l.segs[seq] = s
	}
	return l, nil
}

func (l *entryLog) openSegment(seq uint64, flag int) (*segment, error) {
	path := filepath.Join(l.dir, segmentName(seq))
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bookie: open journal segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("bookie: stat journal segment: %w", err)
	}
	s := &segment{seq: seq, path: path, f: f, size: st.Size()}
	if l.hooks.CrashTest {
		s.tracker = &syncTracker{JournalFile: f, size: st.Size(), durable: st.Size()}
		s.f = s.tracker
	}
	if l.hooks.JournalFile != nil {
		s.f = l.hooks.JournalFile(s.f)
	}
	return s, nil
}

// seqs returns the segment numbers in order.
func (l *entryLog) seqs() []uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]uint64, 0, len(l.segs))
	for seq := range l.segs {
		out = append(out, seq)
	}
	slices.Sort(out)
	return out
}

func (l *entryLog) segment(seq uint64) *segment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[seq]
}

// startSegment creates segment seq and makes it the one written.
func (l *entryLog) startSegment(seq uint64) error {
	s, err := l.openSegment(seq, os.O_RDWR|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	s.ledgers = make(map[int64]int64)
	if err := syncDir(l.dir); err != nil {
		s.f.Close()
		os.Remove(s.path)
		return fmt.Errorf("bookie: create journal segment: %w", err)
	}
	l.mu.Lock()
	l.segs[seq] = s
	l.mu.Unlock()
	l.cur = s
	return nil
}

// append writes one record at the end of the current segment and returns
// its offset. The record is not durable until sync.
func (l *entryLog) append(rec []byte) (int64, error) {
	s := l.cur
	off := s.size
	n, err := s.f.Write(rec)
	if err != nil || n != len(rec) {
		return 0, fmt.Errorf("bookie: write journal segment %s: %d of %d bytes: %w", s.path, n, len(rec), err)
	}
	s.size += int64(n)
	return off, nil
}

// sync makes the current segment durable and checks that it is still the
// file in the directory: writes into a segment removed from under the bookie
// (its directory deleted) succeed but are lost.
func (l *entryLog) sync(doSync bool) error {
	s := l.cur
	if doSync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("bookie: sync journal segment %s: %w", s.path, err)
		}
	}
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("bookie: stat journal segment %s: %w", s.path, err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink == 0 {
		return fmt.Errorf("bookie: journal segment %s was removed from under the bookie (data directory deleted?)", s.path)
	}
	return nil
}

// seal ends the current segment: synced (so a checkpoint may rely on it),
// with its per-ledger byte counts beside it.
func (l *entryLog) seal() error {
	s := l.cur
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("bookie: sync journal segment %s: %w", s.path, err)
	}
	s.sealed = true
	return writeMeta(s)
}

type segmentMeta struct {
	Size    int64           `json:"size"`
	Ledgers map[int64]int64 `json:"ledgers"`
}

func writeMeta(s *segment) error {
	data, _ := json.Marshal(segmentMeta{Size: s.size, Ledgers: s.ledgers})
	return writeFileSynced(metaPath(s.path), data)
}

// loadMeta reads a sealed segment's ledger byte counts; false if missing,
// damaged, or for another length of the segment.
func loadMeta(s *segment) bool {
	data, err := os.ReadFile(metaPath(s.path))
	if err != nil {
		return false
	}
	var m segmentMeta
	if json.Unmarshal(data, &m) != nil || m.Size != s.size || m.Ledgers == nil {
		return false
	}
	s.ledgers = m.Ledgers
	return true
}

// read returns n bytes at off of segment seq.
func (l *entryLog) read(seq uint64, off int64, n int) ([]byte, error) {
	l.mu.RLock()
	s := l.segs[seq]
	l.mu.RUnlock()
	if s == nil {
		return nil, fmt.Errorf("bookie: journal segment %x is gone", seq)
	}
	buf := make([]byte, n)
	if _, err := s.f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("bookie: read journal segment %s at %d: %w", s.path, off, err)
	}
	return buf, nil
}

// remove deletes a segment and its meta file.
func (l *entryLog) remove(seq uint64) error {
	l.mu.Lock()
	s := l.segs[seq]
	delete(l.segs, seq)
	l.mu.Unlock()
	if s == nil {
		return nil
	}
	s.f.Close()
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(metaPath(s.path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (l *entryLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		s.f.Close()
	}
	l.segs = nil
	l.cur = nil
}

// scan reads a segment's records in order and calls fn for each mutation.
// It returns the length of the whole records read. When the segment ends in
// a damaged record — torn by a crash mid-write: the damage reaches the end
// of the file, or only zeros (unwritten blocks) follow it — torn is set and
// valid is where the damage starts. Damage with written data after it is
// corruption, not a torn write, and is returned as an error.
func scan(s *segment, fn func(mutation) error) (valid int64, torn bool, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, s.size), 1<<20)
	var hdr [frameHeader]byte
	var payload []byte
	damaged := func(end int64, why string) (int64, bool, error) {
		if end >= s.size {
			return valid, true, nil
		}
		zero, err := zerosFrom(s, end)
		if err != nil {
			return valid, false, err
		}
		if zero {
			return valid, true, nil
		}
		return valid, false, fmt.Errorf("%w: journal segment %s: %s at offset %d, with records after it", errTornRecord, s.path, why, valid)
	}
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return valid, false, nil
			}
			return damaged(s.size, "partial record header")
		}
		n, crc, err := frameLength(hdr[:])
		if errors.Is(err, errEndOfLog) {
			return damaged(valid, "zero record length")
		}
		if err != nil {
			return damaged(valid+frameHeader, err.Error())
		}
		end := valid + frameHeader + int64(n)
		if end > s.size {
			return valid, true, nil
		}
		if cap(payload) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return valid, false, fmt.Errorf("bookie: read journal segment %s: %w", s.path, err)
		}
		if err := decodePayload(payload, crc, valid+frameHeader, fn); err != nil {
			if errors.Is(err, errTornRecord) {
				return damaged(end, err.Error())
			}
			return valid, false, err
		}
		valid = end
	}
}

// zerosFrom reports whether a segment holds only zero bytes from off on.
func zerosFrom(s *segment, off int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for off < s.size {
		n, err := s.f.ReadAt(buf[:min(int64(len(buf)), s.size-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		if n == 0 {
			return true, nil
		}
		off += int64(n)
	}
	return true, nil
}

// writeFileSynced replaces path atomically and durably.
func writeFileSynced(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
