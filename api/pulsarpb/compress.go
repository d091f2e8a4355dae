package pulsarpb

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Decompress returns the uncompressed payload of an entry whose metadata
// names a compression codec (the payload itself when it names none), as
// Pulsar clients compress it: LZ4 and Snappy as raw blocks, ZLIB as a zlib
// stream, ZSTD as a frame. The metadata's uncompressed size is required, at
// most limit, and must be exactly what the payload expands to: nothing is
// allocated beyond it.
func Decompress(md *MessageMetadata, payload []byte, limit int) ([]byte, error) {
	codec := md.GetCompression()
	if codec == CompressionType_NONE {
		return payload, nil
	}
	if md.UncompressedSize == nil {
		return nil, fmt.Errorf("%w: %s entry without uncompressed_size", ErrMalformed, codec)
	}
	n := int(md.GetUncompressedSize())
	if n > limit {
		return nil, fmt.Errorf("%w: uncompressed size %d above the %d-byte limit", ErrMalformed, n, limit)
	}
	var out []byte
	var err error
	switch codec {
	case CompressionType_LZ4:
		out = make([]byte, n)
		var k int
		if k, err = lz4.UncompressBlock(payload, out); err == nil {
			out = out[:k]
		}
	case CompressionType_ZLIB:
		var r io.ReadCloser
		if r, err = zlib.NewReader(bytes.NewReader(payload)); err == nil {
			out, err = io.ReadAll(io.LimitReader(r, int64(n)+1))
			r.Close()
		}
	case CompressionType_ZSTD:
		out, err = zstdDec().DecodeAll(payload, make([]byte, 0, n))
	case CompressionType_SNAPPY:
		var dl int
		if dl, err = s2.DecodedLen(payload); err == nil {
			if dl != n {
				return nil, fmt.Errorf("%w: snappy payload of %d bytes, metadata says %d", ErrMalformed, dl, n)
			}
			out, err = s2.Decode(make([]byte, n), payload)
		}
	default:
		return nil, fmt.Errorf("%w: unknown compression %d", ErrMalformed, codec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s payload: %v", ErrMalformed, codec, err)
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: %s payload expands to %d bytes, metadata says %d", ErrMalformed, codec, len(out), n)
	}
	return out, nil
}

var zstdDec = sync.OnceValue(func() *zstd.Decoder {
	// DecodeAll never grows the output past the capacity it is given (the
	// announced size), whatever the frame claims.
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic(err) // only for invalid options
	}
	return d
})
