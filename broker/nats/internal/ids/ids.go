package ids

import (
	"strconv"
	"strings"
	"time"
)

// An Epoch is the stream's creation time (StreamInfo.Created) in Unix
// nanoseconds. The server sets it when the stream is created, persists it
// with the stream and keeps it across restarts and config updates (in a
// cluster the meta leader assigns it, so every replica reports the same);
// a stream deleted and created again, or lost with a server's storage,
// gets a new one, so ids of the old log no longer resolve. It is written
// in base 36 ([0-9a-z], 12 or 13 characters).
type Epoch int64

// EpochOf is the epoch of a stream created at created.
func EpochOf(created time.Time) Epoch { return Epoch(created.UnixNano()) }

func (e Epoch) String() string { return strconv.FormatInt(int64(e), 36) }

// ParseEpoch reads an epoch as String writes it, and only that spelling.
func ParseEpoch(s string) (Epoch, bool) {
	if s == "" || len(s) > 13 {
		return 0, false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 36, 64)
	if err != nil || n <= 0 || Epoch(n).String() != s { // one id, one spelling
		return 0, false
	}
	return Epoch(n), true
}

// Position is a parsed message id: the stream's epoch and the message's
// stream sequence (from 1).
type Position struct {
	Epoch Epoch
	Seq   uint64
}

// Format is the message id of the message at seq in epoch:
// "<epoch>-<seq>", URL-safe ([0-9a-z-]).
func Format(e Epoch, seq uint64) string {
	return e.String() + "-" + strconv.FormatUint(seq, 10)
}

// Parse reads a message id made by Format.
func Parse(id string) (Position, bool) {
	es, ss, ok := strings.Cut(id, "-")
	if !ok {
		return Position{}, false
	}
	e, ok := ParseEpoch(es)
	if !ok {
		return Position{}, false
	}
	seq, err := strconv.ParseUint(ss, 10, 64)
	if err != nil || seq == 0 || ss != strconv.FormatUint(seq, 10) {
		return Position{}, false
	}
	return Position{e, seq}, true
}
