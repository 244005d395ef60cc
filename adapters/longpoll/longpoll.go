package longpoll

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/internal/deflate"
	"github.com/switchboard-dev/switchboard/adapters/internal/request"
	"github.com/switchboard-dev/switchboard/core"
)

// Response is the body of a successful poll.
type Response struct {
	// Messages are the envelopes after the cursor, oldest first, as the
	// WebSocket and SSE transports send them. Never null.
	Messages []json.RawMessage `json:"messages"`
	// Cursor is the id of the last message returned, or a later position
	// when the answer is a page whose read went on through other rooms'
	// messages; with none, the request's cursor, or for a request without
	// one (or with one the log cannot continue from) the broker's head.
	// Send it as ?cursor= on the next poll, to any node. Empty only when
	// the broker has no head.
	Cursor string `json:"cursor"`
	// Recovered is false when the log could not give everything after the
	// request's cursor: the client has missed messages. Being far behind
	// is not that: the answer is the next page (on a broker that pages).
	Recovered bool `json:"recovered"`
	// Errors are error envelopes about the request itself (an invalid
	// room name, too many rooms); the poll still answers.
	Errors []json.RawMessage `json:"errors,omitempty"`
}

// New returns the GET /poll handler serving node by long-polling on
// Fiber.
//
// Query parameters: rooms=a,b, cursor=<id of the last message received>
// (empty: from the broker's head, see Response.Cursor), wait=<Go duration or seconds, capped at MaxWait; 0
// answers at once>, token=<jwt> (or an Authorization: Bearer header),
// user=<id> (development mode only).
//
// Statuses: 200 with a Response; 400 for an invalid wait; 401
// unauthorized (including an invalid development-mode user); 503
// unavailable while the node shuts down; 503 broker_unavailable when the
// broker cannot give the history or its head (the client retries with the
// same cursor). An unparseable or expired cursor is not an error: the
// answer carries what the log can give with recovered:false.
func New(node *core.Node, config ...Config) fiber.Handler {
	h := newHandler(node, config...)
	return func(c *fiber.Ctx) error {
		if h.cfg.Next != nil && h.cfg.Next(c) {
			return c.Next()
		}
		return request.Reply(c, h.serve(request.Fiber(c)))
	}
}

// NewHandler is New for net/http: the same GET /poll on an
// http.ServeMux or any router (Config.Next is Fiber's and unused). A
// client that gives up ends its poll at once (net/http sees it leave).
// The answer gets its own write deadline (answerTimeout), so a server
// WriteTimeout shorter than the wait does not cut it.
func NewHandler(node *core.Node, config ...Config) http.Handler {
	h := newHandler(node, config...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := h.serve(request.HTTP(r))
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(answerTimeout))
		request.Write(w, a)
	})
}

// answerTimeout bounds the write of a net/http poll's answer.
const answerTimeout = 10 * time.Second

// handler is GET /poll, whichever server carries it.
type handler struct {
	node *core.Node
	cfg  Config
	gzip *deflate.Cache // nil without compression
}

func newHandler(node *core.Node, config ...Config) *handler {
	if node == nil {
		panic("switchboard/adapters/longpoll: node is nil")
	}
	h := &handler{node: node, cfg: configDefault(config...)}
	if h.cfg.CompressionLevel > 0 {
		h.gzip, _ = deflate.NewCache(h.cfg.CompressionLevel) // configDefault bounds the level
	}
	return h
}

// serve answers one poll.
func (h *handler) serve(r request.Request) *request.Answer {
	node, cfg := h.node, h.cfg
	if node.ShuttingDown() {
		return request.Unavailable()
	}
	// Credentials, rooms and cursor are copied out of the request.
	creds := request.Credentials(r, "longpoll", node.RequestDetails())
	remote := r.RemoteAddr()
	p, err := node.Authenticate(context.Background(), creds)
	if err != nil {
		node.Logger().Warn("longpoll unauthorized", "remote", remote, "err", err)
		return request.Refused(err)
	}
	wait, ok := parseWait(r.Query("wait"), cfg)
	if !ok {
		return request.Error(http.StatusBadRequest, core.CodeBadRequest, "wait must be a duration (25s) or a number of seconds")
	}
	var rooms []string
	if q := r.Query("rooms"); q != "" {
		rooms = strings.Split(strings.Clone(q), ",")
	}
	cursor := strings.Clone(r.Query("cursor"))
	req := core.ConnectRequest{Principal: p, Rooms: rooms, Since: cursor, RemoteAddr: remote, ClientIP: creds.RemoteAddr}

	res, status, err := poll(node, req, wait, cfg.BatchLimit, r.Done())
	if err != nil {
		code := core.ErrorCode(err)
		if code == "" {
			code = core.CodeInternal
		}
		return request.Error(status, code, err.Error())
	}
	return h.answer(r, status, res)
}

var (
	noStore     = map[string]string{"Cache-Control": "no-store"}
	noStoreVary = map[string]string{"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
	gzipped     = map[string]string{"Cache-Control": "no-store", "Vary": "Accept-Encoding", "Content-Encoding": "gzip"}
)

// answer encodes res: as a gzip member when the client accepts gzip and
// an envelope reaches the threshold, built from each envelope's
// compressed form (compressed once for every poll that carries it), else
// as it is.
func (h *handler) answer(r request.Request, status int, res Response) *request.Answer {
	if h.gzip == nil {
		return &request.Answer{Status: status, Body: appendResponse(plain{}, res).b, Header: noStore}
	}
	if !deflate.Worth(res.Messages, h.cfg.CompressionThreshold) || !request.HeaderHasToken(r, "Accept-Encoding", "gzip") {
		return &request.Answer{Status: status, Body: appendResponse(plain{}, res).b, Header: noStoreVary}
	}
	w := compressed{cache: h.gzip, threshold: h.cfg.CompressionThreshold}
	w.s.StartGzip()
	w = appendResponse(w, res)
	w.s.EndGzip()
	return &request.Answer{Status: status, Body: w.s.B, Header: gzipped}
}

// bodyWriter receives an answer's bytes: the answer's own, and the
// envelopes core encoded (shared with other connections).
type bodyWriter[W any] interface {
	text(s string) W
	envelope(m []byte) W
}

// appendResponse writes res as Response's JSON.
func appendResponse[W bodyWriter[W]](w W, res Response) W {
	w = w.text(`{"messages":[`)
	for i, m := range res.Messages {
		if i > 0 {
			w = w.text(",")
		}
		w = w.envelope(m)
	}
	cursor, _ := json.Marshal(res.Cursor)
	w = w.text(`],"cursor":` + string(cursor) + `,"recovered":` + strconv.FormatBool(res.Recovered))
	if len(res.Errors) > 0 {
		w = w.text(`,"errors":[`)
		for i, e := range res.Errors {
			if i > 0 {
				w = w.text(",")
			}
			w = w.envelope(e)
		}
		w = w.text("]")
	}
	return w.text("}")
}

// plain appends the answer as it is.
type plain struct{ b []byte }

func (p plain) text(s string) plain     { p.b = append(p.b, s...); return p }
func (p plain) envelope(m []byte) plain { p.b = append(p.b, m...); return p }

// compressed appends the answer to a gzip member: envelopes from the
// threshold up as their cached compressed form, the rest stored.
type compressed struct {
	s         deflate.Segments
	cache     *deflate.Cache
	threshold int
}

func (c compressed) text(s string) compressed { c.s.Stored([]byte(s)); return c }

func (c compressed) envelope(m []byte) compressed {
	if len(m) >= c.threshold {
		c.s.Frame(c.cache, m)
	} else {
		c.s.Stored(m)
	}
	return c
}

// poll runs one poll as a short-lived session and collects its answer.
// done ends the wait early: the HTTP server shuts down (Fiber) or the
// client left (net/http).
//
// A poll without a cursor starts from the broker's head (core.Broker.Head), so
// that an answer with no message still carries a cursor and the next poll
// misses nothing published in between; without a head it waits "from
// now" and answers an empty cursor. The replay is one page of at most
// limit messages (core.ConnectRequest.ReplayPage): a client far behind
// pages through the log at the cost of what each answer carries. Answers
// never carry a cursor the log cannot vouch for: when the broker cannot
// name its head or give the history, the poll fails with 503
// broker_unavailable and the client retries with the same cursor.
func poll(node *core.Node, req core.ConnectRequest, wait time.Duration, limit int, done <-chan struct{}) (Response, int, error) {
	fresh := req.Since == ""
	if fresh {
		h, err := node.Head(context.Background())
		if err != nil {
			return brokerDown(node, "head", err)
		}
		req.Since = h
	}
	req.ReplayPage = limit
	t := &collector{notify: make(chan struct{}, 1), limit: limit}
	sess, err := node.Accept(context.Background(), t, req)
	if err != nil {
		switch {
		case errors.Is(err, core.ErrShuttingDown):
			return Response{}, http.StatusServiceUnavailable, core.Errorf(core.CodeUnavailable, "node is shutting down; retry another node")
		case errors.Is(err, core.ErrTooManyConnections):
			return Response{}, http.StatusServiceUnavailable, core.Errorf(core.CodeUnavailable, "too many connections; try again later")
		case core.ErrorCode(err) == core.CodeInvalidUser || core.ErrorCode(err) == core.CodeBadRequest:
			return Response{}, http.StatusBadRequest, err
		}
		return brokerDown(node, "history", err)
	}
	rep := sess.Replay()
	// lost: the log cannot continue from the cursor. The client hears it
	// at once, as it does the page of a longer backlog.
	lost := !fresh && !rep.Recovered
	if !lost && !rep.More {
		waitForMessages(t, sess, wait, done)
	}
	// 1000 flushes the queue: whatever core queued (the replay, live
	// messages that arrived meanwhile) reaches the collector first.
	sess.Close(core.DisconnectNormal)

	t.mu.Lock()
	defer t.mu.Unlock()
	res := Response{Messages: t.messages, Cursor: req.Since, Recovered: !lost && !t.gap, Errors: t.errs}
	n := len(res.Messages)
	switch {
	case rep.More && n == rep.Messages:
		// The whole page: continue where its read ended (past the last
		// message when it went through other channels' records).
		res.Cursor = rep.Next
	case n > 0:
		res.Cursor = t.ids[n-1]
	case t.disconnect != nil && t.disconnect.Code == core.DisconnectShutdown.Code:
		return Response{}, http.StatusServiceUnavailable, core.Errorf(core.CodeUnavailable, "node is shutting down; retry another node")
	case lost && rep.Next != "" && rep.Next != req.Since:
		// The broker named where its read of the current log ended (the
		// cursor was of a lost log): continue from there.
		res.Cursor = rep.Next
	case lost:
		// The cursor is useless: continue from the head, so that nothing
		// published after this answer is missed ("" without one: from now).
		h, err := node.Head(context.Background())
		if err != nil {
			return brokerDown(node, "head", err)
		}
		res.Cursor = h
	}
	if res.Messages == nil {
		res.Messages = []json.RawMessage{}
	}
	return res, http.StatusOK, nil
}

// waitForMessages returns once t holds a message, wait has passed, the
// session has ended or done is closed.
func waitForMessages(t *collector, sess *core.Session, wait time.Duration, done <-chan struct{}) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for !t.ready() {
		select {
		case <-t.notify:
		case <-timer.C:
			return
		case <-sess.Done():
			return
		case <-done:
			return
		}
	}
}

// brokerDown answers a poll the broker could not serve (its head or the
// history unavailable): 503, and the client retries with the same cursor.
// A guessed cursor instead would skip or repeat messages.
func brokerDown(node *core.Node, what string, err error) (Response, int, error) {
	node.Logger().Warn("longpoll: broker unavailable; answering 503 (the client retries with the same cursor)", "read", what, "err", err)
	return Response{}, http.StatusServiceUnavailable, core.Errorf(core.CodeBrokerDown, "broker unavailable; retry with the same cursor, with backoff")
}

// parseWait reads ?wait=: a Go duration or whole seconds, capped at
// cfg.MaxWait; empty means cfg.DefaultWait.
func parseWait(s string, cfg Config) (time.Duration, bool) {
	if s == "" {
		return cfg.DefaultWait, true
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseUint(s, 10, 32)
		if nerr != nil {
			return 0, false
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, false
	}
	return min(d, cfg.MaxWait), true
}

// collector is the poll's core.Transport: it keeps what core writes (the
// shared, immutable frames) until the handler builds the answer. WriteMany and Close run on
// the session's writer goroutine; ready on the handler's.
type collector struct {
	notify chan struct{} // a write happened (capacity 1, never blocks)
	limit  int           // the most messages one answer carries

	mu         sync.Mutex
	messages   []json.RawMessage
	ids        []string
	errs       []json.RawMessage
	gap        bool // the log lost messages: the answer ends before them, recovered:false
	disconnect *core.Disconnect
}

var _ core.Transport = (*collector)(nil)

func (t *collector) Name() string         { return "longpoll" }
func (t *collector) Unidirectional() bool { return true }

// Ephemeral: a poll is one request; core logs it at Debug.
func (t *collector) Ephemeral() bool { return true }

// WriteMany sorts frames into messages (anything with an id) and errors;
// a gap ends the answer (recovered:false: the messages after it are for
// the next poll, which resumes from before it); others (the welcome,
// whose replay the handler reads from the session, and pongs) are
// dropped. Once the batch is full the rest are dropped
// undecoded: core queues the welcome and the request's errors first, then
// the replay in order, then live messages, so nothing after the limit
// belongs in this answer (the next poll continues from its cursor).
func (t *collector) WriteMany(frames [][]byte) error {
	t.mu.Lock()
	for _, f := range frames {
		if len(t.messages) >= t.limit || t.gap {
			break
		}
		env, err := core.UnmarshalEnvelope(f)
		if err != nil {
			continue
		}
		switch {
		case env.ID != "":
			t.messages = append(t.messages, json.RawMessage(f)) // immutable: see core.Transport
			t.ids = append(t.ids, env.ID)
		case env.Type == core.TypeError:
			t.errs = append(t.errs, json.RawMessage(f))
		case env.Type == core.TypeGap:
			t.gap = true
		}
	}
	t.mu.Unlock()
	select {
	case t.notify <- struct{}{}:
	default:
	}
	return nil
}

// Close records why the session ended; nothing reaches the client.
func (t *collector) Close(d core.Disconnect) error {
	t.mu.Lock()
	t.disconnect = &d
	t.mu.Unlock()
	return nil
}

// ready reports whether the poll can answer now: a message arrived.
func (t *collector) ready() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.messages) > 0 || t.gap
}
