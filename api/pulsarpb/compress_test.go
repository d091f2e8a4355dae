package pulsarpb_test

import (
	"bytes"
	"compress/zlib"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/pulsarpb"
)

func compress(t *testing.T, codec pulsarpb.CompressionType, b []byte) []byte {
	t.Helper()
	switch codec {
	case pulsarpb.CompressionType_LZ4:
		out := make([]byte, lz4.CompressBlockBound(len(b)))
		n, err := lz4.CompressBlock(b, out, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out[:n]
	case pulsarpb.CompressionType_ZLIB:
		var buf bytes.Buffer
		w := zlib.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	case pulsarpb.CompressionType_ZSTD:
		e, _ := zstd.NewWriter(nil)
		return e.EncodeAll(b, nil)
	case pulsarpb.CompressionType_SNAPPY:
		return s2.EncodeSnappy(nil, b)
	}
	return b
}

// TestDecompress: every codec Pulsar clients use round-trips, and a payload
// whose metadata lies about its size, or that is not what it claims, is
// ErrMalformed.
func TestDecompress(t *testing.T) {
	plain := []byte(strings.Repeat("strata and pulsar ", 500))
	for _, codec := range []pulsarpb.CompressionType{pulsarpb.CompressionType_NONE, pulsarpb.CompressionType_LZ4,
		pulsarpb.CompressionType_ZLIB, pulsarpb.CompressionType_ZSTD, pulsarpb.CompressionType_SNAPPY} {
		c := compress(t, codec, plain)
		md := &pulsarpb.MessageMetadata{Compression: codec.Enum(), UncompressedSize: proto.Uint32(uint32(len(plain)))}
		got, err := pulsarpb.Decompress(md, c, 1<<20)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: %d bytes, %v", codec, len(got), err)
		}
		if codec == pulsarpb.CompressionType_NONE {
			continue
		}
		for name, md := range map[string]*pulsarpb.MessageMetadata{
			"size too small": {Compression: codec.Enum(), UncompressedSize: proto.Uint32(uint32(len(plain) - 1))},
			"size too large": {Compression: codec.Enum(), UncompressedSize: proto.Uint32(uint32(len(plain) + 1))},
			"over the limit": {Compression: codec.Enum(), UncompressedSize: proto.Uint32(2 << 20)},
			"no size":        {Compression: codec.Enum()},
		} {
			if _, err := pulsarpb.Decompress(md, c, 1<<20); !errors.Is(err, pulsarpb.ErrMalformed) {
				t.Errorf("%s, %s: %v, want ErrMalformed", codec, name, err)
			}
		}
		if _, err := pulsarpb.Decompress(md, []byte("not compressed at all"), 1<<20); !errors.Is(err, pulsarpb.ErrMalformed) {
			t.Errorf("%s, garbage: %v, want ErrMalformed", codec, err)
		}
	}
}
