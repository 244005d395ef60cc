package brokertest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// Recorder collects the deliveries of one started broker, for a driver's
// own tests: the envelopes in the order they arrived, and the gaps.
type Recorder struct {
	mu      sync.Mutex
	got     []*core.Envelope
	gaps    int
	changed chan struct{} // closed and replaced on every delivery
}

// Listen starts b with a Recorder as its delivery callback.
func Listen(t testing.TB, b core.Broker) *Recorder {
	t.Helper()
	r := &Recorder{changed: make(chan struct{})}
	if err := b.Start(context.Background(), r.deliver); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return r
}

func (r *Recorder) deliver(d core.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Gap {
		r.gaps++
	} else {
		r.got = append(r.got, d.Envelope)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// Gaps is how many gap deliveries arrived: the log lost what may not
// have been delivered.
func (r *Recorder) Gaps() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gaps
}

// All returns the envelopes delivered so far, in order.
func (r *Recorder) All() []*core.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// WaitFor waits until the envelope with id was delivered, at most
// timeout, and returns every envelope delivered so far.
func (r *Recorder) WaitFor(t testing.TB, id string, timeout time.Duration) []*core.Envelope {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got, changed := slices.Clone(r.got), r.changed
		r.mu.Unlock()
		for _, e := range got {
			if e.ID == id {
				return got
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s not delivered within %s; got\n%s", id, timeout, dump(got))
		}
	}
}
