package ids

import (
	"encoding/base32"
	"strconv"
	"strings"
)

// An Epoch is the topic's Kafka topic ID (KIP-516), which changes when the
// topic is deleted and created again: ids of the old log then no longer
// resolve. It is written as the 16 bytes in lower-case base32hex without
// padding (26 characters of [0-9a-v]).
type Epoch [16]byte

var epochEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

const epochLen = 26

func (e Epoch) String() string { return strings.ToLower(epochEncoding.EncodeToString(e[:])) }

// IsZero reports whether e is the zero topic ID (none known).
func (e Epoch) IsZero() bool { return e == Epoch{} }

// ParseEpoch reads an epoch as String writes it, and only that spelling.
func ParseEpoch(s string) (Epoch, bool) {
	var e Epoch
	if len(s) != epochLen {
		return e, false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'v') {
			return e, false
		}
	}
	n, err := epochEncoding.DecodeString(strings.ToUpper(s))
	if err != nil || len(n) != len(e) {
		return e, false
	}
	copy(e[:], n)
	if e.String() != s { // one id, one spelling
		return e, false
	}
	return e, true
}

// Position is a parsed message id: the topic's epoch and the record's
// offset in the topic's one partition.
type Position struct {
	Epoch  Epoch
	Offset int64
}

// Format is the message id of the record at offset in epoch:
// "<epoch>-<offset>", URL-safe ([0-9a-v-]).
func Format(e Epoch, offset int64) string {
	return e.String() + "-" + strconv.FormatInt(offset, 10)
}

// Parse reads a message id made by Format.
func Parse(id string) (Position, bool) {
	es, os, ok := strings.Cut(id, "-")
	if !ok {
		return Position{}, false
	}
	e, ok := ParseEpoch(es)
	if !ok {
		return Position{}, false
	}
	off, err := strconv.ParseInt(os, 10, 64)
	if err != nil || off < 0 || os != strconv.FormatInt(off, 10) {
		return Position{}, false
	}
	return Position{e, off}, true
}
