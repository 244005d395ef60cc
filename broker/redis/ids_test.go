package redis

import "testing"

func TestParseID(t *testing.T) {
	t.Parallel()
	epoch := "0123456789abc"
	good := map[string]position{
		epoch + "-1700000000000-0":             {epoch, entryID{1700000000000, 0}},
		epoch + "-0-1":                         {epoch, entryID{0, 1}},
		"vvvvvvvvvvvvv-5-18446744073709551615": {"vvvvvvvvvvvvv", entryID{5, 18446744073709551615}},
	}
	for id, want := range good {
		got, ok := parseID(id)
		if !ok || got != want {
			t.Errorf("parseID(%q) = %v, %v; want %v", id, got, ok, want)
		}
		if formatID(got.epoch, got.entry) != id {
			t.Errorf("formatID(parseID(%q)) = %q", id, formatID(got.epoch, got.entry))
		}
	}
	for _, id := range []string{"", "-", "garbage", epoch, epoch + "-1", epoch + "-1-", epoch + "--1", epoch + "-01-0",
		epoch + "-1-+2", epoch + "-1-2-3", "0123456789ABC-1-2", "0123456789abw-1-2", "0123456789ab-1-2",
		epoch + "-18446744073709551616-0", "k3q9f1c2-42"} {
		if p, ok := parseID(id); ok {
			t.Errorf("parseID(%q) = %v, want not ok", id, p)
		}
	}
	e, err := newEpoch()
	if err != nil || !validEpoch(e) {
		t.Fatalf("newEpoch() = %q, %v", e, err)
	}
}

func TestEntryIDOrder(t *testing.T) {
	t.Parallel()
	ids := []entryID{{0, 0}, {0, 1}, {1, 0}, {1, 5}, {2, 0}}
	for i := range ids {
		for j := range ids {
			if got := ids[i].less(ids[j]); got != (i < j) {
				t.Errorf("%v < %v = %v", ids[i], ids[j], got)
			}
		}
	}
}
