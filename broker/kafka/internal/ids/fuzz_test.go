package ids

import (
	"strings"
	"testing"
)

// FuzzParseID feeds arbitrary since= / cursor values, which come straight
// from clients, to Parse: no panic, and an accepted id has exactly one
// spelling (Format gives it back), so ids compare by equality.
func FuzzParseID(f *testing.F) {
	var e Epoch
	for i := range e {
		e[i] = byte(i * 17)
	}
	es := e.String()
	for _, s := range []string{Format(e, 0), Format(e, 42), Format(Epoch{}, 0), Format(e, 1<<63-1),
		"", "-", "--", es, es + "-", es + "--1", es + "-01", es + "-+1", es + "--0", es + "-1-2", es + "-9223372036854775808",
		strings.ToUpper(es) + "-1", "0" + es + "-1", es[1:] + "-1", strings.Repeat("v", epochLen) + "-1", strings.Repeat("w", epochLen) + "-1",
		es + "-1\x00", es + "- 1", "\xff" + es[1:] + "-1", "k3q9f1c2-42"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		p, ok := Parse(id)
		if !ok {
			return
		}
		if got := Format(p.Epoch, p.Offset); got != id {
			t.Fatalf("Parse(%q) = %+v, which formats as %q", id, p, got)
		}
		if p.Offset < 0 {
			t.Fatalf("Parse(%q) accepted a negative offset", id)
		}
	})
}

// FuzzFormatID: every id the broker can write (any topic ID, any offset
// from 0) parses back to the same position.
func FuzzFormatID(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), int64(0))
	f.Add(make([]byte, 16), int64(1<<63-1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, int64(7))
	f.Fuzz(func(t *testing.T, raw []byte, offset int64) {
		if len(raw) != 16 || offset < 0 {
			return // topic IDs are 16 bytes, offsets start at 0
		}
		var e Epoch
		copy(e[:], raw)
		id := Format(e, offset)
		p, ok := Parse(id)
		if !ok || p.Epoch != e || p.Offset != offset {
			t.Fatalf("Parse(Format(%x, %d) = %q) = %+v, %v", raw, offset, id, p, ok)
		}
		if strings.Trim(id, "0123456789abcdefghijklmnopqrstuv-") != "" {
			t.Fatalf("Format wrote %q, which is not URL-safe [0-9a-v-]", id)
		}
	})
}
