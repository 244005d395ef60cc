package websocket

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/cors"
	"github.com/switchboard-dev/switchboard/adapters/internal/request"
	"github.com/switchboard-dev/switchboard/core"
)

// New returns the GET /ws handler serving node over WebSocket.
//
// Query parameters: rooms=a,b (joined before the welcome), since=<id>
// (resume after that message), token=<jwt>, user=<id> (development mode
// only). The token may come instead in an Authorization: Bearer header or,
// for browsers (which cannot set headers on a WebSocket), as a
// subprotocol "switchboard.token.<jwt>" offered next to "switchboard.v1",
// which the server then selects (TokenSubprotocolPrefix, Subprotocol).
// The token never appears in logs.
func New(node *core.Node, config ...Config) fiber.Handler {
	if node == nil {
		panic("switchboard/adapters/websocket: New: node is nil")
	}
	cfg := configDefault(config...)
	pool := &sync.Pool{}
	upgrade := websocket.New(func(c *websocket.Conn) {
		serve(node, cfg, c)
	}, websocket.Config{
		HandshakeTimeout: cfg.HandshakeTimeout,
		Origins:          []string{"*"}, // checked below, with a precise 403
		ReadBufferSize:   cfg.ReadBufferSize,
		WriteBufferSize:  cfg.WriteBufferSize,
		WriteBufferPool:  pool,
		// Browsers fail a handshake that offered subprotocols and got
		// none back, so the protocol name is always selected when
		// offered. The token entry is never echoed.
		Subprotocols: []string{Subprotocol},
	})
	return func(c *fiber.Ctx) error {
		if cfg.Next != nil && cfg.Next(c) {
			return c.Next()
		}
		if !websocket.IsWebSocketUpgrade(c) {
			return c.Status(fiber.StatusUpgradeRequired).JSON(fiber.Map{
				"error": fiber.Map{"code": "upgrade_required", "message": "this endpoint speaks WebSocket only: send a WebSocket upgrade request"},
			})
		}
		if origin := c.Get(fiber.HeaderOrigin); !cors.Allowed(cfg.Origins, origin, string(c.Request().Host())) {
			node.Logger().Warn("websocket origin refused", "origin", origin, "remote", c.IP())
			return c.Status(fiber.StatusForbidden).JSON(fiber.Map{
				"error": fiber.Map{"code": core.CodeForbidden, "message": "origin not allowed"},
			})
		}
		if node.ShuttingDown() {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
				"error": fiber.Map{"code": core.CodeUnavailable, "message": "node is shutting down; retry another node"},
			})
		}
		// Read the credentials here, where the whole request is at hand,
		// copied out of fasthttp's buffers; serve finds them in Locals.
		c.Locals(credsKey, request.Credentials(c, "websocket", cfg.RequestDetails))
		return upgrade(c)
	}
}

// credsKey is the Locals key carrying core.Credentials to serve.
const credsKey = "switchboard.credentials"

// Subprotocol is the WebSocket subprotocol the server selects when a
// client offers it, typically alongside a token entry.
const Subprotocol = "switchboard.v1"

// TokenSubprotocolPrefix marks the offered subprotocol that carries the
// bearer token: "switchboard.token.<jwt>".
const TokenSubprotocolPrefix = request.TokenSubprotocolPrefix

// serve runs one connection: authenticate, accept, read until the
// connection ends, wait for the session's writer. contrib/websocket copied
// the query and headers out of fiber.Ctx before the upgrade.
func serve(node *core.Node, cfg Config, c *websocket.Conn) {
	t := &transport{conn: c.Conn, writeTimeout: cfg.WriteTimeout, closeGrace: cfg.CloseGrace}
	// The handshake (authentication, joins, history) runs deep call
	// chains; running it on a throwaway goroutine keeps this long-lived
	// goroutine's stack small for the connection's whole life (it halves
	// stack memory per idle connection, see docs/performance.md).
	var sess *core.Session
	handshake := make(chan struct{})
	go func() {
		defer close(handshake)
		sess = open(node, cfg, c, t)
	}()
	<-handshake
	if sess == nil {
		drain(c.Conn) // the transport was closed with the reason
		return
	}
	c.SetPongHandler(func(string) error { sess.Activity(); return nil })
	c.SetPingHandler(func(data string) error {
		sess.Activity()
		err := c.WriteControl(fws.PongMessage, []byte(data), time.Now().Add(cfg.WriteTimeout))
		if errors.Is(err, fws.ErrCloseSent) {
			return nil
		}
		return err
	})
	err := readLoop(c.Conn, sess, node.Config().MaxMessageSize)
	// No-op if the server already ended the session; otherwise record how
	// the client left: its own close code, or gone without one.
	d := core.DisconnectGoingAway
	var ce *fws.CloseError
	if errors.As(err, &ce) && ce.Code != fws.CloseAbnormalClosure { // 1006: the socket dropped, no close frame
		d = core.Disconnect{Code: uint16(ce.Code), Reason: "closed by client"}
	}
	sess.Close(d)
	drain(c.Conn)
}

// open authenticates the connection and accepts it into the node. On
// failure it returns nil and the transport has been closed (4001, or the
// Disconnect Accept chose).
func open(node *core.Node, cfg Config, c *websocket.Conn, t *transport) *core.Session {
	remote := c.NetConn().RemoteAddr().String()
	creds, _ := c.Locals(credsKey).(core.Credentials)
	c.Locals(credsKey, nil) // the connection's locals live as long as it: keep no headers there
	ctx, cancel := context.WithTimeout(context.Background(), cfg.HandshakeTimeout)
	id, err := cfg.Authenticator.Authenticate(ctx, creds)
	cancel()
	if err != nil {
		node.Logger().Warn("websocket unauthorized", "remote", remote, "err", err)
		_ = t.Close(request.Refuse(err).Disconnect)
		return nil
	}
	var rooms []string
	if q := c.Query("rooms"); q != "" {
		rooms = strings.Split(q, ",")
	}
	req := core.ConnectRequest{Rooms: rooms, Since: c.Query("since"), RemoteAddr: remote, ClientIP: creds.RemoteAddr}
	req.ApplyIdentity(id)
	sess, err := node.Accept(context.Background(), t, req)
	if err != nil {
		return nil // Accept closed the transport
	}
	return sess
}

// readLoop feeds frames to the session until the connection fails. A frame
// is read to at most limit+1 bytes, so an oversize frame costs no more
// memory than the limit before the session closes it with 4003.
func readLoop(conn *fws.Conn, sess *core.Session, limit int) error {
	var buf []byte // allocated on the first data frame: idle connections only see control frames
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			return err
		}
		if buf == nil {
			buf = make([]byte, 0, 512)
		}
		buf, err = readAtMost(r, buf[:0], limit+1)
		if err != nil {
			return err
		}
		sess.HandleFrame(buf)
		if cap(buf) > 64<<10 {
			buf = nil // don't pin a large buffer to an idle connection
		}
	}
}

func readAtMost(r io.Reader, buf []byte, n int) ([]byte, error) {
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		end := min(cap(buf), n)
		m, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// drain reads until the connection fails: after a close frame the client's
// close reply (or the CloseGrace read deadline) ends it.
func drain(conn *fws.Conn) {
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}

// transport adapts a fasthttp/websocket connection to core.Transport. Core
// calls its methods from the session's single writer goroutine.
type transport struct {
	conn         *fws.Conn
	writeTimeout time.Duration
	closeGrace   time.Duration
}

var (
	_ core.Transport = (*transport)(nil)
	_ core.Pinger    = (*transport)(nil)
	_ core.Aborter   = (*transport)(nil)
)

// Abort fails a write blocked on a stalled client, and the reader, by
// moving the socket's deadlines to now. (Closing does not work here:
// fasthttp's hijacked conn ignores Close and closes the socket itself when
// the handler returns.) Safe from any goroutine.
func (t *transport) Abort() { _ = t.conn.NetConn().SetDeadline(time.Now()) }

var newline = []byte{'\n'}

func (t *transport) Name() string         { return "websocket" }
func (t *transport) Unidirectional() bool { return false }

// WriteMany writes the envelopes as one text frame, '\n'-separated.
func (t *transport) WriteMany(frames [][]byte) error {
	if err := t.conn.SetWriteDeadline(time.Now().Add(t.writeTimeout)); err != nil {
		return err
	}
	w, err := t.conn.NextWriter(fws.TextMessage)
	if err != nil {
		return err
	}
	for i, f := range frames {
		if i > 0 {
			if _, err := w.Write(newline); err != nil {
				return err
			}
		}
		if _, err := w.Write(f); err != nil {
			return err
		}
	}
	return w.Close()
}

func (t *transport) Ping() error {
	return t.conn.WriteControl(fws.PingMessage, nil, time.Now().Add(t.writeTimeout))
}

// Close sends the close frame (unless the peer is already gone) and
// starts the grace period for the client's close reply.
func (t *transport) Close(d core.Disconnect) error {
	var err error
	if d.Code != core.DisconnectGoingAway.Code {
		msg := fws.FormatCloseMessage(int(d.Code), d.Reason)
		err = t.conn.WriteControl(fws.CloseMessage, msg, time.Now().Add(t.writeTimeout))
		if errors.Is(err, fws.ErrCloseSent) {
			err = nil // the client closed first and has had its reply
		}
	}
	_ = t.conn.SetReadDeadline(time.Now().Add(t.closeGrace))
	return err
}
