package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/switchboard-dev/switchboard/core"
)

// ConnectRequest is the body POSTed to the connect route.
type ConnectRequest struct {
	Route     string              `json:"route"` // "connect"
	ID        string              `json:"id"`    // delivery id, the same on every attempt
	Node      string              `json:"node"`
	Transport string              `json:"transport"` // websocket, sse, longpoll or send
	Remote    string              `json:"remote"`    // client IP (after a trusted proxy header)
	Headers   map[string][]string `json:"headers"`   // canonical names; no Authorization, Cookie or token subprotocol
	Query     map[string][]string `json:"query"`     // no token
	User      string              `json:"user"`      // what the authenticator decided; empty: anonymous
	Meta      map[string]string   `json:"meta,omitempty"`
	Time      time.Time           `json:"time"`
}

// ConnectResponse is the connect route's answer. Accept is required:
// true admits the connection (with the optional User, Rooms and Meta),
// false rejects it (with the optional Code, Reason, Status, Reconnect).
type ConnectResponse struct {
	Accept *bool `json:"accept"`
	// Accept: the user id to connect as (replaces the authenticator's),
	// rooms joined in addition to ?rooms=, metadata merged over the
	// authenticator's (a key here wins).
	User  string            `json:"user,omitempty"`
	Rooms []string          `json:"rooms,omitempty"`
	Meta  map[string]string `json:"meta,omitempty"`
	// Reject: the WebSocket close code (3000-4999, 1008, 1011 or 1013),
	// the reason (at most 123 bytes, shown to the client), the HTTP
	// status of the other transports (400-599), and whether the client
	// should reconnect. docs/webhooks.md gives the defaults.
	Code      uint16 `json:"code,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Status    int    `json:"status,omitempty"`
	Reconnect *bool  `json:"reconnect,omitempty"`
}

// Close codes the connect route uses on its own.
const (
	CodeForbidden = 4403 // default code of a rejection
)

// Failure answers of the connect route (fail closed).
var (
	// unavailable: breaker open, busy, timeout, network error, non-2xx.
	disconnectUnavailable = core.DisconnectTryAgain // 1013 / 503
	// broken: the backend answered 2xx with a body we cannot use.
	disconnectBroken = core.DisconnectInternal // 1011 / 502
)

// clientError carries a message safe to show the client (Rejection's
// message reaches it) while wrapping the cause for errors.Is.
type clientError struct {
	msg string
	err error
}

func (e *clientError) Error() string { return e.msg }
func (e *clientError) Unwrap() error { return e.err }

// Authenticator returns next wrapped with the connect route: once next
// accepts a connection, the backend is asked, and may change the
// identity or reject it with a *core.Rejection. A refresh (new
// credentials on an open connection) is next's alone: the backend was
// asked when the connection opened. Without a connect route it returns
// next.
func (h *Hooks) Authenticator(next core.Authenticator) core.Authenticator {
	if h == nil || h.connect == nil {
		return next
	}
	return connectAuth{h: h, next: next}
}

// connectAuth runs next, then the connect route. The route receives the
// request's headers and query parameters, so it reads request details.
type connectAuth struct {
	h    *Hooks
	next core.Authenticator
}

var _ core.DetailsReader = connectAuth{}

func (a connectAuth) Authenticate(ctx context.Context, c core.Credentials) (core.Identity, error) {
	id, err := a.next.Authenticate(ctx, c)
	if err != nil || c.Refresh {
		return id, err
	}
	return a.h.authorize(ctx, c, id)
}

func (a connectAuth) ReadsRequestDetails() bool { return true }

func (h *Hooks) authorize(ctx context.Context, c core.Credentials, id core.Identity) (core.Identity, error) {
	r := h.connect
	if h.isClosed() {
		r.calls.Add(1)
		r.refused.Add(1)
		return core.Identity{}, unavailable(ErrClosed)
	}
	req := ConnectRequest{
		Route: RouteConnect, ID: newID(), Node: h.node(), Transport: c.Transport, Remote: c.RemoteAddr,
		Headers: c.Header, Query: c.Query, User: id.User, Meta: id.Meta, Time: h.cfg.Now().UTC(),
	}
	body, err := json.Marshal(req)
	if err != nil {
		return core.Identity{}, unavailable(err)
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout) // the whole call, retries included
	defer cancel()
	resp, err := h.call(cctx, r, req.ID, body, h.cfg.Timeout)
	if err != nil {
		h.log.Warn("connect webhook failed: refusing the connection", "delivery", req.ID, "transport", c.Transport, "remote", c.RemoteAddr, "err", err)
		return core.Identity{}, unavailable(err)
	}
	out, rej, err := decodeConnect(resp, id)
	if err != nil {
		r.failures.Add(1)
		h.log.Warn("connect webhook answered badly: refusing the connection", "delivery", req.ID, "err", err)
		return core.Identity{}, &core.Rejection{Disconnect: disconnectBroken, Status: http.StatusBadGateway,
			Err: &clientError{msg: "authorization backend error", err: err}}
	}
	if rej != nil {
		h.log.Info("connect webhook rejected a connection", "delivery", req.ID, "transport", c.Transport, "remote", c.RemoteAddr, "user", id.User, "code", rej.Disconnect.Code, "status", rej.Status)
		return core.Identity{}, rej
	}
	return out, nil
}

func unavailable(err error) error {
	return &core.Rejection{Disconnect: disconnectUnavailable, Status: http.StatusServiceUnavailable,
		Err: &clientError{msg: "authorization backend unavailable; retry later", err: err}}
}

// decodeConnect applies the backend's answer to id: the new identity, or
// the rejection, or an error wrapping ErrBadResponse.
func decodeConnect(b []byte, id core.Identity) (core.Identity, *core.Rejection, error) {
	var resp ConnectResponse
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		return id, nil, fmt.Errorf("%w: connect: %v", ErrBadResponse, err)
	}
	if dec.More() {
		return id, nil, fmt.Errorf("%w: connect: more than one JSON value", ErrBadResponse)
	}
	if resp.Accept == nil {
		return id, nil, fmt.Errorf(`%w: connect: "accept" (true or false) is required`, ErrBadResponse)
	}
	if !*resp.Accept {
		return id, rejection(resp), nil
	}
	if resp.User != "" {
		if err := core.ValidateUser(resp.User); err != nil {
			return id, nil, fmt.Errorf("%w: connect: %v", ErrBadResponse, err)
		}
		id.User = resp.User
	}
	for _, room := range resp.Rooms {
		if err := core.ValidateRoom(room); err != nil {
			return id, nil, fmt.Errorf("%w: connect: %v", ErrBadResponse, err)
		}
	}
	id.Rooms = append(append([]string(nil), id.Rooms...), resp.Rooms...)
	if len(resp.Meta) > 0 {
		meta := make(map[string]string, len(id.Meta)+len(resp.Meta))
		maps.Copy(meta, id.Meta)
		maps.Copy(meta, resp.Meta)
		id.Meta = meta
	}
	return id, nil, nil
}

// rejection builds the Rejection for an "accept": false answer, filling
// what the backend left out (docs/webhooks.md, "Defaults").
func rejection(r ConnectResponse) *core.Rejection {
	code, status := r.Code, r.Status
	if code != 0 && !validCloseCode(code) {
		code = 0
	}
	if status != 0 && (status < 400 || status > 599) {
		status = 0
	}
	if code == 0 {
		switch status {
		case http.StatusUnauthorized:
			code = core.DisconnectUnauthorized.Code
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			code = core.DisconnectTryAgain.Code
		default:
			code = CodeForbidden
		}
	}
	if status == 0 {
		switch code {
		case core.DisconnectUnauthorized.Code:
			status = http.StatusUnauthorized
		case core.DisconnectTryAgain.Code:
			status = http.StatusServiceUnavailable
		case core.DisconnectInternal.Code:
			status = http.StatusInternalServerError
		default:
			status = http.StatusForbidden
		}
	}
	reason := truncate(r.Reason, 123)
	if reason == "" {
		switch code {
		case core.DisconnectUnauthorized.Code:
			reason = "unauthorized"
		case core.DisconnectTryAgain.Code:
			reason = "try again later"
		case core.DisconnectInternal.Code:
			reason = "internal error"
		default:
			reason = "forbidden"
		}
	}
	reconnect := code == core.DisconnectTryAgain.Code || code == core.DisconnectInternal.Code
	if r.Reconnect != nil {
		reconnect = *r.Reconnect
	}
	return &core.Rejection{
		Disconnect: core.Disconnect{Code: code, Reason: reason, Reconnect: reconnect},
		Status:     status,
		Err:        &clientError{msg: reason, err: ErrRejected},
	}
}

// validCloseCode: codes an application may send in a close frame.
func validCloseCode(c uint16) bool {
	return c >= 3000 && c <= 4999 || c == 1008 || c == 1011 || c == 1013
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (h *Hooks) isClosed() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closed
}
