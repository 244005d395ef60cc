package engine

import (
	"strconv"
	"strings"
)

// FormatID is the message id of the record at pos in epoch:
// "<epoch>-<pos>" (see Pos.String). Epochs are spelt by their driver in
// [0-9a-z] and never contain '-', so the first '-' ends the epoch.
func FormatID(epoch string, pos Pos) string { return epoch + "-" + pos.String() }

// ParseID reads an id made by FormatID. It accepts one spelling per id
// only (canonical digits, no leading zeros, no empty parts), so equal
// positions are equal strings.
func ParseID(id string) (epoch string, pos Pos, ok bool) {
	epoch, rest, ok := strings.Cut(id, "-")
	if !ok || !validEpoch(epoch) {
		return "", Pos{}, false
	}
	hi, lo, two := strings.Cut(rest, "-")
	if !two {
		l, ok := parseUint(rest)
		if !ok {
			return "", Pos{}, false
		}
		return epoch, Pos{Lo: l}, true
	}
	h, ok1 := parseUint(hi)
	l, ok2 := parseUint(lo)
	if !ok1 || !ok2 || h == 0 { // Hi 0 is spelt without it
		return "", Pos{}, false
	}
	return epoch, Pos{Hi: h, Lo: l}, true
}

func parseUint(s string) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || s != strconv.FormatUint(v, 10) {
		return 0, false
	}
	return v, true
}

// validEpoch: 1 to 32 characters of [0-9a-z].
func validEpoch(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}
