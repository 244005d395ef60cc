package ids

import "testing"

func TestParseID(t *testing.T) {
	t.Parallel()
	epoch := "0123456789abc"
	good := map[string]Position{
		epoch + "-1700000000000-0":             {epoch, EntryID{1700000000000, 0}},
		epoch + "-0-1":                         {epoch, EntryID{0, 1}},
		"vvvvvvvvvvvvv-5-18446744073709551615": {"vvvvvvvvvvvvv", EntryID{5, 18446744073709551615}},
	}
	for id, want := range good {
		got, ok := Parse(id)
		if !ok || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", id, got, ok, want)
		}
		if Format(got.Epoch, got.Entry) != id {
			t.Errorf("Format(Parse(%q)) = %q", id, Format(got.Epoch, got.Entry))
		}
	}
	for _, id := range []string{"", "-", "garbage", epoch, epoch + "-1", epoch + "-1-", epoch + "--1", epoch + "-01-0",
		epoch + "-1-+2", epoch + "-1-2-3", "0123456789ABC-1-2", "0123456789abw-1-2", "0123456789ab-1-2",
		epoch + "-18446744073709551616-0", "k3q9f1c2-42"} {
		if p, ok := Parse(id); ok {
			t.Errorf("Parse(%q) = %v, want not ok", id, p)
		}
	}
	e, err := NewEpoch()
	if err != nil || !ValidEpoch(e) {
		t.Fatalf("NewEpoch() = %q, %v", e, err)
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
