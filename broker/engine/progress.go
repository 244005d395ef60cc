package engine

import (
	"cmp"
	"context"
	"sync"

	"github.com/switchboard-dev/switchboard/broker"
)

// position is a position with its epoch.
type position struct {
	epoch string
	pos   Pos
}

// progress is the reader's delivered position, with waiters for it.
type progress struct {
	mu      sync.Mutex
	at      position
	epochs  map[string]int // every epoch the reader has been in, numbered in that order
	waiters broker.Waitlist[position]
}

func (p *progress) get() position {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at
}

// reached reports whether the reader is at or past want, or has left
// want's epoch (so want will never be delivered). A position of an epoch
// the reader has not reached yet (a log recreated under it) is pending.
// Called with mu held.
func (p *progress) reached(want position) bool {
	if want.epoch == p.at.epoch {
		return !p.at.pos.Less(want.pos)
	}
	n, ok := p.epochs[want.epoch]
	return ok && n < p.epochs[p.at.epoch]
}

// epochOrder compares two epochs by when the reader was in them: -1 when
// a came first, +1 when b did. ok is false unless the reader has been in
// both.
func (p *progress) epochOrder(a, b string) (order int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	na, okA := p.epochs[a]
	nb, okB := p.epochs[b]
	if !okA || !okB {
		return 0, false
	}
	return cmp.Compare(na, nb), true
}

func (p *progress) pending(want position) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.reached(want)
}

func (p *progress) advance(at position) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.epochs[at.epoch]; !ok {
		if p.epochs == nil {
			p.epochs = make(map[string]int)
		}
		p.epochs[at.epoch] = len(p.epochs)
	}
	p.at = at
	p.waiters.Release(p.reached)
}

// park returns a channel closed once want is reached (at once if it is).
// Nothing removes it early: it is for batches, whose waiters may give up
// one by one while the others still wait.
func (p *progress) park(want position) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reached(want) {
		return closedChan
	}
	return p.waiters.Park(want)
}

// wait returns nil once want is reached or stopped is closed, or ctx's
// error.
func (p *progress) wait(ctx context.Context, want position, stopped <-chan struct{}) error {
	p.mu.Lock()
	if p.reached(want) {
		p.mu.Unlock()
		return nil
	}
	ch := p.waiters.Park(want)
	p.mu.Unlock()
	return p.waiters.Wait(ctx, &p.mu, ch, stopped)
}

var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// health is the reader's view of the log.
type health struct {
	mu  sync.Mutex
	err error
}

// down records an outage; it reports whether this starts one.
func (h *health) down(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := h.err == nil
	h.err = err
	return first
}

// up records a successful read; it reports whether this ends an outage.
func (h *health) up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	was := h.err != nil
	h.err = nil
	return was
}

func (h *health) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}
