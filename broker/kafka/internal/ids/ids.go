package ids

import (
	"encoding/base32"
	"math"
	"strings"
)

// An Epoch is the topic's Kafka topic ID (KIP-516), which changes when the
// topic is deleted and created again: ids of the old log then no longer
// resolve. It is spelt as the 16 bytes in lower-case base32hex without
// padding: 26 characters of [0-9a-v], an epoch as the log engine wants
// one ([0-9a-z], at most 32 characters, no '-').
type Epoch [16]byte

var epochEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// Len is the length of every epoch's spelling.
const Len = 26

func (e Epoch) String() string { return strings.ToLower(epochEncoding.EncodeToString(e[:])) }

// IsZero reports whether e is the zero topic ID (none known: a response
// from a Kafka too old to name topics by ID).
func (e Epoch) IsZero() bool { return e == Epoch{} }

// Lo is the position (the engine's Pos.Lo) of the record at offset:
// offset+1, so that the zero position stays before offset 0.
func Lo(offset int64) uint64 { return uint64(offset) + 1 }

// Next is the offset of the first record positioned after lo: lo itself.
// ok is false when lo is beyond every offset (above the largest int64).
func Next(lo uint64) (offset int64, ok bool) {
	if lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}
