package main

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCheck holds the checker to what each count means: a suite whose
// checker miscounts proves nothing.
func TestCheck(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	// The log: messages 0..5, alternating rooms a and b.
	log := []entry{{"a", 0, "k0", false, ""}, {"b", 1, "k1", false, ""}, {"a", 2, "k2", false, ""}, {"b", 3, "k3", false, ""}, {"a", 4, "k4", false, ""}, {"b", 5, "k5", false, ""}}
	accept := make([]time.Time, 6)
	for i := range accept {
		accept[i] = t0.Add(time.Duration(i) * time.Second)
	}
	g := func(id string, room string, seq int64) got {
		return got{ID: id, Room: room, Seq: seq, At: t0.Add(time.Duration(seq)*time.Second + 10*time.Millisecond)}
	}
	all := []got{g("i0", "a", 0), g("i1", "b", 1), g("i2", "a", 2), g("i3", "b", 3), g("i4", "a", 4), g("i5", "b", 5)}
	for _, c := range []struct {
		name    string
		rooms   []string
		got     []got
		signals []notice
		want    figures
	}{
		{"everything once in order", []string{"a", "b"}, all, nil,
			figures{Expected: 6, Received: 6}},
		{"only its rooms are expected", []string{"a"}, []got{all[0], all[2], all[4]}, nil,
			figures{Expected: 3, Received: 3}},
		{"a gap nobody was told of", []string{"a", "b"}, []got{all[0], all[1], all[4], all[5]}, nil,
			figures{Expected: 6, Received: 4, LostUnsignaled: 2}},
		{"a gap signalled where it is", []string{"a", "b"}, []got{all[0], all[1], all[4], all[5]},
			[]notice{{After: 2, Kind: "welcome"}},
			figures{Expected: 6, Received: 4, LostSignaled: 2, Signals: 1}},
		{"a signal elsewhere does not cover a gap", []string{"a", "b"}, []got{all[0], all[1], all[2], all[5]},
			[]notice{{After: 1, Kind: "welcome"}},
			figures{Expected: 6, Received: 4, LostUnsignaled: 2, Signals: 1, Unwarranted: 1}},
		{"recovered:false with nothing missing", []string{"a", "b"}, all,
			[]notice{{After: 3, Kind: "poll"}},
			figures{Expected: 6, Received: 6, Signals: 1, Unwarranted: 1}},
		{"a trailing signal covers the tail", []string{"a", "b"}, all[:4],
			[]notice{{After: 4, Kind: "gap"}},
			figures{Expected: 6, Received: 4, LostSignaled: 2, Signals: 1}},
		{"the same id twice", []string{"a", "b"}, append(append([]got{}, all[:3]...), append([]got{all[2]}, all[3:]...)...), nil,
			figures{Expected: 6, Received: 6, DupByID: 1, DupBySeq: 1}},
		{"the same message under another id", []string{"a", "b"}, append(append([]got{}, all[:3]...), append([]got{g("other", "a", 2)}, all[3:]...)...), nil,
			figures{Expected: 6, Received: 6, DupBySeq: 1}},
		{"out of order", []string{"a", "b"}, []got{all[0], all[2], all[1], all[3], all[4], all[5]}, nil,
			figures{Expected: 6, Received: 6, Reordered: 1}},
		{"not in the log", []string{"a", "b"}, append(append([]got{}, all...), g("x", "a", 99)), nil,
			figures{Expected: 6, Received: 6, Phantom: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, _ := check(log, []subResult{{Name: "s", Transport: "websocket", Rooms: c.rooms, Got: c.got, Signals: c.signals}}, accept, nil, nil, noPolicy)
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1 (no faults: one phase)", len(rows))
			}
			f := *rows[0]
			f.lat, f.LatencyP50, f.LatencyP99, f.LatencyMax = nil, 0, 0, 0
			c.want.Transport, c.want.Phase = "websocket", noFault
			if !reflect.DeepEqual(f, c.want) {
				t.Errorf("got  %+v\nwant %+v", f, c.want)
			}
		})
	}
}

// TestCheckPhases: messages count in the phase their publish was
// accepted in, reconnects and signals in the phase they happened in.
func TestCheckPhases(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	log := []entry{{"a", 0, "", false, ""}, {"a", 1, "", false, ""}, {"a", 2, "", false, ""}}
	accept := []time.Time{t0, t0.Add(2 * time.Second), t0.Add(4 * time.Second)}
	phases := []phase{{Name: "edge-kill", Start: t0.Add(time.Second)}, {Name: "stall", Start: t0.Add(3 * time.Second)}}
	sub := subResult{Transport: "sse", Rooms: []string{"a"},
		Got:        []got{{ID: "1", Room: "a", Seq: 0, At: t0}, {ID: "3", Room: "a", Seq: 2, At: t0.Add(4 * time.Second)}},
		Reconnects: []time.Time{t0.Add(1500 * time.Millisecond)},
	}
	rows, _ := check(log, []subResult{sub}, accept, phases, nil, noPolicy)
	got := map[string][3]int64{}
	for _, r := range rows {
		got[r.Phase] = [3]int64{r.Expected, r.LostUnsignaled, r.Reconnects}
	}
	want := map[string][3]int64{noFault: {1, 0, 0}, "edge-kill": {1, 1, 1}, "stall": {1, 0, 0}}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("phase %s: expected, lost, reconnects = %v, want %v", k, got[k], w)
		}
	}
	if rows[0].Phase != noFault || rows[len(rows)-1].Phase != "stall" {
		t.Errorf("rows not in fault order: %s … %s", rows[0].Phase, rows[len(rows)-1].Phase)
	}
}

func TestCheckLog(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	log := []entry{{"a", 0, "k0", false, ""}, {"a", 1, "k1", false, ""}, {"a", 1, "k1", false, ""}, {"a", 3, "k3", false, ""}}
	accept := []time.Time{t0, t0, t0, {}, {}}
	got := checkLog(log, accept, 7, 5)
	want := logFigures{Messages: 5, Accepted: 3, Retries: 7, InLog: 3, TwiceInLog: 1, AcceptedNotInLog: 1}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseEntry(t *testing.T) {
	for _, c := range []struct {
		payload string
		want    entry
	}{
		{`{"v":1,"type":"message","room":"chaos-1","data":{"s":42,"pad":"x"}}`, entry{"chaos-1", 42, "k", false, ""}},
		{`{"v":1,"type":"message","room":"chaos-start","data":"start"}`, entry{"chaos-start", -1, "k", false, ""}},
		{`not json`, entry{"", -1, "k", false, ""}},
	} {
		if got := parseEntry([]byte(c.payload), "k"); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.payload, got, c.want)
		}
	}
}

// TestFlags: bad flags are refused with the flag's name.
func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		err  string
	}{
		{nil, ""},
		{[]string{"--brokers", "redis", "--messages", "100000"}, ""},
		{[]string{"--brokers", "postgres"}, ""},
		{[]string{"--brokers", "redis,mysql"}, "--brokers"},
		{[]string{"--faults", "meteor"}, "--faults"},
		{[]string{"--messages", "0"}, "--messages"},
		{[]string{"--rooms-per-sub", "30"}, "--rooms-per-sub"},
		{[]string{"--pause", "0s"}, "--pause"},
		{[]string{"--browsers", "-1"}, "--browsers"},
		{[]string{"--browsers", "0"}, ""},
	} {
		_, err := parse(c.args, io.Discard)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one naming %s", c.args, err, c.err)
		}
	}
}

// TestCheckDataLoss: when the broker lost its log (kfake restarted), a
// signalled loss of what it lost is the broker's (LostGone), a message
// delivered and then lost is no phantom, a signal in that fault is
// warranted whatever the client missed; a signalled loss of what the log
// still holds, and any unsignalled loss, still count against the
// contract.
func TestCheckDataLoss(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	// 0..2 were in the log before the restart and are gone; 3..5 after.
	log := []entry{{"a", 0, "", false, ""}, {"a", 1, "", false, ""}, {"a", 2, "", false, ""}, {"a", 3, "", false, ""}, {"a", 4, "", false, ""}, {"a", 5, "", false, ""}}
	gone := map[msgKey]bool{{"a", 0}: true, {"a", 1}: true, {"a", 2}: true}
	accept := make([]time.Time, 8)
	for i := range accept {
		accept[i] = t0.Add(time.Duration(i) * time.Second)
	}
	phases := []phase{{Name: "broker-restart", Start: t0.Add(2500 * time.Millisecond), DataLoss: true}}
	g := func(seq int64) got { return got{ID: fmt.Sprint(seq), Room: "a", Seq: seq, At: accept[seq]} }
	for _, c := range []struct {
		name    string
		got     []got
		signals []notice
		want    [4]int64 // LostGone, LostSignaled, LostUnsignaled, Unwarranted
		dl      int64    // DeliveredLost
	}{
		{"told where the broker lost", []got{g(0), g(3), g(4), g(5)}, []notice{{At: accept[3], After: 1}}, [4]int64{2, 0, 0, 0}, 0},
		{"told, but the log still held it", []got{g(0), g(1), g(2), g(5)}, []notice{{At: accept[3], After: 3}}, [4]int64{0, 2, 0, 0}, 0},
		{"not told", []got{g(0), g(3), g(4), g(5)}, nil, [4]int64{0, 0, 2, 0}, 0},
		{"told with nothing missing, in the restart", []got{g(0), g(1), g(2), g(3), g(4), g(5)}, []notice{{At: accept[3], After: 3}}, [4]int64{0, 0, 0, 0}, 0},
		{"delivered, then lost with the log", []got{g(0), g(1), g(2), g(6), g(3), g(4), g(5)}, nil, [4]int64{0, 0, 0, 0}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, _ := check(log, []subResult{{Transport: "sse", Rooms: []string{"a"}, Got: c.got, Signals: c.signals}}, accept, phases, gone, noPolicy)
			var sum [4]int64
			var dl int64
			for _, r := range rows {
				sum[0] += r.LostGone
				sum[1] += r.LostSignaled
				sum[2] += r.LostUnsignaled
				sum[3] += r.Unwarranted
				dl += r.DeliveredLost
				if r.Phantom != 0 {
					t.Errorf("phase %s: %d phantoms", r.Phase, r.Phantom)
				}
			}
			if sum != c.want || dl != c.dl {
				t.Errorf("gone, signalled, unsignalled, unwarranted = %v, delivered-lost %d; want %v, %d", sum, dl, c.want, c.dl)
			}
		})
	}
}

// TestCheckLaterCopy: a message in the log twice (appended again after
// the broker lost its log) is expected once, and received in order if
// it arrives where either copy is.
func TestCheckLaterCopy(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	log := []entry{{"a", 0, "", false, ""}, {"a", 1, "", false, ""}, {"a", 2, "", false, ""}, {"a", 1, "", false, ""}, {"a", 3, "", false, ""}}
	accept := []time.Time{t0, t0, t0, t0}
	g := func(seq int64) got { return got{ID: fmt.Sprint(seq), Room: "a", Seq: seq, At: t0} }
	for _, c := range []struct {
		name      string
		got       []got
		reordered int64
	}{
		{"the first copy", []got{g(0), g(1), g(2), g(3)}, 0},
		{"the later copy", []got{g(0), g(2), g(1), g(3)}, 0},
		{"out of order for both", []got{g(0), g(2), g(3), g(1)}, 1},
	} {
		rows, _ := check(log, []subResult{{Transport: "sse", Rooms: []string{"a"}, Got: c.got}}, accept, nil, nil, noPolicy)
		if len(rows) != 1 || rows[0].Reordered != c.reordered || rows[0].Expected != 4 || rows[0].Received != 4 {
			t.Errorf("%s: %+v, want 4 expected, 4 received, %d reordered", c.name, *rows[0], c.reordered)
		}
	}
}

func noPolicy(string) string { return "" }

// TestCheckPolicy: in a drop-oldest or conflate room a message missed
// without a signal is dropped by the policy, not lost; the room's newest
// is still owed, and order and duplicates are checked as anywhere.
func TestCheckPolicy(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	log := []entry{{"d", 0, "", false, ""}, {"a", 1, "", false, ""}, {"d", 2, "", false, ""}, {"d", 3, "", false, ""}, {"a", 4, "", false, ""}}
	accept := []time.Time{t0, t0, t0, t0, t0}
	g := func(room string, seq int64) got { return got{ID: fmt.Sprint(seq), Room: room, Seq: seq, At: t0} }
	policy := func(room string) string {
		if room == "d" {
			return "drop-oldest"
		}
		return ""
	}
	type want struct{ dropped, newest, lost, dup, reordered int64 }
	for _, c := range []struct {
		name string
		got  []got
		want want
	}{
		{"everything", []got{g("d", 0), g("a", 1), g("d", 2), g("d", 3), g("a", 4)}, want{}},
		{"dropped the oldest", []got{g("a", 1), g("d", 3), g("a", 4)}, want{dropped: 2}},
		{"missed the newest", []got{g("d", 0), g("a", 1), g("d", 2), g("a", 4)}, want{dropped: 1, newest: 1}},
		{"another room's loss is a loss", []got{g("d", 0), g("d", 2), g("d", 3), g("a", 4)}, want{lost: 1}},
		{"twice", []got{g("d", 0), g("d", 0), g("a", 1), g("d", 3), g("a", 4)}, want{dropped: 1, dup: 1}},
		{"out of order", []got{g("a", 1), g("d", 0), g("d", 3), g("a", 4)}, want{dropped: 1, reordered: 1}},
	} {
		rows, _ := check(log, []subResult{{Transport: "websocket", Rooms: []string{"a", "d"}, Got: c.got}}, accept, nil, nil, policy)
		if len(rows) != 1 {
			t.Fatalf("%s: %d rows", c.name, len(rows))
		}
		r := rows[0]
		if got := (want{r.DroppedByPolicy, r.NewestMissed, r.LostUnsignaled, r.DupBySeq, r.Reordered}); got != c.want {
			t.Errorf("%s: dropped, newest missed, lost, duplicates, reordered = %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestComposeLog: with both a lost log and a trimmed one, the messages
// accepted and lost with the broker's log sit between the two, where a
// subscriber's signal about the restart covers them; everything not in
// the final log is gone.
func TestComposeLog(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	accept := []time.Time{t0, t0, t0.Add(2 * time.Millisecond), t0.Add(time.Millisecond), t0, t0}
	room := func(int64) string { return "a" }
	lost := []entry{{"a", 0, "", false, ""}, {"a", 1, "", false, ""}}
	trimmed := []entry{{"a", 4, "", false, ""}}
	final := []entry{{"a", 5, "", false, ""}}
	log, gone, unread := composeLog(lost, trimmed, final, accept, room)
	var got []string
	for _, e := range log {
		got = append(got, fmt.Sprintf("%d%v", e.Seq, map[bool]string{true: "?", false: ""}[e.Unplaced]))
	}
	if strings.Join(got, " ") != "0 1 3? 2? 4 5" || unread != 2 {
		t.Errorf("log %v (unread %d), want 0 1 3? 2? 4 5 (2): lost, unplaced by acceptance, trimmed, final", got, unread)
	}
	if len(gone) != 5 || gone[msgKey{"a", 5}] {
		t.Errorf("gone %v, want every message but the final log's", gone)
	}
	if _, gone, _ := composeLog(nil, nil, final, accept, room); gone != nil {
		t.Errorf("nothing lost or trimmed: gone %v, want nil", gone)
	}
}

// TestAwayMissedTrimmed: the retention fault fails unless each away
// subscriber missed a trimmed message of its rooms.
func TestAwayMissedTrimmed(t *testing.T) {
	trimmed := []entry{{"a", 1, "", false, ""}, {"b", 2, "", false, ""}}
	results := []subResult{
		{Name: "missed", Rooms: []string{"a"}, Got: []got{{Room: "a", Seq: 0}}},
		{Name: "had-it", Rooms: []string{"a"}, Got: []got{{Room: "a", Seq: 1}}},
		{Name: "other-room", Rooms: []string{"c"}},
		{Name: "not-away", Rooms: []string{"c"}},
	}
	f := awayMissedTrimmed(results, trimmed, map[string]bool{"missed": true, "had-it": true, "other-room": true})
	if len(f) != 2 || !strings.Contains(f[0], "had-it") || !strings.Contains(f[1], "other-room") {
		t.Errorf("failures %q, want had-it and other-room", f)
	}
}

// TestPositionHoles: PostgreSQL positions are dense; a log trimmed from
// its start has none, one with a position missing inside is reported.
func TestPositionHoles(t *testing.T) {
	at := func(pos ...string) []entry {
		var log []entry
		for _, p := range pos {
			log = append(log, entry{Pos: p})
		}
		return log
	}
	for _, c := range []struct {
		log  []entry
		want []string
	}{
		{nil, nil},
		{at("7", "8", "9"), nil},
		{at("1", "2", "4", "5", "9"), []string{"3 to 3", "6 to 8"}},
	} {
		if got := positionHoles(c.log); !slices.Equal(got, c.want) {
			t.Errorf("%v: got %q, want %q", c.log, got, c.want)
		}
	}
}
