// Package ndjson is a third-party-style Switchboard adapter: newline-
// delimited JSON over raw TCP. It is the worked example of
// docs/adapters.md and passes adapters/adaptertest. It has no
// authentication code: it hands the hello's credentials to Node.Accept,
// and the node's Authenticator decides.
//
// The protocol, one JSON value per '\n'-terminated line:
//
//   - client → server, first line: a hello
//     {"user":"…","rooms":["…"],"since":"…","token":"…"}, within
//     Config.HelloTimeout.
//   - client → server, then: one envelope per line, exactly as on
//     WebSocket. An empty line is a keep-alive (core.Session.Activity).
//   - server → client: one envelope per line. An empty line is the
//     server's keep-alive (every heartbeat interval); a healthy client
//     answers with an empty line. The last line is
//     {"v":1,"type":"close","data":{"code":…,"reason":"…","reconnect":…}}
//     (4001 for refused credentials), then the server half-closes the
//     connection.
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

// Config configures Serve. Zero fields take their defaults.
type Config struct {
	// WriteTimeout bounds every write (a batch, a keep-alive, the close line).
	// Optional. Default: 10s.
	WriteTimeout time.Duration
	// HelloTimeout bounds the wait for the hello line.
	// Optional. Default: 10s.
	HelloTimeout time.Duration
	// CloseGrace is how long, after the close line, the server keeps
	// reading (and discarding) before dropping the connection, so that the
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

// Hello is the first line a client sends: its credentials and where it
// wants to start.
type Hello struct {
	User  string   `json:"user,omitempty"`
	Rooms []string `json:"rooms,omitempty"`
	Since string   `json:"since,omitempty"`
	Token string   `json:"token,omitempty"`
}

// DisconnectBadHello ends a connection whose first line is not a hello.
var DisconnectBadHello = core.Disconnect{Code: 1002, Reason: "bad hello", Reconnect: false}

// Serve accepts connections on ln into node until ctx ends, then closes
// ln and returns nil once every connection it accepted has ended (their
// sessions end with the node's: Node.Shutdown closes them with 1012). An
// Accept error is returned at once; the open sessions stay the node's.
func Serve(ctx context.Context, node *core.Node, ln net.Listener, cfg Config) error {
	cfg.setDefaults()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var conns sync.WaitGroup
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				return err
			}
			conns.Wait()
			return nil
		}
		conns.Go(func() { serveConn(ctx, node, conn, cfg) })
	}
}

// serveConn is the whole lifecycle of one connection: the hello, Accept
// (core authenticates), every line into the session, Close.
func serveConn(ctx context.Context, node *core.Node, conn net.Conn, cfg Config) {
	defer conn.Close()
	t := &transport{conn: conn, w: bufio.NewWriter(conn), cfg: cfg}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 4096), node.Config().MaxMessageSize+1) // a longer line stops it with ErrTooLong
	if sess := accept(ctx, node, conn, sc, t); sess != nil {
		for sc.Scan() {
			if len(sc.Bytes()) == 0 {
				sess.Activity() // the client's keep-alive
				continue
			}
			sess.HandleFrame(sc.Bytes())
		}
		d := core.DisconnectGoingAway // EOF or a read error: the client left
		if errors.Is(sc.Err(), bufio.ErrTooLong) {
			d = core.DisconnectMessageTooLarge
		}
		sess.Close(d) // a no-op if the server ended the session first
	}
	// Discard input until the client hangs up or the close grace (a read
	// deadline set by transport.Close) ends.
	_, _ = io.Copy(io.Discard, conn)
}

// accept reads the hello and hands its credentials to node.Accept. It
// returns nil once t is closed with the reason: a bad hello, shutdown, or
// whatever Accept refused (4001 for refused credentials).
func accept(ctx context.Context, node *core.Node, conn net.Conn, sc *bufio.Scanner, t *transport) *core.Session {
	remote := conn.RemoteAddr().String()
	_ = conn.SetReadDeadline(time.Now().Add(t.cfg.HelloTimeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) }) // shutdown ends the wait
	var h Hello
	ok := sc.Scan() && json.Unmarshal(sc.Bytes(), &h) == nil
	if !stop() {
		_ = t.Close(core.DisconnectShutdown)
		return nil
	}
	if !ok {
		node.Logger().Warn("ndjson bad hello", "remote", remote, "err", sc.Err())
		_ = t.Close(DisconnectBadHello)
		return nil
	}
	_ = conn.SetReadDeadline(time.Time{})
	sess, _ := node.Accept(context.Background(), t, core.ConnectRequest{
		Credentials: core.Credentials{Token: h.Token, User: h.User, Transport: "ndjson", RemoteAddr: remote},
		Rooms:       h.Rooms, Since: h.Since, RemoteAddr: remote,
	})
	return sess
}

// transport writes envelopes as lines. Core calls WriteMany, Ping and
// Close from the session's single writer goroutine; Abort from any.
type transport struct {
	conn net.Conn
	w    *bufio.Writer
	cfg  Config
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
	_ = t.conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	for _, f := range frames {
		_, _ = t.w.Write(f)
		_ = t.w.WriteByte('\n')
	}
	return t.w.Flush() // a bufio.Writer keeps the first error; Flush reports it
}

// Ping writes an empty line: the server's keep-alive.
func (t *transport) Ping() error { return t.WriteMany([][]byte{nil}) }

// Close writes the close line (unless the client is already gone),
// half-closes the connection so that the client reads EOF after it, and
// gives the reader CloseGrace to see the client hang up.
func (t *transport) Close(d core.Disconnect) error {
	var err error
	if d.Code != core.DisconnectGoingAway.Code {
		data, _ := json.Marshal(struct {
			Code      uint16 `json:"code"`
			Reason    string `json:"reason"`
			Reconnect bool   `json:"reconnect"`
		}{d.Code, d.Reason, d.Reconnect})
		err = t.WriteMany([][]byte{(&core.Envelope{V: core.Version, Type: "close", Data: data}).Encode()})
	}
	if tc, ok := t.conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = t.conn.SetReadDeadline(time.Now().Add(t.cfg.CloseGrace))
	return err
}

// Abort interrupts a write blocked on a stalled client (and the reader).
func (t *transport) Abort() { _ = t.conn.SetDeadline(time.Now()) }
