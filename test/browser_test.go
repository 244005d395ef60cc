package test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/examples/chat/chatapp"
	"github.com/switchboard-dev/switchboard/test/browsertest"
)

// The browser tests drive the chat example (examples/chat, built on the
// browser client /client.js) in real headless Chromium. Screenshots land
// in test/artifacts/ (ignored by git) for a person to look at.

// chatEdge is an in-process edge serving the chat page, restartable on
// the same address.
type chatEdge struct {
	t    *testing.T
	addr string
	mod  func(*config.Config)

	mu     sync.Mutex
	srv    *server.Server
	served chan error
}

// startChat starts a chat edge on a random loopback port.
func startChat(t *testing.T, mod func(*config.Config)) *chatEdge {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &chatEdge{t: t, addr: ln.Addr().String(), mod: mod}
	e.serve(ln)
	t.Cleanup(e.stop)
	return e
}

func (e *chatEdge) serve(ln net.Listener) {
	e.t.Helper()
	cfg := config.Default()
	cfg.Node.RateLimit = -1
	if e.mod != nil {
		e.mod(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(&syncBuffer{}, nil))
	srv, err := server.New(cfg, logger)
	if err != nil {
		ln.Close()
		e.t.Fatalf("server.New: %v", err)
	}
	chatapp.Register(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	e.mu.Lock()
	e.srv, e.served = srv, served
	e.mu.Unlock()
}

// stop shuts the edge down as SIGTERM does (1012 to every client).
func (e *chatEdge) stop() {
	e.mu.Lock()
	srv, served := e.srv, e.served
	e.srv = nil
	e.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		e.t.Errorf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		e.t.Errorf("serve: %v", err)
	}
}

// restart stops the edge and starts a new one on the same address.
func (e *chatEdge) restart() {
	e.t.Helper()
	e.stop()
	ln, err := net.Listen("tcp", e.addr)
	if err != nil {
		e.t.Fatalf("listen again on %s: %v", e.addr, err)
	}
	e.serve(ln)
}

// send posts one envelope to /send as user (development mode) with rooms,
// and fails the test unless it is acknowledged.
func (e *chatEdge) send(t *testing.T, user, rooms, env string) {
	t.Helper()
	ed := &edge{addr: e.addr}
	status, replies := ed.post(t, q("user", user, "rooms", rooms), env)
	if status != http.StatusOK || len(replies) != 1 || replies[0].Type != core.TypeAck {
		t.Fatalf("POST /send %s: %d %+v", env, status, replies)
	}
}

// hostileProxy forwards to an edge but swallows requests to the paths in
// holds: it takes the connection and never answers, as a proxy that
// breaks WebSocket upgrades or buffers event streams does. Its address
// stands in for the edge's; swallowed receives the path of each request
// it swallowed.
func hostileProxy(t *testing.T, e *chatEdge, holds ...string) (proxy *chatEdge, swallowed <-chan string) {
	t.Helper()
	target, _ := url.Parse("http://" + e.addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var held []net.Conn
	paths := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range holds {
			if r.URL.Path == p {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				mu.Lock()
				held = append(held, conn)
				mu.Unlock()
				select {
				case paths <- r.URL.Path:
				default:
					t.Errorf("swallowed %s: nobody is reading the swallowed paths", r.URL.Path)
				}
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
		srv.CloseClientConnections()
		srv.Close()
	})
	return &chatEdge{t: t, addr: srv.Listener.Addr().String()}, paths
}

// browserTimeout is the browser client's connectTimeout and requestTimeout
// in these tests: a bound on a hang, not a deadline a loaded machine could
// miss (Chromium and a -race edge can take seconds to answer), and below
// the minute from which TestBrowserClientTokenCallback holds timers.
const browserTimeout = 30 * time.Second

// heldTimeout is a connectTimeout the page's holdTimers script holds for
// the test to fire.
const heldTimeout = time.Hour

// holdTimers is a page script that holds every timer of exactly
// heldTimeout instead of starting it: window.fireHeld() runs the oldest
// one still pending and reports whether there was one. It is ES5, so it
// also runs at the legacy tests' ES5 floor (after es5Floor's script).
var holdTimers = fmt.Sprintf(`
(function () {
  var held = [], realSet = window.setTimeout, realClear = window.clearTimeout;
  window.setTimeout = function (fn, ms) {
    if (ms !== %d) return realSet.apply(window, arguments);
    var t = { id: "held" + held.length, fn: fn, done: false };
    held.push(t);
    return t.id;
  };
  window.clearTimeout = function (id) {
    for (var i = 0; i < held.length; i++) if (held[i].id === id) { held[i].done = true; return; }
    realClear(id);
  };
  window.fireHeld = function () {
    for (var i = 0; i < held.length; i++) if (!held[i].done) { held[i].done = true; held[i].fn(); return true; }
    return false;
  };
})();`, heldTimeout.Milliseconds())

// fireWhenSwallowed waits for the hostile proxy to swallow n requests and,
// after each, fires the page's held connect timer guarding it (see
// holdTimers), so a silent transport is given up at once while a slow but
// working one is never mistaken for it.
func fireWhenSwallowed(t *testing.T, ctx context.Context, swallowed <-chan string, n int) {
	t.Helper()
	for range n {
		select {
		case p := <-swallowed:
			if !eval[bool](t, ctx, `window.fireHeld()`) {
				t.Fatalf("the proxy swallowed %s, but the page has no connect timer pending", p)
			}
		case <-time.After(waitFor):
			t.Fatalf("the proxy swallowed nothing within %s; page: %s", waitFor, pageState(ctx))
		}
	}
}

// newBrowser starts headless Chromium with a fresh profile; it is killed
// when the test ends.
func newBrowser(t *testing.T) context.Context { return browsertest.Start(t) }

// open navigates to the chat page of e with the query parameters, after
// installing script (if any) to run before the page's own. Unless query
// sets it, the client's connectTimeout is a bound on a hang (browserTimeout),
// not a deadline a loaded machine could miss.
func open(t *testing.T, ctx context.Context, e *chatEdge, query url.Values, script string) {
	t.Helper()
	if !query.Has("connectTimeout") {
		query.Set("connectTimeout", fmt.Sprint(browserTimeout.Milliseconds()))
	}
	if script != "" {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+e.addr+"/?"+query.Encode())); err != nil {
		t.Fatalf("navigate: %v", err)
	}
}

// until waits for the JavaScript expression to be truthy on the page.
func until(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if err := browsertest.Poll(ctx, expr, waitFor); err != nil {
		t.Fatalf("waiting for %s (%s): %v\npage state: %s", what, expr, err, pageState(ctx))
	}
}

// eval returns the JSON value of a JavaScript expression on the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return browsertest.Eval[T](t, ctx, expr)
}

// pageState is the page's chat log for failure messages.
func pageState(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`JSON.stringify({state: window.chat && window.chat.client && window.chat.client.state, transport: window.chat && window.chat.client && window.chat.client.transport, states: window.chat && window.chat.states, fallbacks: window.chat && window.chat.fallbacks, errors: window.chat && window.chat.errors, log: document.getElementById("log").innerText.slice(-2000)})`))
	if err != nil {
		return err.Error()
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// screenshot saves the page as test/artifacts/<name>.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(buf) < 1000 {
		t.Fatalf("screenshot: only %d bytes", len(buf))
	}
	if err := os.MkdirAll("artifacts", 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("artifacts", name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	t.Logf("screenshot: %s", abs)
}

// hasMessage is a page expression: the chat log holds a message with data d.
func hasMessage(d string) string {
	return fmt.Sprintf(`window.chat.messages.some(m => m.data === %q)`, d)
}

// submit fills a form field and submits its form, as a user would.
func submit(t *testing.T, ctx context.Context, field, value string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const f = document.getElementById(%q); f.value = %q; f.form.requestSubmit(); return true })()`, field, value)
	if ok := eval[bool](t, ctx, js); !ok {
		t.Fatalf("submit %s", field)
	}
}

// TestBrowserWebSocket: the chat page connects over WebSocket, receives a
// room message and a private message, and what the user types reaches
// another client.
func TestBrowserWebSocket(t *testing.T) {
	e := startChat(t, nil)
	ctx := newBrowser(t)
	open(t, ctx, e, url.Values{"user": {"alice"}, "rooms": {"lobby"}}, "")
	until(t, ctx, "open over websocket", `window.chat.client.state === "open" && window.chat.client.transport === "websocket"`)
	if got := eval[string](t, ctx, `document.getElementById("transport").textContent`); got != "websocket" {
		t.Fatalf("transport shown: %q", got)
	}

	// A native WebSocket client in the room sees what alice types.
	ed := &edge{addr: e.addr}
	bob, _ := connect(t, ed.url(q("user", "bob", "rooms", "lobby")))
	submit(t, ctx, "text", "hello from the browser")
	m := bob.expect(core.TypeMessage)
	if m.From != "alice" || m.Room != "lobby" || dataString(t, m) != "hello from the browser" {
		t.Fatalf("bob got %+v", m)
	}
	until(t, ctx, "own message shown", hasMessage("hello from the browser"))

	e.send(t, "bob", "lobby", `{"v":1,"type":"publish","room":"lobby","data":"hi alice"}`)
	until(t, ctx, "room message", hasMessage("hi alice"))
	e.send(t, "bob", "", `{"v":1,"type":"direct","to":"alice","data":"psst"}`)
	until(t, ctx, "private message", `window.chat.messages.some(m => m.data === "psst" && m.to === "alice" && m.from === "bob")`)
	until(t, ctx, "private message styled", `document.querySelector("#log li.direct") !== null`)
	if n := eval[int](t, ctx, `window.chat.fallbacks.length`); n != 0 {
		t.Fatalf("fallbacks on a working WebSocket: %d", n)
	}
	screenshot(t, ctx, "chat-websocket")

	// Chromium offers permessage-deflate, gets it, and reads and writes
	// compressed messages intact (its own large publish comes back).
	big := strings.Repeat(`{"sym":"ACME","bid":101.25,"ask":101.5}`, 80)
	eval[bool](t, ctx, fmt.Sprintf(`(() => {
		const ws = new WebSocket("ws://" + location.host + "/ws?user=carol&rooms=lobby");
		window.deflate = {};
		ws.onopen = () => { window.deflate.extensions = ws.extensions; ws.send(JSON.stringify({v: 1, type: "publish", room: "lobby", data: %q})) };
		ws.onmessage = ev => ev.data.split("\n").forEach(line => {
			const env = JSON.parse(line);
			if (env.type === "message" && env.from === "carol") window.deflate.echo = env.data;
		});
		return true })()`, big))
	until(t, ctx, "a large message over permessage-deflate", fmt.Sprintf(`window.deflate.echo === %q`, big))
	if ext := eval[string](t, ctx, `window.deflate.extensions`); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("negotiated extensions %q, want permessage-deflate", ext)
	}
}

// TestBrowserFallback: with WebSocket (and then SSE) unavailable, the
// client falls back and the same page still sends and receives room and
// private messages, and can join another room.
func TestBrowserFallback(t *testing.T) {
	cases := []struct {
		name       string
		transports []string // what the edge serves
		script     string   // run before the page
		holds      []string // paths a proxy in front swallows
		want       string
		fallbacks  string
	}{
		{"websocket refused to sse", []string{"sse", "longpoll"}, "", nil, "sse", "websocket>sse"},
		{"websocket missing in the browser to sse", nil, "delete window.WebSocket;", nil, "sse", "websocket>sse"},
		{"websocket and sse refused to longpoll", []string{"longpoll"}, "", nil, "longpoll", "websocket>sse,sse>longpoll"},
		{"websocket swallowed by a proxy to sse", nil, "", []string{"/ws"}, "sse", "websocket>sse"},
		{"websocket and sse swallowed by a proxy to longpoll", nil, "", []string{"/ws", "/sse"}, "longpoll", "websocket>sse,sse>longpoll"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startChat(t, func(c *config.Config) {
				if tc.transports != nil {
					c.Transports = tc.transports
				}
			})
			page := e
			var swallowed <-chan string
			if tc.holds != nil {
				page, swallowed = hostileProxy(t, e, tc.holds...)
			}
			ctx := newBrowser(t)
			// A silent transport fails when connectTimeout runs out. The
			// test is that clock: the page holds every connect timer,
			// and the test fires one when the proxy has swallowed the
			// attempt it guards, so a slow but working transport is
			// never mistaken for a silent one.
			open(t, ctx, page, url.Values{"user": {"alice"}, "rooms": {"lobby"}, "connectTimeout": {fmt.Sprint(heldTimeout.Milliseconds())}}, tc.script+holdTimers)
			fireWhenSwallowed(t, ctx, swallowed, len(tc.holds))
			until(t, ctx, "open over "+tc.want, fmt.Sprintf(`window.chat.client.state === "open" && window.chat.client.transport === %q`, tc.want))
			if got := eval[string](t, ctx, `window.chat.fallbacks.join(",")`); got != tc.fallbacks {
				t.Fatalf("fallbacks %q, want %q", got, tc.fallbacks)
			}
			if got := eval[string](t, ctx, `document.getElementById("transport").textContent`); got != tc.want {
				t.Fatalf("transport shown: %q", got)
			}

			e.send(t, "bob", "lobby", `{"v":1,"type":"publish","room":"lobby","data":"hi alice"}`)
			until(t, ctx, "room message", hasMessage("hi alice"))
			e.send(t, "bob", "", `{"v":1,"type":"direct","to":"alice","data":"psst"}`)
			until(t, ctx, "private message", `window.chat.messages.some(m => m.data === "psst" && m.from === "bob")`)

			// What alice types goes through POST /send and comes back on
			// her stream, exactly once.
			submit(t, ctx, "text", "typed on "+tc.want)
			until(t, ctx, "own message", hasMessage("typed on "+tc.want))

			// Joining reopens the stream with the new room.
			submit(t, ctx, "joinroom", "news")
			until(t, ctx, "joined news", `window.chat.client.rooms.includes("news") && window.chat.client.state === "open"`)
			e.send(t, "bob", "news", `{"v":1,"type":"publish","room":"news","data":"extra"}`)
			until(t, ctx, "news message", hasMessage("extra"))

			counts := eval[map[string]int](t, ctx, `window.chat.messages.reduce((a, m) => (a[m.data] = (a[m.data] || 0) + 1, a), {})`)
			for d, n := range counts {
				if n != 1 {
					t.Errorf("%q shown %d times", d, n)
				}
			}
			if errs := eval[[]string](t, ctx, `window.chat.errors`); len(errs) != 0 {
				t.Errorf("errors on the page: %v", errs)
			}
			screenshot(t, ctx, "chat-"+strings.ReplaceAll(tc.name, " ", "-"))
		})
	}
}

// TestBrowserEdgeRestart: the page's edge restarts (SIGTERM's shutdown,
// then a new process on the same address) while another edge on the same
// Redis keeps publishing. On every transport the client reconnects,
// resumes from its last id, and shows every message exactly once, in
// order.
func TestBrowserEdgeRestart(t *testing.T) {
	rs := redistest.Start(t)
	redis := func(c *config.Config) { c.Broker.Name, c.Broker.URL = "redis", rs.URL }
	for _, transport := range []string{"websocket", "sse", "longpoll"} {
		t.Run(transport, func(t *testing.T) {
			room := "restart-" + transport
			a := startChat(t, redis)
			b := startChat(t, redis) // the publisher's edge, never restarted
			ctx := newBrowser(t)
			open(t, ctx, a, url.Values{"user": {"alice"}, "rooms": {room}, "transports": {transport}}, "")
			until(t, ctx, "open", fmt.Sprintf(`window.chat.client.state === "open" && window.chat.client.transport === %q`, transport))

			want := publishAcrossRestart(t, ctx, a, b, room, 60, 20, until, hasMessage)

			got := eval[[]string](t, ctx, `window.chat.messages.map(m => m.data)`)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("messages shown:\n got %v\nwant %v", got, want)
			}
			// A WebSocket or an event stream is open across the restart,
			// so the client sees it end and reconnects. A long-poll client
			// sees the restart only when a poll is in flight at that
			// moment (answered 1012); between two polls its next poll
			// simply reaches the new edge. Either way nothing is lost or
			// shown twice (checked above).
			states := eval[[]string](t, ctx, `window.chat.states`)
			if transport != "longpoll" && !strings.Contains(strings.Join(states, ","), "reconnecting") {
				t.Fatalf("the client never reconnected: %v", states)
			}
			if tr := eval[string](t, ctx, `window.chat.client.transport`); tr != transport {
				t.Fatalf("ended on %s, want %s", tr, transport)
			}
			if transport == "websocket" {
				screenshot(t, ctx, "chat-after-restart")
			}
		})
	}
}

// publishAcrossRestart publishes m001 to m<total> to room through pub,
// as bob (development mode): the first before of them, waiting until the
// page shows the last of those, then the rest every 15 ms while restarted
// restarts (SIGTERM's shutdown, then a new edge on the same address). It
// returns when the page shows the last message and is open again, with
// the messages in order. wait is the page's wait (until, or legacyUntil
// where the page has no Promise) and shows the page expression "a message
// with data d is shown" (hasMessage, or legacyHas in ES5).
func publishAcrossRestart(t *testing.T, ctx context.Context, restarted, pub *chatEdge, room string, total, before int,
	wait func(t *testing.T, ctx context.Context, what, expr string), shows func(d string) string) []string {
	t.Helper()
	msgs := make([]string, total)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("m%03d", i+1)
	}
	publish := func(i int) error {
		body := fmt.Sprintf(`{"v":1,"type":"publish","room":%q,"data":%q}`, room, msgs[i])
		resp, err := http.Post("http://"+pub.addr+"/send?"+q("user", "bob", "rooms", room), "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("publish %s: HTTP %d", msgs[i], resp.StatusCode)
		}
		return nil
	}
	for i := range before {
		if err := publish(i); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, ctx, "the first messages", shows(msgs[before-1]))
	pubErr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		for i := before; i < total; i++ {
			<-tick.C
			if err := publish(i); err != nil {
				pubErr <- err
				return
			}
		}
		pubErr <- nil
	}()
	restarted.restart()
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, "every message", shows(msgs[total-1]))
	wait(t, ctx, "open again", `window.chat.client.state === "open"`)
	return msgs
}

// TestBrowserClientAPI drives the client library directly (not through
// the chat page) against an edge in JWT mode: a bad token is terminal
// (4001, no reconnect), requests resolve with acks or reject with the
// server's error code, and the classic build defines window.Switchboard.
func TestBrowserClientAPI(t *testing.T) {
	const secret = "browser-test-secret-0123456789"
	e := startChat(t, func(c *config.Config) { c.Auth.Secret = []byte(secret) })
	good := token(t, secret, "carol", time.Now().Add(time.Hour))
	ctx := newBrowser(t)
	// Any same-origin page will do; the test imports the module into it.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+e.addr+"/healthz")); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`(async () => {
  const { connect } = await import("/client.js");
  const out = {};
  const waitState = (c, s) => new Promise((res) => { if (c.state === s) res(); const off = c.on(s, () => { off(); res(); }); });

  // A bad token: closed with 4001, never reconnecting.
  const bad = connect(location.origin, { token: "not-a-jwt", rooms: ["r"], connectTimeout: %[2]d, requestTimeout: %[2]d });
  const states = [];
  bad.on("state", (d) => states.push(d.state + (d.code ? ":" + d.code : "")));
  await waitState(bad, "closed");
  out.badStates = states.join(",");

  const c = connect(location.origin, { token: %[1]q, rooms: ["r"], connectTimeout: %[2]d, requestTimeout: %[2]d });
  await waitState(c, "open");
  out.user = c.user;
  out.transport = c.transport;
  try { await c.publish("elsewhere", 1); out.notJoined = "resolved"; } catch (e) { out.notJoined = e.code; }
  const got = [];
  c.on("message", (env) => got.push(env.room + ":" + env.data));
  out.join = (await c.join("s")).room;
  const ack = await c.publish("s", "x");
  out.ackHasId = typeof ack.id === "string" && ack.id.length > 0;
  await new Promise((res) => { const off = c.on("message", () => { off(); res(); }); if (got.length) res(); });
  out.got = got.join(",");
  out.leave = (await c.leave("s")).room;
  out.rooms = c.rooms.join(",");
  try { await c.direct("not a user", 1); out.badUser = "resolved"; } catch (e) { out.badUser = e.code; }
  c.close();
  out.closed = c.state;
  try { await c.publish("r", 1); out.afterClose = "resolved"; } catch (e) { out.afterClose = e.code; }

  // The classic build, as a plain <script>.
  await new Promise((res, rej) => { const s = document.createElement("script"); s.src = "/client.global.js"; s.onload = res; s.onerror = rej; document.head.append(s); });
  out.classic = typeof window.Switchboard.connect;
  return out;
})()`, good, browserTimeout.Milliseconds())
	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("client script: %v", err)
	}
	want := map[string]any{
		"badStates":  "connecting,closed:4001",
		"user":       "carol",
		"transport":  "websocket",
		"notJoined":  core.CodeNotJoined,
		"join":       "s",
		"ackHasId":   true,
		"got":        "s:x",
		"leave":      "s",
		"rooms":      "r",
		"badUser":    core.CodeInvalidUser,
		"closed":     "closed",
		"afterClose": "closed",
		"classic":    "function",
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

// runClient imports /client.js into a blank same-origin page of e and
// runs body (an async function body with connect in scope) returning a
// JSON object.
func runClient(t *testing.T, e *chatEdge, body string) map[string]any {
	t.Helper()
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+e.addr+"/healthz")); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`(async () => {
  const lib = await import("/client.js");
  // Timeouts that bound a hang, not deadlines a loaded machine could
  // miss; a test that is about a timeout sets its own.
  const connect = (url, o) => lib.connect(url, Object.assign({ connectTimeout: %[1]d, requestTimeout: %[1]d }, o));
  const waitState = (c, s) => new Promise((res) => { if (c.state === s) return res(); const off = c.on(s, () => { off(); res(); }); });
  const waitFor = (c, type, pred) => new Promise((res) => { const off = c.on(type, (x) => { if (!pred || pred(x)) { off(); res(x); } }); });
  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
  void waitState; void waitFor; void sleep;
`, browserTimeout.Milliseconds()) + body + `
})()`
	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("client script: %v", err)
	}
	return got
}

func wantFields(t *testing.T, got, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

// TestBrowserClientRoomsWhileConnecting: rooms joined while a connection
// is being set up, or several at once on SSE, all reach the server; a
// join pending at close() is rejected instead of hanging.
func TestBrowserClientRoomsWhileConnecting(t *testing.T) {
	e := startChat(t, nil)
	for _, transport := range []string{"websocket", "sse", "longpoll"} {
		t.Run(transport, func(t *testing.T) {
			// bob publishes to "late" and "b" once the page asks (fetch to /send
			// from the page itself keeps the test in one place).
			got := runClient(t, e, fmt.Sprintf(`
  const out = {};
  const c = connect(location.origin, { user: "alice", rooms: ["r"], transports: [%q] });
  await Promise.resolve(); await Promise.resolve(); // connecting has started
  const joined = Promise.all([c.join("late"), c.join("b")]);
  await waitState(c, "open");
  await joined;
  const seen = [];
  c.on("message", (env) => seen.push(env.room + ":" + env.data));
  const post = (room) => fetch("/send?user=bob&rooms=" + room, { method: "POST", body: JSON.stringify({ v: 1, type: "publish", room, data: "to-" + room }) });
  await post("late"); await post("b");
  while (seen.length < 2) await waitFor(c, "message");
  out.seen = seen.sort().join(",");
  out.rooms = c.rooms.sort().join(",");
  let pending = c.join("never");
  c.close();
  try { await pending; out.afterClose = "resolved"; } catch (e) { out.afterClose = e.code; }
  return out;`, transport))
			wantFields(t, got, map[string]any{"seen": "b:to-b,late:to-late", "rooms": "b,late,r", "afterClose": "closed"})
		})
	}
}

// TestBrowserClientLongPollHandlerJoins: a message handler that joins a
// room (reopening a long-poll) mid-batch loses none of the batch.
func TestBrowserClientLongPollHandlerJoins(t *testing.T) {
	e := startChat(t, nil)
	ed := &edge{addr: e.addr}
	var first string
	for i, d := range []string{"start", "invite", "after1", "after2"} {
		status, replies := ed.post(t, q("user", "bob", "rooms", "r"), fmt.Sprintf(`{"v":1,"type":"publish","room":"r","data":%q}`, d))
		if status != http.StatusOK {
			t.Fatalf("publish %s: %d", d, status)
		}
		if i == 0 {
			var ack struct{ ID string }
			_ = json.Unmarshal(replies[0].Data, &ack)
			first = ack.ID
		}
	}
	got := runClient(t, e, fmt.Sprintf(`
  const seen = [];
  const c = connect(location.origin, { user: "alice", rooms: ["r"], transports: ["longpoll"], since: %q });
  let joined;
  c.on("message", (env) => { seen.push(env.data); if (env.data === "invite") joined = c.join("other"); });
  while (seen.length < 3) await waitFor(c, "message");
  // A duplicate would come on the reopened poll, ahead of a message
  // published after it: wait for that one instead of for a while.
  await joined;
  await c.publish("r", "end");
  while (!seen.includes("end")) await waitFor(c, "message");
  c.close();
  return { seen: seen.join(",") };`, first))
	wantFields(t, got, map[string]any{"seen": "invite,after1,after2,end"})
}

// TestBrowserClientTokenCallback: with a token callback (here one that
// declares a parameter and returns a promise), a refused token is not
// terminal (the callback is asked again, on the same transport),
// and an expiring token is refreshed in-band over WebSocket before the
// server's deadline, so the connection never drops.
func TestBrowserClientTokenCallback(t *testing.T) {
	const secret = "browser-test-secret-0123456789"
	e := startChat(t, func(c *config.Config) { c.Auth.Secret, c.Auth.Leeway = []byte(secret), time.Millisecond })
	later := token(t, secret, "dana", time.Now().Add(time.Hour))
	for _, transport := range []string{"websocket", "longpoll"} {
		t.Run("refused then good on "+transport, func(t *testing.T) {
			got := runClient(t, e, fmt.Sprintf(`
  const tokens = ["garbage", %q];
  let calls = 0;
  // A getToken(force) returning a promise: the parameter does not make
  // it the callback form.
  const getToken = (force) => Promise.resolve(tokens[Math.min(calls++, 1)]);
  const c = connect(location.origin, { transports: [%q], token: getToken, backoff: { initial: 50 } });
  const fallbacks = [];
  c.on("fallback", (d) => fallbacks.push(d.from));
  await waitState(c, "open");
  const out = { calls: calls >= 2, transport: c.transport, fallbacks: fallbacks.length };
  c.close();
  return out;`, later, transport))
			wantFields(t, got, map[string]any{"calls": true, "transport": transport, "fallbacks": 0})
		})
	}
	t.Run("refresh before expiry", func(t *testing.T) {
		// Driven by a clock the test controls, not by racing wall time:
		// the tokens live for hours, and the page holds back every timer
		// of a minute or more (only the refresh timer is that long) so
		// the test sees when the client means to refresh and fires it
		// itself. The server's side (4001 at expiry unless refreshed) is
		// core's TestTokenExpiryAndRefresh, on a fake clock.
		now := time.Now()
		first := token(t, secret, "dana", now.Add(time.Hour))
		second := token(t, secret, "dana", now.Add(2*time.Hour))
		got := runClient(t, e, fmt.Sprintf(`
  const held = [];
  let heldChanged = () => {};
  const realSet = window.setTimeout, realClear = window.clearTimeout;
  window.setTimeout = (fn, ms, ...args) => {
    if (!(ms >= 60000)) return realSet(fn, ms, ...args);
    const t = { id: "held" + held.length, fn, ms, cleared: false };
    held.push(t);
    heldChanged();
    return t.id;
  };
  window.clearTimeout = (id) => {
    const t = held.find((t) => t.id === id);
    if (t) t.cleared = true; else realClear(id);
  };
  const pending = () => held.filter((t) => !t.cleared);
  // nextHeld waits for the n-th held timer, or fails after 30 s (real
  // time: a bound on a hang, never a deadline the client races).
  const nextHeld = (n) => new Promise((res, rej) => {
    const guard = realSet(() => rej(new Error("no refresh timer " + n + " after 30s: " + JSON.stringify({ state: c.state, errors }))), 30000);
    const check = () => { if (held.length >= n) { heldChanged = () => {}; realClear(guard); res(); } };
    heldChanged = check;
    check();
  });
  const tokens = [%q, %q];
  let calls = 0;
  const c = connect(location.origin, { token: () => tokens[Math.min(calls++, 1)] });
  const states = [];
  c.on("state", (d) => states.push(d.state + (d.code ? ":" + d.code + " " + d.reason : "")));
  const errors = [];
  c.on("error", (env) => errors.push(env.data.code + " " + env.data.message));
  await waitState(c, "open");
  await nextHeld(1);
  const firstLeft = %d * 1000 - Date.now();
  const before = pending().map((t) => t.ms);
  pending()[0].fn(); // the clock reaches the refresh time
  await nextHeld(2); // scheduled again from the refresh ack's expiry
  const after = pending().map((t) => t.ms);
  const out = {
    state: c.state, states: states.join(","), calls, errors: errors.join(";"),
    refreshTimers: before.length, refreshBeforeExpiry: before[0] < firstLeft && before[0] > firstLeft / 2,
    rescheduled: after.length, laterExpiry: after[0] > before[0] + 1800000,
  };
  c.close();
  return out;`, first, second, now.Add(time.Hour).Unix()))
		wantFields(t, got, map[string]any{
			"state": "open", "states": "connecting,open", "calls": 2, "errors": "",
			"refreshTimers": 1, "refreshBeforeExpiry": true, "rescheduled": 1, "laterExpiry": true,
		})
	})
}

// TestBrowserClientIdle: an idle WebSocket to a live edge stays up for
// many ping intervals (the client pings within pingInterval of the last
// traffic and the edge answers), including with a pingInterval more than
// twice requestTimeout, as the defaults are (25 s, 10 s), which once
// dropped every idle connection with 4009 after 1.5 intervals. A server
// that goes silent after its welcome is given up with 4009 once a ping
// stays unanswered for requestTimeout, and the client reconnects.
func TestBrowserClientIdle(t *testing.T) {
	t.Parallel()
	t.Run("live edge", func(t *testing.T) {
		t.Parallel()
		e := startChat(t, nil)
		got := runClient(t, e, `
  const c = connect(location.origin, { user: "idle", rooms: ["r"], transports: ["websocket"], pingInterval: 8000, requestTimeout: 3000 });
  const states = [];
  c.on("state", (d) => states.push(d.state + (d.code ? ":" + d.code : "")));
  await waitState(c, "open");
  await sleep(13000); // more than 1.5 pingInterval + requestTimeout
  const out = { states: states.join(","), state: c.state };
  c.close();
  return out;`)
		wantFields(t, got, map[string]any{"states": "connecting,open", "state": "open"})
	})
	t.Run("silent server", func(t *testing.T) {
		t.Parallel()
		e := startChat(t, nil) // only serves the page and /client.js
		var upgrades atomic.Int32
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			upgrades.Add(1)
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"welcome","data":{"conn":"c","user":"silent","rooms":[]}}`))
			for { // read the client's pings, never answer
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}))
		t.Cleanup(silent.Close)
		got := runClient(t, e, fmt.Sprintf(`
  const c = connect("http://%s", { user: "silent", transports: ["websocket"], pingInterval: 1000, requestTimeout: 1000 });
  await waitState(c, "open");
  const d = await waitFor(c, "state", (d) => d.state === "reconnecting");
  c.close();
  return { code: d.code, reason: d.reason };`, silent.Listener.Addr()))
		wantFields(t, got, map[string]any{"code": 4009, "reason": "no traffic from the server"})
		if upgrades.Load() < 1 {
			t.Fatal("the silent server saw no connection")
		}
	})
}
