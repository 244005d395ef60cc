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
