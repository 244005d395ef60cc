package brokertest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// testOutage: with Features.Outage, two nodes on a backend of the
// subtest's own live through the backend stopping and starting again:
//
//   - before: messages flow to both nodes;
//   - stopped: Healthy reports an error within
//     outageNoticed, Publish fails within publishFails on both nodes, and
//     History returns within publishFails, with an error or a true answer;
//   - started: both nodes are healthy again within recovered; what is
//     published afterwards, from either node, is delivered to both, in
//     order, exactly once, after what was delivered before the outage
//     (nothing is replayed, nothing that failed to publish appears);
//   - resume: History from a position before the outage is Recovered true
//     with what followed it when the backend kept its data, and Recovered
//     false without any lost message when it did not; new ids never repeat
//     old ones.
//
// Without Features.Outage there is no backend to stop: see
// testNodeLeaves.
func testOutage(t *testing.T, s *suite) {
	if s.f.Outage == nil {
		testNodeLeaves(t, s)
		return
	}
	be := s.f.Outage(t)
	if be.NewBroker == nil || be.Stop == nil || be.Start == nil {
		t.Fatal("brokertest: Features.Outage returned a Backend without NewBroker, Stop or Start")
	}
	n1, n2 := s.startWith(t, be.NewBroker), s.startWith(t, be.NewBroker)
	nodes := []*node{n1, n2}
	ch := s.channel(t, "c")

	before := []*core.Envelope{n1.publish(ch, 0), n2.publish(ch, 1)}
	for _, n := range nodes {
		n.expectDelivered(ch, before)
		n.waitHealth(true, recovered)
	}

	be.Stop()
	for _, n := range nodes {
		n.waitHealth(false, outageNoticed)
	}
	for i, n := range nodes {
		n.publishFailsPromptly(ch, 100+i)
	}
	n2.historyDuringOutage(ch, before)

	be.Start()
	for _, n := range nodes {
		n.waitHealth(true, recovered)
	}
	after := []*core.Envelope{n1.publish(ch, 2), n2.publish(ch, 3), n1.publish(ch, 4)}
	for _, e := range after {
		for _, old := range before {
			if e.ID == old.ID {
				t.Fatalf("after the outage the id %s was issued again: a resume from it would replay the wrong messages", e.ID)
			}
		}
	}

	// Resume from the last position before the outage, then from one
	// after it. Markers (expectDelivered's) are in the log too: drop them.
	res := n2.history([]string{ch}, before[1].ID, 100)
	res.Envelopes = slices.DeleteFunc(res.Envelopes, isMarker)
	if be.KeepsData {
		s.checkHistory(t, "since before the outage, the backend kept its data", res, after, true)
	} else if s.f.HistorySize >= 0 {
		if res.Recovered {
			t.Errorf("since before the outage, the backend restarted empty: Recovered = true with\n%s\nwant false", dump(res.Envelopes))
		}
		if k := len(res.Envelopes); k > len(after) || !sameEnvelopes(res.Envelopes, after[len(after)-k:]) {
			t.Errorf("since before the outage, the backend restarted empty: History returned\n%s\nwant nothing or the newest of\n%s", dump(res.Envelopes), dump(after))
		}
	} else {
		s.checkHistory(t, "since before the outage, no history", res, nil, false)
	}
	res = n1.history([]string{ch}, after[0].ID, 100)
	res.Envelopes = slices.DeleteFunc(res.Envelopes, isMarker)
	s.checkHistory(t, "since the first message after the outage", res, after[1:], true)

	want := append(slices.Clip(before), after...)
	for _, n := range nodes {
		n.expectDelivered(ch, want)
	}
}

// waitHealth polls Healthy until it reports healthy (nil) or not, within
// the bound.
func (n *node) waitHealth(healthy bool, within time.Duration) {
	n.t.Helper()
	began := time.Now()
	for {
		err := n.b.Healthy()
		if (err == nil) == healthy {
			return
		}
		if time.Since(began) > within {
			if healthy {
				n.t.Fatalf("not healthy %s after the backend came back: %v", within, err)
			}
			n.t.Fatalf("Healthy() still nil %s after the backend stopped", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publishFailsPromptly publishes message i while the backend is down: it
// must fail within publishFails although the context allows far longer.
// Publish runs on its own goroutine so that one that hangs fails the test
// instead of stalling it.
func (n *node) publishFailsPromptly(channel string, i int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*publishFails+n.s.f.DeliveryTimeout)
	defer cancel()
	env := message(channel, i)
	began := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := n.b.Publish(ctx, core.Publication{Channel: channel, Envelope: env})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			n.t.Fatalf("Publish(%s, %d) with the backend stopped succeeded (id %s)", channel, i, env.ID)
		}
		if time.Since(began) > publishFails {
			n.t.Fatalf("Publish with the backend stopped failed after %s (%v): it must give up by itself within %s", time.Since(began).Round(time.Millisecond), err, publishFails)
		}
	case <-time.After(publishFails):
		n.t.Fatalf("Publish with the backend stopped still blocked after %s", publishFails)
	}
}

// historyDuringOutage: History with the backend down returns within
// publishFails; an error is the honest answer, and an answer without one
// must be the true one (a node may serve it from what it holds).
func (n *node) historyDuringOutage(channel string, before []*core.Envelope) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*publishFails+n.s.f.DeliveryTimeout)
	defer cancel()
	type answer struct {
		res core.HistoryResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := n.b.History(ctx, core.HistoryRequest{Channels: []string{channel}, Since: before[0].ID, Limit: 100})
		done <- answer{res, err}
	}()
	select {
	case a := <-done:
		if a.err != nil {
			return
		}
		a.res.Envelopes = slices.DeleteFunc(a.res.Envelopes, isMarker)
		n.s.checkHistory(n.t, "History with the backend stopped (no error)", a.res, before[1:], true)
	case <-time.After(publishFails):
		n.t.Fatalf("History with the backend stopped still blocked after %s", publishFails)
	}
}

// testNodeLeaves (Features.Outage nil): one node closing does not disturb
// another: the remaining node keeps publishing, delivering and answering
// History, including, with a shared log, for the closed node's ids.
func testNodeLeaves(t *testing.T, s *suite) {
	n1, n2 := s.start(t), s.start(t)
	ch := s.channel(t, "c")
	var want []*core.Envelope
	if s.f.SharedLog {
		want = append(want, n2.publish(ch, 0))
	}
	want = append(want, n1.publish(ch, 1))
	n1.expectDelivered(ch, want)

	ctx, cancel := n2.ctx()
	err := n2.b.Close(ctx)
	cancel()
	if err != nil {
		t.Fatalf("Close of the other node: %v", err)
	}
	want = append(want, n1.publish(ch, 2), n1.publish(ch, 3))
	n1.expectDelivered(ch, want)
	res := n1.history([]string{ch}, want[0].ID, 100)
	res.Envelopes = slices.DeleteFunc(res.Envelopes, isMarker)
	s.checkHistory(t, "after the other node closed", res, want[1:], true)
}
