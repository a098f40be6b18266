package proto_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/execq/execq/internal/agent/proto"
)

func TestFramesRoundTrip(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	w := proto.NewWriter(&b)
	big := bytes.Repeat([]byte{0xff}, proto.MaxFrame-1)
	if err := w.Write(proto.TData, big); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteJSON(proto.TExit, proto.Exit{Code: 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(proto.TData, nil); err != nil {
		t.Fatal(err)
	}
	r := proto.NewReader(&b)
	f, err := r.Read()
	if err != nil || f.Type != proto.TData || !bytes.Equal(f.Payload, big) {
		t.Fatalf("first frame: %v %v (%d bytes)", f.Type, err, len(f.Payload))
	}
	f, err = r.Read()
	var exit proto.Exit
	if err != nil || f.Type != proto.TExit || f.Decode(&exit) != nil || exit.Code != 3 {
		t.Fatalf("second frame: %v %v %+v", f.Type, err, exit)
	}
	if f, err = r.Read(); err != nil || len(f.Payload) != 0 {
		t.Fatalf("empty frame: %v %v", f, err)
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReaderRefusesBadFrames(t *testing.T) {
	t.Parallel()
	header := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"zero length", header(0), proto.ErrFrameTooLarge},
		{"over MaxFrame", header(proto.MaxFrame + 1), proto.ErrFrameTooLarge},
		{"a length that would allocate 4 GiB", header(1<<32 - 1), proto.ErrFrameTooLarge},
		{"cut within the header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"cut within the payload", append(header(10), 1, 2, 3), io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := proto.NewReader(bytes.NewReader(c.input)).Read()
			if !errors.Is(err, c.want) {
				t.Errorf("Read: %v, want %v", err, c.want)
			}
		})
	}
}

func TestWriterRefusesOversizedPayloads(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	err := proto.NewWriter(&b).Write(proto.TData, make([]byte, proto.MaxFrame))
	if !errors.Is(err, proto.ErrFrameTooLarge) {
		t.Errorf("Write: %v, want ErrFrameTooLarge", err)
	}
	if b.Len() != 0 {
		t.Errorf("%d bytes written for a refused frame", b.Len())
	}
}

func TestDecodeSaysWhichFrame(t *testing.T) {
	t.Parallel()
	err := proto.Frame{Type: proto.TExit, Payload: []byte("{")}.Decode(&proto.Exit{})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(proto.TExit.String())) {
		t.Errorf("Decode: %v, want the frame type named", err)
	}
}
