package ids

import (
	"strings"
	"testing"
)

// FuzzParseEntryID: an entry ID the driver accepts (from Redis, and as a
// message id's position) has exactly one spelling, its String.
func FuzzParseEntryID(f *testing.F) {
	for _, s := range []string{"1700000000000-0", "0-0", "18446744073709551615-18446744073709551615",
		"", "-", "--", "1", "1-", "-1", "01-0", "1-+2", "1-2-3", "18446744073709551616-0", " 1-2", "1-2\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, ok := ParseEntryID(s)
		if !ok {
			return
		}
		if e.String() != s {
			t.Fatalf("ParseEntryID(%q) = %v, which prints as %q", s, e, e.String())
		}
		if strings.Trim(s, "0123456789-") != "" {
			t.Fatalf("ParseEntryID accepted %q", s)
		}
	})
}

// FuzzEpoch: every epoch NewEpoch's encoding writes is valid, and
// ValidEpoch accepts nothing outside [0-9a-v]{13}.
func FuzzEpoch(f *testing.F) {
	f.Add([]byte("01234567"), "0123456789abc")
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "0123456789ABC")
	f.Fuzz(func(t *testing.T, rnd []byte, s string) {
		if len(rnd) == 8 {
			if e := strings.ToLower(epochEncoding.EncodeToString(rnd)); !ValidEpoch(e) {
				t.Fatalf("epoch %q of %x is not valid", e, rnd)
			}
		}
		if ValidEpoch(s) && (len(s) != epochLen || strings.Trim(s, "0123456789abcdefghijklmnopqrstuv") != "") {
			t.Fatalf("ValidEpoch accepted %q", s)
		}
	})
}
