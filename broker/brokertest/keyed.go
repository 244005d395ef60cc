package brokertest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/switchboard-dev/switchboard/core"
)

// keyed publishes message i of channel with an idempotency key.
func (n *node) keyed(channel string, i int, key, digest string) (*core.Envelope, core.Published, error) {
	ctx, cancel := n.ctx()
	defer cancel()
	env := message(channel, i)
	res, err := n.b.Publish(ctx, core.Publication{Channel: channel, Envelope: env, Key: key, Digest: digest})
	return env, res, err
}

// testKeyedOnce: a publication retried with its key, on the same node or
// (with a shared log) another, is published once: the retry appends
// nothing, reports Duplicate with the first id, and every node delivers
// the message once. The same key with another digest is refused.
func testKeyedOnce(t *testing.T, s *suite) {
	n1 := s.start(t)
	n2 := n1
	if s.f.SharedLog {
		n2 = s.start(t)
	}
	ch := s.channel(t, "c")
	key := "bt" + s.run + "-" + t.Name()
	first, res, err := n1.keyed(ch, 0, key, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate || res.ID == "" || first.ID != res.ID {
		t.Fatalf("first keyed Publish = %+v (env.ID %q): want a fresh id, not a duplicate", res, first.ID)
	}
	for _, n := range []*node{n1, n2} {
		_, again, err := n.keyed(ch, 0, key, "d1")
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if !again.Duplicate || again.ID != res.ID {
			t.Fatalf("retry with the same key = %+v, want Duplicate with the first id %s", again, res.ID)
		}
	}
	if _, _, err := n2.keyed(ch, 9, key, "d2"); !errors.Is(err, core.ErrKeyReused) {
		t.Fatalf("same key, another digest: err = %v, want core.ErrKeyReused", err)
	}
	other, res2, err := n2.keyed(ch, 1, key+"-other", "d1")
	if err != nil || res2.Duplicate {
		t.Fatalf("another key = %+v, %v: want a fresh publication", res2, err)
	}
	for _, n := range []*node{n1, n2} {
		n.expectDelivered(ch, []*core.Envelope{first, other})
	}
}

// testKeyedRace: publications with one key racing on every node (as a
// backend retrying on another node before the first answered) deliver
// once: every call returns the same id, one of them not a duplicate.
func testKeyedRace(t *testing.T, s *suite) {
	nodes := []*node{s.start(t)}
	if s.f.SharedLog {
		nodes = append(nodes, s.start(t))
	}
	ch := s.channel(t, "c")
	const rounds, perNode = 5, 4
	var want []*core.Envelope
	for r := range rounds {
		key := fmt.Sprintf("bt%s-%s-%d", s.run, t.Name(), r)
		type outcome struct {
			env *core.Envelope
			res core.Published
			err error
		}
		out := make(chan outcome, len(nodes)*perNode)
		var wg sync.WaitGroup
		for _, n := range nodes {
			for range perNode {
				wg.Add(1)
				go func() {
					defer wg.Done()
					env, res, err := n.keyed(ch, r, key, "d")
					out <- outcome{env, res, err}
				}()
			}
		}
		wg.Wait()
		close(out)
		var id string
		fresh := 0
		var first *core.Envelope
		for o := range out {
			if o.err != nil {
				t.Fatalf("round %d: %v", r, o.err)
			}
			if id == "" {
				id = o.res.ID
			}
			if o.res.ID != id {
				t.Fatalf("round %d: racing publishes with one key returned ids %s and %s: want one", r, id, o.res.ID)
			}
			if !o.res.Duplicate {
				fresh++
				first = o.env
			}
		}
		if fresh != 1 {
			t.Fatalf("round %d: %d racing publishes with one key reported not Duplicate, want exactly 1", r, fresh)
		}
		want = append(want, first)
	}
	for _, n := range nodes {
		n.expectDelivered(ch, want)
	}
}
