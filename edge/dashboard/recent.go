package dashboard

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Recent keeps the last warnings and errors logged, for the dashboard's
// "recent errors" list. It is a slog.Handler that passes every record on
// to the next handler and remembers those at Warn and above.
type Recent struct {
	next  slog.Handler
	attrs string // from WithAttrs, rendered once
	ring  *ring
}

type ring struct {
	mu      sync.Mutex
	entries [64]Entry
	n       int // total recorded
}

// Entry is one remembered log line.
type Entry struct {
	At    int64  `json:"at"` // unix ms
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Attrs string `json:"attrs"`
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
		var b strings.Builder
		b.WriteString(r.attrs)
		rec.Attrs(func(a slog.Attr) bool {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(a.String())
			return b.Len() < 400
		})
		e := Entry{At: rec.Time.UnixMilli(), Level: rec.Level.String(), Msg: rec.Message, Attrs: b.String()}
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
	var b strings.Builder
	b.WriteString(r.attrs)
	for _, a := range as {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.String())
	}
	c.attrs = b.String()
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
