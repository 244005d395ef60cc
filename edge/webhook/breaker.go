package webhook

import (
	"sync"
	"time"
)

// breaker is a per-route circuit breaker. Closed, it lets every attempt
// through and counts consecutive failures; at threshold it opens and
// refuses every attempt for cooldown; then it lets one trial attempt
// through (half-open): success closes it, failure opens it again. Every
// attempt allow admits must be reported once with done.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	onChange  func(open bool) // called without the lock held

	mu       sync.Mutex
	state    breakerState
	failures int
	openedAt time.Time
	trial    bool // the half-open trial is in flight
}

type breakerState int

const (
	stateClosed breakerState = iota
	stateOpen
	stateHalfOpen
)

func (s breakerState) String() string {
	return [...]string{"closed", "open", "half-open"}[s]
}

// outcome is what an admitted attempt reports.
type outcome int

const (
	succeeded outcome = iota
	failed
	abandoned // neither: the caller gave up (its context ended)
)

// ticket is an admitted attempt; trial marks the half-open probe.
type ticket struct{ trial bool }

// allow reports whether an attempt may proceed.
func (b *breaker) allow() (ticket, bool) {
	if b == nil {
		return ticket{}, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateOpen:
		if b.now().Sub(b.openedAt) < b.cooldown {
			return ticket{}, false
		}
		b.state = stateHalfOpen
		fallthrough
	case stateHalfOpen:
		if b.trial {
			return ticket{}, false
		}
		b.trial = true
		return ticket{trial: true}, true
	}
	return ticket{}, true
}

// done reports an admitted attempt's outcome. Only the trial decides a
// half-open breaker, but a success from any attempt closes it.
func (b *breaker) done(t ticket, o outcome) {
	if b == nil {
		return
	}
	b.mu.Lock()
	if t.trial {
		b.trial = false
	}
	before := b.state
	switch {
	case o == succeeded:
		b.state, b.failures = stateClosed, 0
	case o == failed && t.trial && b.state == stateHalfOpen:
		b.state, b.openedAt = stateOpen, b.now()
	case o == failed && b.state == stateClosed:
		b.failures++
		if b.failures >= b.threshold {
			b.state, b.openedAt = stateOpen, b.now()
		}
	}
	after := b.state
	if after != stateHalfOpen {
		b.trial = false
	}
	b.mu.Unlock()
	if b.onChange != nil && (after == stateClosed) != (before == stateClosed) {
		b.onChange(after == stateOpen)
	}
}

func (b *breaker) current() breakerState {
	if b == nil {
		return stateClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
