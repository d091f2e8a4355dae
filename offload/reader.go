package offload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// Defaults of ReaderOptions.
const (
	// DefaultReadAheadBytes is ReaderOptions.ReadAheadBytes when 0.
	DefaultReadAheadBytes = 16 << 20
	// DefaultReadAheadStreams is ReaderOptions.ReadAheadStreams when 0.
	DefaultReadAheadStreams = 2
	// DefaultIOBufferSize is ReaderOptions.IOBufferSize when 0.
	DefaultIOBufferSize = 1 << 20

	// maxPaddingCheck: padding up to this long is read and checked; a
	// longer tail is skipped by ending the ranged GET early.
	maxPaddingCheck = 1 << 20
)

// ReaderOptions tune a LedgerReader.
type ReaderOptions struct {
	// ReadAheadBytes bounds, over all read-ahead streams of the reader,
	// the entry bytes (payload + FrameHeaderLen each) fetched and decoded
	// ahead of the callers. Each stream gets an equal share; a stream may
	// exceed its share only by holding a single entry larger than it.
	// Default DefaultReadAheadBytes.
	ReadAheadBytes int64
	// ReadAheadStreams is the number of sequential readers (cursors) the
	// reader prefetches for at once; a further concurrent reader is served
	// without read-ahead. Default DefaultReadAheadStreams.
	ReadAheadStreams int
	// DisableReadAhead serves every Read with its own ranged GETs and
	// nothing more (random access).
	DisableReadAhead bool
	// IOBufferSize is the size in bytes of the chunks ranged GETs are read
	// into; decoded payloads point into them. Up to one chunk per stream
	// is read beyond the read-ahead budget. Default DefaultIOBufferSize.
	IOBufferSize int
}

// EnsureDefaults fills zero fields with their defaults.
func (o *ReaderOptions) EnsureDefaults() {
	if o.ReadAheadBytes == 0 {
		o.ReadAheadBytes = DefaultReadAheadBytes
	}
	if o.ReadAheadStreams == 0 {
		o.ReadAheadStreams = DefaultReadAheadStreams
	}
	if o.IOBufferSize == 0 {
		o.IOBufferSize = DefaultIOBufferSize
	}
}

// Validate reports the first invalid field.
func (o *ReaderOptions) Validate() error {
	switch {
	case o.ReadAheadBytes < 0:
		return fmt.Errorf("%w: ReadAheadBytes %d must be >= 0", ErrInvalidArgument, o.ReadAheadBytes)
	case o.ReadAheadStreams < 1:
		return fmt.Errorf("%w: ReadAheadStreams %d must be >= 1", ErrInvalidArgument, o.ReadAheadStreams)
	case o.IOBufferSize < 4096:
		return fmt.Errorf("%w: IOBufferSize %d must be >= 4096", ErrInvalidArgument, o.IOBufferSize)
	}
	return nil
}

// LedgerReader reads an offloaded ledger. It holds the validated index and
// up to ReadAheadStreams read-ahead streams: a Read that continues where an
// earlier Read stopped is served from that stream's prefetched entries
// while the stream's goroutine fetches and decodes further blocks.
//
// Every byte returned has passed its frame checksum, and every block its
// header checksum and a match against the index; damage is reported as
// ErrCorrupt, never as wrong data. Safe for concurrent use. Open once and
// cache; Close when done.
type LedgerReader struct {
	store             BlobStore
	dataKey, indexKey string
	idx               *ledgerIndex
	opts              ReaderOptions
	streamBudget      int64
	pool              *chunkPool

	ctx    context.Context // done when the reader is closed
	cancel context.CancelFunc
	wg     sync.WaitGroup // every background goroutine

	mu struct {
		sync.Mutex
		closed bool
		idle   []*stream // streams not in use, least recently used first
		leased int       // streams in use by a Read
	}
}

// OpenLedger fetches and validates the index object, checks that the data
// object exists with the size and format version the index expects, and
// returns a reader. A missing object is ErrNotFound, a foreign format
// version ErrUnsupportedVersion, a damaged or truncated one ErrCorrupt.
func OpenLedger(ctx context.Context, store BlobStore, dataKey, indexKey string, opts ReaderOptions) (*LedgerReader, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	wrap := func(err error) error { return fmt.Errorf("open offloaded ledger %q: %w", indexKey, err) }

	info, err := store.Head(ctx, indexKey)
	if err != nil {
		return nil, wrap(fmt.Errorf("index: %w", err))
	}
	if err := checkObjectMeta("index", indexKey, info.Metadata); err != nil {
		return nil, wrap(err)
	}
	if info.Size > maxIndexSize {
		return nil, wrap(fmt.Errorf("index object is %d bytes, limit %d: %w", info.Size, maxIndexSize, ErrCorrupt))
	}
	body, err := store.GetRange(ctx, indexKey, 0, -1)
	if err != nil {
		return nil, wrap(fmt.Errorf("index: %w", err))
	}
	raw, err := io.ReadAll(io.LimitReader(body, maxIndexSize+1))
	body.Close()
	if err != nil {
		return nil, wrap(fmt.Errorf("read index: %w", err))
	}
	if int64(len(raw)) != info.Size {
		return nil, wrap(fmt.Errorf("index object read %d bytes, its size is %d: %w", len(raw), info.Size, ErrCorrupt))
	}
	idx, err := decodeIndex(raw)
	if err != nil {
		return nil, wrap(err)
	}
	if err := checkLedgerIDMeta("index", indexKey, info.Metadata, idx.ledgerID); err != nil {
		return nil, wrap(err)
	}

	dinfo, err := store.Head(ctx, dataKey)
	if err != nil {
		return nil, wrap(fmt.Errorf("data object: %w", err))
	}
	if err := checkObjectMeta("data", dataKey, dinfo.Metadata); err != nil {
		return nil, wrap(err)
	}
	if err := checkLedgerIDMeta("data", dataKey, dinfo.Metadata, idx.ledgerID); err != nil {
		return nil, wrap(err)
	}
	if dinfo.Size != idx.dataLen {
		return nil, wrap(fmt.Errorf("data object %q is %d bytes, the index says %d (truncated or replaced): %w", dataKey, dinfo.Size, idx.dataLen, ErrCorrupt))
	}

	r := &LedgerReader{
		store:        store,
		dataKey:      dataKey,
		indexKey:     indexKey,
		idx:          idx,
		opts:         opts,
		streamBudget: max(opts.ReadAheadBytes/int64(opts.ReadAheadStreams), 1),
		pool:         newChunkPool(opts.IOBufferSize),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

func checkLedgerIDMeta(what, key string, meta map[string]string, id int64) error {
	if v, ok := meta[MetaLedgerID]; ok && v != strconv.FormatInt(id, 10) {
		return fmt.Errorf("%s object %q is labelled ledger %s, the index says %d: %w", what, key, v, id, ErrCorrupt)
	}
	return nil
}

// LedgerID returns the ledger's id.
func (r *LedgerReader) LedgerID() int64 { return r.idx.ledgerID }

// LastEntryID returns the ledger's last entry id (-1 when empty).
func (r *LedgerReader) LastEntryID() int64 { return r.idx.lastEntryID }

// Length returns the sum of the ledger's payload lengths in bytes.
func (r *LedgerReader) Length() int64 { return r.idx.length }

// Metadata returns a copy of the opaque ledger metadata stored at offload.
func (r *LedgerReader) Metadata() []byte { return bytes.Clone(r.idx.metadata) }

// Read returns entries first..last (inclusive), in order. The range must
// lie within [0, LastEntryID] (else ErrEntryOutOfRange). A Read starting
// right after where an earlier Read (or ReadFunc) ended continues that
// read-ahead stream.
//
// The payloads belong to the caller. Payloads of neighbouring entries may
// share one buffer of up to IOBufferSize bytes; a caller that keeps a few
// entries for a long time may copy them to free the rest.
func (r *LedgerReader) Read(ctx context.Context, first, last int64) ([]Entry, error) {
	if first < 0 || first > last || last > r.idx.lastEntryID {
		return nil, r.rangeErr(first, last)
	}
	out := make([]Entry, 0, last-first+1)
	err := r.read(ctx, first, last, visitor{keep: true, fn: func(e Entry) error {
		out = append(out, e)
		return nil
	}})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadFunc calls fn with entries first..last in order, like Read without
// handing over the memory: e.Payload is valid only until fn returns (copy
// what you keep), and its buffer is then reused. A replay that hands
// entries on (encodes them into a response, say) runs faster and without
// garbage this way. An error from fn stops the read and is returned
// wrapped.
func (r *LedgerReader) ReadFunc(ctx context.Context, first, last int64, fn func(e Entry) error) error {
	if first < 0 || first > last || last > r.idx.lastEntryID {
		return r.rangeErr(first, last)
	}
	return r.read(ctx, first, last, visitor{fn: fn})
}

func (r *LedgerReader) rangeErr(first, last int64) error {
	return fmt.Errorf("read entries %d..%d of ledger %d (last entry %d): %w", first, last, r.idx.ledgerID, r.idx.lastEntryID, ErrEntryOutOfRange)
}

// visitor receives the entries of a read. keep says the payloads escape
// to the caller, so their chunks are never recycled.
type visitor struct {
	keep bool
	fn   func(e Entry) error
}

// read serves a validated range from a read-ahead stream or directly.
func (r *LedgerReader) read(ctx context.Context, first, last int64, visit visitor) error {
	s, err := r.acquire(first)
	if err != nil {
		return err
	}
	if s == nil {
		err = r.readDirect(ctx, first, last, visit)
	} else {
		err = r.takeFrom(ctx, s, first, last, visit)
	}
	if err != nil {
		if r.ctx.Err() != nil {
			err = ErrClosed
		}
		return fmt.Errorf("read entries %d..%d of ledger %d: %w", first, last, r.idx.ledgerID, err)
	}
	return nil
}

// Close stops every read-ahead stream and waits for their goroutines.
// Reads in progress fail with ErrClosed.
func (r *LedgerReader) Close() error {
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		return nil
	}
	r.mu.closed = true
	r.mu.idle = nil
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// acquire leases the stream that can serve a Read from first: one whose
// next entry is first, or one behind it in the same block that will skip
// forward. Else it starts a new stream, evicting the least
// recently used idle one when at the limit. It returns nil when the Read
// should go without read-ahead.
func (r *LedgerReader) acquire(first int64) (*stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return nil, ErrClosed
	}
	best := -1
	fb := r.idx.findBlock(first)
	for i, s := range r.mu.idle {
		if s.next > first {
			continue
		}
		if s.next == first {
			best = i
			break
		}
		// Skipping forward within first's block reads only what a fresh
		// stream would read too (blocks are scanned from their start).
		if r.idx.findBlock(s.next) == fb && (best < 0 || s.next > r.mu.idle[best].next) {
			best = i
		}
	}
	if best >= 0 {
		s := r.mu.idle[best]
		r.mu.idle = append(r.mu.idle[:best], r.mu.idle[best+1:]...)
		r.mu.leased++
		return s, nil
	}
	if r.opts.DisableReadAhead {
		return nil, nil
	}
	if len(r.mu.idle)+r.mu.leased >= r.opts.ReadAheadStreams {
		if len(r.mu.idle) == 0 {
			return nil, nil // every stream is busy: read directly
		}
		r.mu.idle[0].stop()
		r.mu.idle = r.mu.idle[1:]
	}
	s := newStream(r, first)
	r.mu.leased++
	// r.mu is held and the reader is open, so Close's Wait comes after.
	r.wg.Go(s.run)
	return s, nil
}

// takeFrom reads from a leased stream and returns it, also when the
// visitor panics (a ReadFunc callback).
func (r *LedgerReader) takeFrom(ctx context.Context, s *stream, first, last int64, visit visitor) (err error) {
	done := false
	defer func() {
		if !done {
			r.release(s, errors.New("read panicked"))
		}
	}()
	err = s.take(ctx, first, last, visit)
	done = true
	r.release(s, err)
	return err
}

// release returns a leased stream. A failed stream, or one that has
// delivered the ledger's last entry, is dropped.
func (r *LedgerReader) release(s *stream, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.leased--
	if err != nil || r.mu.closed || s.failed() || s.next > r.idx.lastEntryID {
		s.stop()
		return
	}
	r.mu.idle = append(r.mu.idle, s)
}

// readDirect serves a read with ranged GETs of just the blocks it needs,
// decoding in the caller's goroutine.
func (r *LedgerReader) readDirect(ctx context.Context, first, last int64, visit visitor) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)() // Close interrupts direct reads too
	cr := &chunkReader{pool: r.pool}
	defer cr.release()
	sink := &directSink{visit: visit, next: first, run: chunkRun{keep: visit.keep}}
	defer sink.run.flush()
	for b := r.idx.findBlock(first); sink.next <= last; b++ {
		if b >= len(r.idx.blocks) {
			return fmt.Errorf("entries %d..%d: ran out of blocks: %w", first, last, ErrCorrupt)
		}
		if err := r.scanBlock(ctx, cr, b, first, last, sink); err != nil {
			return err
		}
	}
	return nil
}

// entrySink receives the entries scanBlock decodes.
type entrySink interface {
	// reserve is called with an entry's size (payload + FrameHeaderLen)
	// before its payload is read, and may wait for room.
	reserve(ctx context.Context, n int64) error
	// emit takes a decoded, verified entry and a reference to its chunk.
	emit(e Entry, c *chunk) error
	// flush publishes emitted entries; scanBlock calls it before it may
	// block on the store.
	flush()
}

// directSink hands entries straight to a visitor.
type directSink struct {
	visit visitor
	next  int64 // the entry after the last one emitted
	run   chunkRun
}

func (s *directSink) reserve(context.Context, int64) error { return nil }
func (s *directSink) flush()                               {}

func (s *directSink) emit(e Entry, c *chunk) error {
	s.next = e.ID + 1
	s.run.add(c)
	return s.visit.fn(e)
}

// scanBlock fetches block b with one ranged GET, checks its header against
// the index, and decodes its frames in order, verifying each checksum and
// entry id. Entries from..to are passed to sink (earlier ones are checked
// and dropped); it returns after entry to or at the end of the block.
func (r *LedgerReader) scanBlock(ctx context.Context, cr *chunkReader, b int, from, to int64, sink entrySink) error {
	blk := r.idx.blocks[b]
	where := func(format string, args ...any) string {
		return fmt.Sprintf("block %d (offset %d) of %q: ", b, blk.offset, r.dataKey) + fmt.Sprintf(format, args...)
	}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", where(format, args...), ErrCorrupt)
	}
	sink.flush()
	body, err := r.store.GetRange(ctx, r.dataKey, blk.offset, blk.length)
	if err != nil {
		if errors.Is(err, ErrInvalidRange) || errors.Is(err, ErrNotFound) {
			return r.shortRead(ctx, where("fetch"), blk, err)
		}
		return fmt.Errorf("%s: %w", where("fetch"), err)
	}
	defer body.Close()
	cr.reset(body)
	defer cr.reset(nil)

	hdr, _, err := cr.take(BlockHeaderLen)
	if err != nil {
		return r.shortRead(ctx, where("header"), blk, err)
	}
	h, err := decodeBlockHeader(hdr)
	if err != nil {
		return fmt.Errorf("%s: %w", where("header"), err)
	}
	switch {
	case h.blockLen != blk.length:
		return corrupt("header says %d bytes, index %d", h.blockLen, blk.length)
	case h.firstEntryID != blk.firstEntryID:
		return corrupt("header says first entry %d, index %d", h.firstEntryID, blk.firstEntryID)
	case h.ledgerID != r.idx.ledgerID:
		return corrupt("header says ledger %d, index %d", h.ledgerID, r.idx.ledgerID)
	case h.blockIndex != uint32(b):
		return corrupt("header says block %d", h.blockIndex)
	}

	used := int64(BlockHeaderLen)
	n := r.idx.blockEntries(b)
	var fh [FrameHeaderLen]byte // outside the loop: it escapes to the heap
	for i := range n {
		id := blk.firstEntryID + i
		fhb, _, err := cr.take(FrameHeaderLen)
		if err != nil {
			return r.shortRead(ctx, where("entry %d", id), blk, err)
		}
		// Copy the header out: the next take may move to a new chunk and
		// release this one.
		copy(fh[:], fhb)
		plen := int64(int32(be32(fh[0:])))
		if got := int64(be64(fh[4:])); got != id {
			return corrupt("frame %d holds entry id %d, want %d", i, got, id)
		}
		if plen < 0 || used+FrameHeaderLen+plen > blk.length {
			return corrupt("entry %d: length %d overruns the block", id, plen)
		}
		emit := id >= from
		if emit {
			if err := sink.reserve(ctx, FrameHeaderLen+plen); err != nil {
				return err
			}
		}
		payload, c, err := cr.take(int(plen))
		if err != nil {
			return r.shortRead(ctx, where("entry %d", id), blk, err)
		}
		if got, want := be32(fh[12:]), frameCRC(fh[:], payload); got != want {
			return corrupt("entry %d: checksum %#08x, computed %#08x", id, got, want)
		}
		used += FrameHeaderLen + plen
		if emit {
			c.ref()
			if err := sink.emit(Entry{ID: id, Payload: payload}, c); err != nil {
				return err
			}
			if id >= to {
				return nil
			}
		}
	}
	// The rest of the block is padding. Check it when it is short; a long
	// tail (after a large entry did not fit) is left unread.
	if rest := blk.length - used; rest > 0 && rest <= maxPaddingCheck {
		for rest > 0 {
			chunk, _, err := cr.take(int(min(rest, int64(r.opts.IOBufferSize))))
			if err != nil {
				return r.shortRead(ctx, where("padding"), blk, err)
			}
			for _, c := range chunk {
				if c != PaddingByte {
					return corrupt("padding byte %#02x", c)
				}
			}
			rest -= int64(len(chunk))
		}
	}
	return nil
}

// shortRead classifies a read that ended early: when the data object is
// now shorter than the block needs, it is truncated (ErrCorrupt); else it
// is an I/O error (a dropped connection) and returned as is.
func (r *LedgerReader) shortRead(ctx context.Context, where string, blk indexBlock, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) &&
		!errors.Is(err, ErrInvalidRange) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s: %w", where, err)
	}
	info, herr := r.store.Head(ctx, r.dataKey)
	switch {
	case errors.Is(herr, ErrNotFound):
		return fmt.Errorf("%s: data object is gone: %w", where, ErrNotFound)
	case herr == nil && info.Size < blk.offset+blk.length:
		return fmt.Errorf("%s: data object is %d bytes, block ends at %d (truncated): %w", where, info.Size, blk.offset+blk.length, ErrCorrupt)
	}
	return fmt.Errorf("%s: %w", where, err)
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func be64(b []byte) uint64 {
	return uint64(be32(b))<<32 | uint64(be32(b[4:]))
}
