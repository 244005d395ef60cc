package ids

import (
	"strconv"
	"time"
)

// An Epoch is the stream's creation time (StreamInfo.Created) in Unix
// nanoseconds. The server sets it when the stream is created, persists it
// with the stream and keeps it across restarts and config updates (in a
// cluster the meta leader assigns it, so every replica reports the same);
// a stream deleted and created again, or lost with a server's storage,
// gets a new one. It is written in base 36 ([0-9a-z], 12 or 13
// characters).
type Epoch int64

// EpochOf is the epoch of a stream created at created; ok is false for a
// time that cannot be one (the zero time, or before 1970).
func EpochOf(created time.Time) (e Epoch, ok bool) {
	if created.IsZero() || created.Unix() <= 0 {
		return 0, false
	}
	return Epoch(created.UnixNano()), true
}

// String spells e as it appears in ids.
func (e Epoch) String() string { return strconv.FormatInt(int64(e), 36) }
