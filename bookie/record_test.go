package bookie

import (
	"bytes"
	"hash/crc32"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary payloads, with a matching checksum (so
// the structure, not the checksum, is what is tested), to the journal record
// decoder as replay would read them: it must reject or decode them without
// panicking and never hand out an envelope beyond the payload.
func FuzzDecodeRecord(f *testing.F) {
	var rb recordBuilder
	rb.reset()
	rb.add(7, 0, []byte("envelope"))
	rb.record(7, []byte{1, 1, 3, 'k', 'e', 'y'})
	rb.drop(9)
	rb.erase(7, 4)
	f.Add(bytes.Clone(rb.finish()[frameHeader:]))
	rb.reset()
	f.Add(bytes.Clone(rb.finish()[frameHeader:]))
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) < 5 {
			if err := decodePayload(payload, crc32.Checksum(payload, castagnoli), 0, func(mutation) error { return nil }); err == nil {
				t.Fatalf("a %d-byte payload decoded", len(payload))
			}
			return
		}
		_ = decodePayload(payload, crc32.Checksum(payload, castagnoli), frameHeader, func(m mutation) error {
			if m.kind == mutAdd && (m.off < frameHeader || m.off+int64(len(m.data)) > int64(frameHeader+len(payload))) {
				t.Fatalf("add envelope at %d+%d outside the payload", m.off, len(m.data))
			}
			return nil
		})
	})
}

// TestRecordRoundTrip: the decoder returns what the builder wrote, with each
// envelope's offset pointing at its bytes in the framed record.
func TestRecordRoundTrip(t *testing.T) {
	var rb recordBuilder
	rb.reset()
	offA := rb.add(1, 2, []byte("first"))
	rb.record(1, []byte("rec"))
	offB := rb.add(3, 4, []byte{})
	rb.drop(5)
	rb.erase(6, 7)
	rec := bytes.Clone(rb.finish())
	n, crc, err := frameLength(rec)
	if err != nil || n != len(rec)-frameHeader {
		t.Fatalf("frame: %d %v", n, err)
	}
	var got []mutation
	if err := decodePayload(rec[frameHeader:], crc, frameHeader, func(m mutation) error {
		got = append(got, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []mutation{
		{kind: mutAdd, ledger: 1, entry: 2, data: []byte("first"), off: offA},
		{kind: mutRecord, ledger: 1, data: []byte("rec")},
		{kind: mutAdd, ledger: 3, entry: 4, data: []byte{}, off: offB},
		{kind: mutDrop, ledger: 5},
		{kind: mutErase, ledger: 6, entry: 7},
	}
	if len(got) != len(want) {
		t.Fatalf("%d mutations, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.kind != w.kind || g.ledger != w.ledger || g.entry != w.entry || !bytes.Equal(g.data, w.data) || g.off != w.off {
			t.Fatalf("mutation %d: %+v, want %+v", i, g, w)
		}
		if g.kind == mutAdd && !bytes.Equal(rec[g.off:g.off+int64(len(g.data))], w.data) {
			t.Fatalf("mutation %d: offset %d does not point at its envelope", i, g.off)
		}
	}
	rec[len(rec)-1] ^= 1
	if err := decodePayload(rec[frameHeader:], crc, frameHeader, func(mutation) error { return nil }); err == nil {
		t.Fatal("a flipped bit passed the checksum")
	}
}
