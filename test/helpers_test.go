package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
)

// waitFor bounds every wait in these tests. Generous: it only matters when
// something is broken, and CI machines are slow under -race.
const waitFor = 10 * time.Second

// edge is a running in-process edge node.
type edge struct {
	srv  *server.Server
	addr string
	logs *syncBuffer
}

// startEdge starts an edge on 127.0.0.1:0 with cfg tweaked by mod, and stops
// it when the test ends.
func startEdge(t *testing.T, mod func(*config.Config)) *edge {
	t.Helper()
	cfg := config.Default()
	if mod != nil {
		mod(&cfg)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(cfg, logger)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &edge{srv: srv, addr: ln.Addr().String(), logs: logs}
}

func (e *edge) url(query string) string {
	return "ws://" + e.addr + "/ws?" + query
}

func (e *edge) stats(t *testing.T) core.Stats {
	t.Helper()
	var s core.Stats
	getJSON(t, "http://"+e.addr+"/stats", &s)
	return s
}

// eventually polls cond (a condition with no signal of its own, such as
// server-side cleanup) until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, waitFor, what, cond)
}

// eventuallyWithin is eventually bounded by limit instead of waitFor, for
// a condition that legitimately takes a known time (a lease to expire)
// before a hang becomes possible.
func eventuallyWithin(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %q", u, err, body)
		}
	}
	return resp.StatusCode
}

// client is a WebSocket test client. A reader goroutine splits frames on
// '\n' and hands envelopes to the test goroutine through a channel.
type client struct {
	t     *testing.T
	conn  *websocket.Conn
	envs  chan *core.Envelope
	done  chan struct{} // closed when the reader stops
	err   error         // why the reader stopped; read after done
	pings chan struct{}
}

type dialOpt func(*websocket.Dialer, http.Header)

// withRcvBuf shrinks the client's socket receive buffer, so a client that
// stops reading stalls the server's writes quickly.
func withRcvBuf(n int) dialOpt {
	return func(d *websocket.Dialer, _ http.Header) {
		d.NetDial = func(network, addr string) (net.Conn, error) {
			c, err := net.Dial(network, addr)
			if err == nil {
				err = c.(*net.TCPConn).SetReadBuffer(n)
			}
			return c, err
		}
	}
}

func withHeader(k, v string) dialOpt {
	return func(_ *websocket.Dialer, h http.Header) { h.Set(k, v) }
}

// dial connects and starts reading. It does not consume the welcome.
func dial(t *testing.T, u string, opts ...dialOpt) *client {
	t.Helper()
	c, err := tryDial(t, u, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	return c
}

func tryDial(t *testing.T, u string, opts ...dialOpt) (*client, error) {
	d := &websocket.Dialer{HandshakeTimeout: waitFor}
	h := http.Header{}
	for _, o := range opts {
		o(d, h)
	}
	conn, resp, err := d.Dial(u, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c := &client{t: t, conn: conn, envs: make(chan *core.Envelope, 4096), done: make(chan struct{}), pings: make(chan struct{}, 1024)}
	conn.SetPingHandler(func(data string) error {
		select {
		case c.pings <- struct{}{}:
		default:
		}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	t.Cleanup(func() { _ = conn.Close() })
	return c, nil
}

// read starts the reader goroutine. Tests that want a stalled client skip it.
func (c *client) read() *client {
	go func() {
		defer close(c.done)
		defer close(c.envs)
		for {
			_, data, err := c.conn.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			for _, line := range bytes.Split(data, []byte{'\n'}) {
				env, err := core.UnmarshalEnvelope(line)
				if err != nil {
					c.err = fmt.Errorf("bad envelope from server %q: %w", line, err)
					_ = c.conn.Close()
					return
				}
				c.envs <- env
			}
		}
	}()
	return c
}

// connect dials, reads and returns the client with its welcome.
func connect(t *testing.T, u string, opts ...dialOpt) (*client, welcome) {
	t.Helper()
	c := dial(t, u, opts...).read()
	env := c.expect(core.TypeWelcome)
	var w welcome
	if err := json.Unmarshal(env.Data, &w); err != nil {
		t.Fatalf("welcome data: %v", err)
	}
	return c, w
}

type welcome struct {
	Conn      string   `json:"conn"`
	User      string   `json:"user"`
	Rooms     []string `json:"rooms"`
	Recovered *bool    `json:"recovered"`
}

func (c *client) send(s string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next returns the next envelope, failing the test if none arrives.
func (c *client) next() *core.Envelope {
	c.t.Helper()
	select {
	case env, ok := <-c.envs:
		if !ok {
			<-c.done
			c.t.Fatalf("connection ended while waiting for an envelope: %v", c.err)
		}
		return env
	case <-time.After(waitFor):
		c.t.Fatalf("no envelope within %s", waitFor)
	}
	return nil
}

// expect returns the next envelope and checks its type.
func (c *client) expect(typ string) *core.Envelope {
	c.t.Helper()
	env := c.next()
	if env.Type != typ {
		c.t.Fatalf("got %s envelope %s, want type %q", env.Type, env.Encode(), typ)
	}
	return env
}

// ackAnd returns the ack to the client's own request and the envelope of
// type typ that the request caused, in whichever order they arrive (a
// publisher may see its own message before the ack).
func (c *client) ackAnd(typ string) (ack, other *core.Envelope) {
	c.t.Helper()
	for ack == nil || other == nil {
		env := c.next()
		switch {
		case env.Type == core.TypeAck && ack == nil:
			ack = env
		case env.Type == typ && other == nil:
			other = env
		default:
			c.t.Fatalf("unexpected %s while waiting for ack and %s", env.Encode(), typ)
		}
	}
	return ack, other
}

// expectError checks the next envelope is an error with code and ref.
func (c *client) expectError(code, ref string) string {
	c.t.Helper()
	env := c.expect(core.TypeError)
	var e struct{ Code, Message string }
	_ = json.Unmarshal(env.Data, &e)
	if e.Code != code || env.Ref != ref {
		c.t.Fatalf("got error code=%q ref=%q (%s), want code=%q ref=%q", e.Code, env.Ref, e.Message, code, ref)
	}
	return e.Message
}

// closed waits for the server to end the connection and returns the close
// code it sent (0 if none).
func (c *client) closed() int {
	c.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case _, ok := <-c.envs:
			if ok {
				continue // discard what was queued before the close
			}
			<-c.done
			var ce *websocket.CloseError
			if errors.As(c.err, &ce) {
				return ce.Code
			}
			return 0
		case <-deadline:
			c.t.Fatalf("connection not closed within %s", waitFor)
		}
	}
}

// ping round-trips a ping envelope: proof the connection is alive and that
// everything the server queued before the pong has been read.
func (c *client) ping() {
	c.t.Helper()
	ref := fmt.Sprintf("ping-%d", time.Now().UnixNano())
	c.send(`{"v":1,"type":"ping","ref":"` + ref + `"}`)
	for {
		env := c.next()
		if env.Type == core.TypePong && env.Ref == ref {
			return
		}
		if env.Type == core.TypePong {
			continue
		}
		c.t.Fatalf("unexpected %s while waiting for pong", env.Encode())
	}
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

func dataString(t *testing.T, env *core.Envelope) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(env.Data, &s); err != nil {
		t.Fatalf("data of %s: %v", env.Encode(), err)
	}
	return s
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	eof chan struct{} // closed when a process's stderr has been read to its end (startBinary)
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log records with the given msg.
func (b *syncBuffer) lines(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(b.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
