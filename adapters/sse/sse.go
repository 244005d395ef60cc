package sse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/internal/request"
	"github.com/switchboard-dev/switchboard/core"
)

// New returns the GET /sse handler serving node over Server-Sent Events
// on Fiber.
//
// Query parameters: rooms=a,b (joined before the welcome), since=<id>
// (resume after that message; a Last-Event-ID header wins), token=<jwt>
// (or an Authorization: Bearer header), user=<id> (development mode only).
func New(node *core.Node, config ...Config) fiber.Handler {
	h := newHandler(node, config...)
	return func(c *fiber.Ctx) error {
		if h.cfg.Next != nil && h.cfg.Next(c) {
			return c.Next()
		}
		// open copies everything it keeps out of fiber.Ctx: its values
		// are reused once the handler returns, and the stream outlives
		// the handler.
		req, refused := h.open(request.Fiber(c))
		if refused != nil {
			return request.Reply(c, refused)
		}
		for _, kv := range streamHeaders {
			c.Set(kv[0], kv[1])
		}
		t := &transport{writeTimeout: h.cfg.WriteTimeout}
		conn := c.Context().Conn()
		shutdown := c.Context().Done() // fires only when the server shuts down
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			t.out = fiberStream{w, conn}
			h.stream(t, req, shutdown, core.DisconnectShutdown)
		})
		return nil
	}
}

// NewHandler is New for net/http: the same GET /sse on an
// http.ServeMux or any router (Config.Next is Fiber's and unused). The
// stream runs on the request's goroutine; net/http sees a client leave
// (the request's context ends), so its session ends at once rather than
// at a failed write. The server's Shutdown does not end streams: shut the
// node down (its sessions close with 1012, which ends them). The
// ResponseWriter must flush and take write deadlines through
// http.ResponseController (net/http's own does; a middleware wrapping it
// must implement Unwrap), else the stream is refused with 500; a server
// WriteTimeout does not cut streams (each write sets its own deadline).
func NewHandler(node *core.Node, config ...Config) http.Handler {
	h := newHandler(node, config...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, refused := h.open(request.HTTP(r))
		if refused != nil {
			request.Write(w, refused)
			return
		}
		// Every write needs a deadline (a stalled client must not hold
		// the session's writer): refuse rather than stream without.
		// Clearing it also lifts a server-wide WriteTimeout, which would
		// cut the stream.
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Time{}); err != nil {
			h.node.Logger().Error("sse: the http.ResponseWriter cannot set write deadlines (a middleware wrapping it must implement Unwrap); stream refused", "remote", req.RemoteAddr, "err", err)
			request.Write(w, request.Error(http.StatusInternalServerError, core.CodeInternal, "this server cannot stream events"))
			return
		}
		hd := w.Header()
		for _, kv := range streamHeaders {
			hd.Set(kv[0], kv[1])
		}
		w.WriteHeader(http.StatusOK)
		t := &transport{writeTimeout: h.cfg.WriteTimeout, out: httpStream{w, rc}}
		h.stream(t, req, r.Context().Done(), core.DisconnectGoingAway)
	})
}

// streamHeaders start every event stream. X-Accel-Buffering keeps nginx
// from buffering it.
var streamHeaders = [...][2]string{
	{"Content-Type", "text/event-stream"},
	{"Cache-Control", "no-cache"},
	{"Connection", "keep-alive"},
	{"X-Accel-Buffering", "no"},
}

// handler is GET /sse, whichever server carries it.
type handler struct {
	node  *core.Node
	cfg   Config
	retry string // the stream's first line
}

func newHandler(node *core.Node, config ...Config) *handler {
	if node == nil {
		panic("switchboard/adapters/sse: node is nil")
	}
	cfg := configDefault(config...)
	return &handler{node: node, cfg: cfg, retry: "retry: " + strconv.FormatInt(cfg.Retry.Milliseconds(), 10) + "\n\n"}
}

// open reads the stream's request and authenticates it before the stream
// starts, so that refused credentials get an HTTP status (EventSource
// gives up on one): the ConnectRequest, everything copied out of r, or
// the answer refusing it.
func (h *handler) open(r request.Request) (core.ConnectRequest, *request.Answer) {
	node := h.node
	if node.ShuttingDown() {
		return core.ConnectRequest{}, request.Unavailable()
	}
	creds := request.Credentials(r, "sse", node.RequestDetails())
	remote := r.RemoteAddr()
	p, err := node.Authenticate(context.Background(), creds)
	if err != nil {
		node.Logger().Warn("sse unauthorized", "remote", remote, "err", err)
		return core.ConnectRequest{}, request.Refused(err)
	}
	var rooms []string
	if q := r.Query("rooms"); q != "" {
		rooms = strings.Split(strings.Clone(q), ",")
	}
	since := r.Header("Last-Event-ID")
	if since == "" {
		since = r.Query("since")
	}
	return core.ConnectRequest{Principal: p, Rooms: rooms, Since: strings.Clone(since), RemoteAddr: remote, ClientIP: creds.RemoteAddr}, nil
}

// stream runs one SSE connection on the goroutine that owns the response
// (fasthttp's stream writer, net/http's handler). It returns only once
// the session's writer has finished with t. When done is closed first
// (Fiber: the server shuts down; net/http: the client left) the session
// ends with ending.
func (h *handler) stream(t *transport, req core.ConnectRequest, done <-chan struct{}, ending core.Disconnect) {
	defer t.clearDeadline()
	t.deadline()
	if _, err := t.out.WriteString(h.retry); err != nil {
		return
	}
	if err := t.out.Flush(); err != nil {
		return
	}
	sess, err := h.node.Accept(context.Background(), t, req)
	if err != nil {
		return // Accept wrote the close event
	}
	select {
	case <-sess.Done():
		return
	case <-done:
	}
	// End the session (flushing its queue, and for 1012 telling the
	// client), bounded in case the client has stalled.
	go sess.Close(ending)
	select {
	case <-sess.Done():
	case <-time.After(t.writeTimeout):
		t.Abort()
		<-sess.Done()
	}
}

// output is where a stream's events go: buffered writes, an explicit
// flush, and a write deadline on the client's socket.
type output interface {
	io.Writer
	io.StringWriter
	Flush() error
	SetWriteDeadline(time.Time) error
}

// fiberStream is fasthttp's stream writer. fasthttp copies it to the
// socket on the connection's goroutine; a write that passes the deadline
// fails there, closes the stream, and the next Flush here fails.
type fiberStream struct {
	*bufio.Writer
	conn net.Conn // the client's socket; nil in app.Test
}

func (s fiberStream) SetWriteDeadline(t time.Time) error {
	if s.conn == nil {
		return nil
	}
	return s.conn.SetWriteDeadline(t)
}

// httpStream is a net/http response.
type httpStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s httpStream) Write(b []byte) (int, error)        { return s.w.Write(b) }
func (s httpStream) WriteString(v string) (int, error)  { return io.WriteString(s.w, v) }
func (s httpStream) Flush() error                       { return s.rc.Flush() }
func (s httpStream) SetWriteDeadline(t time.Time) error { return s.rc.SetWriteDeadline(t) }

// transport adapts a response stream to core.Transport. Core calls
// WriteMany, Ping and Close from the session's single writer goroutine.
type transport struct {
	out          output // valid until stream returns
	writeTimeout time.Duration
}

var (
	_ core.Transport = (*transport)(nil)
	_ core.Pinger    = (*transport)(nil)
	_ core.Aborter   = (*transport)(nil)
)

func (t *transport) Name() string         { return "sse" }
func (t *transport) Unidirectional() bool { return true }

// deadline bounds the socket writes carrying what is about to be written.
func (t *transport) deadline() {
	_ = t.out.SetWriteDeadline(time.Now().Add(t.writeTimeout))
}

// clearDeadline leaves the socket as the server expects it (no deadline)
// for the end of the response and a keep-alive reuse.
func (t *transport) clearDeadline() {
	_ = t.out.SetWriteDeadline(time.Time{})
}

// Abort fails a write blocked on a stalled client by moving the socket's
// write deadline to now. Safe from any goroutine.
func (t *transport) Abort() {
	_ = t.out.SetWriteDeadline(time.Now())
}

// WriteMany writes one event per envelope, then flushes. A flush error
// (the client is gone) ends the session.
func (t *transport) WriteMany(frames [][]byte) error {
	t.deadline()
	for _, f := range frames {
		if id := envelopeID(f); id != "" {
			_, _ = t.out.WriteString("id: ")
			_, _ = t.out.WriteString(id)
			_, _ = t.out.WriteString("\n")
		}
		_, _ = t.out.WriteString("data: ")
		_, _ = t.out.Write(f)
		if _, err := t.out.WriteString("\n\n"); err != nil {
			return err
		}
	}
	return t.out.Flush()
}

var ping = []byte(": ping\n\n")

// Ping writes a comment line. It doubles as the disconnect detector: a
// client that went away makes this Flush fail.
func (t *transport) Ping() error {
	t.deadline()
	if _, err := t.out.Write(ping); err != nil {
		return err
	}
	return t.out.Flush()
}

// Close writes the final "close" event, unless the client is already gone.
func (t *transport) Close(d core.Disconnect) error {
	if d.Code == core.DisconnectGoingAway.Code {
		return nil
	}
	data, _ := json.Marshal(struct {
		Code      uint16 `json:"code"`
		Reason    string `json:"reason"`
		Reconnect bool   `json:"reconnect"`
	}{d.Code, d.Reason, d.Reconnect})
	t.deadline()
	_, _ = t.out.WriteString("event: close\ndata: ")
	_, _ = t.out.Write(data)
	if _, err := t.out.WriteString("\n\n"); err != nil {
		return err
	}
	return t.out.Flush()
}

var idPrefix = []byte(`{"v":1,"id":"`)

// envelopeID returns the id of an encoded envelope (core.AppendEnvelope
// writes it right after "v"), or "" if it has none or it cannot be a
// valid SSE id.
func envelopeID(f []byte) string {
	if !bytes.HasPrefix(f, idPrefix) {
		return ""
	}
	rest := f[len(idPrefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	if bytes.IndexByte(rest[:end], '\\') < 0 {
		return string(rest[:end])
	}
	var id string // escaped: decode properly
	dec := json.NewDecoder(bytes.NewReader(f[len(idPrefix)-1:]))
	if dec.Decode(&id) != nil || strings.ContainsAny(id, "\r\n\x00") {
		return ""
	}
	return id
}
