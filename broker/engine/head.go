package engine

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
)

// headTimeout bounds one shared Head round trip (the driver's own
// timeouts usually end it sooner).
const headTimeout = 10 * time.Second

// heads shares the log's head among concurrent callers: a reconnect
// storm's thousands of resumes each need a head newer than their call,
// and one round trip that starts after a caller arrived serves every
// caller waiting for it. At most one fetch runs at a time; callers that
// arrive during it wait for the next one.
type heads struct {
	fetch func(ctx context.Context) (string, Pos, error)
	life  context.Context // ends at Close: a running fetch is abandoned

	mu      sync.Mutex
	next    *headFetch // the fetch newcomers join; nil when none pending
	running bool
	closed  bool
	wg      sync.WaitGroup
}

// close refuses new callers and waits for a running fetch, which the
// end of life interrupts.
func (h *heads) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.wg.Wait()
}

type headFetch struct {
	waiters int // callers that joined it
	done    chan struct{}
	epoch   string
	pos     Pos
	err     error
}

// get returns a head read after get was called.
func (h *heads) get(ctx context.Context) (string, Pos, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return "", Pos{}, broker.ErrClosed
	}
	f := h.next
	if f == nil {
		f = &headFetch{done: make(chan struct{})}
		h.next = f
	}
	f.waiters++
	if !h.running {
		h.running = true
		h.wg.Add(1)
		go h.run()
	}
	h.mu.Unlock()
	select {
	case <-f.done:
		return f.epoch, f.pos, f.err
	case <-ctx.Done():
		return "", Pos{}, ctx.Err()
	}
}

// run serves pending fetches one after another until none is pending.
func (h *heads) run() {
	defer h.wg.Done()
	for {
		h.mu.Lock()
		f := h.next
		h.next = nil
		if f == nil {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(h.life, headTimeout)
		f.epoch, f.pos, f.err = h.fetch(ctx)
		cancel()
		close(f.done)
	}
}
