package pulsarwire_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/pulsarwire"
)

func sendFrame(t testing.TB) []byte {
	entry, err := pulsarpb.EncodeEntry(&pulsarpb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(7), PublishTime: proto.Uint64(1)}, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := pulsarwire.Append(nil, &pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_SEND.Enum(),
		Send: &pulsarpb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: proto.Uint64(7)}}, entry)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pingFrame(t testing.TB) []byte {
	b, err := pulsarwire.Append(nil, &pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_PING.Enum(), Ping: &pulsarpb.CommandPing{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func read(b []byte) (pulsarwire.Frame, error) {
	return pulsarwire.Read(bufio.NewReader(bytes.NewReader(b)), 1<<20)
}

func TestRoundTrip(t *testing.T) {
	stream := append(pingFrame(t), sendFrame(t)...)
	r := bufio.NewReader(bytes.NewReader(stream))
	f, err := pulsarwire.Read(r, 1<<20)
	if err != nil || f.Cmd.GetType() != pulsarpb.BaseCommand_PING || f.Entry != nil {
		t.Fatalf("first frame: %v %v", f.Cmd, err)
	}
	f, err = pulsarwire.Read(r, 1<<20)
	if err != nil || f.Cmd.GetSend().GetSequenceId() != 7 {
		t.Fatalf("second frame: %v %v", f.Cmd, err)
	}
	md, payload, err := pulsarpb.DecodeEntry(f.Entry)
	if err != nil || string(payload) != "hello" || md.GetProducerName() != "p" {
		t.Fatalf("entry: %v %q %v", md, payload, err)
	}
	if _, err := pulsarwire.Read(r, 1<<20); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestBadFrames: every way a frame can break the protocol is an
// ErrMalformed naming what is wrong.
func TestBadFrames(t *testing.T) {
	send := sendFrame(t)
	cmdSize := int(binary.BigEndian.Uint32(send[4:]))
	entryAt := 8 + cmdSize
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(send)) }
	noType, _ := proto.Marshal(&pulsarpb.CommandPing{})
	cases := map[string][]byte{
		"oversize": binary.BigEndian.AppendUint32(nil, 2<<20),
		"tiny":     binary.BigEndian.AppendUint32(nil, 2),
		"command larger than frame": mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[4:], uint32(len(b)))
			return b
		}),
		"bad magic": mutate(func(b []byte) []byte { b[entryAt] = 0x0f; return b }),
		"bad crc":   mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"no entry": mutate(func(b []byte) []byte {
			b = b[:entryAt]
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
			return b
		}),
		"missing required field": func() []byte {
			b, _ := proto.MarshalOptions{AllowPartial: true}.Marshal(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_SEND.Enum(), Send: &pulsarpb.CommandSend{ProducerId: proto.Uint64(1)}})
			return frameOf(b)
		}(),
		"type without its command": func() []byte {
			b, _ := proto.Marshal(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_FLOW.Enum()})
			return frameOf(b)
		}(),
		"unknown command type": frameOf(append([]byte{0x08, 0x63}, noType...)),
		"trailing bytes": func() []byte {
			b := append(pingFrame(t), 1, 2, 3)
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
			return b
		}(),
	}
	for name, b := range cases {
		if _, err := read(b); !errors.Is(err, pulsarwire.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := read(send[:len(send)-3]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

func frameOf(cmd []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(4+len(cmd)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(cmd)))
	return append(b, cmd...)
}

// FuzzRead: no input makes the decoder panic or return a frame that does
// not re-encode; the corpus in testdata/fuzz keeps what fuzzing found.
func FuzzRead(f *testing.F) {
	f.Add(sendFrame(f))
	f.Add(pingFrame(f))
	f.Add(append(pingFrame(f), sendFrame(f)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			fr, err := pulsarwire.Read(r, 1<<20)
			if err != nil {
				return
			}
			if _, err := pulsarwire.Append(nil, fr.Cmd, fr.Entry); err != nil {
				t.Fatalf("a decoded frame does not encode: %v", err)
			}
		}
	})
}
