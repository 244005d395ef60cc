package websocket

import (
	"encoding/binary"
	"unicode/utf8"
)

// RFC 6455 framing, the part a server needs after the upgrade: parsing the
// client's masked frames and writing unmasked ones. The upgrade handshake
// itself stays with gofiber/contrib/websocket. Owning the frames lets an idle
// connection hold no goroutine and no buffer (see conn.go).

// Opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// rsv1Bit marks a compressed message (RFC 7692), or'ed into an opcode
// given to appendHeader.
const rsv1Bit = 0x40

// Close codes the adapter itself sends (RFC 6455 §7.4.1).
const (
	closeNormal        = 1000
	closeProtocolError = 1002
	closeInvalidData   = 1007
	closeNoStatus      = 1005 // reported, never sent: the close frame had no code
)

// maxControlPayload bounds ping, pong and close payloads (§5.5).
const maxControlPayload = 125

// maxHeader is the longest frame header: 2 bytes, 8 of extended length and
// 4 of mask key.
const maxHeader = 14

// errProtocol is a frame that breaks RFC 6455; the connection is closed
// with 1002 and the reason.
type errProtocol string

func (e errProtocol) Error() string { return "websocket protocol error: " + string(e) }

// errInvalidData is a payload its type forbids, text that is not UTF-8
// (§8.1); the connection is closed with 1007 and the reason.
type errInvalidData string

func (e errInvalidData) Error() string { return string(e) }

// Reasons for 1007.
const (
	errInvalidUTF8 = errInvalidData("close reason is not valid UTF-8")
	errTextUTF8    = errInvalidData("text message is not valid UTF-8")
)

// header is a parsed frame header.
type header struct {
	fin    bool
	rsv1   bool // compressed (permessage-deflate); checked by the connection, which knows whether it was negotiated
	op     byte
	length int64 // payload bytes
	mask   [4]byte
	size   int // header bytes
}

func (h header) control() bool { return h.op&0x8 != 0 }

// parseHeader parses the header of a client frame at the start of b. It
// returns ok false when b does not yet hold the whole header. A frame
// that breaks the protocol is returned with ok true, its size and length
// as declared, and an errProtocol: the caller can skip it and keep reading
// for the client's close frame.
func parseHeader(b []byte) (h header, ok bool, err error) {
	if len(b) < 2 {
		return h, false, nil
	}
	b0, b1 := b[0], b[1]
	h.fin = b0&0x80 != 0
	h.rsv1 = b0&0x40 != 0
	h.op = b0 & 0x0F
	h.size = 2
	switch n := b1 & 0x7F; n {
	case 126:
		h.size += 2
		if len(b) < h.size {
			return h, false, nil
		}
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		h.size += 8
		if len(b) < h.size {
			return h, false, nil
		}
		v := binary.BigEndian.Uint64(b[2:])
		if v>>63 != 0 {
			return h, false, errProtocol("frame length has its most significant bit set")
		}
		h.length = int64(v)
	default:
		h.length = int64(n)
	}
	masked := b1&0x80 != 0
	if masked {
		if len(b) < h.size+4 {
			return h, false, nil
		}
		copy(h.mask[:], b[h.size:])
		h.size += 4
	}
	switch {
	case b0&0x30 != 0:
		err = errProtocol("RSV2 or RSV3 set: no extension uses them")
	case h.rsv1 && (h.control() || h.op == opContinuation):
		err = errProtocol("RSV1 set on a control or continuation frame")
	case h.op > opBinary && h.op < opClose, h.op > opPong:
		err = errProtocol("unknown opcode")
	case !masked:
		err = errProtocol("client frame not masked")
	case h.control() && !h.fin:
		err = errProtocol("fragmented control frame")
	case h.control() && h.length > maxControlPayload:
		err = errProtocol("control frame payload over 125 bytes")
	}
	return h, true, err
}

// unmask XORs b with the mask key, starting at key offset pos.
func unmask(b []byte, key [4]byte, pos int) {
	k := [4]byte{key[pos&3], key[(pos+1)&3], key[(pos+2)&3], key[(pos+3)&3]}
	k32 := binary.LittleEndian.Uint32(k[:])
	k64 := uint64(k32) | uint64(k32)<<32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= k[i&3]
	}
}

// appendHeader appends an unmasked, final server frame header for a payload
// of n bytes. op may carry rsv1Bit: a compressed message.
func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// appendClose appends a whole close frame carrying code and reason, the
// reason cut to fit the 125-byte control payload on a rune boundary.
func appendClose(b []byte, code uint16, reason string) []byte {
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	b = appendHeader(b, opClose, 2+len(reason))
	b = binary.BigEndian.AppendUint16(b, code)
	return append(b, reason...)
}

// parseClose reads a client's close payload: its code (closeNoStatus when
// empty) and whether the frame is valid (§5.5.1, §7.4).
func parseClose(p []byte) (code uint16, err error) {
	switch {
	case len(p) == 0:
		return closeNoStatus, nil
	case len(p) == 1:
		return 0, errProtocol("close payload of one byte")
	}
	code = binary.BigEndian.Uint16(p)
	if !validCloseCode(code) {
		return 0, errProtocol("invalid close code")
	}
	if !utf8.Valid(p[2:]) {
		return 0, errInvalidUTF8
	}
	return code, nil
}

// utf8Prefix checks b, the part of a text message not yet checked, when
// more of the message may follow: b must be valid UTF-8 except that it may
// end in the start of a sequence that the next fragment can complete. It
// returns how many bytes are complete and checked (the rest is that
// started sequence, at most 3 bytes, to check again with the bytes that
// follow it) and false as soon as no continuation could make b valid.
func utf8Prefix(b []byte) (n int, ok bool) {
	n = len(b)
	// Find a sequence cut short at the end: a lead byte within the last 3
	// bytes whose sequence is longer than what follows it.
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if b[i] < 0x80 {
			break // ASCII: nothing is cut short
		}
		if b[i] < 0xC0 {
			continue // a continuation byte: look further back for its lead
		}
		if need := seqLen(b[i]); need > len(b)-i {
			if !validStart(b[i:]) {
				return 0, false
			}
			n = i
		}
		break
	}
	return n, utf8.Valid(b[:n])
}

// seqLen is the length of the UTF-8 sequence that lead starts (RFC 3629
// §4), or 0 if no valid sequence starts with it.
func seqLen(lead byte) int {
	switch {
	case lead < 0x80:
		return 1
	case lead >= 0xC2 && lead <= 0xDF:
		return 2
	case lead >= 0xE0 && lead <= 0xEF:
		return 3
	case lead >= 0xF0 && lead <= 0xF4:
		return 4
	}
	return 0
}

// validStart reports whether b, shorter than the sequence its first byte
// starts, can still be completed into a valid one: its second byte in the
// range the lead allows (which rules out overlongs, surrogates and code
// points past U+10FFFF) and any third a continuation byte.
func validStart(b []byte) bool {
	if len(b) < 2 {
		return true
	}
	lo, hi := byte(0x80), byte(0xBF)
	switch b[0] {
	case 0xE0:
		lo = 0xA0
	case 0xED:
		hi = 0x9F
	case 0xF0:
		lo = 0x90
	case 0xF4:
		hi = 0x8F
	}
	if b[1] < lo || b[1] > hi {
		return false
	}
	return len(b) < 3 || (b[2] >= 0x80 && b[2] <= 0xBF)
}

// validCloseCode reports whether a peer may send code (§7.4.1-2): the
// defined codes except those reserved for reporting, and 3000-4999.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// headerLen is the size of a server frame header for n payload bytes.
func headerLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return 10
}
