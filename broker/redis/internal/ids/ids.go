package ids

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
)

// EntryID is a Redis stream entry ID, <ms>-<seq>.
type EntryID struct{ MS, Seq uint64 }

// Less reports whether a comes before b in the stream.
func (a EntryID) Less(b EntryID) bool {
	return a.MS < b.MS || (a.MS == b.MS && a.Seq < b.Seq)
}

func (a EntryID) String() string {
	return strconv.FormatUint(a.MS, 10) + "-" + strconv.FormatUint(a.Seq, 10)
}

// ParseEntryID reads a stream entry ID as Redis prints it.
func ParseEntryID(s string) (EntryID, bool) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return EntryID{}, false
	}
	m, err1 := strconv.ParseUint(ms, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil || ms != strconv.FormatUint(m, 10) || seq != strconv.FormatUint(q, 10) {
		return EntryID{}, false // canonical digits only: one id, one spelling
	}
	return EntryID{m, q}, true
}

const epochLen = 13 // 8 random bytes, base32hex without padding

var epochEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// NewEpoch is a fresh random epoch: 8 random bytes in lower-case
// base32hex without padding (13 characters of [0-9a-v]).
func NewEpoch() (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("switchboard/broker/redis: epoch: %w", err)
	}
	return strings.ToLower(epochEncoding.EncodeToString(rnd[:])), nil
}

// ValidEpoch reports whether s is spelt as NewEpoch writes epochs.
func ValidEpoch(s string) bool {
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
