package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/edge/webhook"
)

// TestMain fails the package if an edge, a backend or a client leaves a
// goroutine behind. fasthttp's date updater and worker-pool cleaner are
// process-wide.
func TestMain(m *testing.M) {
	coretest.VerifyNone(m, "fasthttp.updateServerDate", "fasthttp.(*workerPool).Start.func2")
}

const secret = "example-secret-0123456789"

// waitFor bounds every wait: it matters only when something is broken.
const waitFor = 10 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// fixture is the example backend on 127.0.0.1 and a real edge calling it.
type fixture struct {
	addr        string // the edge's host:port
	hits        map[string]*atomic.Int32
	disconnects chan webhook.DisconnectRequest
}

// patient is the webhook timeout of every edge whose calls are not meant
// to time out: it bounds a hang, never a call on a loaded machine.
const patient = webhook.MaxTimeout

// start runs the backend (behind wrap, which tests use to break it) and
// an edge with the given webhook timeout and routes (default: all three).
func start(t *testing.T, timeout time.Duration, wrap func(route string, body []byte, w http.ResponseWriter, r *http.Request) bool, routes ...string) *fixture {
	t.Helper()
	f := &fixture{hits: map[string]*atomic.Int32{"connect": {}, "message": {}, "disconnect": {}}, disconnects: make(chan webhook.DisconnectRequest, 100)}
	b := &Backend{Secret: []byte(secret), Tickets: map[string]string{"t1": "alice", "t2": "bob", "slow": "sam", "flaky": "carol"}, Log: quiet,
		OnDisconnect: func(d webhook.DisconnectRequest) { f.disconnects <- d }}
	inner := b.Handler()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := strings.TrimPrefix(r.URL.Path, "/")
		f.hits[route].Add(1)
		body, _ := io.ReadAll(r.Body)
		if wrap != nil && wrap(route, body, w, r) {
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(backend.Close) // after the edge's shutdown (cleanups run last-in first-out)

	if len(routes) == 0 {
		routes = []string{"connect", "message", "disconnect"}
	}
	cfg := config.Default()
	cfg.Webhooks = webhook.Config{Secret: []byte(secret), Timeout: timeout}
	for _, route := range routes {
		u := backend.URL + "/" + route
		switch route {
		case "connect":
			cfg.Webhooks.ConnectURL = u
		case "message":
			cfg.Webhooks.MessageURL, cfg.Webhooks.MessageTypes = u, []string{"echo", "shout"}
		case "disconnect":
			cfg.Webhooks.DisconnectURL = u
		}
	}
	srv, err := server.New(cfg, quiet)
	if err != nil {
		t.Fatal(err)
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
	f.addr = ln.Addr().String()
	return f
}

type conn struct {
	t *testing.T
	c *websocket.Conn
	q []*core.Envelope
}

func (f *fixture) dial(t *testing.T, query string) (*conn, error) {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+f.addr+"/ws?"+query, nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return &conn{t: t, c: c}, nil
}

// next returns the next envelope (frames may carry several).
func (c *conn) next() (*core.Envelope, error) {
	for len(c.q) == 0 {
		_ = c.c.SetReadDeadline(time.Now().Add(waitFor))
		_, frame, err := c.c.ReadMessage()
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(frame)), "\n") {
			e, err := core.UnmarshalEnvelope([]byte(line))
			if err != nil {
				c.t.Fatalf("bad envelope %q: %v", line, err)
			}
			c.q = append(c.q, e)
		}
	}
	e := c.q[0]
	c.q = c.q[1:]
	return e, nil
}

// expect reads until an envelope of type typ arrives.
func (c *conn) expect(typ string) *core.Envelope {
	c.t.Helper()
	for {
		e, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if e.Type == typ {
			return e
		}
	}
}

func (c *conn) send(env string) {
	c.t.Helper()
	if err := c.c.WriteMessage(websocket.TextMessage, []byte(env)); err != nil {
		c.t.Fatal(err)
	}
}

// closeCode reads until the server closes and returns its close frame.
func (c *conn) closeCode() (int, string) {
	c.t.Helper()
	for {
		_, err := c.next()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		if err != nil {
			c.t.Fatalf("closed without a close frame: %v", err)
		}
	}
}

func data(t *testing.T, e *core.Envelope) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("data %s: %v", e.Data, err)
	}
	return m
}

func mustDial(t *testing.T, f *fixture, query string) (*conn, *core.Envelope) {
	t.Helper()
	c, err := f.dial(t, query)
	if err != nil {
		t.Fatal(err)
	}
	return c, c.expect("welcome")
}

func httpDo(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	client := &http.Client{Timeout: waitFor}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWebhooks(t *testing.T) {
	f := start(t, patient, nil)

	alice, welcome := mustDial(t, f, "ticket=t1")
	w := data(t, welcome)
	if w["user"] != "alice" || len(w["rooms"].([]any)) != 1 || w["rooms"].([]any)[0] != "lobby" {
		t.Fatalf("welcome %s: want user alice (from the ticket) in lobby (from the webhook)", welcome.Data)
	}
	bob, _ := mustDial(t, f, "ticket=t2&user=mallory") // dev mode's ?user= is overridden by the webhook

	t.Run("reject websocket", func(t *testing.T) {
		c, err := f.dial(t, "ticket=nope")
		if err != nil {
			t.Fatal(err)
		}
		if code, reason := c.closeCode(); code != 4403 || reason != "ticket required" {
			t.Fatalf("close %d %q, want 4403 ticket required", code, reason)
		}
	})
	t.Run("reject sse, long-poll and send", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{{"GET", "/sse"}, {"GET", "/poll?rooms=lobby&wait=1"}, {"POST", "/send"}} {
			status, body := httpDo(t, r.method, "http://"+f.addr+r.path, `{"v":1,"type":"ping"}`)
			if status != 403 || !strings.Contains(body, `"code":"forbidden"`) || !strings.Contains(body, "ticket required") {
				t.Fatalf("%s %s = %d %s, want 403 forbidden", r.method, r.path, status, body)
			}
		}
	})
	t.Run("message reply", func(t *testing.T) {
		alice.send(`{"v":1,"type":"echo","ref":"e1","data":{"text":"hi"}}`)
		e := alice.expect("echo")
		d := data(t, e)
		if e.Ref != "e1" || d["text"] != "hi" || d["user"] != "alice" || d["meta"].(map[string]any)["ticket"] != "t1" {
			t.Fatalf("echo = %+v %s", e, e.Data)
		}
	})
	t.Run("message publish", func(t *testing.T) {
		alice.send(`{"v":1,"type":"shout","room":"lobby","ref":"s1","data":{"text":"hey"}}`)
		ack := alice.expect("ack")
		if ack.Ref != "s1" || !strings.Contains(string(ack.Data), `"room":"lobby"`) {
			t.Fatalf("ack %+v %s", ack, ack.Data)
		}
		m := bob.expect("message")
		if m.From != "alice" || m.Room != "lobby" || data(t, m)["text"] != "HEY" || m.ID == "" {
			t.Fatalf("bob got %+v %s", m, m.Data)
		}
	})
	t.Run("message over POST /send", func(t *testing.T) {
		status, body := httpDo(t, "POST", "http://"+f.addr+"/send?ticket=t1", `{"v":1,"type":"echo","ref":"p1","data":{"text":"via send"}}`)
		if status != 200 || !strings.Contains(body, `"type":"echo"`) || !strings.Contains(body, `"ref":"p1"`) || !strings.Contains(body, `"user":"alice"`) {
			t.Fatalf("send = %d %s", status, body)
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		_ = alice.c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
		select {
		case d := <-f.disconnects:
			if d.User != "alice" || d.Code != 1000 || d.Transport != "websocket" || d.Meta["ticket"] != "t1" || d.DurationMS == nil || d.Conn != w["conn"] {
				t.Fatalf("disconnect %+v", d)
			}
		case <-time.After(waitFor):
			t.Fatal("no disconnect delivered")
		}
	})
}

// failures counts down the 503s a test's backend answers per route.
type failures struct {
	connectFails, disconnectFails atomic.Int32
}

// hangSlow keeps the backend from answering a connect with ticket=slow or
// a message with the text "slow" until the edge gives up.
func hangSlow(route string, body []byte, _ http.ResponseWriter, r *http.Request) bool {
	if route == "connect" && strings.Contains(string(body), `"ticket":["slow"]`) ||
		route == "message" && strings.Contains(string(body), `"slow"`) {
		<-r.Context().Done()
		return true
	}
	return false
}

// TestWebhookTimeouts: a backend that does not answer within the
// webhook timeout fails a connection closed and a message with
// unavailable. The short timeout is reached only by calls whose backend
// never answers; no call that must succeed runs against it.
func TestWebhookTimeouts(t *testing.T) {
	t.Run("connect timeout fails closed", func(t *testing.T) {
		f := start(t, 300*time.Millisecond, hangSlow, "connect")
		c, err := f.dial(t, "ticket=slow")
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := c.closeCode(); code != 1013 {
			t.Fatalf("close %d, want 1013", code)
		}
		status, body := httpDo(t, "POST", "http://"+f.addr+"/send?ticket=slow", `{"v":1,"type":"ping"}`)
		if status != 503 || !strings.Contains(body, `"code":"unavailable"`) {
			t.Fatalf("send = %d %s, want 503 unavailable", status, body)
		}
	})
	t.Run("message timeout answers unavailable", func(t *testing.T) {
		// No connect route: the client connects without a webhook call.
		f := start(t, 300*time.Millisecond, hangSlow, "message")
		c, welcome := mustDial(t, f, "user=dave")
		if data(t, welcome)["user"] != "dave" {
			t.Fatalf("welcome %s", welcome.Data)
		}
		c.send(`{"v":1,"type":"echo","ref":"m1","data":{"text":"slow"}}`)
		e := c.expect("error")
		if e.Ref != "m1" || data(t, e)["code"] != "unavailable" {
			t.Fatalf("error %+v %s", e, e.Data)
		}
		c.send(`{"v":1,"type":"ping","ref":"p1"}`) // the connection stays open
		if e := c.expect("pong"); e.Ref != "p1" {
			t.Fatalf("pong %+v", e)
		}
	})
}

// TestWebhookRetries: a connect that failed once is retried and admits
// the client; a disconnect is retried until delivered. No call times out
// (patient), so the attempts are exactly those the failures cause.
func TestWebhookRetries(t *testing.T) {
	var fl failures
	fl.connectFails.Store(1)
	fl.disconnectFails.Store(2)
	var attempts atomic.Int32
	f := start(t, patient, func(route string, body []byte, w http.ResponseWriter, r *http.Request) bool {
		switch {
		case route == "connect" && strings.Contains(string(body), `"ticket":["flaky"]`) && fl.connectFails.Add(-1) >= 0:
			w.WriteHeader(503)
			return true
		case route == "disconnect":
			attempts.Add(1)
			if fl.disconnectFails.Add(-1) >= 0 {
				w.WriteHeader(503)
				return true
			}
		}
		return false
	})

	c, welcome := mustDial(t, f, "ticket=flaky")
	if data(t, welcome)["user"] != "carol" {
		t.Fatalf("welcome %s", welcome.Data)
	}
	if n := f.hits["connect"].Load(); n != 2 {
		t.Fatalf("%d connect attempts, want 2 (a failure, then admitted)", n)
	}
	c.send(`{"v":1,"type":"echo","ref":"m2","data":{"text":"fast"}}`)
	if e := c.expect("echo"); e.Ref != "m2" {
		t.Fatalf("echo %+v", e)
	}
	_ = c.c.Close() // no close frame: 1001 going away
	select {
	case d := <-f.disconnects:
		if d.User != "carol" || d.Code != 1001 {
			t.Fatalf("disconnect %+v", d)
		}
	case <-time.After(waitFor):
		t.Fatal("no disconnect delivered")
	}
	if n := attempts.Load(); n != 3 {
		t.Fatalf("%d attempts, want 3 (2 failures, then delivered)", n)
	}
}

func TestBreakerFailsFast(t *testing.T) {
	f := start(t, patient, func(_ string, _ []byte, w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(500) // a broken backend
		return true
	})
	// Connect makes 2 attempts (one retry): 3 connections fail 5 attempts
	// and open the breaker; later ones are refused without a request.
	for i := range 5 {
		c, err := f.dial(t, "ticket=t1")
		if err != nil {
			t.Fatal(err)
		}
		if code, reason := c.closeCode(); code != 1013 || reason != "try again later" {
			t.Fatalf("connection %d: close %d %q, want 1013", i, code, reason)
		}
	}
	if n := f.hits["connect"].Load(); n != 5 {
		t.Fatalf("backend saw %d connect attempts, want 5 (then the breaker is open)", n)
	}
}

func TestFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := config.Load([]string{"--webhook-message-types", "echo, shout,echo", "--webhook-timeout", "2s"}, env(map[string]string{
		"SWITCHBOARD_WEBHOOK_CONNECT": "https://api.example.com/connect",
		"SWITCHBOARD_WEBHOOK_MESSAGE": "https://api.example.com/message",
		"SWITCHBOARD_WEBHOOK_SECRET":  secret,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Webhooks; w.ConnectURL != "https://api.example.com/connect" || strings.Join(w.MessageTypes, ",") != "echo,shout" || w.Timeout != 2*time.Second || !w.Enabled() {
		t.Fatalf("webhooks = %+v", w)
	}
	if d := config.Default().Webhooks; d.Enabled() || d.Timeout != 5*time.Second {
		t.Fatalf("default = %+v", d)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--webhook-connect", "http://x/c"}, "invalid --webhook-secret (SWITCHBOARD_WEBHOOK_SECRET): required"},
		{[]string{"--webhook-connect", "http://x/c", "--webhook-secret", "short"}, "invalid --webhook-secret (SWITCHBOARD_WEBHOOK_SECRET): 5 bytes is shorter than 16"},
		{[]string{"--webhook-connect", "x/c", "--webhook-secret", secret}, "invalid --webhook-connect (SWITCHBOARD_WEBHOOK_CONNECT): \"x/c\"; use an http:// or https:// URL"},
		{[]string{"--webhook-disconnect", "ftp://x", "--webhook-secret", secret}, "invalid --webhook-disconnect"},
		{[]string{"--webhook-message", "http://x/m", "--webhook-secret", secret}, "invalid --webhook-message-types (SWITCHBOARD_WEBHOOK_MESSAGE_TYPES): empty"},
		{[]string{"--webhook-message-types", "echo", "--webhook-secret", secret}, "invalid --webhook-message (SWITCHBOARD_WEBHOOK_MESSAGE): empty"},
		{[]string{"--webhook-message", "http://x/m", "--webhook-message-types", "publish", "--webhook-secret", secret}, "type \"publish\" is built in"},
		{[]string{"--webhook-message", "http://x/m", "--webhook-message-types", "Echo", "--webhook-secret", secret}, "invalid --webhook-message-types"},
		{[]string{"--webhook-timeout", "0s"}, `invalid value "0s" for --webhook-timeout (SWITCHBOARD_WEBHOOK_TIMEOUT): 0 is not a setting here`},
		{[]string{"--webhook-timeout", "-1s"}, "invalid --webhook-timeout (SWITCHBOARD_WEBHOOK_TIMEOUT): -1s must be positive"},
		{[]string{"--webhook-timeout", "2m"}, "invalid --webhook-timeout (SWITCHBOARD_WEBHOOK_TIMEOUT): 2m0s is too long"},
		{[]string{"--webhook-timeout", "soon"}, "expected a duration"},
	} {
		_, err := config.Load(tc.args, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Load(%q) = %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
}
