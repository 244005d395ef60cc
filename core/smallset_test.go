package core

import (
	"slices"
	"strconv"
	"testing"
)

// TestSmallSet: the set behaves the same in its slice and map forms, and
// across the switch between them.
func TestSmallSet(t *testing.T) {
	var r smallSet[string]
	want := map[string]bool{}
	check := func(step string) {
		t.Helper()
		got := r.list()
		slices.Sort(got)
		var exp []string
		for k := range want {
			exp = append(exp, k)
		}
		slices.Sort(exp)
		if !slices.Equal(got, exp) || r.len() != len(exp) {
			t.Fatalf("%s: list %v len %d, want %v", step, got, r.len(), exp)
		}
		for _, k := range exp {
			if !r.has(k) {
				t.Fatalf("%s: has(%s) false", step, k)
			}
		}
		if r.has("absent") {
			t.Fatalf("%s: has(absent)", step)
		}
	}
	for i := range 3 * smallSetMax {
		room := "r" + strconv.Itoa(i)
		r.add(room)
		want[room] = true
		check("add " + room)
		if i%3 == 0 {
			r.del("r" + strconv.Itoa(i/2))
			delete(want, "r"+strconv.Itoa(i/2))
			check("del")
		}
	}
	if r.many == nil {
		t.Fatal("still a slice beyond smallSetMax")
	}
	r.reset()
	want = map[string]bool{}
	check("reset")
	r.add("x")
	r.add("x")
	want["x"] = true
	check("add twice")
	if !r.del("x") || r.del("x") {
		t.Fatal("del reports the first removal only")
	}
	delete(want, "x")
	check("del twice")
}
