package bookiepb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Entry envelope: every entry is stored on bookies and sent on the wire as
//
//	[ledgerId int64][entryId int64][lastAddConfirmed int64][length int64][crc32c uint32][payload]
//
// big-endian. lastAddConfirmed is the writer's LAC when it sent the entry
// (piggybacked LAC); length is the ledger's cumulative payload length
// including this entry. The CRC32C (Castagnoli) covers the 32 header bytes and
// the payload. Bookies read the header but never trust payloads; ledger
// clients verify the digest on every read.
const (
	// EnvelopeHeaderSize is the size of the fields covered by the digest
	// before the payload.
	EnvelopeHeaderSize = 32
	// EnvelopeOverhead is the total envelope size around a payload.
	EnvelopeOverhead = EnvelopeHeaderSize + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrDigestMismatch reports an entry whose digest or header ids are wrong.
var ErrDigestMismatch = errors.New("entry digest mismatch")

// EntryHeader is the decoded envelope header.
type EntryHeader struct {
	LedgerID, EntryID, LAC, Length int64
}

// PackEntry builds the envelope for payload.
func PackEntry(h EntryHeader, payload []byte) []byte {
	b := make([]byte, EnvelopeOverhead+len(payload))
	binary.BigEndian.PutUint64(b[0:], uint64(h.LedgerID))
	binary.BigEndian.PutUint64(b[8:], uint64(h.EntryID))
	binary.BigEndian.PutUint64(b[16:], uint64(h.LAC))
	binary.BigEndian.PutUint64(b[24:], uint64(h.Length))
	copy(b[EnvelopeOverhead:], payload)
	crc := crc32.Update(crc32.Checksum(b[:EnvelopeHeaderSize], castagnoli), castagnoli, payload)
	binary.BigEndian.PutUint32(b[EnvelopeHeaderSize:], crc)
	return b
}

// ParseEntryHeader decodes the header without checking the digest.
func ParseEntryHeader(body []byte) (EntryHeader, error) {
	if len(body) < EnvelopeOverhead {
		return EntryHeader{}, fmt.Errorf("entry envelope too short: %d bytes", len(body))
	}
	return EntryHeader{
		LedgerID: int64(binary.BigEndian.Uint64(body[0:])),
		EntryID:  int64(binary.BigEndian.Uint64(body[8:])),
		LAC:      int64(binary.BigEndian.Uint64(body[16:])),
		Length:   int64(binary.BigEndian.Uint64(body[24:])),
	}, nil
}

// VerifyEntry checks the digest and that the envelope is the expected entry
// of the expected ledger, and returns the header and payload (aliasing body).
func VerifyEntry(body []byte, ledgerID, entryID int64) (EntryHeader, []byte, error) {
	h, err := ParseEntryHeader(body)
	if err != nil {
		return h, nil, fmt.Errorf("%w: %v", ErrDigestMismatch, err)
	}
	if h.LedgerID != ledgerID || (entryID >= 0 && h.EntryID != entryID) {
		return h, nil, fmt.Errorf("%w: envelope is ledger %d entry %d, want ledger %d entry %d",
			ErrDigestMismatch, h.LedgerID, h.EntryID, ledgerID, entryID)
	}
	payload := body[EnvelopeOverhead:]
	want := binary.BigEndian.Uint32(body[EnvelopeHeaderSize:])
	got := crc32.Update(crc32.Checksum(body[:EnvelopeHeaderSize], castagnoli), castagnoli, payload)
	if got != want {
		return h, nil, fmt.Errorf("%w: ledger %d entry %d crc32c %08x, stored %08x", ErrDigestMismatch, ledgerID, h.EntryID, got, want)
	}
	return h, payload, nil
}
