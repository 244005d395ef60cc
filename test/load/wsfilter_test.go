package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// wsFrame encodes a server frame (unmasked unless mask): the shortest
// length encoding, or the 64-bit one when long.
func wsFrame(fin, rsv1 bool, op byte, payload []byte, opts ...frameOpt) []byte {
	var o frameOpts
	for _, f := range opts {
		f(&o)
	}
	b0 := op
	if fin {
		b0 |= wsFIN
	}
	if rsv1 {
		b0 |= wsRSV1
	}
	b := []byte{b0, 0}
	var maskBit byte
	if o.mask {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case o.long || n > 0xffff:
		b[1] = maskBit | 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n > 125:
		b[1] = maskBit | 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = maskBit | byte(n)
	}
	if o.mask {
		b = append(b, 1, 2, 3, 4)
	}
	return append(b, payload...)
}

type frameOpts struct{ long, mask bool }

type frameOpt func(*frameOpts)

func long(o *frameOpts) { o.long = true }
func mask(o *frameOpts) { o.mask = true }

const handshake = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n\r\n"

// TestFrameFilter feeds a stream (a handshake answer, a welcome, arm,
// then the case's frames) through the filter split every possible way
// into two pieces and in pieces of several fixed sizes: what comes out
// is the stream without the dropped messages, and the counts match.
func TestFrameFilter(t *testing.T) {
	text := func(s string) []byte { return []byte(s) }
	big := bytes.Repeat([]byte("m"), 300)     // 16-bit length
	huge := bytes.Repeat([]byte("h"), 70_000) // 64-bit length
	welcome := wsFrame(true, false, opText, text(`{"type":"welcome"}`))
	ping := wsFrame(true, false, opPing, text("p1"))
	for _, c := range []struct {
		name    string
		before  [][]byte // after the welcome, before arm (all pass)
		frames  [][]byte // after arm
		keep    []bool   // which of frames pass
		dropped int64
		passed  int64
	}{
		{
			name:   "uncompressed messages pass",
			frames: [][]byte{wsFrame(true, false, opText, text("a")), wsFrame(true, false, opBinary, big), wsFrame(true, false, opText, nil)},
			keep:   []bool{true, true, true},
			passed: 3,
		},
		{
			name:    "compressed messages are dropped, 7-, 16- and 64-bit lengths",
			frames:  [][]byte{wsFrame(true, true, opText, text("abc")), wsFrame(true, true, opText, big), wsFrame(true, true, opBinary, huge), wsFrame(true, false, opText, text("z"))},
			keep:    []bool{false, false, false, true},
			dropped: 3, passed: 1,
		},
		{
			name:    "a 64-bit length for a small payload, and an empty compressed frame",
			frames:  [][]byte{wsFrame(true, true, opText, text("x"), long), wsFrame(true, true, opText, nil), wsFrame(true, false, opText, text("y"), long)},
			keep:    []bool{false, false, true},
			dropped: 2, passed: 1,
		},
		{
			name: "a fragmented compressed message with a ping between its fragments",
			frames: [][]byte{
				wsFrame(false, true, opText, big), ping, wsFrame(false, false, opContinuation, text("more")),
				wsFrame(true, false, opContinuation, huge), wsFrame(true, false, opPong, nil),
			},
			keep:    []bool{false, true, false, false, true},
			dropped: 1,
		},
		{
			name: "a fragmented uncompressed message passes whole, the close too",
			frames: [][]byte{
				wsFrame(false, false, opText, text("one ")), ping, wsFrame(true, false, opContinuation, text("two")),
				wsFrame(true, false, opClose, []byte{0x03, 0xe8}),
			},
			keep:   []bool{true, true, true, true},
			passed: 1,
		},
		{
			name:   "messages compressed before arm pass, and one that began before it ends whole",
			before: [][]byte{wsFrame(true, true, opText, big), wsFrame(false, true, opText, text("begun"))},
			frames: [][]byte{
				wsFrame(true, false, opContinuation, text("ended")), wsFrame(true, true, opText, text("after")),
			},
			keep:    []bool{true, false},
			dropped: 1,
		},
		{
			name:    "a masked frame (never from a server) is skipped by its length too",
			frames:  [][]byte{wsFrame(true, true, opText, big, mask), wsFrame(true, false, opText, text("ok"), mask)},
			keep:    []bool{false, true},
			dropped: 1, passed: 1,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			head := append([]byte(handshake), welcome...)
			for _, b := range c.before {
				head = append(head, b...)
			}
			var tail, want []byte
			for i, b := range c.frames {
				tail = append(tail, b...)
				if c.keep[i] {
					want = append(want, b...)
				}
			}
			check := func(how string, pieces [][]byte) {
				t.Helper()
				f := &frameFilter{}
				h := bytes.Clone(head)
				got := h[:f.filter(h)]
				if !bytes.Equal(got, head) {
					t.Fatalf("%s: before arm, %d of %d bytes passed", how, len(got), len(head))
				}
				f.arm()
				got = nil
				for _, p := range pieces {
					p = bytes.Clone(p)
					got = append(got, p[:f.filter(p)]...)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: %d bytes passed, want %d:\n got %.80q\nwant %.80q", how, len(got), len(want), got, want)
				}
				if d, p := f.dropped.Load(), f.passed.Load(); d != c.dropped || p != c.passed {
					t.Fatalf("%s: dropped %d, passed %d; want %d, %d", how, d, p, c.dropped, c.passed)
				}
				if f.state != inHeader || f.hlen != 0 {
					t.Fatalf("%s: the filter ends in state %d with %d header bytes, not between frames", how, f.state, f.hlen)
				}
			}
			for cut := range len(tail) + 1 {
				if len(tail) > 1000 && cut > 300 && cut < len(tail)-300 && cut%997 != 0 {
					continue // the huge payload's middle: a sample of cuts
				}
				check("cut at "+itoa(cut), [][]byte{tail[:cut], tail[cut:]})
			}
			for _, size := range []int{1, 2, 3, 7, 13, 4096} {
				var pieces [][]byte
				for b := tail; len(b) > 0; b = b[min(size, len(b)):] {
					pieces = append(pieces, b[:min(size, len(b))])
				}
				check("pieces of "+itoa(size), pieces)
			}
		})
	}
}

func itoa(n int) string { return string(appendInt(nil, int64(n))) }

// TestFilterConn: a connection through the filter never returns an
// empty read while the socket has more, and counts every byte read.
func TestFilterConn(t *testing.T) {
	server, client := net.Pipe()
	var stream []byte
	stream = append(stream, handshake...)
	for range 50 {
		stream = append(stream, wsFrame(true, true, opText, bytes.Repeat([]byte("c"), 200))...)
	}
	last := wsFrame(true, false, opText, []byte("last"))
	stream = append(stream, last...)
	go func() {
		for b := stream; len(b) > 0; b = b[min(64, len(b)):] { // small writes: many reads dropped whole
			if _, err := server.Write(b[:min(64, len(b))]); err != nil {
				return
			}
		}
		server.Close()
	}()
	f := &frameFilter{}
	f.arm()
	conn, err := filteringDial(func(context.Context, string, string) (net.Conn, error) { return client, nil }, f)(context.Background(), "tcp", "x")
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if n == 0 && err == nil {
			t.Fatal("an empty read")
		}
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := append([]byte(handshake), last...); !bytes.Equal(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}
	if f.bytes.Load() != int64(len(stream)) || f.dropped.Load() != 50 || f.passed.Load() != 1 {
		t.Errorf("bytes %d of %d, dropped %d, passed %d", f.bytes.Load(), len(stream), f.dropped.Load(), f.passed.Load())
	}
}
