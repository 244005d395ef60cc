package redis

import (
	"encoding/binary"

	"github.com/ThreeDotsLabs/watermill/message"
)

// decodeMetadata decodes the msgpack map of strings watermill-redisstream
// writes as a message's metadata, without reflection: every node decodes
// the metadata of every entry. It handles maps and strings in their
// msgpack encodings up to 16-bit lengths (metadata is small) and reports
// false for anything else, which the Watermill unmarshaller then decodes
// the general way. Where it reports true its result equals that of
// msgpack.Unmarshal (a fuzz test holds it to that).
func decodeMetadata(b []byte) (message.Metadata, bool) {
	if len(b) == 0 {
		return nil, false
	}
	var n int
	switch c := b[0]; {
	case c >= 0x80 && c <= 0x8f: // fixmap
		n, b = int(c&0x0f), b[1:]
	case c == 0xde && len(b) >= 3: // map 16
		n, b = int(binary.BigEndian.Uint16(b[1:3])), b[3:]
	default:
		return nil, false
	}
	md := make(message.Metadata, n)
	for range n {
		k, rest, ok := msgpackString(b)
		if !ok {
			return nil, false
		}
		v, rest, ok := msgpackString(rest)
		if !ok {
			return nil, false
		}
		md[k], b = v, rest
	}
	if len(b) != 0 {
		return nil, false
	}
	return md, true
}

// msgpackString reads one string (fixstr, str 8, str 16).
func msgpackString(b []byte) (string, []byte, bool) {
	if len(b) == 0 {
		return "", nil, false
	}
	var n int
	switch c := b[0]; {
	case c >= 0xa0 && c <= 0xbf:
		n, b = int(c&0x1f), b[1:]
	case c == 0xd9 && len(b) >= 2:
		n, b = int(b[1]), b[2:]
	case c == 0xda && len(b) >= 3:
		n, b = int(binary.BigEndian.Uint16(b[1:3])), b[3:]
	default:
		return "", nil, false
	}
	if len(b) < n {
		return "", nil, false
	}
	return string(b[:n]), b[n:], true
}

// appendMetadata appends md as a msgpack map of strings, the encoding
// watermill-redisstream gives metadata (any msgpack reader, its
// unmarshaller and decodeMetadata included, reads it back).
func appendMetadata(b []byte, md message.Metadata) []byte {
	switch n := len(md); {
	case n < 16:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
	}
	for k, v := range md {
		b = appendMsgpackString(appendMsgpackString(b, k), v)
	}
	return b
}

func appendMsgpackString(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 1<<8:
		b = append(b, 0xd9, byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}
