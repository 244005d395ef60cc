package redis

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
)

// entryID is a Redis stream entry ID, <ms>-<seq>.
type entryID struct{ ms, seq uint64 }

func (a entryID) less(b entryID) bool {
	return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq)
}

func (a entryID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// parseEntryID reads a stream entry ID as Redis prints it.
func parseEntryID(s string) (entryID, bool) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return entryID{}, false
	}
	m, err1 := strconv.ParseUint(ms, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil || ms != strconv.FormatUint(m, 10) || seq != strconv.FormatUint(q, 10) {
		return entryID{}, false // canonical digits only: one id, one spelling
	}
	return entryID{m, q}, true
}

// position is a parsed message id: an epoch and a stream entry ID.
type position struct {
	epoch string
	entry entryID
}

// formatID is the message id of entry in epoch: "<epoch>-<ms>-<seq>",
// URL-safe ([0-9a-v-]).
func formatID(epoch string, entry entryID) string {
	return epoch + "-" + entry.String()
}

// parseID reads a message id made by formatID.
func parseID(id string) (position, bool) {
	epoch, rest, ok := strings.Cut(id, "-")
	if !ok || !validEpoch(epoch) {
		return position{}, false
	}
	e, ok := parseEntryID(rest)
	if !ok {
		return position{}, false
	}
	return position{epoch, e}, true
}

const epochLen = 13 // 8 random bytes, base32hex without padding

var epochEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

func newEpoch() (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("switchboard/broker/redis: epoch: %w", err)
	}
	return strings.ToLower(epochEncoding.EncodeToString(rnd[:])), nil
}

func validEpoch(s string) bool {
	if len(s) != epochLen {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'v') {
			return false
		}
	}
	return true
}
