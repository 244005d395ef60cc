package engine

import "testing"

func TestIDs(t *testing.T) {
	tests := []struct {
		id    string
		epoch string
		pos   Pos
		ok    bool
	}{
		{"abc-12", "abc", Pos{Lo: 12}, true},
		{"abc-1700000000000-3", "abc", Pos{Hi: 1700000000000, Lo: 3}, true},
		{"m49f00h7jmqj8-0", "m49f00h7jmqj8", Pos{}, true},
		{"abc-0-3", "", Pos{}, false},   // Hi 0 is spelt without it
		{"abc-012", "", Pos{}, false},   // one spelling per id
		{"abc-1-2-3", "", Pos{}, false}, // three parts
		{"ABC-1", "", Pos{}, false},     // lower case only
		{"-1", "", Pos{}, false},
		{"abc-", "", Pos{}, false},
		{"abc", "", Pos{}, false},
		{"abc-18446744073709551616", "", Pos{}, false},            // overflows
		{"0123456789abcdefghijklmnopqrstuvw-1", "", Pos{}, false}, // epoch too long
	}
	for _, tt := range tests {
		epoch, pos, ok := ParseID(tt.id)
		if ok != tt.ok || epoch != tt.epoch || pos != tt.pos {
			t.Errorf("ParseID(%q) = %q %v %v, want %q %v %v", tt.id, epoch, pos, ok, tt.epoch, tt.pos, tt.ok)
		}
		if ok && FormatID(epoch, pos) != tt.id {
			t.Errorf("FormatID(ParseID(%q)) = %q", tt.id, FormatID(epoch, pos))
		}
	}
	if !(Pos{Hi: 1, Lo: 0}).Less(Pos{Hi: 1, Lo: 1}) || !(Pos{Lo: 9}).Less(Pos{Hi: 1}) || (Pos{Hi: 2}).Less(Pos{Hi: 1, Lo: 5}) {
		t.Error("Pos.Less does not order by Hi, then Lo")
	}
}

// FuzzParseID: every id ParseID accepts is spelt exactly as FormatID
// writes it back, so equal positions are equal strings.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"abc-12", "abc-1700000000000-3", "x-0", "abc-0-3", "-", "a--1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		epoch, pos, ok := ParseID(id)
		if !ok {
			return
		}
		if got := FormatID(epoch, pos); got != id {
			t.Fatalf("ParseID(%q) then FormatID = %q", id, got)
		}
	})
}
