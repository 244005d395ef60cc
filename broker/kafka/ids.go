package kafka

import (
	"encoding/base32"
	"strconv"
	"strings"
)

// An epoch is the topic's Kafka topic ID (KIP-516), which changes when the
// topic is deleted and created again: ids of the old log then no longer
// resolve. It is written as the 16 bytes in lower-case base32hex without
// padding (26 characters of [0-9a-v]).
type epoch [16]byte

var epochEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

const epochLen = 26

func (e epoch) String() string { return strings.ToLower(epochEncoding.EncodeToString(e[:])) }

func (e epoch) zero() bool { return e == epoch{} }

func parseEpoch(s string) (epoch, bool) {
	var e epoch
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

// position is a parsed message id: the topic's epoch and the record's
// offset in the topic's one partition.
type position struct {
	epoch  epoch
	offset int64
}

// formatID is the message id of the record at offset in epoch:
// "<epoch>-<offset>", URL-safe ([0-9a-v-]).
func formatID(e epoch, offset int64) string {
	return e.String() + "-" + strconv.FormatInt(offset, 10)
}

// parseID reads a message id made by formatID.
func parseID(id string) (position, bool) {
	es, os, ok := strings.Cut(id, "-")
	if !ok {
		return position{}, false
	}
	e, ok := parseEpoch(es)
	if !ok {
		return position{}, false
	}
	off, err := strconv.ParseInt(os, 10, 64)
	if err != nil || off < 0 || os != strconv.FormatInt(off, 10) {
		return position{}, false
	}
	return position{e, off}, true
}
