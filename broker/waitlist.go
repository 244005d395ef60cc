package broker

import (
	"context"
	"sync"
)

// Waitlist parks callers until a reader's delivered position passes
// theirs (the WaitDelivered side of a driver). It has no lock of its own: the
// mutex of the progress it belongs to guards Park and Release, and is
// handed to Wait for its clean-up. The zero value is ready to use.
type Waitlist[P any] struct {
	parked []parked[P]
}

type parked[P any] struct {
	pos P
	ch  chan struct{}
}

// Park registers pos and returns the channel Release closes. Call with
// the owner's mutex held.
func (l *Waitlist[P]) Park(pos P) chan struct{} {
	ch := make(chan struct{})
	l.parked = append(l.parked, parked[P]{pos, ch})
	return ch
}

// Release closes and forgets the parked positions for which reached
// reports true (all of them when reached is nil, e.g. when an epoch ends).
// Call with the owner's mutex held.
func (l *Waitlist[P]) Release(reached func(P) bool) {
	kept := l.parked[:0]
	for _, w := range l.parked {
		if reached == nil || reached(w.pos) {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(l.parked[len(kept):])
	l.parked = kept
}

// Wait blocks until ch (from Park) is released or stopped is closed, and
// then returns nil; or until ctx ends, when it forgets ch under mu and
// returns ctx's error. Call without mu held.
func (l *Waitlist[P]) Wait(ctx context.Context, mu sync.Locker, ch chan struct{}, stopped <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-stopped:
		return nil
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		for i := range l.parked {
			if l.parked[i].ch == ch {
				l.parked = append(l.parked[:i], l.parked[i+1:]...)
				break
			}
		}
		return ctx.Err()
	}
}
