package websocket

import (
	"context"
	"encoding/base64"
	"net"
	"strings"
	"sync"

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
	p := newPoller()
	upgrade := websocket.New(func(c *websocket.Conn) {
		serve(node, cfg, p, c)
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
		if !validKey(c.Request().Header.Peek(fiber.HeaderSecWebSocketKey)) {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{
				"error": fiber.Map{"code": core.CodeBadRequest, "message": "Sec-WebSocket-Key must be the base64 of 16 bytes (RFC 6455 section 4.2.1)"},
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
		c.Locals(keepKey, c.App().Server().KeepHijackedConns)
		return upgrade(c)
	}
}

// validKey reports whether key, a Sec-WebSocket-Key, is the base64 of 16
// bytes, as §4.2.1 requires of the handshake: 24 characters, the last two
// "==", no stray bits.
func validKey(key []byte) bool {
	if len(key) != 24 {
		return false
	}
	var b [18]byte
	n, err := strictBase64.Decode(b[:], key)
	return err == nil && n == 16
}

var strictBase64 = base64.StdEncoding.Strict()

// credsKey is the Locals key carrying core.Credentials to serve.
const credsKey = "switchboard.credentials"

// keepKey is the Locals key telling serve whether the server leaves
// hijacked connections open when the handler returns (fasthttp's
// KeepHijackedConns), which lets serve return and leave the connection to
// the poller.
const keepKey = "switchboard.keep-hijacked"

// Subprotocol is the WebSocket subprotocol the server selects when a
// client offers it, typically alongside a token entry.
const Subprotocol = "switchboard.v1"

// TokenSubprotocolPrefix marks the offered subprotocol that carries the
// bearer token: "switchboard.token.<jwt>".
const TokenSubprotocolPrefix = request.TokenSubprotocolPrefix

// serve runs one connection: authenticate, accept, then read the client's
// frames. contrib/websocket copied the query and headers out of fiber.Ctx
// before the upgrade. After the handshake the connection is read by the
// poller when it can be (plain TCP on Linux, and the server keeps hijacked
// connections: see DetachConnections), and serve returns, so an idle
// connection holds no goroutine; otherwise serve reads until the
// connection ends.
func serve(node *core.Node, cfg Config, p *poller, c *websocket.Conn) {
	hj := c.NetConn() // fasthttp's hijacked conn: reads go through its buffer
	nc := hj
	if u, ok := hj.(interface{ UnsafeConn() net.Conn }); ok {
		nc = u.UnsafeConn()
	}
	t := &conn{
		nc:           nc,
		log:          node.Logger(),
		limit:        node.Config().MaxMessageSize,
		writeTimeout: cfg.WriteTimeout,
		closeGrace:   cfg.CloseGrace,
	}
	keep, _ := c.Locals(keepKey).(bool)
	// The handshake (authentication, joins, history) runs deep call
	// chains; a throwaway goroutine keeps them off this goroutine's stack,
	// which in blocking mode lives as long as the connection.
	handshake := make(chan struct{})
	go func() {
		defer close(handshake)
		t.sess = open(node, cfg, c, t)
	}()
	<-handshake
	if t.sess != nil && keep {
		if tc, ok := nc.(*net.TCPConn); ok && t.detach(hj, tc, p) {
			return
		}
	}
	t.readLoop(hj)
	if t.sess != nil {
		<-t.sess.Done()
	}
	t.closeSocket()
}

// open hands the connection and its credentials to the node, which
// authenticates and accepts it. On failure it returns nil and the
// transport has been closed (4001 for refused credentials, or the
// Disconnect Accept chose): after the upgrade, where browsers can read
// the code.
func open(node *core.Node, cfg Config, c *websocket.Conn, t *conn) *core.Session {
	remote := c.NetConn().RemoteAddr().String()
	creds, _ := c.Locals(credsKey).(core.Credentials)
	c.Locals(credsKey, nil) // the connection's locals live as long as it: keep no headers there
	var rooms []string
	if q := c.Query("rooms"); q != "" {
		rooms = strings.Split(q, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.HandshakeTimeout)
	defer cancel()
	sess, err := node.Accept(ctx, t, core.ConnectRequest{Credentials: creds, Rooms: rooms, Since: c.Query("since"), RemoteAddr: remote, ClientIP: creds.RemoteAddr})
	if err != nil {
		return nil // Accept closed the transport
	}
	return sess
}

// DetachConnections makes app's server leave hijacked connections open
// when their handler returns (fasthttp's KeepHijackedConns), so that an
// idle WebSocket connection needs no goroutine: after the handshake the
// handler returns and a shared epoll poller watches the socket. Call it
// before Listen. It affects every hijacking handler on app: each must then
// close its connection itself, as this package does. Without it (or over
// TLS, or off Linux) each connection keeps one reading goroutine.
func DetachConnections(app *fiber.App) { app.Server().KeepHijackedConns = true }
