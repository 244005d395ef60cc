package ids

import (
	"strings"
	"testing"
	"time"
)

func TestIDs(t *testing.T) {
	created := time.Date(2026, 11, 22, 11, 57, 35, 521_000_123, time.UTC)
	e := EpochOf(created)
	id := Format(e, 42)
	if strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyz-") != "" {
		t.Errorf("id %q is not [0-9a-z-]", id)
	}
	p, ok := Parse(id)
	if !ok || p.Epoch != e || p.Seq != 42 {
		t.Fatalf("Parse(%q) = %+v, %v", id, p, ok)
	}
	es := e.String()
	for _, bad := range []string{"", "-", es, es + "-", es + "-0", es + "-01", es + "-1x", es + "-+1", "-1",
		"0" + es + "-1", strings.ToUpper(es) + "-1", es + "-1-2", "1y2p0ij32e8e8-1", "zzzzzzzzzzzzzz-1", es + "-18446744073709551616"} {
		if p, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) = %+v, want refused", bad, p)
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add(Format(EpochOf(time.Now()), 1))
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := Parse(s)
		if ok && Format(p.Epoch, p.Seq) != s {
			t.Errorf("Parse(%q) = %+v, which formats as %q", s, p, Format(p.Epoch, p.Seq))
		}
	})
}
