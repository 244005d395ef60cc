package ids

import "testing"

func TestParseEntryID(t *testing.T) {
	t.Parallel()
	good := map[string]EntryID{
		"1700000000000-0":        {1700000000000, 0},
		"0-1":                    {0, 1},
		"5-18446744073709551615": {5, 18446744073709551615},
	}
	for s, want := range good {
		if got, ok := ParseEntryID(s); !ok || got != want || got.String() != s {
			t.Errorf("ParseEntryID(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "-", "garbage", "1", "1-", "-1", "01-0", "1-+2", "1-2-3", "18446744073709551616-0"} {
		if e, ok := ParseEntryID(s); ok {
			t.Errorf("ParseEntryID(%q) = %v, want not ok", s, e)
		}
	}
	e, err := NewEpoch()
	if err != nil || !ValidEpoch(e) {
		t.Fatalf("NewEpoch() = %q, %v", e, err)
	}
	for _, s := range []string{"", "0123456789ab", "0123456789abcd", "0123456789ABC", "0123456789abw"} {
		if ValidEpoch(s) {
			t.Errorf("ValidEpoch(%q) = true", s)
		}
	}
}

func TestEntryIDOrder(t *testing.T) {
	t.Parallel()
	ids := []EntryID{{0, 0}, {0, 1}, {1, 0}, {1, 5}, {2, 0}}
	for i := range ids {
		for j := range ids {
			if got := ids[i].Less(ids[j]); got != (i < j) {
				t.Errorf("%v < %v = %v", ids[i], ids[j], got)
			}
		}
	}
}
