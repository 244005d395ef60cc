package engine

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

func env(id string) *core.Envelope { return &core.Envelope{V: core.Version, ID: id} }

func ids(envs []*core.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

// TestIndex: a lookup returns only the asked channels' entries after
// since, in log order; eviction (by entries, bytes or age) takes the
// oldest first and moves the floor, so an older since reports tooOld
// with what the index still has.
func TestIndex(t *testing.T) {
	now := time.Unix(1700000000, 0)
	x := newIndex(1<<20, 5, time.Minute)
	x.reset("e", Pos{Lo: 10})
	for i := 11; i <= 16; i++ { // 6 entries, bound 5: 11 goes
		ch := "a"
		if i%2 == 0 {
			ch = "b"
		}
		x.add(ch, Pos{Lo: uint64(i)}, env(strconv.Itoa(i)), 10, now)
	}
	x.skip(Pos{Lo: 17}) // a dropped repeat: the index stays complete

	tests := []struct {
		name     string
		epoch    string
		since    uint64
		channels []string
		want     []string
		res      lookupResult
	}{
		{"one channel", "e", 12, []string{"a"}, []string{"13", "15"}, answered},
		{"two channels merged in log order", "e", 11, []string{"b", "a"}, []string{"12", "13", "14", "15", "16"}, answered},
		{"at the end", "e", 17, []string{"a", "b"}, []string{}, answered},
		{"unknown channel", "e", 12, []string{"zzz"}, []string{}, answered},
		{"before the floor", "e", 10, []string{"a"}, []string{"13", "15"}, tooOld},
		{"ahead", "e", 18, []string{"a"}, nil, ahead},
		{"another epoch", "f", 12, []string{"a"}, nil, otherEpoch},
	}
	for _, tt := range tests {
		envs, floor, res := x.lookup(tt.epoch, Pos{Lo: tt.since}, tt.channels)
		if res != tt.res || (tt.want != nil && !slices.Equal(ids(envs), tt.want)) {
			t.Errorf("%s: lookup = %v (floor %v) %v, want %v %v", tt.name, ids(envs), floor, res, tt.want, tt.res)
		}
		if res == tooOld && floor != (Pos{Lo: 11}) {
			t.Errorf("%s: floor %v, want 11 (the last entry evicted)", tt.name, floor)
		}
	}

	// Age: everything older than a minute goes, the floor follows.
	x.add("a", Pos{Lo: 18}, env("18"), 10, now.Add(2*time.Minute))
	if n, _, floor, _ := x.stats(); n != 1 || floor != (Pos{Lo: 16}) {
		t.Fatalf("after aging: %d entries, floor %v; want 1 and 16", n, floor)
	}
	// Bytes.
	y := newIndex(3*(10+entryOverhead+1), 0, time.Hour)
	y.reset("e", Pos{})
	for i := 1; i <= 5; i++ {
		y.add("a", Pos{Lo: uint64(i)}, env(strconv.Itoa(i)), 10, now)
	}
	if n, _, floor, _ := y.stats(); n != 3 || floor != (Pos{Lo: 2}) {
		t.Fatalf("byte bound: %d entries, floor %v; want 3 and 2", n, floor)
	}
	// Disabled: nothing is kept, every since before the end is too old.
	z := newIndex(-1, 0, time.Hour)
	z.reset("e", Pos{})
	z.add("a", Pos{Lo: 1}, env("1"), 10, now)
	if _, _, res := z.lookup("e", Pos{}, []string{"a"}); res != tooOld {
		t.Fatalf("disabled index answered %v, want tooOld", res)
	}
}

// TestIndexBackfill: a history read's records below the floor extend the
// index downwards when they reach the floor, and are dropped when the
// index moved away meanwhile (a gap) or has another epoch.
func TestIndexBackfill(t *testing.T) {
	now := time.Unix(1700000000, 0)
	newX := func() *index {
		x := newIndex(1<<20, 0, time.Hour)
		x.reset("e", Pos{Lo: 10})
		for i := 11; i <= 12; i++ {
			x.add("a", Pos{Lo: uint64(i)}, env(strconv.Itoa(i)), 10, now)
		}
		return x
	}
	read := func(from, to int) *filler {
		f := newIndex(1<<20, 0, time.Hour).filler()
		for i := from + 1; i <= to; i++ {
			ch := "a"
			if i%2 == 0 {
				ch = "b"
			}
			f.add(ch, Pos{Lo: uint64(i)}, env(strconv.Itoa(i)), 10, now)
		}
		return f
	}
	tests := []struct {
		name     string
		epoch    string
		from, to int
		floor    uint64 // after the commit
		b        []string
	}{
		{"reaches the floor", "e", 5, 10, 5, []string{"6", "8", "10"}},
		{"overlaps the index", "e", 5, 12, 5, []string{"6", "8", "10"}},
		{"stops short of the floor: a gap", "e", 5, 9, 10, nil},
		{"another epoch", "f", 5, 10, 10, nil},
		{"nothing below the floor", "e", 10, 12, 10, nil},
	}
	for _, tt := range tests {
		x := newX()
		read(tt.from, tt.to).commit(x, tt.epoch, Pos{Lo: uint64(tt.from)}, Pos{Lo: uint64(tt.to)}, now)
		_, _, floor, _ := x.stats()
		envs, _, res := x.lookup("e", Pos{Lo: floor.Lo}, []string{"b"})
		if floor.Lo != tt.floor || res != answered || !slices.Equal(ids(envs), tt.b) {
			t.Errorf("%s: floor %v, b %v (%v); want floor %d, b %v", tt.name, floor, ids(envs), res, tt.floor, tt.b)
		}
		if all, _, _ := x.lookup("e", Pos{Lo: floor.Lo}, []string{"a"}); len(all) == 0 || all[len(all)-1].ID != "12" {
			t.Errorf("%s: room a lost its newest entries: %v", tt.name, ids(all))
		}
	}
}
