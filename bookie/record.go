package bookie

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A journal record holds the writes of one group commit. It is framed as
//
//	[length u32][crc32c u32 of the payload][payload]
//	payload  := [version u8 = 1][count u32] mutation*
//	mutation := 'A' [ledger i64][entry i64][length u32][envelope]  an entry
//	          | 'L' [ledger i64][length u16][ledger record]        a ledger's state
//	          | 'D' [ledger i64]                                   a ledger dropped
//	          | 'E' [ledger i64][entry i64]                        a legacy entry moved into the log
//
// Integers are big-endian. A length of 0 ends a segment (the rest is
// unwritten). Every length and count is checked against the bytes before
// use: a torn or corrupt record is reported, never trusted.
const (
	frameHeader   = 8
	recordVersion = 1
	// maxRecordPayload bounds a record's length field: a group holds at
	// most GroupBytes plus one entry (both capped by Validate).
	maxRecordPayload = 256 << 20

	mutAdd    = 'A'
	mutRecord = 'L'
	mutDrop   = 'D'
	mutErase  = 'E'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// errEndOfLog: a zero length, the unwritten rest of a segment.
	errEndOfLog = errors.New("bookie: end of journal segment")
	// errTornRecord: a record cut short or failing its checksum — the tail
	// of a write a crash interrupted, or corruption.
	errTornRecord = errors.New("bookie: torn or corrupt journal record")
)

// mutation is one decoded write of a record.
type mutation struct {
	kind   byte
	ledger int64
	entry  int64
	// data is the envelope of an add or the encoded ledger record; it
	// aliases the record's buffer.
	data []byte
	// off is, for an add, the envelope's offset in its segment.
	off int64
}

// recordBuilder assembles one record. The zero value is ready after reset.
type recordBuilder struct {
	buf   []byte
	count uint32
}

func (rb *recordBuilder) reset() {
	rb.buf = append(rb.buf[:0], make([]byte, frameHeader+5)...)
	rb.buf[frameHeader] = recordVersion
	rb.count = 0
}

func (rb *recordBuilder) empty() bool { return rb.count == 0 }

func (rb *recordBuilder) putIDs(kind byte, ledger, entry int64, withEntry bool) {
	rb.count++
	rb.buf = append(rb.buf, kind)
	rb.buf = binary.BigEndian.AppendUint64(rb.buf, uint64(ledger))
	if withEntry {
		rb.buf = binary.BigEndian.AppendUint64(rb.buf, uint64(entry))
	}
}

// add appends an entry and returns the offset of its envelope in the record.
func (rb *recordBuilder) add(ledger, entry int64, body []byte) int64 {
	rb.putIDs(mutAdd, ledger, entry, true)
	rb.buf = binary.BigEndian.AppendUint32(rb.buf, uint32(len(body)))
	off := int64(len(rb.buf))
	rb.buf = append(rb.buf, body...)
	return off
}

// record appends a ledger's state (at most 65535 bytes; records are ~30).
func (rb *recordBuilder) record(ledger int64, rec []byte) {
	rb.putIDs(mutRecord, ledger, 0, false)
	rb.buf = binary.BigEndian.AppendUint16(rb.buf, uint16(len(rec)))
	rb.buf = append(rb.buf, rec...)
}

func (rb *recordBuilder) drop(ledger int64) { rb.putIDs(mutDrop, ledger, 0, false) }

func (rb *recordBuilder) erase(ledger, entry int64) { rb.putIDs(mutErase, ledger, entry, true) }

// finish fills in the frame and count and returns the record.
func (rb *recordBuilder) finish() []byte {
	binary.BigEndian.PutUint32(rb.buf[frameHeader+1:], rb.count)
	payload := rb.buf[frameHeader:]
	binary.BigEndian.PutUint32(rb.buf[0:], uint32(len(payload)))
	binary.BigEndian.PutUint32(rb.buf[4:], crc32.Checksum(payload, castagnoli))
	return rb.buf
}

// frameLength reads a frame header: the payload length and checksum. A zero
// length is errEndOfLog; a length beyond the bound is errTornRecord.
func frameLength(hdr []byte) (n int, crc uint32, err error) {
	l := binary.BigEndian.Uint32(hdr)
	switch {
	case l == 0:
		return 0, 0, errEndOfLog
	case l > maxRecordPayload || l < 5:
		return 0, 0, fmt.Errorf("%w: payload length %d", errTornRecord, l)
	}
	return int(l), binary.BigEndian.Uint32(hdr[4:]), nil
}

// decodePayload checks a record's payload against its checksum and calls fn
// for each mutation; base is the payload's offset in its segment.
func decodePayload(payload []byte, crc uint32, base int64, fn func(mutation) error) error {
	if len(payload) < 5 {
		return fmt.Errorf("%w: %d-byte payload", errTornRecord, len(payload))
	}
	if crc32.Checksum(payload, castagnoli) != crc {
		return fmt.Errorf("%w: checksum mismatch", errTornRecord)
	}
	if payload[0] != recordVersion {
		return fmt.Errorf("%w: record version %d", errTornRecord, payload[0])
	}
	count := binary.BigEndian.Uint32(payload[1:])
	p := payload[5:]
	pos := base + 5
	take := func(n int) ([]byte, error) {
		if n < 0 || n > len(p) {
			return nil, fmt.Errorf("%w: mutation needs %d bytes, %d left", errTornRecord, n, len(p))
		}
		b := p[:n]
		p, pos = p[n:], pos+int64(n)
		return b, nil
	}
	for i := uint32(0); i < count; i++ {
		b, err := take(9)
		if err != nil {
			return err
		}
		m := mutation{kind: b[0], ledger: int64(binary.BigEndian.Uint64(b[1:]))}
		switch m.kind {
		case mutAdd:
			if b, err = take(12); err != nil {
				return err
			}
			m.entry = int64(binary.BigEndian.Uint64(b))
			n := binary.BigEndian.Uint32(b[8:])
			m.off = pos
			if m.data, err = take(int(n)); err != nil {
				return err
			}
		case mutRecord:
			if b, err = take(2); err != nil {
				return err
			}
			if m.data, err = take(int(binary.BigEndian.Uint16(b))); err != nil {
				return err
			}
		case mutErase:
			if b, err = take(8); err != nil {
				return err
			}
			m.entry = int64(binary.BigEndian.Uint64(b))
		case mutDrop:
		default:
			return fmt.Errorf("%w: unknown mutation %q", errTornRecord, m.kind)
		}
		if m.ledger < 0 || m.entry < 0 {
			return fmt.Errorf("%w: negative id in mutation %q", errTornRecord, m.kind)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %d bytes after %d mutations", errTornRecord, len(p), count)
	}
	return nil
}
