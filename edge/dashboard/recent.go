package dashboard

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Recent keeps the last warnings and errors logged, for the dashboard's
// "recent errors" list. It is a slog.Handler that passes every record on
// to the next handler and remembers those at Warn and above.
type Recent struct {
	next slog.Handler
	ring *ring
}

type ring struct {
	mu      sync.Mutex
	entries [64]Entry
	n       int // total recorded
}

// Entry is one remembered log line: its message, not its attributes,
// which name users and addresses and would travel in the broker's log.
type Entry struct {
	At    int64  `json:"at"` // unix ms
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// NewRecent wraps next (nil: remember only).
func NewRecent(next slog.Handler) *Recent {
	return &Recent{next: next, ring: &ring{}}
}

func (r *Recent) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || (r.next != nil && r.next.Enabled(ctx, l))
}

func (r *Recent) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		e := Entry{At: rec.Time.UnixMilli(), Level: rec.Level.String(), Msg: rec.Message}
		if rec.Time.IsZero() {
			e.At = time.Now().UnixMilli()
		}
		r.ring.mu.Lock()
		r.ring.entries[r.ring.n%len(r.ring.entries)] = e
		r.ring.n++
		r.ring.mu.Unlock()
	}
	if r.next != nil && r.next.Enabled(ctx, rec.Level) {
		return r.next.Handle(ctx, rec)
	}
	return nil
}

func (r *Recent) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	if r.next != nil {
		c.next = r.next.WithAttrs(as)
	}
	return &c
}

func (r *Recent) WithGroup(name string) slog.Handler {
	c := *r
	if r.next != nil {
		c.next = r.next.WithGroup(name)
	}
	return &c
}

// Last returns up to n remembered entries, newest first.
func (r *Recent) Last(n int) []Entry {
	r.ring.mu.Lock()
	defer r.ring.mu.Unlock()
	n = min(n, r.ring.n, len(r.ring.entries))
	out := make([]Entry, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.ring.entries[(r.ring.n-i)%len(r.ring.entries)])
	}
	return out
}
