package webhook

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// DisconnectRequest is the body POSTed to the disconnect route.
type DisconnectRequest struct {
	Route     string            `json:"route"` // "disconnect"
	ID        string            `json:"id"`    // the same on every attempt: deduplicate on it
	Node      string            `json:"node"`
	Conn      string            `json:"conn"`
	User      string            `json:"user"`
	Transport string            `json:"transport"`
	Remote    string            `json:"remote,omitempty"`
	Meta      map[string]string `json:"meta,omitempty"`
	Code      uint16            `json:"code"`   // the close code (core/disconnect.go, docs/protocol.md)
	Reason    string            `json:"reason"` // its reason
	// ConnectedAt and DurationMS are absent when the connect event was
	// not seen (it happened before the webhooks started).
	ConnectedAt *time.Time `json:"connected_at,omitempty"`
	DurationMS  *int64     `json:"duration_ms,omitempty"`
	Time        time.Time  `json:"time"` // when the connection ended
}

// pending is a queued disconnect.
type pending struct {
	ev      core.Event
	started time.Time // zero: unknown
}

// OnEvent takes every lifecycle event (core.Config.OnEvent) and queues
// disconnects for delivery. It never blocks: when the queue is full, or
// after Close, the event is dropped, counted in Stats and logged once per
// episode.
func (h *Hooks) OnEvent(ev core.Event) {
	if h == nil || h.disconnect == nil {
		return
	}
	switch ev.Type {
	case core.EventConnect:
		h.started.Store(ev.Conn, ev.Time)
		return
	case core.EventDisconnect:
	default:
		return
	}
	p := pending{ev: ev}
	if t, ok := h.started.LoadAndDelete(ev.Conn); ok {
		p.started = t.(time.Time)
	}
	r := h.disconnect
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		r.dropped.Add(1)
		return
	}
	select {
	case h.queue <- p:
		if h.dropping.Load() && h.dropping.CompareAndSwap(true, false) {
			h.log.Info("webhook disconnect queue has room again", "dropped_total", r.dropped.Load())
		}
	default:
		r.dropped.Add(1)
		if h.dropping.CompareAndSwap(false, true) {
			h.log.Warn("webhook disconnect queue full: dropping disconnects until it drains", "queue", cap(h.queue), "dropped_total", r.dropped.Load())
		}
	}
}

// worker delivers queued disconnects until Close; then it drains the
// queue until it is empty or the drain deadline passes.
func (h *Hooks) worker() {
	defer h.wg.Done()
	for {
		select {
		case p := <-h.queue:
			h.deliver(p)
		case <-h.draining:
			for {
				select {
				case p := <-h.queue:
					if h.ctx.Err() != nil {
						h.disconnect.dropped.Add(1)
						continue
					}
					h.deliver(p)
				default:
					return
				}
			}
		}
	}
}

func (h *Hooks) deliver(p pending) {
	r := h.disconnect
	ev := p.ev
	req := DisconnectRequest{
		Route: RouteDisconnect, ID: newID(), Node: ev.Node, Conn: ev.Conn, User: ev.User, Transport: ev.Transport,
		Remote: ev.Remote, Meta: ev.Meta, Code: ev.Code, Reason: ev.Reason, Time: ev.Time.UTC(),
	}
	if !p.started.IsZero() {
		at := p.started.UTC()
		ms := ev.Time.Sub(p.started).Milliseconds()
		req.ConnectedAt, req.DurationMS = &at, &ms
	}
	body, err := json.Marshal(req)
	if err != nil {
		r.dropped.Add(1)
		return
	}
	if _, err := h.call(h.ctx, r, req.ID, body, h.cfg.Timeout); err != nil {
		r.dropped.Add(1)
		if errors.Is(err, ErrOpen) {
			return // counted; the breaker logged when it opened
		}
		h.log.Warn("disconnect webhook not delivered: dropped", "delivery", req.ID, "conn", ev.Conn, "user", ev.User, "err", err)
	}
}
