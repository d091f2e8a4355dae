package offload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Entry is one ledger entry: its id and payload (the bytes the producer
// wrote, without any bookie envelope).
type Entry struct {
	ID      int64
	Payload []byte
}

// LedgerSource yields the entries of a closed ledger; the managed ledger
// wraps its ledger client in one. ReadEntries returns entries first..last
// in order. It may return fewer (a non-empty prefix of the range); the
// writer then asks for the rest.
type LedgerSource interface {
	ReadEntries(ctx context.Context, first, last int64) ([]Entry, error)
}

// LedgerDescriptor describes the closed ledger being offloaded.
type LedgerDescriptor struct {
	// LedgerID is the ledger's id (>= 0).
	LedgerID int64
	// LastEntryID is the id of the last entry; entries are 0..LastEntryID.
	// -1 is an empty ledger (the objects then hold no blocks).
	LastEntryID int64
	// Length is the sum of the entries' payload lengths in bytes. The
	// writer checks the source against it.
	Length int64
	// Metadata is opaque ledger metadata (e.g. the ledger's metadata
	// record) stored in the index and returned by LedgerReader.Metadata.
	// At most 16 MiB.
	Metadata []byte
}

// Defaults and limits of WriteOptions.
const (
	// DefaultBlockSize is the data block size when WriteOptions.BlockSize
	// is 0.
	DefaultBlockSize = 64 << 20
	// MinBlockSize and MaxBlockSize bound WriteOptions.BlockSize.
	MinBlockSize = 128
	MaxBlockSize = 1 << 30
	// DefaultReadBatch is the number of entries asked from the source at
	// once when WriteOptions.ReadBatch is 0.
	DefaultReadBatch = 100

	// writeBufferSize is the buffer between the encoder and the upload.
	writeBufferSize = 256 << 10
	// cleanupTimeout bounds the best-effort deletes after a failed write.
	cleanupTimeout = 30 * time.Second
)

// WriteOptions tune WriteLedger.
type WriteOptions struct {
	// BlockSize is the size in bytes of every data block but the last (the
	// last is cut to fit) and but blocks holding a single entry that is
	// larger than a block. Default DefaultBlockSize; readers fetch whole
	// blocks, so smaller blocks mean cheaper random reads and a bigger
	// index. Between MinBlockSize and MaxBlockSize.
	BlockSize int
	// ReadBatch is how many entries WriteLedger asks the source for at a
	// time; default DefaultReadBatch. Together with the store's part
	// buffers it bounds the writer's memory.
	ReadBatch int
}

// EnsureDefaults fills zero fields with their defaults.
func (o *WriteOptions) EnsureDefaults() {
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.ReadBatch == 0 {
		o.ReadBatch = DefaultReadBatch
	}
}

// Validate reports the first invalid field.
func (o *WriteOptions) Validate() error {
	if o.BlockSize < MinBlockSize || o.BlockSize > MaxBlockSize {
		return fmt.Errorf("%w: BlockSize %d not in [%d, %d]", ErrInvalidArgument, o.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if o.ReadBatch < 1 {
		return fmt.Errorf("%w: ReadBatch %d must be >= 1", ErrInvalidArgument, o.ReadBatch)
	}
	return nil
}

func (d *LedgerDescriptor) validate() error {
	switch {
	case d.LedgerID < 0:
		return fmt.Errorf("%w: ledger id %d", ErrInvalidArgument, d.LedgerID)
	case d.LastEntryID < -1 || d.LastEntryID > 1<<48:
		return fmt.Errorf("%w: ledger %d: last entry id %d", ErrInvalidArgument, d.LedgerID, d.LastEntryID)
	case d.Length < 0 || d.LastEntryID == -1 && d.Length != 0:
		return fmt.Errorf("%w: ledger %d: length %d with last entry id %d", ErrInvalidArgument, d.LedgerID, d.Length, d.LastEntryID)
	case len(d.Metadata) > maxLedgerMetadata:
		return fmt.Errorf("%w: ledger %d: %d bytes of metadata, limit %d", ErrInvalidArgument, d.LedgerID, len(d.Metadata), maxLedgerMetadata)
	}
	return nil
}

// WriteResult reports what WriteLedger stored.
type WriteResult struct {
	// DataBytes and IndexBytes are the sizes of the two objects.
	DataBytes, IndexBytes int64
	// Blocks is the number of data blocks.
	Blocks int
}

// padding is a run of PaddingByte written at the end of blocks.
var padding = bytes.Repeat([]byte{PaddingByte}, 4096)

// errUploadEnded tells the encoder the upload stopped reading.
var errUploadEnded = errors.New("offload: data upload ended")

// WriteLedger offloads the closed ledger desc, read from src, as the data
// object dataKey and then the index object indexKey (see ObjectKeys). It
// streams: entries are read ReadBatch at a time, framed into blocks and
// piped into store.Put, so memory stays bounded whatever the ledger's size.
// The index is written only after the data object is complete, so a
// reader never finds an index whose data is partial.
//
// On any failure WriteLedger deletes what it uploaded (best effort, even
// when ctx is done) and returns the error; ErrSourceMismatch means the
// source disagreed with desc.
func WriteLedger(ctx context.Context, store BlobStore, src LedgerSource, desc LedgerDescriptor, dataKey, indexKey string, opts WriteOptions) (WriteResult, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return WriteResult{}, err
	}
	if err := desc.validate(); err != nil {
		return WriteResult{}, err
	}
	if err := ValidateKey(dataKey); err != nil {
		return WriteResult{}, err
	}
	if err := ValidateKey(indexKey); err != nil {
		return WriteResult{}, err
	}
	if dataKey == indexKey {
		return WriteResult{}, fmt.Errorf("%w: data and index keys are both %q", ErrInvalidArgument, dataKey)
	}
	fail := func(err error) (WriteResult, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = store.Delete(cctx, indexKey)
		_ = store.Delete(cctx, dataKey)
		return WriteResult{}, fmt.Errorf("offload ledger %d: %w", desc.LedgerID, err)
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	enc := &dataEncoder{
		w:          bufio.NewWriterSize(pw, writeBufferSize),
		ledgerID:   desc.LedgerID,
		blockSize:  int64(opts.BlockSize),
		remEntries: desc.LastEntryID + 1,
		remPayload: desc.Length,
	}
	encDone := make(chan error, 1)
	go func() {
		err := enc.run(ctx, src, desc.LastEntryID, opts.ReadBatch)
		pw.CloseWithError(err) // nil: the upload sees EOF
		encDone <- err
	}()
	putErr := store.Put(ctx, dataKey, pr, -1, objectMeta("data", desc.LedgerID))
	pr.CloseWithError(errUploadEnded) // unblock the encoder if Put stopped early
	if putErr != nil {
		cancel()
	}
	encErr := <-encDone
	// Report the cause. The encoder's error is an echo of a failed upload
	// when the upload stopped reading (errUploadEnded) or we cancelled it
	// (context.Canceled while the caller's context is fine); otherwise the
	// upload's error is the echo of the encoder's.
	echo := errors.Is(encErr, errUploadEnded) ||
		putErr != nil && errors.Is(encErr, context.Canceled) && parent.Err() == nil
	switch {
	case encErr != nil && !echo:
		return fail(encErr)
	case putErr != nil:
		return fail(fmt.Errorf("upload data object: %w", putErr))
	case encErr != nil:
		return fail(encErr)
	}

	idx := ledgerIndex{
		ledgerID:    desc.LedgerID,
		lastEntryID: desc.LastEntryID,
		length:      desc.Length,
		dataLen:     enc.off,
		metadata:    desc.Metadata,
		blocks:      enc.blocks,
	}
	raw := idx.encode()
	if err := store.Put(ctx, indexKey, bytes.NewReader(raw), int64(len(raw)), objectMeta("index", desc.LedgerID)); err != nil {
		return fail(fmt.Errorf("upload index object: %w", err))
	}
	return WriteResult{DataBytes: enc.off, IndexBytes: int64(len(raw)), Blocks: len(enc.blocks)}, nil
}

// DeleteLedger deletes an offloaded ledger's objects: the index first, so
// no reader can open a ledger whose data is going away, then the data.
// Missing objects are not an error.
func DeleteLedger(ctx context.Context, store BlobStore, dataKey, indexKey string) error {
	if err := store.Delete(ctx, indexKey); err != nil {
		return fmt.Errorf("delete offloaded ledger index: %w", err)
	}
	if err := store.Delete(ctx, dataKey); err != nil {
		return fmt.Errorf("delete offloaded ledger data: %w", err)
	}
	return nil
}

// dataEncoder frames entries into blocks and writes the data object.
type dataEncoder struct {
	w          *bufio.Writer
	ledgerID   int64
	blockSize  int64
	remEntries int64 // entries not yet written
	remPayload int64 // payload bytes not yet written

	off    int64 // bytes written to the object
	blocks []indexBlock
	open   bool  // a block is open: blocks[len-1]
	used   int64 // bytes of the open block written so far
	hdr    [BlockHeaderLen]byte
	fh     [FrameHeaderLen]byte
}

// run pulls entries 0..last from src and encodes them.
func (e *dataEncoder) run(ctx context.Context, src LedgerSource, last int64, batch int) error {
	next := int64(0)
	for next <= last {
		if err := ctx.Err(); err != nil {
			return err
		}
		to := min(next+int64(batch)-1, last)
		entries, err := src.ReadEntries(ctx, next, to)
		if err != nil {
			return fmt.Errorf("read entries %d..%d: %w", next, to, err)
		}
		if len(entries) == 0 || int64(len(entries)) > to-next+1 {
			return fmt.Errorf("%w: asked for entries %d..%d, got %d", ErrSourceMismatch, next, to, len(entries))
		}
		for _, ent := range entries {
			if ent.ID != next {
				return fmt.Errorf("%w: expected entry %d, got %d", ErrSourceMismatch, next, ent.ID)
			}
			if err := e.add(ent); err != nil {
				return err
			}
			next++
		}
	}
	return e.finish()
}

func (e *dataEncoder) add(ent Entry) error {
	p := int64(len(ent.Payload))
	if p > math.MaxInt32 {
		return fmt.Errorf("%w: entry %d is %d bytes, limit %d", ErrInvalidArgument, ent.ID, p, math.MaxInt32)
	}
	if p > e.remPayload {
		return fmt.Errorf("%w: entries up to %d exceed the ledger length", ErrSourceMismatch, ent.ID)
	}
	frame := FrameHeaderLen + p
	if e.open && e.used+frame > e.blocks[len(e.blocks)-1].length {
		if err := e.closeBlock(); err != nil {
			return err
		}
	}
	if !e.open {
		if err := e.startBlock(ent.ID, frame); err != nil {
			return err
		}
	}
	encodeFrameHeader(e.fh[:], ent.ID, ent.Payload)
	if _, err := e.w.Write(e.fh[:]); err != nil {
		return err
	}
	if _, err := e.w.Write(ent.Payload); err != nil {
		return err
	}
	e.used += frame
	e.remEntries--
	e.remPayload -= p
	return nil
}

// startBlock opens a block whose first entry is first with a frame of
// frame bytes. The block is BlockSize long, or shorter when everything
// left fits (the last block), or exactly header+frame when that one frame
// does not fit in BlockSize.
func (e *dataEncoder) startBlock(first, frame int64) error {
	length := min(e.blockSize, BlockHeaderLen+e.remEntries*FrameHeaderLen+e.remPayload)
	if BlockHeaderLen+frame > e.blockSize {
		length = BlockHeaderLen + frame
	}
	blockHeader{
		blockLen:     length,
		firstEntryID: first,
		ledgerID:     e.ledgerID,
		blockIndex:   uint32(len(e.blocks)),
	}.encode(e.hdr[:])
	if _, err := e.w.Write(e.hdr[:]); err != nil {
		return err
	}
	e.blocks = append(e.blocks, indexBlock{firstEntryID: first, offset: e.off, length: length})
	e.open, e.used = true, BlockHeaderLen
	return nil
}

// closeBlock pads the open block to its length.
func (e *dataEncoder) closeBlock() error {
	blk := e.blocks[len(e.blocks)-1]
	for n := blk.length - e.used; n > 0; {
		k := min(n, int64(len(padding)))
		if _, err := e.w.Write(padding[:k]); err != nil {
			return err
		}
		n -= k
	}
	e.off += blk.length
	e.open = false
	return nil
}

func (e *dataEncoder) finish() error {
	if e.open {
		if err := e.closeBlock(); err != nil {
			return err
		}
	}
	if e.remPayload != 0 || e.remEntries != 0 {
		return fmt.Errorf("%w: entries hold %d bytes fewer than the ledger length", ErrSourceMismatch, e.remPayload)
	}
	return e.w.Flush()
}
