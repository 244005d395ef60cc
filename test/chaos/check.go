package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// phase is a fault's time in the run: from its start until the next
// fault starts (the last lasts to the end). Messages are attributed to
// the phase their publish was accepted in, signals and reconnects to
// the phase they happened in.
type phase struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"` // when the fault itself was over (process back)
	// DataLoss: the broker lost its log in this fault (kfake restarted).
	// Clients are then told recovered:false whether or not they missed
	// something (the server cannot know), and what was lost is the
	// broker's loss, signalled, not the contract's.
	DataLoss bool `json:"data_loss,omitempty"`
}

// noFault names the time before the first fault.
const noFault = "none"

// phaseIn returns the fault in force at t: the last one started by then
// (ok false before the first).
func phaseIn(phases []phase, t time.Time) (in phase, ok bool) {
	for _, p := range phases {
		if !t.Before(p.Start) {
			in, ok = p, true
		}
	}
	return in, ok
}

func phaseAt(phases []phase, t time.Time) string {
	if p, ok := phaseIn(phases, t); ok {
		return p.Name
	}
	return noFault
}

// subResult is what one subscriber recorded.
type subResult struct {
	Name       string
	Transport  string
	Rooms      []string
	Got        []got
	Signals    []notice
	Reconnects []time.Time
	Errors     map[string]int
}

// figures are the checked counts for one (transport, phase).
type figures struct {
	Transport string `json:"transport"`
	Phase     string `json:"phase"`
	// Expected is the log's messages in the subscribers' rooms, summed
	// over subscribers; Received those that arrived (once counted).
	Expected int64 `json:"expected"`
	Received int64 `json:"received"`
	// Lost without a signal is the contract broken; with one, the
	// client was told (recovered:false or gap) right where it was.
	LostUnsignaled int64 `json:"lost_unsignaled"`
	LostSignaled   int64 `json:"lost_signaled"`
	// LostGone: lost with a signal, and the broker itself lost them
	// (kfake's restart). The client was told; nothing could replay them.
	LostGone int64 `json:"lost_with_the_log"`
	// DeliveredLost: received, then lost with the broker's log before
	// the suite could read it (not a phantom: it was accepted).
	DeliveredLost int64 `json:"delivered_then_lost"`
	// DroppedByPolicy: missed without a signal in a drop-oldest or
	// conflate room, which drop by design; NewestMissed: of those, the
	// room's newest message, which they promise.
	DroppedByPolicy int64 `json:"dropped_by_policy"`
	NewestMissed    int64 `json:"newest_missed"`
	DupByID         int64 `json:"duplicates_by_id"`
	DupBySeq        int64 `json:"duplicates_by_seq"`
	Reordered       int64 `json:"reordered"`
	Phantom         int64 `json:"phantom"` // received, not in the log
	Reconnects      int64 `json:"reconnects"`
	Signals         int64 `json:"signals"`
	// Unwarranted counts signals with nothing missing where they were
	// given: recovered:false when the log held everything.
	Unwarranted int64 `json:"signals_unwarranted"`
	// Latency is accept → receipt of the messages received, in ms.
	LatencyP50 float64 `json:"latency_p50_ms"`
	LatencyP99 float64 `json:"latency_p99_ms"`
	LatencyMax float64 `json:"latency_max_ms"`
	lat        []float64
}

// msgKey names a message by content.
type msgKey struct {
	room string
	seq  int64
}

// check compares every subscriber with the log. acceptAt is each
// message's acceptance time (zero if never accepted), by seq.
//
// gone, when not nil, holds the messages of the log that the broker
// itself lost later (kfake restarted): losing one of those with a signal
// is the broker's loss, not the contract's; any other signalled loss is
// a message the log still holds.
//
// policy names the rooms whose slow-consumer policy drops messages by
// design (drop-oldest, conflate; "" for the others): a message missed
// there without a signal is counted as dropped by the policy, and the
// room's newest message is still owed.
func check(log []entry, subs []subResult, acceptAt []time.Time, phases []phase, gone map[msgKey]bool, policy func(room string) string) ([]*figures, []string) {
	// The first few failures by subscriber, for a person to follow up
	// in the processes' logs.
	var examples []string
	perSub := map[string]int{}
	noteBad := func(sub, what, room string, seq int64) {
		if perSub[sub] < 3 && len(examples) < 30 {
			perSub[sub]++
			examples = append(examples, fmt.Sprintf("%s: %s: %s #%d (accepted %s)", sub, what, room, seq, acceptTime(acceptAt, seq)))
		}
	}
	// A message is expected once, at its first position; it may be in
	// the log again later (a keyed publish appended once more after the
	// broker lost its log), and a receipt of it is in order if either
	// copy is.
	pos := make(map[msgKey]int, len(log))
	later := map[msgKey][]int{}
	unplaced := map[msgKey]bool{}
	for i, e := range log {
		if e.Seq < 0 {
			continue
		}
		k := msgKey{e.Room, e.Seq}
		if e.Unplaced {
			unplaced[k] = true
		}
		if _, ok := pos[k]; !ok {
			pos[k] = i
		} else {
			later[k] = append(later[k], i)
		}
	}
	msgPhase := func(seq int64) string {
		if seq >= 0 && seq < int64(len(acceptAt)) && !acceptAt[seq].IsZero() {
			return phaseAt(phases, acceptAt[seq])
		}
		return noFault
	}
	newest := map[string]int{} // of a policy room: its last message's position
	for k, p := range pos {
		if policy(k.room) != "" && p >= newest[k.room] {
			newest[k.room] = p
		}
	}
	byKey := map[[2]string]*figures{}
	fig := func(transport, phase string) *figures {
		k := [2]string{transport, phase}
		if f := byKey[k]; f != nil {
			return f
		}
		f := &figures{Transport: transport, Phase: phase}
		byKey[k] = f
		return f
	}
	for _, s := range subs {
		rooms := map[string]bool{}
		for _, r := range s.Rooms {
			rooms[r] = true
		}
		// What it should have: the log's first occurrences in its rooms.
		var expected []int // log positions
		for k, p := range pos {
			if rooms[k.room] {
				expected = append(expected, p)
			}
		}
		sort.Ints(expected)
		seenID := map[string]bool{}
		seenPos := map[int]bool{}
		gotPos := make([]int, len(s.Got)) // -1: not in the log
		maxPos := -1
		for i, g := range s.Got {
			p, ok := pos[msgKey{g.Room, g.Seq}]
			gotPos[i] = -1
			f := fig(s.Transport, msgPhase(g.Seq))
			if !ok {
				if gone != nil && g.Seq >= 0 && g.Seq < int64(len(acceptAt)) && !acceptAt[g.Seq].IsZero() {
					f.DeliveredLost++ // accepted, delivered, then lost with the broker's log
				} else {
					f.Phantom++
				}
				continue
			}
			order := p // where this receipt is in the log
			if p < maxPos {
				for _, q := range later[msgKey{g.Room, g.Seq}] {
					if q > maxPos {
						order = q
						break
					}
				}
			}
			gotPos[i] = order
			if g.ID != "" && seenID[g.ID] {
				f.DupByID++
			}
			seenID[g.ID] = true
			if seenPos[p] {
				f.DupBySeq++
				noteBad(s.Name, "duplicate", g.Room, g.Seq)
				continue
			}
			seenPos[p] = true
			if unplaced[msgKey{g.Room, g.Seq}] {
				// Its place in the log is unknown: no order to check, and
				// no bound for a signal's window.
				gotPos[i] = -1
				f.Received++
				continue
			}
			if order < maxPos {
				f.Reordered++
				noteBad(s.Name, "reordered", g.Room, g.Seq)
			}
			maxPos = max(maxPos, order)
			f.Received++
			if g.Seq < int64(len(acceptAt)) && !acceptAt[g.Seq].IsZero() {
				// A message may arrive before its publisher reads the answer.
				f.lat = append(f.lat, max(0, float64(g.At.Sub(acceptAt[g.Seq]))/float64(time.Millisecond)))
			}
		}
		// Each signal covers the log between the last message before it
		// and the first after it.
		type window struct {
			lo, hi int
			used   bool
		}
		wins := make([]window, len(s.Signals))
		for i, sg := range s.Signals {
			w := window{lo: -1, hi: math.MaxInt}
			for j := sg.After - 1; j >= 0; j-- {
				if gotPos[j] >= 0 {
					w.lo = gotPos[j]
					break
				}
			}
			for j := sg.After; j < len(gotPos); j++ {
				if gotPos[j] >= 0 {
					w.hi = gotPos[j]
					break
				}
			}
			wins[i] = w
			f := fig(s.Transport, phaseAt(phases, sg.At))
			f.Signals++
		}
		for _, p := range expected {
			f := fig(s.Transport, msgPhase(log[p].Seq))
			f.Expected++
			if seenPos[p] {
				continue
			}
			signaled := false
			for i := range wins {
				if wins[i].lo < p && p < wins[i].hi {
					signaled, wins[i].used = true, true
				}
			}
			switch {
			case signaled && gone[msgKey{log[p].Room, log[p].Seq}]:
				f.LostGone++
			case policy(log[p].Room) != "":
				f.DroppedByPolicy++
				if p == newest[log[p].Room] {
					f.NewestMissed++
					noteBad(s.Name, "missed the newest message of a "+policy(log[p].Room)+" room", log[p].Room, log[p].Seq)
				}
			case signaled:
				f.LostSignaled++
			default:
				f.LostUnsignaled++
				noteBad(s.Name, "lost without a signal", log[p].Room, log[p].Seq)
			}
		}
		for i, w := range wins {
			if !w.used && !dataLossAt(phases, s.Signals[i].At) {
				fig(s.Transport, phaseAt(phases, s.Signals[i].At)).Unwarranted++
			}
		}
		for _, at := range s.Reconnects {
			fig(s.Transport, phaseAt(phases, at)).Reconnects++
		}
	}
	out := make([]*figures, 0, len(byKey))
	for _, f := range byKey {
		if len(f.lat) > 0 {
			slices.Sort(f.lat)
			f.LatencyP50 = quantile(f.lat, 0.5)
			f.LatencyP99 = quantile(f.lat, 0.99)
			f.LatencyMax = f.lat[len(f.lat)-1]
		}
		out = append(out, f)
	}
	order := map[string]int{noFault: -1}
	for i, p := range phases {
		order[p.Name] = i
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Transport != out[j].Transport {
			return out[i].Transport < out[j].Transport
		}
		return order[out[i].Phase] < order[out[j].Phase]
	})
	return out, examples
}

func acceptTime(acceptAt []time.Time, seq int64) string {
	if seq < 0 || seq >= int64(len(acceptAt)) || acceptAt[seq].IsZero() {
		return "never"
	}
	return acceptAt[seq].Format("15:04:05.000")
}

// dataLossAt reports whether t falls in a fault in which the broker lost
// its log: a client is then told recovered:false whether or not it
// missed something, since the server cannot know.
func dataLossAt(phases []phase, t time.Time) bool {
	p, _ := phaseIn(phases, t)
	return p.DataLoss
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// logFigures are the broker-side counts: what the publishers were told
// against what the log holds.
type logFigures struct {
	Messages         int64 `json:"messages"`
	Accepted         int64 `json:"accepted"`
	Retries          int64 `json:"retries"`
	InLog            int64 `json:"in_log"`
	TwiceInLog       int64 `json:"twice_in_log"`        // a key (message) logged more than once
	AcceptedNotInLog int64 `json:"accepted_not_in_log"` // acknowledged, then lost by the broker
	// LostWithTheLog: in the log before a restart that lost it (kfake),
	// and not published again since.
	LostWithTheLog int64 `json:"lost_with_the_log,omitempty"`
	// Trimmed: removed from the log by the retention fault.
	Trimmed int64 `json:"trimmed,omitempty"`
}

// checkLog counts messages 0..attempted-1.
func checkLog(log []entry, acceptAt []time.Time, retries, attempted int64) logFigures {
	acceptAt = acceptAt[:attempted]
	f := logFigures{Messages: attempted, Retries: retries}
	count := make([]int, len(acceptAt))
	for _, e := range log {
		if e.Seq >= 0 && e.Seq < int64(len(count)) {
			count[e.Seq]++
		}
	}
	for i, n := range count {
		if !acceptAt[i].IsZero() {
			f.Accepted++
			if n == 0 {
				f.AcceptedNotInLog++
			}
		}
		if n > 0 {
			f.InLog++
		}
		if n > 1 {
			f.TwiceInLog++
		}
	}
	return f
}

// composeLog is every log the run had, in order: what the broker lost
// in a restart (lost, read just before it), then the messages accepted
// after that read and lost with it (unplaced, in the order they were
// accepted), then what the retention fault trimmed (a prefix of the log
// of then), then what the log holds now (final). gone is what is no
// longer in final: a subscriber that missed one of those must have been
// told, and was told warrantedly; nil when nothing was lost or trimmed.
func composeLog(lost, trimmed, final []entry, acceptAt []time.Time, room func(int64) string) (log []entry, gone map[msgKey]bool, unread int64) {
	log = append(log, lost...)
	if len(lost) == 0 && len(trimmed) == 0 {
		return append(log, final...), nil, 0
	}
	if len(lost) > 0 {
		inLog := map[int64]bool{}
		for _, part := range [][]entry{lost, trimmed, final} {
			for _, e := range part {
				inLog[e.Seq] = true
			}
		}
		var seqs []int64
		for i, at := range acceptAt {
			if !at.IsZero() && !inLog[int64(i)] {
				seqs = append(seqs, int64(i))
			}
		}
		sort.Slice(seqs, func(a, b int) bool { return acceptAt[seqs[a]].Before(acceptAt[seqs[b]]) })
		for _, i := range seqs {
			log = append(log, entry{Room: room(i), Seq: i, Unplaced: true})
		}
		unread = int64(len(seqs))
	}
	log = append(log, trimmed...)
	gone = map[msgKey]bool{}
	for _, e := range log {
		gone[msgKey{e.Room, e.Seq}] = true
	}
	for _, e := range final {
		delete(gone, msgKey{e.Room, e.Seq})
	}
	return append(log, final...), gone, unread
}
