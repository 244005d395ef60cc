package ids

import (
	"bytes"
	"strings"
	"testing"
)

// TestEpochSpelling: every topic ID is spelt in 26 characters of
// [0-9a-v], one spelling per ID (the bytes decode back), so the engine
// accepts it as an epoch and equal epochs are equal strings.
func TestEpochSpelling(t *testing.T) {
	var ff, seq Epoch
	for i := range ff {
		ff[i], seq[i] = 0xff, byte(i*17)
	}
	for _, e := range []Epoch{{}, ff, seq} {
		s := e.String()
		if len(s) != Len || strings.Trim(s, "0123456789abcdefghijklmnopqrstuv") != "" {
			t.Errorf("%x spelt %q: want %d characters of [0-9a-v]", e[:], s, Len)
		}
		raw, err := epochEncoding.DecodeString(strings.ToUpper(s))
		if err != nil || !bytes.Equal(raw, e[:]) {
			t.Errorf("%q decodes to %x, %v; want %x", s, raw, err, e[:])
		}
	}
	if !(Epoch{}).IsZero() || seq.IsZero() {
		t.Error("IsZero is wrong")
	}
}
