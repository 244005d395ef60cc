// Package ndjson is a third-party-style Switchboard adapter: newline-
// delimited JSON over raw TCP. It is the worked example of
// docs/adapters.md and passes adapters/adaptertest.
//
// The protocol, one JSON value per '\n'-terminated line:
//
//   - client → server, first line: a hello
//     {"user":"…","rooms":["…"],"since":"…","token":"…"}, within
//     Config.HelloTimeout; the Authenticator decides who the client is.
//   - client → server, then: one envelope per line, exactly as on
//     WebSocket. An empty line is a keep-alive (core.Session.Activity).
//   - server → client: one envelope per line. An empty line is the
//     server's keep-alive (every heartbeat interval); a healthy client
//     answers with an empty line. The last line is
//     {"v":1,"type":"close","data":{"code":…,"reason":"…","reconnect":…}},
//     then the server half-closes the connection.
//
// Concurrency: Serve runs one goroutine per connection, which reads; the
// node's session writer is the only goroutine that writes.
package ndjson

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// Config configures the listener. Zero fields take their defaults.
type Config struct {
	// WriteTimeout bounds every write (a batch, a keep-alive, the close line).
	// Optional. Default: 10s.
	WriteTimeout time.Duration

	// HelloTimeout bounds the wait for the hello line.
	// Optional. Default: 10s.
	HelloTimeout time.Duration

	// CloseGrace is how long, after the close line, the server keeps
	// reading (and discarding) before dropping the connection, so the
	// client reads the close line instead of a reset.
	// Optional. Default: 2s.
	CloseGrace time.Duration
}

func (c *Config) setDefaults() {
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 10 * time.Second
	}
	if c.CloseGrace <= 0 {
		c.CloseGrace = 2 * time.Second
	}
}

// Hello is the first line a client sends.
type Hello struct {
	User  string   `json:"user,omitempty"`
	Rooms []string `json:"rooms,omitempty"`
	Since string   `json:"since,omitempty"`
	Token string   `json:"token,omitempty"`
}

// DisconnectBadHello ends a connection whose first line is not a hello.
var DisconnectBadHello = core.Disconnect{Code: 1002, Reason: "bad hello", Reconnect: false}

// Server accepts NDJSON connections into a node.
type Server struct {
	node *core.Node
	cfg  Config

	mu     sync.Mutex
	ln     net.Listener
	closed bool
	conns  sync.WaitGroup
}

// New returns a server for node.
func New(node *core.Node, cfg Config) *Server {
	cfg.setDefaults()
	return &Server{node: node, cfg: cfg}
}

// Serve accepts connections on ln until Close. It returns nil after
// Close, once every connection it accepted has ended (their sessions end
// with node.Shutdown: call Close, then shut the node down, then wait).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ln = ln
	s.mu.Unlock()
	defer s.conns.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.serveConn(conn)
		}()
	}
}

// Close stops accepting connections. Open sessions are left to the node
// (Node.Shutdown closes them with 1012). Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.ln != nil {
		return s.ln.Close()
	}
	return nil
}

// serveConn is the whole adapter lifecycle: hello and authenticate,
// Accept, read loop into HandleFrame, Close, wait for Done.
func (s *Server) serveConn(conn net.Conn) {
	defer conn.Close()
	t := &transport{conn: conn, w: bufio.NewWriter(conn), writeTimeout: s.cfg.WriteTimeout, closeGrace: s.cfg.CloseGrace}
	limit := s.node.Config().MaxMessageSize
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 4096), limit+1) // a longer line stops the scanner with ErrTooLong

	sess := s.open(conn, sc, t)
	if sess == nil {
		drain(conn) // the transport was closed with the reason
		return
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			sess.Activity() // the client's keep-alive
			continue
		}
		sess.HandleFrame(line)
	}
	d := core.DisconnectGoingAway // EOF or a read error: the client left
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		d = core.DisconnectMessageTooLarge
	}
	sess.Close(d) // no-op if the server ended the session first
	drain(conn)
}

// open reads the hello, authenticates and accepts. On failure it returns
// nil with the transport closed.
func (s *Server) open(conn net.Conn, sc *bufio.Scanner, t *transport) *core.Session {
	remote := conn.RemoteAddr().String()
	log := s.node.Logger()
	_ = conn.SetReadDeadline(time.Now().Add(s.cfg.HelloTimeout))
	var h Hello
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &h) != nil {
		log.Warn("ndjson bad hello", "remote", remote, "err", sc.Err())
		_ = t.Close(DisconnectBadHello)
		return nil
	}
	_ = conn.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HelloTimeout)
	defer cancel()
	sess, err := s.node.Accept(ctx, t, core.ConnectRequest{
		Credentials: core.Credentials{Token: h.Token, User: h.User, Transport: "ndjson", RemoteAddr: remote},
		Rooms:       h.Rooms, Since: h.Since, RemoteAddr: remote,
	})
	if err != nil {
		return nil // Accept closed the transport
	}
	return sess
}

// drain discards input until the client closes or the close grace (a read
// deadline set by transport.Close) expires.
func drain(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) }

// transport writes envelopes as lines. Core calls WriteMany, Ping and
// Close from the session's single writer goroutine; Abort from any.
type transport struct {
	conn         net.Conn
	w            *bufio.Writer
	writeTimeout time.Duration
	closeGrace   time.Duration
}

var (
	_ core.Transport = (*transport)(nil)
	_ core.Pinger    = (*transport)(nil)
	_ core.Aborter   = (*transport)(nil)
)

func (t *transport) Name() string         { return "ndjson" }
func (t *transport) Unidirectional() bool { return false }

// WriteMany writes one line per envelope and flushes once.
func (t *transport) WriteMany(frames [][]byte) error {
	_ = t.conn.SetWriteDeadline(time.Now().Add(t.writeTimeout))
	for _, f := range frames {
		_, _ = t.w.Write(f)
		_ = t.w.WriteByte('\n')
	}
	return t.w.Flush() // a bufio.Writer keeps the first error; Flush reports it
}

// Ping writes an empty line: the server's keep-alive.
func (t *transport) Ping() error {
	_ = t.conn.SetWriteDeadline(time.Now().Add(t.writeTimeout))
	_ = t.w.WriteByte('\n')
	return t.w.Flush()
}

// Close writes the close line (unless the client is already gone),
// half-closes the connection so the client reads EOF after it, and gives
// the reader CloseGrace to see the client hang up.
func (t *transport) Close(d core.Disconnect) error {
	var err error
	if d.Code != core.DisconnectGoingAway.Code {
		data, _ := json.Marshal(closeData{Code: d.Code, Reason: d.Reason, Reconnect: d.Reconnect})
		line, _ := json.Marshal(core.Envelope{V: core.Version, Type: "close", Data: data})
		err = t.WriteMany([][]byte{line})
	}
	if tc, ok := t.conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = t.conn.SetReadDeadline(time.Now().Add(t.closeGrace))
	return err
}

// Abort interrupts a write blocked on a stalled client (and the reader).
func (t *transport) Abort() { _ = t.conn.SetDeadline(time.Now()) }

type closeData struct {
	Code      uint16 `json:"code"`
	Reason    string `json:"reason"`
	Reconnect bool   `json:"reconnect"`
}
