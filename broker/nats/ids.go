package nats

import (
	"strconv"
	"strings"
	"time"
)

// An epoch is the stream's creation time (StreamInfo.Created) in Unix
// nanoseconds. The server sets it when the stream is created, persists it
// with the stream and keeps it across restarts and config updates (in a
// cluster the meta leader assigns it, so every replica reports the same);
// a stream deleted and created again, or lost with a server's storage,
// gets a new one, so ids of the old log no longer resolve. It is written
// in base 36 ([0-9a-z], 12 or 13 characters).
type epoch int64

func epochOf(created time.Time) epoch { return epoch(created.UnixNano()) }

func (e epoch) String() string { return strconv.FormatInt(int64(e), 36) }

func parseEpoch(s string) (epoch, bool) {
	if s == "" || len(s) > 13 {
		return 0, false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 36, 64)
	if err != nil || n <= 0 || epoch(n).String() != s { // one id, one spelling
		return 0, false
	}
	return epoch(n), true
}

// position is a parsed message id: the stream's epoch and the message's
// stream sequence (from 1).
type position struct {
	epoch epoch
	seq   uint64
}

// formatID is the message id of the message at seq in epoch:
// "<epoch>-<seq>", URL-safe ([0-9a-z-]).
func formatID(e epoch, seq uint64) string {
	return e.String() + "-" + strconv.FormatUint(seq, 10)
}

// parseID reads a message id made by formatID.
func parseID(id string) (position, bool) {
	es, ss, ok := strings.Cut(id, "-")
	if !ok {
		return position{}, false
	}
	e, ok := parseEpoch(es)
	if !ok {
		return position{}, false
	}
	seq, err := strconv.ParseUint(ss, 10, 64)
	if err != nil || seq == 0 || ss != strconv.FormatUint(seq, 10) {
		return position{}, false
	}
	return position{e, seq}, true
}
