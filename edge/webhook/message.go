package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// MessageRequest is the body POSTed to the message route.
type MessageRequest struct {
	Route     string            `json:"route"` // "message"
	ID        string            `json:"id"`
	Node      string            `json:"node"`
	Conn      string            `json:"conn"` // connection id (a per-request id for POST /send)
	User      string            `json:"user"`
	Transport string            `json:"transport"`
	Remote    string            `json:"remote,omitempty"`
	Meta      map[string]string `json:"meta,omitempty"`
	// Envelope is the client's envelope as the edge decoded it.
	Envelope json.RawMessage `json:"envelope"`
	Time     time.Time       `json:"time"`
}

// MaxResponseEnvelopes bounds the envelopes in one message answer.
const MaxResponseEnvelopes = 100

// Register routes the configured message types to the message webhook on
// n's router and records n's id for every route's requests. Call it
// before the node accepts connections.
func (h *Hooks) Register(n *core.Node) {
	if h == nil {
		return
	}
	h.SetNodeID(n.ID())
	if h.message == nil {
		return
	}
	handler := h.messageHandler(n)
	for _, typ := range h.cfg.MessageTypes {
		n.Router().Handle(typ, handler)
	}
}

// messageHandler forwards an envelope to the backend and carries out its
// answer. It runs on the session's reader: the client's next envelopes
// wait, which keeps replies in request order.
func (h *Hooks) messageHandler(n *core.Node) core.HandlerFunc {
	return func(_ context.Context, s *core.Session, env *core.Envelope) error {
		r := h.message
		if h.isClosed() {
			r.calls.Add(1)
			r.refused.Add(1)
			return core.Errorf(core.CodeUnavailable, "the %s handler is unavailable; retry later", env.Type)
		}
		req := MessageRequest{
			Route: RouteMessage, ID: newID(), Node: n.ID(), Conn: s.ID(), User: s.User(), Transport: s.Transport(),
			Remote: s.RemoteAddr(), Meta: s.Meta(), Envelope: env.Encode(), Time: h.cfg.Now().UTC(),
		}
		body, err := json.Marshal(req)
		if err != nil {
			return err
		}
		// The session's context, not the dispatch one: the webhook has
		// its own timeout, and publishing gets the broker's afterwards.
		ctx, cancel := context.WithTimeout(s.Context(), h.cfg.Timeout*time.Duration(r.retries+1)+h.cfg.BackoffMax*time.Duration(r.retries))
		defer cancel()
		resp, err := h.call(ctx, r, req.ID, body, h.cfg.Timeout)
		if err != nil {
			h.log.Warn("message webhook failed", "delivery", req.ID, "conn", s.ID(), "user", s.User(), "type", env.Type, "err", err)
			return core.Errorf(core.CodeUnavailable, "the %s handler is unavailable; retry later", env.Type)
		}
		out, err := decodeMessage(resp)
		if err != nil {
			r.failures.Add(1)
			h.log.Warn("message webhook answered badly", "delivery", req.ID, "type", env.Type, "err", err)
			return core.Errorf(core.CodeInternal, "the %s handler failed", env.Type)
		}
		pctx, pcancel := context.WithTimeout(s.Context(), n.Config().BrokerTimeout)
		defer pcancel()
		return relay(pctx, n, s, env, out)
	}
}

// decodeMessage parses the answer: nothing (empty, null, []), one
// envelope, or an array of them, each a valid v1 envelope.
func decodeMessage(b []byte) ([]*core.Envelope, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil, nil
	}
	var raws []json.RawMessage
	if b[0] == '[' {
		if err := json.Unmarshal(b, &raws); err != nil {
			return nil, fmt.Errorf("%w: message: %v", ErrBadResponse, err)
		}
	} else {
		raws = []json.RawMessage{b}
	}
	if len(raws) > MaxResponseEnvelopes {
		return nil, fmt.Errorf("%w: message: %d envelopes, at most %d", ErrBadResponse, len(raws), MaxResponseEnvelopes)
	}
	out := make([]*core.Envelope, 0, len(raws))
	for i, raw := range raws {
		e, err := core.DecodeEnvelope(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: message: envelope %d: %v", ErrBadResponse, i, err)
		}
		if e.Room != "" && e.To != "" {
			return nil, fmt.Errorf(`%w: message: envelope %d: "room" and "to" together`, ErrBadResponse, i)
		}
		out = append(out, e)
	}
	return out, nil
}

// published is one entry of the ack sent when the answer has no reply.
type published struct {
	Room string `json:"room,omitempty"`
	To   string `json:"to,omitempty"`
	ID   string `json:"id"`
}

// relay carries out the answer in order: an envelope with "room" is
// published to that room, one with "to" is sent directly to that user
// (both from the sender), any other is a reply to the sender carrying the
// request's ref. If no reply was sent, an ack lists what was published.
// The first failure stops it.
func relay(ctx context.Context, n *core.Node, s *core.Session, req *core.Envelope, out []*core.Envelope) error {
	replied := false
	var pubs []published
	for _, e := range out {
		switch {
		case e.Room != "":
			msg := &core.Envelope{V: core.Version, Type: e.Type, Room: e.Room, From: s.User(), TS: time.Now().UnixMilli(), Data: e.Data}
			id, err := n.Publish(ctx, core.RoomChannel(e.Room), msg)
			if err != nil {
				return err
			}
			pubs = append(pubs, published{Room: e.Room, ID: id})
		case e.To != "":
			msg := &core.Envelope{V: core.Version, Type: e.Type, To: e.To, From: s.User(), TS: time.Now().UnixMilli(), Data: e.Data}
			id, err := n.Publish(ctx, core.UserChannel(e.To), msg)
			if err != nil {
				return err
			}
			pubs = append(pubs, published{To: e.To, ID: id})
		default:
			if err := s.Send(&core.Envelope{V: core.Version, Type: e.Type, Ref: req.Ref, Data: e.Data}); err != nil {
				if errors.Is(err, core.ErrSessionClosed) {
					return nil
				}
				return err
			}
			replied = true
		}
	}
	if replied {
		return nil
	}
	var data []byte
	if len(pubs) > 0 {
		data, _ = json.Marshal(struct {
			Published []published `json:"published"`
		}{pubs})
	}
	_ = s.Send(&core.Envelope{V: core.Version, Type: core.TypeAck, Ref: req.Ref, Data: data})
	return nil
}
