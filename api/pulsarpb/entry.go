package pulsarpb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"google.golang.org/protobuf/proto"
)

// Entry layout: [u16 magic][u32 CRC32C][u32 metadata size][MessageMetadata][payload],
// big-endian; the CRC32C covers everything after itself.
const (
	// Magic marks an entry with a checksum (Pulsar's 0x0e01).
	Magic = 0x0e01
	// entryHeaderSize is magic + crc + metadata size.
	entryHeaderSize = 2 + 4 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors decoding entries.
var (
	ErrBadMagic    = errors.New("entry: bad magic")
	ErrBadChecksum = errors.New("entry: checksum mismatch")
	ErrMalformed   = errors.New("entry: malformed")
)

// EncodeEntry builds an entry from metadata and payload.
func EncodeEntry(md *MessageMetadata, payload []byte) ([]byte, error) {
	mb, err := proto.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("entry: encode metadata: %w", err)
	}
	b := make([]byte, entryHeaderSize+len(mb)+len(payload))
	binary.BigEndian.PutUint16(b, Magic)
	binary.BigEndian.PutUint32(b[6:], uint32(len(mb)))
	copy(b[entryHeaderSize:], mb)
	copy(b[entryHeaderSize+len(mb):], payload)
	binary.BigEndian.PutUint32(b[2:], crc32.Checksum(b[6:], castagnoli))
	return b, nil
}

// DecodeEntry verifies an entry's checksum and returns its metadata and
// payload (aliasing entry).
func DecodeEntry(entry []byte) (*MessageMetadata, []byte, error) {
	mdBytes, payload, err := splitEntry(entry, true)
	if err != nil {
		return nil, nil, err
	}
	md := &MessageMetadata{}
	if err := proto.Unmarshal(mdBytes, md); err != nil {
		return nil, nil, fmt.Errorf("%w: metadata: %v", ErrMalformed, err)
	}
	return md, payload, nil
}

// DecodeMetadata returns an entry's metadata without verifying the checksum
// (for entries already verified when stored).
func DecodeMetadata(entry []byte) (*MessageMetadata, error) {
	mdBytes, _, err := splitEntry(entry, false)
	if err != nil {
		return nil, err
	}
	md := &MessageMetadata{}
	if err := proto.Unmarshal(mdBytes, md); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrMalformed, err)
	}
	return md, nil
}

func splitEntry(entry []byte, verify bool) (md, payload []byte, err error) {
	if len(entry) < entryHeaderSize {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(entry))
	}
	if binary.BigEndian.Uint16(entry) != Magic {
		return nil, nil, ErrBadMagic
	}
	if verify && crc32.Checksum(entry[6:], castagnoli) != binary.BigEndian.Uint32(entry[2:]) {
		return nil, nil, ErrBadChecksum
	}
	n := binary.BigEndian.Uint32(entry[6:])
	if uint64(n) > uint64(len(entry)-entryHeaderSize) {
		return nil, nil, fmt.Errorf("%w: metadata size %d beyond %d bytes", ErrMalformed, n, len(entry))
	}
	return entry[entryHeaderSize : entryHeaderSize+int(n)], entry[entryHeaderSize+int(n):], nil
}

// BatchMessage is one message of a batch payload.
type BatchMessage struct {
	Meta    *SingleMessageMetadata
	Payload []byte
}

// EncodeBatch builds a batch payload: N x [u32 size][SingleMessageMetadata][payload].
func EncodeBatch(msgs []BatchMessage) ([]byte, error) {
	var out []byte
	for _, m := range msgs {
		m.Meta.PayloadSize = proto.Int32(int32(len(m.Payload)))
		mb, err := proto.Marshal(m.Meta)
		if err != nil {
			return nil, fmt.Errorf("entry: encode message metadata: %w", err)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(mb)))
		out = append(out, mb...)
		out = append(out, m.Payload...)
	}
	return out, nil
}

// minBatchMessage is the least a batch message takes: its 4-byte size.
const minBatchMessage = 4

// DecodeBatch splits a batch payload into exactly n messages. A count the
// bytes cannot hold, a size beyond them, or bytes left over is
// ErrMalformed: nothing is allocated from a count or size before it is
// checked against the payload.
func DecodeBatch(payload []byte, n int) ([]BatchMessage, error) {
	if n < 1 || n > len(payload)/minBatchMessage {
		return nil, fmt.Errorf("%w: %d batch messages cannot fit in %d bytes", ErrMalformed, n, len(payload))
	}
	out := make([]BatchMessage, 0, n)
	for i := 0; i < n; i++ {
		if len(payload) < 4 {
			return nil, fmt.Errorf("%w: batch message %d of %d truncated", ErrMalformed, i, n)
		}
		sz := binary.BigEndian.Uint32(payload)
		if uint64(sz) > uint64(len(payload)-4) {
			return nil, fmt.Errorf("%w: batch message %d metadata size %d", ErrMalformed, i, sz)
		}
		meta := &SingleMessageMetadata{}
		if err := proto.Unmarshal(payload[4:4+sz], meta); err != nil {
			return nil, fmt.Errorf("%w: batch message %d metadata: %v", ErrMalformed, i, err)
		}
		payload = payload[4+sz:]
		ps := int(meta.GetPayloadSize())
		if ps < 0 || ps > len(payload) {
			return nil, fmt.Errorf("%w: batch message %d payload size %d", ErrMalformed, i, ps)
		}
		out = append(out, BatchMessage{Meta: meta, Payload: payload[:ps]})
		payload = payload[ps:]
	}
	if len(payload) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the %d batch messages", ErrMalformed, len(payload), n)
	}
	return out, nil
}

// CheckEntry checks what an entry's metadata claims against its payload,
// as a broker does before storing it: a batch's message count must be at
// least 1 and, uncompressed, its messages must fill the payload exactly;
// a compressed payload's uncompressed size must be given, at most
// maxUncompressed, and able to hold the count. Consumers then never
// allocate from a count or size the bytes do not back.
func CheckEntry(md *MessageMetadata, payload []byte, maxUncompressed int) error {
	size := len(payload)
	if md.GetCompression() != CompressionType_NONE {
		if md.UncompressedSize == nil {
			return fmt.Errorf("%w: compressed entry without uncompressed_size", ErrMalformed)
		}
		if size = int(md.GetUncompressedSize()); size > maxUncompressed {
			return fmt.Errorf("%w: uncompressed size %d above the %d-byte limit", ErrMalformed, size, maxUncompressed)
		}
	}
	if !md.IsBatch() {
		return nil
	}
	n := int(md.GetNumMessagesInBatch())
	if n < 1 || n > size/minBatchMessage {
		return fmt.Errorf("%w: %d batch messages cannot fit in %d bytes", ErrMalformed, n, size)
	}
	if md.GetCompression() == CompressionType_NONE && !md.Encrypted() {
		_, err := DecodeBatch(payload, n)
		return err
	}
	return nil
}

// Encrypted reports whether the payload is end-to-end encrypted (cipher
// text only consumers with the key can read).
func (m *MessageMetadata) Encrypted() bool {
	return len(m.EncryptionKeys) > 0 || len(m.EncryptionParam) > 0
}

// Key returns the key that routes an entry on Key_Shared subscriptions: the
// ordering key, else the partition key ("" if none).
func (m *MessageMetadata) Key() string {
	if len(m.OrderingKey) > 0 {
		return string(m.OrderingKey)
	}
	return m.GetPartitionKey()
}

// NumMessages returns how many messages the entry holds (at least 1).
func (m *MessageMetadata) NumMessages() int {
	if n := int(m.GetNumMessagesInBatch()); n > 1 {
		return n
	}
	return 1
}

// MessagesIn returns how many messages an entry of entryLen bytes holds:
// NumMessages, but never more than its bytes can back (each batch message
// takes at least 4), so permits and counters stay sane for an entry whose
// metadata lies (stored before brokers checked batches).
func (m *MessageMetadata) MessagesIn(entryLen int) int {
	return max(min(m.NumMessages(), entryLen/minBatchMessage), 1)
}

// IsChunk reports whether the entry is one chunk of a message split in
// several (Pulsar's chunking).
func (m *MessageMetadata) IsChunk() bool { return m.GetNumChunksFromMsg() > 1 }

// IsLastChunk reports whether a chunk is its message's last one.
func (m *MessageMetadata) IsLastChunk() bool { return m.GetChunkId() == m.GetNumChunksFromMsg()-1 }

// IsBatch reports whether the entry is a batch payload.
func (m *MessageMetadata) IsBatch() bool { return m.NumMessagesInBatch != nil }
