package pulsarpb

import (
	"errors"
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
