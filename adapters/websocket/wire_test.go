package websocket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// maskedFrame builds a client frame: FIN per fin, the given first-byte
// flags and opcode, masked with a fixed key.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

func TestParseHeader(t *testing.T) {
	long := make([]byte, 70000)
	cases := []struct {
		name    string
		in      []byte
		ok      bool
		op      byte
		fin     bool
		length  int64
		size    int
		wantErr string
	}{
		{name: "text, 7-bit length", in: maskedFrame(true, opText, []byte("hi")), ok: true, op: opText, fin: true, length: 2, size: 6},
		{name: "binary, 16-bit length", in: maskedFrame(true, opBinary, make([]byte, 300)), ok: true, op: opBinary, fin: true, length: 300, size: 8},
		{name: "64-bit length", in: maskedFrame(false, opText, long), ok: true, op: opText, length: 70000, size: 14},
		{name: "continuation", in: maskedFrame(true, opContinuation, nil), ok: true, op: opContinuation, fin: true, size: 6},
		{name: "one byte", in: []byte{0x81}},
		{name: "16-bit length cut", in: []byte{0x81, 0x80 | 126, 1}},
		{name: "64-bit length cut", in: []byte{0x81, 0x80 | 127, 0, 0, 0}},
		{name: "mask key cut", in: []byte{0x81, 0x82, 1, 2, 3}},
		{name: "reserved bit, header cut", in: []byte{0xC1, 0x80}},
		{name: "RSV1: compressed, for the connection to judge", in: []byte{0x80 | 0x40 | opText, 0x80, 0, 0, 0, 0}, ok: true, op: opText, fin: true, size: 6},
		{name: "RSV2", in: []byte{0x80 | 0x20 | opText, 0x80, 0, 0, 0, 0}, wantErr: "RSV2 or RSV3"},
		{name: "RSV3", in: []byte{0x80 | 0x10 | opBinary, 0x80, 0, 0, 0, 0}, wantErr: "RSV2 or RSV3"},
		{name: "RSV1 on a ping", in: []byte{0x80 | 0x40 | opPing, 0x80, 0, 0, 0, 0}, wantErr: "RSV1 set on a control"},
		{name: "RSV1 on a continuation", in: []byte{0x40 | opContinuation, 0x80, 0, 0, 0, 0}, wantErr: "RSV1 set on a control or continuation"},
		{name: "opcode 3", in: []byte{0x83, 0x80, 0, 0, 0, 0}, wantErr: "unknown opcode"},
		{name: "opcode 0xB", in: []byte{0x8B, 0x80, 0, 0, 0, 0}, wantErr: "unknown opcode"},
		{name: "unmasked", in: []byte{0x81, 0x02, 'h', 'i'}, wantErr: "not masked"},
		{name: "64-bit length with top bit", in: []byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, wantErr: "most significant bit"},
		{name: "fragmented ping", in: maskedFrame(false, opPing, nil), wantErr: "fragmented control"},
		{name: "ping of 126 bytes", in: maskedFrame(true, opPing, make([]byte, 126)), wantErr: "over 125"},
		{name: "close of 125 bytes", in: maskedFrame(true, opClose, make([]byte, 125)), ok: true, op: opClose, fin: true, length: 125, size: 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, ok, err := parseHeader(tc.in)
			if tc.wantErr != "" {
				var pe errProtocol
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a protocol error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ok != tc.ok {
				t.Fatalf("ok, err = %v, %v; want %v, nil", ok, err, tc.ok)
			}
			if !ok {
				return
			}
			if h.op != tc.op || h.fin != tc.fin || h.length != tc.length || h.size != tc.size {
				t.Fatalf("header = %+v; want op %d fin %v length %d size %d", h, tc.op, tc.fin, tc.length, tc.size)
			}
		})
	}
}

func TestUnmask(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for n := 0; n < 40; n++ {
		for pos := 0; pos < 4; pos++ {
			in := bytes.Repeat([]byte{0xAA}, n)
			want := make([]byte, n)
			for i := range in {
				want[i] = in[i] ^ key[(pos+i)&3]
			}
			unmask(in, key, pos)
			if !bytes.Equal(in, want) {
				t.Fatalf("n=%d pos=%d: %x, want %x", n, pos, in, want)
			}
		}
	}
}

func TestAppendHeader(t *testing.T) {
	for _, n := range []int{0, 125, 126, 0xFFFF, 0x10000, 1 << 20} {
		b := appendHeader(nil, opText, n)
		if len(b) != headerLen(n) || b[0] != 0x80|opText {
			t.Fatalf("n=%d: header %x", n, b)
		}
		// A server frame parses like a client frame once a mask bit and
		// key are added.
		masked := append([]byte{b[0], b[1] | 0x80}, b[2:]...)
		masked = append(masked, 0, 0, 0, 0)
		h, ok, err := parseHeader(masked)
		if err != nil || !ok || h.length != int64(n) {
			t.Fatalf("n=%d: parsed %+v %v %v", n, h, ok, err)
		}
	}
}

func TestCloseFrames(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes: cut on a rune boundary
	b := appendClose(nil, 4003, long)
	if len(b) != 2+maxControlPayload-1 || b[1] != maxControlPayload-1 {
		t.Fatalf("close frame of %d bytes, length byte %d", len(b), b[1])
	}
	if code, err := parseClose(b[2:]); err != nil || code != 4003 {
		t.Fatalf("parseClose = %d, %v", code, err)
	}
	cases := []struct {
		name    string
		payload []byte
		code    uint16
		err     bool
		utf8    bool
	}{
		{name: "empty", payload: nil, code: closeNoStatus},
		{name: "1000 with reason", payload: []byte{0x03, 0xE8, 'o', 'k'}, code: 1000},
		{name: "4999", payload: []byte{0x13, 0x87}, code: 4999},
		{name: "one byte", payload: []byte{0x03}, err: true},
		{name: "999", payload: []byte{0x03, 0xE7}, err: true},
		{name: "1005 is for reporting only", payload: []byte{0x03, 0xED}, err: true},
		{name: "1006 is for reporting only", payload: []byte{0x03, 0xEE}, err: true},
		{name: "5000", payload: []byte{0x13, 0x88}, err: true},
		{name: "reason not UTF-8", payload: []byte{0x03, 0xE8, 0xff}, err: true, utf8: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, err := parseClose(tc.payload)
			if (err != nil) != tc.err || (err == nil && code != tc.code) {
				t.Fatalf("parseClose = %d, %v", code, err)
			}
			if tc.utf8 != errors.Is(err, errInvalidUTF8) {
				t.Fatalf("err = %v, want invalid UTF-8: %v", err, tc.utf8)
			}
		})
	}
}

// TestTextUTF8Fragments checks a fragmented text message's UTF-8 the way
// the reader does, fragment by fragment, against utf8.Valid of the whole:
// every byte string of up to 4 bytes over values at the edges of the
// UTF-8 ranges, cut into fragments in every way. A fragment may only pass
// if what came so far can still be completed into valid UTF-8 (the
// reader fails as early as it can).
func TestTextUTF8Fragments(t *testing.T) {
	edges := []byte{0x41, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF}
	msg := make([]byte, 0, 4)
	var walk func()
	walk = func() {
		if len(msg) > 0 {
			checkFragments(t, msg)
		}
		if len(msg) == cap(msg) {
			return
		}
		for _, b := range edges {
			msg = append(msg, b)
			walk()
			msg = msg[:len(msg)-1]
		}
	}
	walk()
	// Longer messages whose sequences straddle the cuts.
	for _, s := range []string{"a€b", "𝄞𝄞", "é\u07ff\uffff\U0010ffff", "abc\xe2\x82", "€\xed\xa0\x80", "\xf0\x9f\x98"} {
		checkFragments(t, []byte(s))
	}
}

// checkFragments feeds msg to a reader cut at every subset of its byte
// boundaries.
func checkFragments(t *testing.T, msg []byte) {
	t.Helper()
	want := utf8.Valid(msg)
	for cuts := 0; cuts < 1<<(len(msg)-1); cuts++ {
		c := &conn{text: true}
		got, start := true, 0
		for i := 1; i <= len(msg) && got; i++ {
			final := i == len(msg)
			if !final && cuts&(1<<(i-1)) == 0 {
				continue
			}
			c.frag = append(c.frag, msg[start:i]...)
			start = i
			got = c.fragUTF8(final)
			if got && !final && !completable(c.frag[c.checked:]) {
				t.Fatalf("%x cut %b: passed %x, which nothing can complete", msg, cuts, c.frag)
			}
		}
		if got != want {
			t.Fatalf("%x cut %b: checked by fragment %v, utf8.Valid %v", msg, cuts, got, want)
		}
	}
}

// completable reports whether some bytes appended to the unfinished
// sequence b make it valid UTF-8.
func completable(b []byte) bool {
	if len(b) == 0 || utf8.Valid(b) {
		return true
	}
	for c := 0x80; c <= 0xBF; c++ {
		if completable1(append(append([]byte(nil), b...), byte(c))) {
			return true
		}
	}
	return false
}

func completable1(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	if len(b) >= utf8.UTFMax {
		return false
	}
	return utf8.Valid(append(b, 0x80)) || utf8.Valid(append(b, 0x80, 0x80))
}

// TestTextFrameAllocs: checking a text frame's UTF-8 allocates nothing.
func TestTextFrameAllocs(t *testing.T) {
	frame := maskedFrame(true, opText, []byte(`{"v":1,"type":"ping","ref":"é€𝄞"}`))
	buf := make([]byte, len(frame))
	c := &conn{limit: 1024}
	allocs := testing.AllocsPerRun(100, func() {
		copy(buf, frame) // the reader unmasks in place
		c.input(buf)
	})
	if allocs != 0 || c.closing {
		t.Fatalf("%v allocations per text frame (closing %v), want 0", allocs, c.closing)
	}
}
