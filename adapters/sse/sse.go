package sse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/internal/request"
	"github.com/switchboard-dev/switchboard/core"
)

// New returns the GET /sse handler serving node over Server-Sent Events.
//
// Query parameters: rooms=a,b (joined before the welcome), since=<id>
// (resume after that message; a Last-Event-ID header wins), token=<jwt>
// (or an Authorization: Bearer header), user=<id> (development mode only).
func New(node *core.Node, config ...Config) fiber.Handler {
	if node == nil {
		panic("switchboard/adapters/sse: New: node is nil")
	}
	cfg := configDefault(config...)
	return func(c *fiber.Ctx) error {
		if cfg.Next != nil && cfg.Next(c) {
			return c.Next()
		}
		if node.ShuttingDown() {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
				"error": fiber.Map{"code": core.CodeUnavailable, "message": "node is shutting down; retry another node"},
			})
		}
		// Copy everything kept out of fiber.Ctx: its values are reused
		// once the handler returns, and the stream outlives the handler.
		// Authenticated before the stream starts, so that refused
		// credentials get an HTTP status (EventSource gives up on one).
		creds := request.Credentials(c, "sse", cfg.RequestDetails)
		remote := c.Context().RemoteAddr().String()
		p, err := node.Authenticate(context.Background(), creds)
		if err != nil {
			node.Logger().Warn("sse unauthorized", "remote", remote, "err", err)
			r := core.Refuse(err)
			return c.Status(r.Status).JSON(fiber.Map{
				"error": fiber.Map{"code": r.Code, "message": r.Message},
			})
		}
		var rooms []string
		if q := c.Query("rooms"); q != "" {
			rooms = strings.Split(strings.Clone(q), ",")
		}
		since := c.Get("Last-Event-ID")
		if since == "" {
			since = c.Query("since")
		}
		req := core.ConnectRequest{Principal: p, Rooms: rooms, Since: strings.Clone(since), RemoteAddr: remote, ClientIP: creds.RemoteAddr}

		c.Set(fiber.HeaderContentType, "text/event-stream")
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set(fiber.HeaderConnection, "keep-alive")
		c.Set("X-Accel-Buffering", "no")
		t := &transport{conn: c.Context().Conn(), writeTimeout: cfg.WriteTimeout}
		shutdown := c.Context().Done() // fires only when the server shuts down
		retry := "retry: " + strconv.FormatInt(cfg.Retry.Milliseconds(), 10) + "\n\n"
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			t.w = w
			stream(node, t, req, retry, shutdown)
		})
		return nil
	}
}

// stream runs one SSE connection on fasthttp's stream goroutine. It
// returns only once the session's writer has finished with w.
func stream(node *core.Node, t *transport, req core.ConnectRequest, retry string, shutdown <-chan struct{}) {
	defer t.clearDeadline()
	t.deadline()
	if _, err := t.w.WriteString(retry); err != nil {
		return
	}
	if err := t.w.Flush(); err != nil {
		return
	}
	sess, err := node.Accept(context.Background(), t, req)
	if err != nil {
		return // Accept wrote the close event
	}
	select {
	case <-sess.Done():
		return
	case <-shutdown:
	}
	// The server is shutting down before the node: end the session with
	// 1012 (flushing its queue) so the client hears it, bounded in case the
	// client has stalled.
	go sess.Close(core.DisconnectShutdown)
	select {
	case <-sess.Done():
	case <-time.After(t.writeTimeout):
		t.Abort()
		<-sess.Done()
	}
}

// transport adapts a fasthttp body stream to core.Transport. Core calls
// WriteMany, Ping and Close from the session's single writer goroutine.
type transport struct {
	w            *bufio.Writer // fasthttp's stream writer; valid until stream returns
	conn         net.Conn      // the client's socket, for deadlines and Abort
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
// fasthttp copies the stream to the socket on the connection's goroutine;
// a write that passes the deadline fails there, closes the stream, and the
// next Flush here fails.
func (t *transport) deadline() {
	if t.conn != nil {
		_ = t.conn.SetWriteDeadline(time.Now().Add(t.writeTimeout))
	}
}

// clearDeadline leaves the socket as fasthttp expects it (no deadline,
// WriteTimeout 0) for the end of the response and a keep-alive reuse.
func (t *transport) clearDeadline() {
	if t.conn != nil {
		_ = t.conn.SetWriteDeadline(time.Time{})
	}
}

// Abort fails a write blocked on a stalled client by moving the socket's
// write deadline to now. Safe from any goroutine.
func (t *transport) Abort() {
	if t.conn != nil {
		_ = t.conn.SetWriteDeadline(time.Now())
	}
}

// WriteMany writes one event per envelope, then flushes. A flush error
// (the client is gone) ends the session.
func (t *transport) WriteMany(frames [][]byte) error {
	t.deadline()
	for _, f := range frames {
		if id := envelopeID(f); id != "" {
			_, _ = t.w.WriteString("id: ")
			_, _ = t.w.WriteString(id)
			_ = t.w.WriteByte('\n')
		}
		_, _ = t.w.WriteString("data: ")
		_, _ = t.w.Write(f)
		if _, err := t.w.WriteString("\n\n"); err != nil {
			return err
		}
	}
	return t.w.Flush()
}

var ping = []byte(": ping\n\n")

// Ping writes a comment line. It doubles as the disconnect detector: a
// client that went away makes this Flush fail.
func (t *transport) Ping() error {
	t.deadline()
	if _, err := t.w.Write(ping); err != nil {
		return err
	}
	return t.w.Flush()
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
	_, _ = t.w.WriteString("event: close\ndata: ")
	_, _ = t.w.Write(data)
	if _, err := t.w.WriteString("\n\n"); err != nil {
		return err
	}
	return t.w.Flush()
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
