package main

import (
	"context"
	"net"
	"sync/atomic"
)

// A subscriber outside the inflation sample (--inflate-sample) negotiates
// permessage-deflate and reads every byte the server sends, so TCP
// backpressure is what it would be, but it does not inflate: a
// frameFilter under its WebSocket library drops each compressed data
// message whole. The library then sees a valid stream of the frames that
// remain (control frames, uncompressed messages), answers pings and sees
// the close.
//
// The filter parses what the server sends: the handshake answer up to its
// blank line, then frames (RFC 6455 §5.2):
//
//	byte 0   FIN, RSV1 (compressed, RFC 7692), RSV2, RSV3, opcode
//	byte 1   MASK, payload length 0–125, or 126 (16-bit length follows)
//	         or 127 (64-bit length follows)
//	         4-byte masking key if MASK (never from a server; skipped too)
//	         payload
//
// Whether a frame is dropped is decided at its first byte: a data frame
// (text or binary) with RSV1 set starts a dropped message once the filter
// is armed, and continuation frames follow their message's verdict.
// Control frames (close, ping, pong) may come between the fragments of a
// message and always pass. Messages that began before arm pass whole.

// filterState is where the filter is in the stream.
type filterState uint8

const (
	inHandshake filterState = iota // the HTTP answer, up to "\r\n\r\n"
	inHeader                       // a frame's header
	inPayload                      // a frame's payload
)

const (
	wsFIN  = 0x80
	wsRSV1 = 0x40

	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// frameFilter is one connection's filter. filter is called by the
// connection's reader only (the dial, then the reader goroutine); the
// counters and arm may be used from any goroutine.
type frameFilter struct {
	armed atomic.Bool
	// bytes is what was read from the socket, dropped or not; dropped
	// counts the compressed data messages dropped, passed the data
	// messages let through after arm.
	bytes, dropped, passed atomic.Int64

	state   filterState
	crlf    int      // inHandshake: bytes of "\r\n\r\n" matched
	hdr     [14]byte // inHeader: the header so far
	hlen    int      // bytes in hdr
	need    int      // header length, known from its second byte on
	remain  uint64   // inPayload: payload bytes to go
	drop    bool     // the current frame is dropped
	dropMsg bool     // the current data message is dropped
}

// arm makes the filter drop compressed data messages from the next
// message on. Called once the subscription is live (the welcome, or the
// connect reply, was read through the library).
func (f *frameFilter) arm() { f.armed.Store(true) }

// filter removes the dropped frames' bytes from b, in place, and returns
// the length of what remains. b is the next stretch of the stream; any
// split of the stream into stretches gives the same result.
func (f *frameFilter) filter(b []byte) int {
	w := 0 // bytes of b kept so far, moved to its front
	for i := 0; i < len(b); {
		switch f.state {
		case inHandshake:
			c := b[i]
			i++
			b[w] = c
			w++
			switch {
			case c == "\r\n\r\n"[f.crlf]:
				f.crlf++
			case c == '\r':
				f.crlf = 1
			default:
				f.crlf = 0
			}
			if f.crlf == 4 {
				f.state = inHeader
			}
		case inHeader:
			c := b[i]
			i++
			if f.hlen == 0 {
				f.begin(c)
			}
			f.hdr[f.hlen] = c
			f.hlen++
			if !f.drop {
				b[w] = c
				w++
			}
			if f.hlen == 2 {
				f.need = 2
				if c&0x80 != 0 {
					f.need += 4
				}
				switch c & 0x7f {
				case 126:
					f.need += 2
				case 127:
					f.need += 8
				}
			}
			if f.hlen >= 2 && f.hlen == f.need {
				f.remain = f.payloadLen()
				f.hlen = 0
				if f.remain > 0 {
					f.state = inPayload
				}
			}
		case inPayload:
			n := len(b) - i
			if uint64(n) > f.remain {
				n = int(f.remain)
			}
			if !f.drop {
				if w != i {
					copy(b[w:], b[i:i+n])
				}
				w += n
			}
			i += n
			f.remain -= uint64(n)
			if f.remain == 0 {
				f.state = inHeader
			}
		}
	}
	return w
}

// begin decides, at a frame's first byte, whether the frame is dropped,
// and counts the data messages.
func (f *frameFilter) begin(b0 byte) {
	switch op := b0 & 0x0f; {
	case op >= opClose: // control frames always pass
		f.drop = false
	case op == opContinuation:
		f.drop = f.dropMsg
	default: // the first frame of a data message
		armed := f.armed.Load()
		f.dropMsg = armed && b0&wsRSV1 != 0
		f.drop = f.dropMsg
		switch {
		case f.dropMsg:
			f.dropped.Add(1)
		case armed:
			f.passed.Add(1)
		}
	}
}

// payloadLen reads the payload length from a complete header.
func (f *frameFilter) payloadLen() uint64 {
	switch n := f.hdr[1] & 0x7f; n {
	case 126:
		return uint64(f.hdr[2])<<8 | uint64(f.hdr[3])
	case 127:
		var v uint64
		for _, c := range f.hdr[2:10] {
			v = v<<8 | uint64(c)
		}
		return v
	default:
		return uint64(n)
	}
}

// filterConn is a connection whose reads go through a frameFilter.
type filterConn struct {
	net.Conn
	f *frameFilter
}

// Read reads from the socket until something passes the filter (or the
// read fails), so that a reader never sees an empty read.
func (c *filterConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.f.bytes.Add(int64(n))
		}
		kept := c.f.filter(p[:n])
		if kept > 0 || err != nil || n == 0 {
			return kept, err
		}
	}
}

// filteringDial wraps dial so that its connection's reads go through f.
func filteringDial(dial dialFunc, f *frameFilter) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &filterConn{Conn: conn, f: f}, nil
	}
}
