package broker_test

import (
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
)

// TestKeys: the first id seen with a key is remembered for the window;
// a repeat returns it; above the count bound the oldest key goes first
// (reported once), never refusing a new one.
func TestKeys(t *testing.T) {
	now := time.Unix(1700000000, 0)
	k := broker.NewKeys(time.Minute, 3)
	if first, isFirst, _ := k.See("a", "d", "e-1", now); !isFirst || first.ID != "e-1" {
		t.Fatalf("first See = %+v %v", first, isFirst)
	}
	if first, isFirst, _ := k.See("a", "d", "e-2", now.Add(time.Second)); isFirst || first.ID != "e-1" || first.Digest != "d" {
		t.Fatalf("repeat See = %+v %v, want the first (e-1) and not first", first, isFirst)
	}
	if first, isFirst, _ := k.See("a", "d", "e-1", now.Add(time.Second)); !isFirst || first.ID != "e-1" {
		t.Fatalf("the first record read again = %+v %v, want first", first, isFirst)
	}
	if e, ok := k.Get("a", now.Add(30*time.Second)); !ok || e.ID != "e-1" {
		t.Fatalf("Get inside the window = %+v %v", e, ok)
	}
	if _, ok := k.Get("a", now.Add(2*time.Minute)); ok {
		t.Fatal("Get after the window still answers")
	}
	// After the window a key is new again.
	if _, isFirst, _ := k.See("a", "d", "e-9", now.Add(2*time.Minute)); !isFirst {
		t.Fatal("a key past its window is not new")
	}
	later := now.Add(3 * time.Minute)
	_, _, early := k.See("b", "d", "e-10", later)
	if early {
		t.Fatal("early eviction reported below the bound")
	}
	k.See("c", "d", "e-11", later)
	_, _, early = k.See("d", "d", "e-12", later) // 4th key, bound 3
	if !early {
		t.Fatal("exceeding the count bound not reported")
	}
	if _, ok := k.Get("a", later); ok {
		t.Fatal("the oldest key (a, seen again at +2m) survived the count bound")
	}
	if _, ok := k.Get("b", later); !ok {
		t.Fatal("a newer key went before the oldest")
	}
	if _, ok := k.Get("d", later); !ok {
		t.Fatal("the new key was refused")
	}
	if _, _, early = k.See("e", "d", "e-13", later); early {
		t.Fatal("early eviction reported twice")
	}
}
