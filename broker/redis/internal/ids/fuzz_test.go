package ids

import (
	"strings"
	"testing"
)

// FuzzParseID feeds arbitrary since= / cursor values, which come straight
// from clients, to Parse: no panic, and an accepted id has exactly one
// spelling (Format gives it back), so ids compare by equality.
func FuzzParseID(f *testing.F) {
	epoch := "0123456789abc"
	for _, s := range []string{epoch + "-1700000000000-0", epoch + "-0-0", "vvvvvvvvvvvvv-18446744073709551615-18446744073709551615",
		"", "-", "--", "---", epoch, epoch + "-", epoch + "-1", epoch + "-1-", epoch + "--1", epoch + "-01-0", epoch + "-1-+2",
		epoch + "-1-2-3", "0123456789ABC-1-2", "0123456789abw-1-2", "0123456789ab-1-2", epoch + "-18446744073709551616-0",
		epoch + "-1-18446744073709551616", epoch + "- 1-2", epoch + "-1-2\x00", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3-1-2", "k3q9f1c2-42"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		p, ok := Parse(id)
		if !ok {
			return
		}
		if got := Format(p.Epoch, p.Entry); got != id {
			t.Fatalf("Parse(%q) = %+v, which formats as %q", id, p, got)
		}
		if strings.Trim(id, "0123456789abcdefghijklmnopqrstuv-") != "" {
			t.Fatalf("Parse accepted %q, which is not URL-safe [0-9a-v-]", id)
		}
	})
}

// FuzzFormatID: every id the broker can write parses back to the same
// position, and entry order survives the round trip.
func FuzzFormatID(f *testing.F) {
	f.Add([]byte("01234567"), uint64(1700000000000), uint64(0), uint64(1))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, uint64(0), uint64(0), uint64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ^uint64(0), ^uint64(0), ^uint64(0))
	f.Fuzz(func(t *testing.T, rnd []byte, ms, seq, seq2 uint64) {
		if len(rnd) != 8 {
			return // epochs are 8 random bytes
		}
		epoch := strings.ToLower(epochEncoding.EncodeToString(rnd))
		if !ValidEpoch(epoch) {
			t.Fatalf("epoch %q of %x is not valid", epoch, rnd)
		}
		a, b := EntryID{ms, seq}, EntryID{ms, seq2}
		for _, e := range []EntryID{a, b} {
			id := Format(epoch, e)
			p, ok := Parse(id)
			if !ok || p.Epoch != epoch || p.Entry != e {
				t.Fatalf("Parse(Format(%q, %v) = %q) = %+v, %v", epoch, e, id, p, ok)
			}
		}
		pa, _ := Parse(Format(epoch, a))
		pb, _ := Parse(Format(epoch, b))
		if pa.Entry.Less(pb.Entry) != (seq < seq2) {
			t.Fatalf("order of %v and %v lost in the round trip", a, b)
		}
	})
}
