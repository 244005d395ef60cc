package websocket

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/cors"
	"github.com/switchboard-dev/switchboard/adapters/internal/request"
	"github.com/switchboard-dev/switchboard/core"
)

// New returns the GET /ws handler serving node over WebSocket on Fiber.
//
// Query parameters: rooms=a,b (joined before the welcome), since=<id>
// (resume after that message), token=<jwt>, user=<id> (development mode
// only). The token may come instead in an Authorization: Bearer header or,
// for browsers (which cannot set headers on a WebSocket), as a
// subprotocol "switchboard.token.<jwt>" offered next to "switchboard.v1",
// which the server then selects (TokenSubprotocolPrefix, Subprotocol).
// The token never appears in logs.
func New(node *core.Node, config ...Config) fiber.Handler {
	h := newHandler(node, config...)
	cfg := h.cfg
	upgrade := websocket.New(func(c *websocket.Conn) {
		hs, _ := c.Locals(requestKey).(*upgradeRequest)
		c.Locals(requestKey, nil) // the connection's locals live as long as it: keep no headers there
		keep, _ := c.Locals(keepKey).(bool)
		hj := c.NetConn() // fasthttp's hijacked conn: reads go through its buffer
		sock := hj
		if u, ok := hj.(interface{ UnsafeConn() net.Conn }); ok {
			sock = u.UnsafeConn()
		}
		h.serve(hs, upgraded{sock: sock, r: hj, buffered: deadlineDrain(hj), keep: keep})
	}, websocket.Config{
		HandshakeTimeout: cfg.HandshakeTimeout,
		Origins:          []string{"*"}, // checked by admit, with a precise 403
		ReadBufferSize:   cfg.ReadBufferSize,
		WriteBufferSize:  cfg.WriteBufferSize,
		WriteBufferPool:  &sync.Pool{},
		// Browsers fail a handshake that offered subprotocols and got
		// none back, so the protocol name is always selected when
		// offered. The token entry is never echoed.
		Subprotocols: []string{Subprotocol},
		// The upgrade answers a permessage-deflate offer with no context
		// takeover either way (extensionResponse); admit decides the same
		// (offersDeflate), and the frames are this package's.
		EnableCompression: h.deflate != nil,
	})
	return func(c *fiber.Ctx) error {
		if cfg.Next != nil && cfg.Next(c) {
			return c.Next()
		}
		// Read the request here, where the whole of it is at hand, copied
		// out of fasthttp's buffers; serve finds it in Locals.
		hs, refused := h.admit(request.Fiber(c))
		if refused != nil {
			return request.Reply(c, refused)
		}
		c.Locals(requestKey, hs)
		c.Locals(keepKey, c.App().Server().KeepHijackedConns)
		return upgrade(c)
	}
}

// NewHandler is New for net/http: the same GET /ws on an http.ServeMux
// or any router (Config.Next, ReadBufferSize and WriteBufferSize are
// Fiber's and unused). It completes the handshake itself on the hijacked
// connection, so it needs HTTP/1.1 and a ResponseWriter that can hijack
// (http.ResponseController). After the handshake an idle connection is
// read as with DetachConnections when it can be (a plain TCP socket on
// Linux: net/http leaves hijacked connections to their handler), else by
// the handler's goroutine. The server's Shutdown does not track upgraded
// connections: shut the node down (1012 to each).
func NewHandler(node *core.Node, config ...Config) http.Handler {
	return newHandler(node, config...).httpHandler()
}

// httpHandler is NewHandler's handler.
func (h *handler) httpHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs, refused := h.admit(request.HTTP(r))
		if refused != nil {
			request.Write(w, refused)
			return
		}
		up, err := h.hijack(w, hs)
		if err != nil {
			h.node.Logger().Warn("websocket upgrade failed", "remote", hs.remote, "err", err)
			return
		}
		h.serve(hs, up)
	})
}

// handler is GET /ws, whichever server carries it.
type handler struct {
	node    *core.Node
	cfg     Config
	poll    *poller   // nil off Linux
	deflate *deflater // nil without compression
}

func newHandler(node *core.Node, config ...Config) *handler {
	if node == nil {
		panic("switchboard/adapters/websocket: node is nil")
	}
	cfg := configDefault(config...)
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	h := &handler{node: node, cfg: cfg, poll: newPoller()}
	if cfg.CompressionLevel > 0 {
		h.deflate = newDeflater(cfg.CompressionLevel, cfg.CompressionThreshold)
	}
	return h
}

// upgradeRequest is what the upgrade request said, copied out of it.
type upgradeRequest struct {
	creds   core.Credentials
	rooms   []string
	since   string
	remote  string // the peer's ip:port, for logs
	key     string // Sec-WebSocket-Key
	offers  bool   // the client offered Subprotocol
	deflate bool   // permessage-deflate is negotiated
}

// admit checks an upgrade request and reads what the connection needs
// from it, or answers why not: 426 not an upgrade, 405 not GET, 400 a
// version other than 13 or a Sec-WebSocket-Key that is not the base64 of
// 16 bytes (RFC 6455 section 4.2.1), 403 an origin not in Origins, 503
// while the node shuts down. Authentication comes after the upgrade,
// where a browser can read the close code.
func (h *handler) admit(r request.Request) (*upgradeRequest, *request.Answer) {
	if !request.HeaderHasToken(r, "Connection", "upgrade") || !request.HeaderHasToken(r, "Upgrade", "websocket") {
		return nil, request.Error(http.StatusUpgradeRequired, "upgrade_required", "this endpoint speaks WebSocket only: send a WebSocket upgrade request")
	}
	if r.Method() != http.MethodGet {
		return nil, request.Error(http.StatusMethodNotAllowed, core.CodeBadRequest, "a WebSocket upgrade is a GET request")
	}
	if !request.HeaderHasToken(r, "Sec-WebSocket-Version", "13") {
		a := request.Error(http.StatusBadRequest, core.CodeBadRequest, "Sec-WebSocket-Version must be 13")
		a.Header = map[string]string{"Sec-WebSocket-Version": "13"}
		return nil, a
	}
	key := r.Header("Sec-WebSocket-Key")
	if !validKey(key) {
		return nil, request.Error(http.StatusBadRequest, core.CodeBadRequest, "Sec-WebSocket-Key must be the base64 of 16 bytes (RFC 6455 section 4.2.1)")
	}
	if origin := r.Header("Origin"); !cors.Allowed(h.cfg.Origins, origin, r.Host()) {
		h.node.Logger().Warn("websocket origin refused", "origin", origin, "remote", r.ClientIP())
		return nil, request.Error(http.StatusForbidden, core.CodeForbidden, "origin not allowed")
	}
	if h.node.ShuttingDown() {
		return nil, request.Unavailable()
	}
	hs := &upgradeRequest{
		creds:   request.Credentials(r, "websocket", h.node.RequestDetails()),
		since:   strings.Clone(r.Query("since")),
		remote:  r.RemoteAddr(),
		key:     strings.Clone(key),
		offers:  request.HeaderHasToken(r, "Sec-WebSocket-Protocol", Subprotocol),
		deflate: h.deflate != nil && offersDeflate(r),
	}
	if q := r.Query("rooms"); q != "" {
		hs.rooms = strings.Split(strings.Clone(q), ",")
	}
	return hs, nil
}

// validKey reports whether key, a Sec-WebSocket-Key, is the base64 of 16
// bytes, as §4.2.1 requires of the handshake: 24 characters, the last two
// "==", no stray bits.
func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	var b [18]byte
	n, err := strictBase64.Decode(b[:], []byte(key))
	return err == nil && n == 16
}

var strictBase64 = base64.StdEncoding.Strict()

// requestKey is the Locals key carrying the *upgradeRequest to serve.
const requestKey = "switchboard.upgrade-request"

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

// upgraded is a connection after the handshake, as a front end hands it
// to serve.
type upgraded struct {
	sock net.Conn  // the socket: written to, closed, watched by the poller
	r    io.Reader // reads what the HTTP server buffered past the request, then the socket
	// buffered hands fn the bytes the HTTP server read past the request
	// (a client that did not wait for the 101) without touching the
	// socket, while the handler still owns the server's buffer.
	buffered func(fn func([]byte)) error
	keep     bool // the handler may return and leave the socket open
}

// serve runs one connection: authenticate, accept, then read the client's
// frames. After the handshake the connection is read by the poller when
// it can be (plain TCP on Linux, and the server leaves hijacked
// connections open: see DetachConnections), and serve returns, so an idle
// connection holds no goroutine; otherwise serve reads until the
// connection ends.
func (h *handler) serve(hs *upgradeRequest, up upgraded) {
	t := &conn{
		nc:           up.sock,
		log:          h.node.Logger(),
		limit:        h.node.Config().MaxMessageSize,
		deflate:      h.deflateFor(hs),
		writeTimeout: h.cfg.WriteTimeout,
		closeGrace:   h.cfg.CloseGrace,
	}
	// The handshake (authentication, joins, history) runs deep call
	// chains; a throwaway goroutine keeps them off this goroutine's stack,
	// which in blocking mode lives as long as the connection.
	opened := make(chan struct{})
	go func() {
		defer close(opened)
		t.sess = h.open(hs, t)
	}()
	<-opened
	if t.sess != nil && up.keep {
		if tc, ok := up.sock.(*net.TCPConn); ok && t.detach(up.buffered, tc, h.poll) {
			return
		}
	}
	t.readLoop(up.r)
	if t.sess != nil {
		<-t.sess.Done()
	}
	t.closeSocket()
}

// deflateFor is the compressor of a connection whose upgrade negotiated
// permessage-deflate, else nil.
func (h *handler) deflateFor(hs *upgradeRequest) *deflater {
	if hs.deflate {
		return h.deflate
	}
	return nil
}

// open hands the connection and its credentials to the node, which
// authenticates and accepts it. On failure it returns nil and the
// transport has been closed (4001 for refused credentials, or the
// Disconnect Accept chose): after the upgrade, where browsers can read
// the code.
func (h *handler) open(hs *upgradeRequest, t *conn) *core.Session {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.HandshakeTimeout)
	defer cancel()
	sess, err := h.node.Accept(ctx, t, core.ConnectRequest{Credentials: hs.creds, Rooms: hs.rooms, Since: hs.since, RemoteAddr: hs.remote, ClientIP: hs.creds.RemoteAddr})
	if err != nil {
		return nil // Accept closed the transport
	}
	return sess
}

// deadlineDrain reads what fasthttp's hijacked connection hj buffered:
// with a deadline in the past, Read returns only what is already
// buffered in user space and never touches the socket.
func deadlineDrain(hj net.Conn) func(fn func([]byte)) error {
	return func(fn func([]byte)) error {
		if err := hj.SetReadDeadline(time.Unix(1, 0)); err != nil {
			return err
		}
		bp := getBuf()
		for {
			n, err := hj.Read(*bp)
			if n > 0 {
				fn((*bp)[:n])
			}
			if err != nil {
				break
			}
		}
		putBuf(bp, *bp)
		return hj.SetReadDeadline(time.Time{})
	}
}

// hijack completes the handshake on net/http: it takes the connection
// from the server and answers 101, selecting Subprotocol when offered.
func (h *handler) hijack(w http.ResponseWriter, hs *upgradeRequest) (upgraded, error) {
	sock, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		request.Write(w, request.Error(http.StatusInternalServerError, core.CodeInternal, "this server cannot hand the connection over for a WebSocket"))
		return upgraded{}, fmt.Errorf("switchboard/adapters/websocket: hijack: %w", err)
	}
	// The server's read and write timeouts do not apply to the upgraded
	// connection: liveness is the heartbeat's, and every write sets its
	// own deadline.
	_ = sock.SetDeadline(time.Time{})
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(hs.key) + "\r\n"
	if hs.offers {
		resp += "Sec-WebSocket-Protocol: " + Subprotocol + "\r\n"
	}
	if hs.deflate {
		resp += "Sec-WebSocket-Extensions: " + extensionResponse + "\r\n"
	}
	resp += "\r\n"
	_ = sock.SetWriteDeadline(time.Now().Add(h.cfg.HandshakeTimeout))
	if _, err := io.WriteString(sock, resp); err != nil {
		_ = sock.Close()
		return upgraded{}, fmt.Errorf("switchboard/adapters/websocket: writing the 101: %w", err)
	}
	_ = sock.SetWriteDeadline(time.Time{})
	br := brw.Reader
	return upgraded{sock: sock, r: br, keep: true, buffered: func(fn func([]byte)) error {
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			fn(b)
			_, _ = br.Discard(n)
		}
		return nil
	}}, nil
}

// acceptKey is the Sec-WebSocket-Accept answering key (RFC 6455 section
// 4.2.2).
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// DetachConnections makes app's server leave hijacked connections open
// when their handler returns (fasthttp's KeepHijackedConns), so that an
// idle WebSocket connection needs no goroutine: after the handshake the
// handler returns and a shared epoll poller watches the socket. Call it
// before Listen. It affects every hijacking handler on app: each must then
// close its connection itself, as this package does. Without it (or over
// TLS, or off Linux) each connection keeps one reading goroutine.
func DetachConnections(app *fiber.App) { app.Server().KeepHijackedConns = true }
