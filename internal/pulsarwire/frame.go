// Package pulsarwire reads and writes the frames of Apache Pulsar's binary
// protocol:
//
//	simple:  [u32 total][u32 command size][BaseCommand]
//	payload: [u32 total][u32 command size][BaseCommand][entry]
//
// where total counts every byte after itself and the entry, carried by SEND
// and MESSAGE, is [u16 0x0e01][u32 CRC32C][u32 metadata size][MessageMetadata][payload]
// (api/pulsar_meta.proto), the layout Strata stores. All integers are
// big-endian. Every size read from the wire is checked against the bytes
// and the limits before anything is allocated for it.
package pulsarwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/strata-mq/strata/api/pulsarpb"
)

// FrameOverhead is what a payload frame adds to its entry besides the
// command: Pulsar clients accept frames up to the announced maximum
// message size plus this much.
const FrameOverhead = 10 << 10

// MaxCommandSize bounds the command part of a frame: commands are small
// (names, ids, a schema); only entries are large.
const MaxCommandSize = 4 << 20

// ErrMalformed is wrapped by every decoding error: the peer sent a frame
// that is not Pulsar's protocol, or breaks its rules.
var ErrMalformed = errors.New("pulsar frame malformed")

// Frame is one decoded frame: the command and, for SEND and MESSAGE, the
// entry that follows it (nil otherwise).
type Frame struct {
	Cmd   *pulsarpb.BaseCommand
	Entry []byte
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Read reads one frame of at most maxFrame bytes (after the size field).
// The returned error wraps ErrMalformed for a frame that breaks the
// protocol, or is the reader's error (io.EOF between frames).
func Read(r *bufio.Reader, maxFrame int) (Frame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	total := binary.BigEndian.Uint32(hdr[:])
	if total < 4 || uint64(total) > uint64(maxFrame) {
		return Frame{}, malformed("frame of %d bytes (allowed: 4 to %d)", total, maxFrame)
	}
	buf := make([]byte, total)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return Decode(buf)
}

// Decode decodes the bytes of one frame after its total size field: the
// command size, the command and the entry, if any.
func Decode(buf []byte) (Frame, error) {
	if len(buf) < 4 {
		return Frame{}, malformed("frame of %d bytes has no command size", len(buf))
	}
	cmdSize := binary.BigEndian.Uint32(buf)
	if uint64(cmdSize) > uint64(len(buf)-4) {
		return Frame{}, malformed("command of %d bytes in a frame of %d", cmdSize, len(buf))
	}
	if cmdSize > MaxCommandSize {
		return Frame{}, malformed("command of %d bytes (max %d)", cmdSize, MaxCommandSize)
	}
	cmd := &pulsarpb.BaseCommand{}
	if err := proto.Unmarshal(buf[4:4+cmdSize], cmd); err != nil {
		return Frame{}, malformed("command: %v", err)
	}
	if err := Check(cmd); err != nil {
		return Frame{}, err
	}
	f := Frame{Cmd: cmd}
	rest := buf[4+cmdSize:]
	switch cmd.GetType() {
	case pulsarpb.BaseCommand_SEND, pulsarpb.BaseCommand_MESSAGE:
		entry, err := checkEntry(rest)
		if err != nil {
			return Frame{}, err
		}
		f.Entry = entry
	default:
		if len(rest) > 0 {
			return Frame{}, malformed("%d bytes after a %s command", len(rest), cmd.GetType())
		}
	}
	return f, nil
}

// checkEntry verifies the entry of a payload frame: magic, checksum and
// metadata size, and that the metadata decodes. A MESSAGE may carry broker
// entry metadata ([0x0e02][u32 size][...]) before it, which is skipped.
func checkEntry(b []byte) ([]byte, error) {
	if len(b) >= 6 && binary.BigEndian.Uint16(b) == brokerEntryMagic {
		n := binary.BigEndian.Uint32(b[2:])
		if uint64(n) > uint64(len(b)-6) {
			return nil, malformed("broker entry metadata of %d bytes in %d", n, len(b)-6)
		}
		b = b[6+n:]
	}
	if _, _, err := pulsarpb.DecodeEntry(b); err != nil {
		return nil, malformed("entry: %v", err)
	}
	return b, nil
}

const brokerEntryMagic = 0x0e02

// Check reports a command whose type names a sub-command it does not carry
// (the sub-command's field number is the type's), or a type this package
// declares no sub-command for.
func Check(cmd *pulsarpb.BaseCommand) error {
	m := cmd.ProtoReflect()
	fd := m.Descriptor().Fields().ByNumber(protoreflect.FieldNumber(cmd.GetType()))
	if fd == nil || fd.Message() == nil || !m.Has(fd) {
		return malformed("command type %s without its %s field", cmd.GetType(), cmd.GetType())
	}
	return nil
}

// Append appends the frame of cmd, followed by entry when it is not nil,
// to dst.
func Append(dst []byte, cmd *pulsarpb.BaseCommand, entry []byte) ([]byte, error) {
	n := proto.Size(cmd)
	total := 4 + n + len(entry)
	if total > 1<<31 {
		return dst, fmt.Errorf("pulsar frame of %d bytes", total)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(total))
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, cmd)
	if err != nil {
		return dst, fmt.Errorf("pulsar command %s: %w", cmd.GetType(), err)
	}
	return append(dst, entry...), nil
}
