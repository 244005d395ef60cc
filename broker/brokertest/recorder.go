package brokertest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// Recorder collects the deliveries of one started broker, for a driver's
// own tests: the deliveries in the order they arrived, and the gaps.
//
// The zero Recorder is ready to use; Listen makes one and starts a broker
// with it. A test that needs its own delivery callback (one that stalls,
// say) makes a Recorder and calls Deliver from that callback. All methods
// are safe for concurrent use; a Recorder must not be copied after first
// use.
type Recorder struct {
	mu      sync.Mutex
	got     []core.Delivery // no gaps
	gaps    int
	changed chan struct{} // closed and replaced on every delivery, gaps too; nil until first needed
}

// Listen starts b with a Recorder as its delivery callback.
func Listen(t testing.TB, b core.Broker) *Recorder {
	t.Helper()
	r := new(Recorder)
	if err := b.Start(context.Background(), r.Deliver); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return r
}

// Deliver records d: a gap is counted, anything else kept in order. It is
// a broker's delivery callback, and wakes every waiter.
func (r *Recorder) Deliver(d core.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Gap {
		r.gaps++
	} else {
		r.got = append(r.got, d)
	}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
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
	got, _ := r.snapshot()
	return envelopes(got)
}

// Deliveries returns what All does with each envelope's channel: the
// deliveries so far, in order, gaps left out.
func (r *Recorder) Deliveries() []core.Delivery {
	got, _ := r.snapshot()
	return got
}

// WaitFor waits until the envelope with id was delivered, at most
// timeout, and returns every envelope delivered so far.
func (r *Recorder) WaitFor(t testing.TB, id string, timeout time.Duration) []*core.Envelope {
	t.Helper()
	return r.wait(t, timeout, func(got []*core.Envelope) bool {
		for _, e := range got {
			if e.ID == id {
				return true
			}
		}
		return false
	}, id+" not delivered")
}

// WaitN waits until at least n envelopes were delivered, at most timeout,
// and returns every envelope delivered so far (perhaps more than n).
func (r *Recorder) WaitN(t testing.TB, n int, timeout time.Duration) []*core.Envelope {
	t.Helper()
	return r.wait(t, timeout, func(got []*core.Envelope) bool { return len(got) >= n },
		"fewer than "+strconv.Itoa(n)+" envelopes delivered")
}

// wait returns the envelopes delivered so far once done says they are
// enough, and fails t with what was delivered when timeout passes first.
func (r *Recorder) wait(t testing.TB, timeout time.Duration, done func([]*core.Envelope) bool, failure string) []*core.Envelope {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ds, changed := r.snapshot()
		got := envelopes(ds)
		if done(got) {
			return got
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s within %s; got\n%s", failure, timeout, dump(got))
		}
	}
}

// snapshot returns a copy of the deliveries so far and a channel closed
// on the next one.
func (r *Recorder) snapshot() ([]core.Delivery, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return append([]core.Delivery(nil), r.got...), r.changed
}

func envelopes(ds []core.Delivery) []*core.Envelope {
	out := make([]*core.Envelope, len(ds))
	for i, d := range ds {
		out[i] = d.Envelope
	}
	return out
}
