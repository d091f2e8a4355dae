package offload

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
)

// The offloaded-ledger object format, version 1. docs/tiered-storage.md
// describes it byte by byte; keep the two in step. All integers are
// big-endian; every checksum is CRC32C (Castagnoli).
const (
	// FormatVersion is the object format this package writes and reads.
	FormatVersion = 1

	// MetaFormatVersion is the user-metadata key, on both objects, holding
	// the decimal format version. Readers reject any other value with
	// ErrUnsupportedVersion.
	MetaFormatVersion = "strata-offload-format-version"
	// MetaObjectKind is the user-metadata key saying "data" or "index".
	MetaObjectKind = "strata-offload-object"
	// MetaLedgerID is the user-metadata key holding the decimal ledger id.
	MetaLedgerID = "strata-ledger-id"

	// BlockMagic starts every data block ("STBK").
	BlockMagic uint32 = 0x5354424B
	// BlockHeaderLen is the length of a version-1 block header.
	BlockHeaderLen = 40
	// FrameHeaderLen is the length of an entry frame's header.
	FrameHeaderLen = 16
	// IndexMagic starts the index object ("STIX").
	IndexMagic uint32 = 0x53544958
	// IndexHeaderLen is the length of the index object's fixed header.
	IndexHeaderLen = 56
	// IndexBlockEntryLen is the length of one block entry in the index.
	IndexBlockEntryLen = 24
	// PaddingByte fills a block after its last frame. Read as a frame
	// length, 0xFFFFFFFF is -1, so a scanner without the index also stops.
	PaddingByte = 0xFF

	// maxIndexSize bounds the index object a reader will load (a 2 GiB
	// ledger in 64 KiB blocks needs under 1 MiB).
	maxIndexSize = 256 << 20
	// maxLedgerMetadata bounds LedgerDescriptor.Metadata.
	maxLedgerMetadata = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// objectMeta is the user metadata of a data ("data") or index ("index")
// object.
func objectMeta(kind string, ledgerID int64) map[string]string {
	return map[string]string{
		MetaFormatVersion: strconv.Itoa(FormatVersion),
		MetaObjectKind:    kind,
		MetaLedgerID:      strconv.FormatInt(ledgerID, 10),
	}
}

// checkObjectMeta checks the format-version metadata of an object.
func checkObjectMeta(what, key string, meta map[string]string) error {
	v, ok := meta[MetaFormatVersion]
	if !ok {
		return fmt.Errorf("%s object %q has no %s metadata: %w", what, key, MetaFormatVersion, ErrUnsupportedVersion)
	}
	if v != strconv.Itoa(FormatVersion) {
		return fmt.Errorf("%s object %q is format version %q, this reader supports %d: %w", what, key, v, FormatVersion, ErrUnsupportedVersion)
	}
	return nil
}

// blockHeader is the decoded header of one data block.
//
//	off len field
//	  0   4 magic        BlockMagic
//	  4   2 version      FormatVersion
//	  6   2 headerLen    BlockHeaderLen
//	  8   8 blockLen     whole block: header + frames + padding
//	 16   8 firstEntryID id of the block's first frame
//	 24   8 ledgerID
//	 32   4 blockIndex   0-based position of the block in the object
//	 36   4 headerCRC    CRC32C of bytes [0, 36)
type blockHeader struct {
	blockLen     int64
	firstEntryID int64
	ledgerID     int64
	blockIndex   uint32
}

func (h blockHeader) encode(b []byte) {
	_ = b[BlockHeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], BlockMagic)
	binary.BigEndian.PutUint16(b[4:], FormatVersion)
	binary.BigEndian.PutUint16(b[6:], BlockHeaderLen)
	binary.BigEndian.PutUint64(b[8:], uint64(h.blockLen))
	binary.BigEndian.PutUint64(b[16:], uint64(h.firstEntryID))
	binary.BigEndian.PutUint64(b[24:], uint64(h.ledgerID))
	binary.BigEndian.PutUint32(b[32:], h.blockIndex)
	binary.BigEndian.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
}

// decodeBlockHeader parses and checks a block header. Any mismatch is
// ErrCorrupt: the object's version was already accepted from its metadata
// and index, so a block claiming another version is damage, not a newer
// writer.
func decodeBlockHeader(b []byte) (blockHeader, error) {
	if len(b) < BlockHeaderLen {
		return blockHeader{}, fmt.Errorf("block header is %d bytes: %w", len(b), ErrCorrupt)
	}
	if m := binary.BigEndian.Uint32(b[0:]); m != BlockMagic {
		return blockHeader{}, fmt.Errorf("block magic %#08x, want %#08x: %w", m, BlockMagic, ErrCorrupt)
	}
	if got, want := binary.BigEndian.Uint32(b[36:]), crc32.Checksum(b[:36], castagnoli); got != want {
		return blockHeader{}, fmt.Errorf("block header checksum %#08x, computed %#08x: %w", got, want, ErrCorrupt)
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != FormatVersion {
		return blockHeader{}, fmt.Errorf("block header version %d in a version %d object: %w", v, FormatVersion, ErrCorrupt)
	}
	if hl := binary.BigEndian.Uint16(b[6:]); hl != BlockHeaderLen {
		return blockHeader{}, fmt.Errorf("block header length %d, want %d: %w", hl, BlockHeaderLen, ErrCorrupt)
	}
	return blockHeader{
		blockLen:     int64(binary.BigEndian.Uint64(b[8:])),
		firstEntryID: int64(binary.BigEndian.Uint64(b[16:])),
		ledgerID:     int64(binary.BigEndian.Uint64(b[24:])),
		blockIndex:   binary.BigEndian.Uint32(b[32:]),
	}, nil
}

// Frame header, FrameHeaderLen bytes, then the payload:
//
//	off len field
//	  0   4 payloadLen   int32 >= 0
//	  4   8 entryID
//	 12   4 frameCRC     CRC32C of bytes [0, 12) then the payload
func encodeFrameHeader(b []byte, entryID int64, payload []byte) {
	_ = b[FrameHeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], uint32(len(payload)))
	binary.BigEndian.PutUint64(b[4:], uint64(entryID))
	crc := crc32.Update(crc32.Checksum(b[:12], castagnoli), castagnoli, payload)
	binary.BigEndian.PutUint32(b[12:], crc)
}

// frameCRC is the checksum a frame with header h and payload p must carry.
func frameCRC(h, p []byte) uint32 {
	return crc32.Update(crc32.Checksum(h[:12], castagnoli), castagnoli, p)
}

// indexBlock is one block's entry in the index.
type indexBlock struct {
	firstEntryID int64
	offset       int64
	length       int64
}

// ledgerIndex is the decoded index object.
//
//	off len field
//	  0   4 magic          IndexMagic
//	  4   2 version        FormatVersion
//	  6   2 headerLen      IndexHeaderLen
//	  8   8 ledgerID
//	 16   8 lastEntryID    -1 for an empty ledger
//	 24   8 length         sum of payload bytes
//	 32   8 entryCount     lastEntryID + 1
//	 40   8 dataLen        length of the data object
//	 48   4 blockCount     N
//	 52   4 metadataLen    M
//	 56   M metadata       opaque ledger metadata
//	      N × 24           per block: firstEntryID, offset, blockLen (int64 each)
//	      4 indexCRC       CRC32C of every byte before it
type ledgerIndex struct {
	ledgerID    int64
	lastEntryID int64
	length      int64
	dataLen     int64
	metadata    []byte
	blocks      []indexBlock
}

func (x *ledgerIndex) encode() []byte {
	n := IndexHeaderLen + len(x.metadata) + len(x.blocks)*IndexBlockEntryLen + 4
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b[0:], IndexMagic)
	binary.BigEndian.PutUint16(b[4:], FormatVersion)
	binary.BigEndian.PutUint16(b[6:], IndexHeaderLen)
	binary.BigEndian.PutUint64(b[8:], uint64(x.ledgerID))
	binary.BigEndian.PutUint64(b[16:], uint64(x.lastEntryID))
	binary.BigEndian.PutUint64(b[24:], uint64(x.length))
	binary.BigEndian.PutUint64(b[32:], uint64(x.lastEntryID+1))
	binary.BigEndian.PutUint64(b[40:], uint64(x.dataLen))
	binary.BigEndian.PutUint32(b[48:], uint32(len(x.blocks)))
	binary.BigEndian.PutUint32(b[52:], uint32(len(x.metadata)))
	p := IndexHeaderLen + copy(b[IndexHeaderLen:], x.metadata)
	for _, blk := range x.blocks {
		binary.BigEndian.PutUint64(b[p:], uint64(blk.firstEntryID))
		binary.BigEndian.PutUint64(b[p+8:], uint64(blk.offset))
		binary.BigEndian.PutUint64(b[p+16:], uint64(blk.length))
		p += IndexBlockEntryLen
	}
	binary.BigEndian.PutUint32(b[p:], crc32.Checksum(b[:p], castagnoli))
	return b
}

// decodeIndex parses and fully validates an index object, so that a reader
// can trust every offset it computes from it.
func decodeIndex(b []byte) (*ledgerIndex, error) {
	corrupt := func(format string, args ...any) (*ledgerIndex, error) {
		return nil, fmt.Errorf("index: "+format+": %w", append(args, ErrCorrupt)...)
	}
	if len(b) < IndexHeaderLen+4 {
		return corrupt("%d bytes is shorter than the header", len(b))
	}
	if m := binary.BigEndian.Uint32(b[0:]); m != IndexMagic {
		return corrupt("magic %#08x, want %#08x", m, IndexMagic)
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != FormatVersion {
		return nil, fmt.Errorf("index: format version %d, this reader supports %d: %w", v, FormatVersion, ErrUnsupportedVersion)
	}
	end := len(b) - 4
	if got, want := binary.BigEndian.Uint32(b[end:]), crc32.Checksum(b[:end], castagnoli); got != want {
		return corrupt("checksum %#08x, computed %#08x", got, want)
	}
	if hl := binary.BigEndian.Uint16(b[6:]); hl != IndexHeaderLen {
		return corrupt("header length %d, want %d", hl, IndexHeaderLen)
	}
	x := &ledgerIndex{
		ledgerID:    int64(binary.BigEndian.Uint64(b[8:])),
		lastEntryID: int64(binary.BigEndian.Uint64(b[16:])),
		length:      int64(binary.BigEndian.Uint64(b[24:])),
		dataLen:     int64(binary.BigEndian.Uint64(b[40:])),
	}
	entryCount := int64(binary.BigEndian.Uint64(b[32:]))
	nBlocks := int64(binary.BigEndian.Uint32(b[48:]))
	metaLen := int64(binary.BigEndian.Uint32(b[52:]))
	switch {
	case x.ledgerID < 0:
		return corrupt("ledger id %d", x.ledgerID)
	case x.lastEntryID < -1:
		return corrupt("last entry id %d", x.lastEntryID)
	case entryCount != x.lastEntryID+1:
		return corrupt("entry count %d with last entry id %d", entryCount, x.lastEntryID)
	case x.length < 0 || x.dataLen < 0:
		return corrupt("negative length")
	case IndexHeaderLen+metaLen+nBlocks*IndexBlockEntryLen != int64(end):
		return corrupt("%d bytes do not hold %d metadata bytes and %d blocks", len(b), metaLen, nBlocks)
	case (nBlocks == 0) != (x.lastEntryID == -1):
		return corrupt("%d blocks for last entry id %d", nBlocks, x.lastEntryID)
	}
	x.metadata = append([]byte(nil), b[IndexHeaderLen:IndexHeaderLen+metaLen]...)
	x.blocks = make([]indexBlock, nBlocks)
	p := IndexHeaderLen + int(metaLen)
	var next int64 // offset where the next block must start
	for i := range x.blocks {
		blk := indexBlock{
			firstEntryID: int64(binary.BigEndian.Uint64(b[p:])),
			offset:       int64(binary.BigEndian.Uint64(b[p+8:])),
			length:       int64(binary.BigEndian.Uint64(b[p+16:])),
		}
		p += IndexBlockEntryLen
		switch {
		case i == 0 && blk.firstEntryID != 0:
			return corrupt("first block starts at entry %d, want 0", blk.firstEntryID)
		case i > 0 && blk.firstEntryID <= x.blocks[i-1].firstEntryID:
			return corrupt("block %d first entry %d not after block %d's %d", i, blk.firstEntryID, i-1, x.blocks[i-1].firstEntryID)
		case blk.firstEntryID > x.lastEntryID:
			return corrupt("block %d first entry %d beyond last entry %d", i, blk.firstEntryID, x.lastEntryID)
		case blk.offset != next:
			return corrupt("block %d at offset %d, want %d", i, blk.offset, next)
		case blk.length < BlockHeaderLen+FrameHeaderLen || blk.length > x.dataLen-blk.offset:
			return corrupt("block %d length %d", i, blk.length)
		}
		next = blk.offset + blk.length
		x.blocks[i] = blk
	}
	if next != x.dataLen {
		return corrupt("blocks end at %d, data object length %d", next, x.dataLen)
	}
	// Every frame has a FrameHeaderLen header: the entries a block claims
	// must fit in it.
	for i := range x.blocks {
		if n := x.blockEntries(i); n > (x.blocks[i].length-BlockHeaderLen)/FrameHeaderLen {
			return corrupt("block %d cannot hold its %d entries in %d bytes", i, n, x.blocks[i].length)
		}
	}
	return x, nil
}

// blockEntries is the number of entries in block i.
func (x *ledgerIndex) blockEntries(i int) int64 {
	if i+1 < len(x.blocks) {
		return x.blocks[i+1].firstEntryID - x.blocks[i].firstEntryID
	}
	return x.lastEntryID - x.blocks[i].firstEntryID + 1
}

// findBlock returns the block holding entry id (0 <= id <= lastEntryID):
// the last block whose first entry is <= id.
func (x *ledgerIndex) findBlock(id int64) int {
	lo, hi := 0, len(x.blocks) // invariant: blocks[lo].first <= id < blocks[hi].first
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if x.blocks[mid].firstEntryID <= id {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}
