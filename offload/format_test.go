package offload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-mq/strata/internal/s3test"
)

// roundTripCases are the ledgers the round-trip test writes and reads back.
var roundTripCases = []struct {
	name      string
	blockSize int
	batch     int
	n         int
	size      func(rng *rand.Rand, i int) int
}{
	{"random sizes with empty and oversize entries", 4096, 7, 300, func(rng *rand.Rand, i int) int {
		switch {
		case i == 0 || i%37 == 5:
			return 0 // empty payloads, including the very first entry
		case i == 150:
			return 10000 // larger than a block: gets a block of its own
		case i == 151:
			return 4096 - BlockHeaderLen - FrameHeaderLen + 1 // one byte too big for a block
		case i == 152:
			return 4096 - BlockHeaderLen - FrameHeaderLen // exactly fills a block
		}
		return rng.IntN(1500)
	}},
	{"single entry", 1024, 100, 1, func(*rand.Rand, int) int { return 10 }},
	{"single empty entry", 1024, 100, 1, func(*rand.Rand, int) int { return 0 }},
	{"all empty", 256, 3, 100, func(*rand.Rand, int) int { return 0 }},
	{"oversize last entry", 512, 10, 20, func(_ *rand.Rand, i int) int {
		if i == 19 {
			return 5000
		}
		return 100
	}},
	{"empty ledger", 1024, 100, 0, nil},
}

func TestFormatRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		for ci, tc := range roundTripCases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := testCtx(t)
				rng := rand.New(rand.NewPCG(uint64(ci), 42))
				src := &memSource{entries: genEntries(rng, tc.n, func(i int) int { return tc.size(rng, i) })}
				meta := []byte("ledger-metadata:" + tc.name)
				desc := src.desc(int64(100+ci), meta)
				dataKey, indexKey := ObjectKeys("rt", "tenant/ns/topic", desc.LedgerID, "uuid-1")

				res, err := WriteLedger(ctx, store, src, desc, dataKey, indexKey, WriteOptions{BlockSize: tc.blockSize, ReadBatch: tc.batch})
				if err != nil {
					t.Fatalf("WriteLedger: %v", err)
				}
				data, dmeta := readObject(t, store, dataKey)
				rawIdx, imeta := readObject(t, store, indexKey)
				if int64(len(data)) != res.DataBytes || int64(len(rawIdx)) != res.IndexBytes {
					t.Fatalf("result %+v, objects are %d and %d bytes", res, len(data), len(rawIdx))
				}
				for _, m := range []map[string]string{dmeta, imeta} {
					if m[MetaFormatVersion] != "1" || m[MetaLedgerID] != strconv.FormatInt(desc.LedgerID, 10) {
						t.Fatalf("object metadata %v", m)
					}
				}
				if dmeta[MetaObjectKind] != "data" || imeta[MetaObjectKind] != "index" {
					t.Fatalf("object kinds %q, %q", dmeta[MetaObjectKind], imeta[MetaObjectKind])
				}
				checkLayout(t, data, rawIdx, src.entries, tc.blockSize, desc)

				r, err := OpenLedger(ctx, store, dataKey, indexKey, ReaderOptions{ReadAheadBytes: 8 << 10, IOBufferSize: 4096})
				if err != nil {
					t.Fatalf("OpenLedger: %v", err)
				}
				defer r.Close()
				if r.LastEntryID() != desc.LastEntryID || r.Length() != desc.Length || r.LedgerID() != desc.LedgerID || !bytes.Equal(r.Metadata(), meta) {
					t.Fatalf("reader says ledger %d last %d length %d meta %q; want %+v", r.LedgerID(), r.LastEntryID(), r.Length(), r.Metadata(), desc)
				}
				if tc.n == 0 {
					if _, err := r.Read(ctx, 0, 0); !errors.Is(err, ErrEntryOutOfRange) {
						t.Fatalf("Read of an empty ledger: %v, want ErrEntryOutOfRange", err)
					}
					return
				}
				got, err := r.Read(ctx, 0, desc.LastEntryID)
				if err != nil {
					t.Fatalf("Read all: %v", err)
				}
				checkEntries(t, got, src.entries, 0, desc.LastEntryID)
			})
		}
	})
}

// checkLayout decodes the objects independently of the reader and checks
// the block rules: blocks are BlockSize long except the last (cut to fit)
// and single-entry oversize blocks; entries never span blocks; padding is
// PaddingByte.
func checkLayout(t *testing.T, data, rawIdx []byte, entries []Entry, blockSize int, desc LedgerDescriptor) {
	t.Helper()
	idx, err := decodeIndex(rawIdx)
	if err != nil {
		t.Fatalf("decodeIndex: %v", err)
	}
	if idx.dataLen != int64(len(data)) || idx.lastEntryID != desc.LastEntryID || idx.length != desc.Length || idx.ledgerID != desc.LedgerID {
		t.Fatalf("index header %+v does not match %+v / %d data bytes", idx, desc, len(data))
	}
	next := 0
	for b, blk := range idx.blocks {
		block := data[blk.offset : blk.offset+blk.length]
		h, err := decodeBlockHeader(block)
		if err != nil {
			t.Fatalf("block %d: %v", b, err)
		}
		if h.blockLen != blk.length || h.firstEntryID != int64(next) || h.ledgerID != desc.LedgerID || h.blockIndex != uint32(b) {
			t.Fatalf("block %d header %+v, index %+v, next entry %d", b, h, blk, next)
		}
		p := BlockHeaderLen
		count := 0
		for p+FrameHeaderLen <= len(block) && int32(binary.BigEndian.Uint32(block[p:])) >= 0 && next < len(entries) {
			n := int(binary.BigEndian.Uint32(block[p:]))
			id := int64(binary.BigEndian.Uint64(block[p+4:]))
			if p+FrameHeaderLen+n > len(block) {
				break
			}
			payload := block[p+FrameHeaderLen : p+FrameHeaderLen+n]
			if id != int64(next) || !bytes.Equal(payload, entries[next].Payload) {
				t.Fatalf("block %d frame %d: id %d, want entry %d", b, count, id, next)
			}
			if binary.BigEndian.Uint32(block[p+12:]) != frameCRC(block[p:], payload) {
				t.Fatalf("block %d entry %d: bad frame checksum", b, id)
			}
			p += FrameHeaderLen + n
			next++
			count++
		}
		if count == 0 {
			t.Fatalf("block %d holds no entries", b)
		}
		for i := p; i < len(block); i++ {
			if block[i] != PaddingByte {
				t.Fatalf("block %d: byte %d of padding is %#x", b, i-p, block[i])
			}
		}
		last := b == len(idx.blocks)-1
		single := count == 1 && blk.length > int64(blockSize)
		switch {
		case single:
			if blk.length != int64(BlockHeaderLen+FrameHeaderLen+len(entries[next-1].Payload)) {
				t.Fatalf("oversize block %d is %d bytes, not cut to its entry", b, blk.length)
			}
		case last:
			if blk.length > int64(blockSize) || p != len(block) {
				t.Fatalf("last block %d: %d bytes with %d of padding", b, blk.length, len(block)-p)
			}
		default:
			if blk.length != int64(blockSize) {
				t.Fatalf("block %d is %d bytes, want %d", b, blk.length, blockSize)
			}
			// Padding only when the next entry did not fit.
			if next < len(entries) && len(block)-p >= FrameHeaderLen+len(entries[next].Payload) {
				t.Fatalf("block %d ends with %d bytes of padding though entry %d (%d bytes) fits",
					b, len(block)-p, next, len(entries[next].Payload))
			}
		}
	}
	if next != len(entries) {
		t.Fatalf("blocks hold %d entries, want %d", next, len(entries))
	}
}

// TestFormatBytes pins the on-disk layout byte by byte (docs/tiered-storage.md).
func TestFormatBytes(t *testing.T) {
	ctx := testCtx(t)
	store, err := NewFSStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Block size 128. Block 0: header (40) + "hello" (16+5) + "" (16) +
	// "world!!" (16+7) = 100 bytes; the 60-byte entry (76 framed) does not
	// fit in the remaining 28, so block 0 is padded to 128 and block 1 is
	// cut to fit what is left: 40 + 76 = 116.
	entries := []Entry{
		{0, []byte("hello")},
		{1, []byte{}},
		{2, []byte("world!!")},
		{3, bytes.Repeat([]byte{'x'}, 60)},
	}
	src := &memSource{entries: entries}
	desc := src.desc(7, []byte{0xAB, 0xCD})
	if _, err := WriteLedger(ctx, store, src, desc, "d", "d-index", WriteOptions{BlockSize: 128}); err != nil {
		t.Fatal(err)
	}
	data, _ := readObject(t, store, "d")
	rawIdx, _ := readObject(t, store, "d-index")

	c := func(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
	be := binary.BigEndian
	header := func(blockLen, first uint64, blockIndex uint32) []byte {
		h := []byte("STBK")        // magic 0x5354424B
		h = be.AppendUint16(h, 1)  // version
		h = be.AppendUint16(h, 40) // header length
		h = be.AppendUint64(h, blockLen)
		h = be.AppendUint64(h, first)
		h = be.AppendUint64(h, 7) // ledger id
		h = be.AppendUint32(h, blockIndex)
		return be.AppendUint32(h, c(h))
	}
	frame := func(id uint64, p []byte) []byte {
		f := be.AppendUint32(nil, uint32(len(p)))
		f = be.AppendUint64(f, id)
		f = be.AppendUint32(f, c(append(bytes.Clone(f), p...)))
		return append(f, p...)
	}
	var want []byte
	want = append(want, header(128, 0, 0)...)
	want = append(want, frame(0, []byte("hello"))...)
	want = append(want, frame(1, nil)...)
	want = append(want, frame(2, []byte("world!!"))...)
	want = append(want, bytes.Repeat([]byte{0xFF}, 128-len(want))...)
	want = append(want, header(116, 3, 1)...)
	want = append(want, frame(3, bytes.Repeat([]byte{'x'}, 60))...)
	if !bytes.Equal(data, want) {
		t.Fatalf("data object:\n got %x\nwant %x", data, want)
	}
	if string(data[0:4]) != "STBK" || be.Uint32(data[0:]) != BlockMagic {
		t.Fatalf("magic %q", data[0:4])
	}

	var wantIdx []byte
	wantIdx = append(wantIdx, "STIX"...)
	wantIdx = be.AppendUint16(wantIdx, 1)
	wantIdx = be.AppendUint16(wantIdx, 56)
	wantIdx = be.AppendUint64(wantIdx, 7)   // ledger id
	wantIdx = be.AppendUint64(wantIdx, 3)   // last entry id
	wantIdx = be.AppendUint64(wantIdx, 72)  // length: 5+0+7+60
	wantIdx = be.AppendUint64(wantIdx, 4)   // entry count
	wantIdx = be.AppendUint64(wantIdx, 244) // data object length: 128+116
	wantIdx = be.AppendUint32(wantIdx, 2)   // blocks
	wantIdx = be.AppendUint32(wantIdx, 2)   // metadata length
	wantIdx = append(wantIdx, 0xAB, 0xCD)
	for _, blk := range [][3]uint64{{0, 0, 128}, {3, 128, 116}} {
		for _, v := range blk {
			wantIdx = be.AppendUint64(wantIdx, v)
		}
	}
	wantIdx = be.AppendUint32(wantIdx, c(wantIdx))
	if !bytes.Equal(rawIdx, wantIdx) {
		t.Fatalf("index object:\n got %x\nwant %x", rawIdx, wantIdx)
	}
}

func TestDecodeIndexRejects(t *testing.T) {
	good := (&ledgerIndex{
		ledgerID: 1, lastEntryID: 9, length: 100, dataLen: 300,
		blocks: []indexBlock{{0, 0, 150}, {5, 150, 150}},
	}).encode()
	if _, err := decodeIndex(good); err != nil {
		t.Fatalf("good index: %v", err)
	}
	reseal := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		return b
	}
	cases := []struct {
		name string
		mut  func([]byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:20] }, ErrCorrupt},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return reseal(b) }, ErrCorrupt},
		{"checksum", func(b []byte) []byte { b[20] ^= 1; return b }, ErrCorrupt},
		{"version", func(b []byte) []byte { b[5] = 2; return reseal(b) }, ErrUnsupportedVersion},
		{"entry count", func(b []byte) []byte { b[39]++; return reseal(b) }, ErrCorrupt},
		{"gap between blocks", func(b []byte) []byte { b[56+24+15]++; return reseal(b) }, ErrCorrupt},
		{"blocks not increasing", func(b []byte) []byte { b[56+24+7] = 0; return reseal(b) }, ErrCorrupt},
		{"data length", func(b []byte) []byte { b[47]++; return reseal(b) }, ErrCorrupt},
		{"truncated", func(b []byte) []byte { return reseal(b[:len(b)-8]) }, ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeIndex(tc.mut(bytes.Clone(good))); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFindBlock(t *testing.T) {
	x := &ledgerIndex{lastEntryID: 99, blocks: []indexBlock{{firstEntryID: 0}, {firstEntryID: 10}, {firstEntryID: 11}, {firstEntryID: 50}}}
	for id, want := range map[int64]int{0: 0, 9: 0, 10: 1, 11: 2, 49: 2, 50: 3, 99: 3} {
		if got := x.findBlock(id); got != want {
			t.Errorf("findBlock(%d) = %d, want %d", id, got, want)
		}
	}
	if n := x.blockEntries(1); n != 1 {
		t.Errorf("blockEntries(1) = %d", n)
	}
	if n := x.blockEntries(3); n != 50 {
		t.Errorf("blockEntries(3) = %d", n)
	}
}

func TestObjectKeys(t *testing.T) {
	d, i := ObjectKeys("/offload/", "public/default/orders", 42, "0f8e")
	if d != "offload/public/default/orders/42-0f8e" || i != "offload/public/default/orders/42-0f8e-index" {
		t.Fatalf("got %q %q", d, i)
	}
	d, _ = ObjectKeys("", "t/n/x", 1, "u")
	if d != "t/n/x/1-u" {
		t.Fatalf("empty prefix: %q", d)
	}
	if p := KeyPrefix("offload", "public"); p != "offload/public/" {
		t.Fatalf("KeyPrefix %q", p)
	}
	for _, k := range []string{"", "/a", "a//b", "a/", "a/./b", "a/../b", "a/.hidden", "a\\b", "a\x00b", string([]byte{0xff})} {
		if err := ValidateKey(k); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidArgument", k, err)
		}
	}
	if err := ValidateKey("offload/public/default/orders/42-0f8e-index"); err != nil {
		t.Errorf("valid key: %v", err)
	}
}

// Every name Strata accepts has object keys: parts a filesystem or S3 key
// cannot hold as they are (a leading '.', more than 200 bytes) are hashed,
// distinct parts get distinct segments, and the tenant and namespace
// prefixes still cover their topics.
func TestObjectKeysForEveryName(t *testing.T) {
	long := strings.Repeat("t", 255)
	names := []string{"public/default/.hidden", "public/default/..", "public/default/" + long,
		"public/default/" + long[:254] + "u", ".t/.ns/x", strings.Repeat("a", 255) + "/" + strings.Repeat("b", 255) + "/" + long}
	seen := map[string]string{}
	for _, n := range names {
		d, i := ObjectKeys("offload", n, 7, "0f8e")
		for _, k := range []string{d, i} {
			if err := ValidateKey(k); err != nil {
				t.Errorf("ObjectKeys(%q): %v", n, err)
			}
		}
		if prev, dup := seen[d]; dup {
			t.Errorf("%q and %q share key %q", prev, n, d)
		}
		seen[d] = n
		parts := strings.Split(n, "/")
		for j := 1; j <= len(parts); j++ {
			if p := KeyPrefix("offload", strings.Join(parts[:j], "/")); !strings.HasPrefix(d, p) {
				t.Errorf("key %q is not under the prefix %q of %q", d, p, strings.Join(parts[:j], "/"))
			}
		}
	}
	// Ordinary names keep readable keys.
	if d, _ := ObjectKeys("", "public/default/"+long[:200], 1, "u"); d != "public/default/"+long[:200]+"/1-u" {
		t.Errorf("200-byte part was hashed: %q", d)
	}
}
