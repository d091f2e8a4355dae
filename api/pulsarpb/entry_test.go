package pulsarpb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestEntryRoundTrip(t *testing.T) {
	msgs := []BatchMessage{
		{Meta: &SingleMessageMetadata{PartitionKey: proto.String("k1"), EventTime: proto.Uint64(7)}, Payload: []byte("one")},
		{Meta: &SingleMessageMetadata{Properties: []*KeyValue{{Key: proto.String("a"), Value: proto.String("b")}}}, Payload: []byte{}},
		{Meta: &SingleMessageMetadata{SequenceId: proto.Uint64(9)}, Payload: []byte("three")},
	}
	payload, err := EncodeBatch(msgs)
	if err != nil {
		t.Fatal(err)
	}
	md := &MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(7), PublishTime: proto.Uint64(123),
		NumMessagesInBatch: proto.Int32(3), OrderingKey: []byte("ok")}
	entry, err := EncodeEntry(md, payload)
	if err != nil {
		t.Fatal(err)
	}
	got, p, err := DecodeEntry(entry)
	if err != nil || got.GetPublishTime() != 123 || got.NumMessages() != 3 || got.Key() != "ok" || !got.IsBatch() {
		t.Fatalf("decode: %v %v", got, err)
	}
	out, err := DecodeBatch(p, 3)
	if err != nil || string(out[0].Payload) != "one" || len(out[1].Payload) != 0 || string(out[2].Payload) != "three" ||
		out[0].Meta.GetPartitionKey() != "k1" || out[1].Meta.Properties[0].GetValue() != "b" || out[2].Meta.GetSequenceId() != 9 {
		t.Fatalf("batch: %+v %v", out, err)
	}
	entry[len(entry)-1] ^= 1
	if _, _, err := DecodeEntry(entry); !errors.Is(err, ErrBadChecksum) {
		t.Fatalf("flipped byte: %v, want ErrBadChecksum", err)
	}
	if _, _, err := DecodeEntry([]byte{1, 2, 3}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short entry: %v", err)
	}
	if _, err := DecodeBatch(p[:10], 3); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated batch: %v", err)
	}
}

// poisonEntry claims 2^31-1 messages in a tiny batch payload (the attack
// that made consumers allocate 64 GiB and die).
func poisonEntry(t testing.TB) []byte {
	t.Helper()
	payload, err := EncodeBatch([]BatchMessage{{Meta: &SingleMessageMetadata{}, Payload: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := EncodeEntry(&MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(0), PublishTime: proto.Uint64(1),
		NumMessagesInBatch: proto.Int32(1<<31 - 1)}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCountsCheckedAgainstBytes: a batch count or size the payload cannot
// back is refused before anything is allocated from it, and leftover bytes
// are refused too.
func TestCountsCheckedAgainstBytes(t *testing.T) {
	md, payload, err := DecodeEntry(poisonEntry(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeBatch(payload, md.NumMessages()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("batch of 2^31-1 messages in %d bytes: %v, want ErrMalformed", len(payload), err)
	}
	if err := CheckEntry(md, payload, 1<<20); !errors.Is(err, ErrMalformed) {
		t.Fatalf("CheckEntry of the poison entry: %v", err)
	}
	two, _ := EncodeBatch([]BatchMessage{{Meta: &SingleMessageMetadata{}, Payload: []byte("a")}, {Meta: &SingleMessageMetadata{}, Payload: []byte("b")}})
	for _, tc := range []struct {
		n  int32
		ok bool
	}{{2, true}, {1, false}, {3, false}, {0, false}, {-4, false}} {
		err := CheckEntry(&MessageMetadata{NumMessagesInBatch: proto.Int32(tc.n)}, two, 1<<20)
		if (err == nil) != tc.ok {
			t.Errorf("batch of 2 messages claiming %d: %v", tc.n, err)
		}
	}
	lz4 := CompressionType_LZ4
	for _, tc := range []struct {
		md *MessageMetadata
		ok bool
	}{
		{&MessageMetadata{Compression: &lz4, UncompressedSize: proto.Uint32(1000), NumMessagesInBatch: proto.Int32(10)}, true},
		{&MessageMetadata{Compression: &lz4, NumMessagesInBatch: proto.Int32(10)}, false},
		{&MessageMetadata{Compression: &lz4, UncompressedSize: proto.Uint32(2 << 20)}, false},
		{&MessageMetadata{Compression: &lz4, UncompressedSize: proto.Uint32(100), NumMessagesInBatch: proto.Int32(1000)}, false},
	} {
		if err := CheckEntry(tc.md, []byte("compressed"), 1<<20); (err == nil) != tc.ok {
			t.Errorf("compressed entry %v: %v", tc.md, err)
		}
	}
}

// FuzzDecodeEntry decodes arbitrary entries (with their magic and
// checksum made valid) the way consumers and the
// broker do: no panic, no allocation beyond the input, and every entry
// CheckEntry accepts decodes.
func FuzzDecodeEntry(f *testing.F) {
	batch, _ := EncodeBatch([]BatchMessage{{Meta: &SingleMessageMetadata{PartitionKey: proto.String("k")}, Payload: []byte("one")}, {Meta: &SingleMessageMetadata{}, Payload: []byte("two")}})
	for _, e := range [][]byte{
		mustEntry(f, &MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(2), NumMessagesInBatch: proto.Int32(2)}, batch),
		mustEntry(f, &MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(2)}, []byte("single")),
		poisonEntry(f),
	} {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		if len(entry) >= entryHeaderSize {
			// A valid magic and checksum, so the fuzzer explores what is
			// behind them rather than the checksum.
			entry = bytes.Clone(entry)
			binary.BigEndian.PutUint16(entry, Magic)
			binary.BigEndian.PutUint32(entry[2:], crc32.Checksum(entry[6:], castagnoli))
		}
		md, payload, err := DecodeEntry(entry)
		if err != nil {
			return
		}
		checked := CheckEntry(md, payload, 1<<20)
		if md.IsBatch() {
			msgs, err := DecodeBatch(payload, md.NumMessages())
			if checked == nil && md.GetCompression() == CompressionType_NONE && err != nil {
				t.Fatalf("CheckEntry accepted a batch DecodeBatch refuses: %v", err)
			}
			if err == nil && len(msgs) > len(payload) {
				t.Fatalf("%d messages from %d bytes", len(msgs), len(payload))
			}
		}
	})
}

func mustEntry(t testing.TB, md *MessageMetadata, payload []byte) []byte {
	t.Helper()
	e, err := EncodeEntry(md, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCheckEntryEncrypted: an encrypted batch is cipher text, so it is not
// split (it cannot be), but its count must still fit its bytes.
func TestCheckEntryEncrypted(t *testing.T) {
	cipher := bytes.Repeat([]byte{0xa5}, 64) // not a batch layout
	md := &MessageMetadata{NumMessagesInBatch: proto.Int32(5), EncryptionKeys: []*EncryptionKeys{{Key: proto.String("app.key"), Value: []byte{1}}}}
	if err := CheckEntry(md, cipher, 1<<20); err != nil {
		t.Fatalf("encrypted batch: %v", err)
	}
	md.NumMessagesInBatch = proto.Int32(17) // 17 messages cannot fit in 64 bytes
	if err := CheckEntry(md, cipher, 1<<20); !errors.Is(err, ErrMalformed) {
		t.Fatalf("encrypted batch with an impossible count: %v", err)
	}
	plain := &MessageMetadata{NumMessagesInBatch: proto.Int32(5)}
	if err := CheckEntry(plain, cipher, 1<<20); !errors.Is(err, ErrMalformed) {
		t.Fatalf("the same bytes unencrypted: %v, want ErrMalformed", err)
	}
}
