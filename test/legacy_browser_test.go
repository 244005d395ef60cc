package test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/test/browsertest"
)

// The legacy client's browser tests: the chat page with its "legacy
// client" switch (?legacy=1, which loads the ES5 build /client.legacy.js)
// in headless Chromium, with the browser APIs an old engine lacks
// deleted before the page runs. No test here uses chromedp's Poll, which
// needs the page's Promise: they wait with browsertest.PollEval.

// legacyWait bounds every wait in these tests: a bound on a hang, not a
// deadline a loaded machine could miss.
const legacyWait = 60 * time.Second

// es5Floor is a page script leaving Chromium with what the legacy build
// may assume: ES5, XMLHttpRequest and JSON. It deletes WebSocket,
// EventSource, fetch and Promise, and the rest of ES2015+ that
// edge/webclient/testdata/strip-es2015.js lists (Map, Set, Symbol,
// Object.assign, Array.from, URL, AbortController, ...): the list the
// package's Node test runs the build without.
func es5Floor(t *testing.T) string {
	t.Helper()
	strip, err := os.ReadFile(filepath.Join("..", "edge", "webclient", "testdata", "strip-es2015.js"))
	if err != nil {
		t.Fatal(err)
	}
	return string(strip) + "\ndelete window.WebSocket; delete window.EventSource;\n"
}

// legacyUntil waits for the JavaScript expression to be truthy on the page.
func legacyUntil(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if err := browsertest.PollEval(ctx, expr, legacyWait); err != nil {
		t.Fatalf("waiting for %s (%s): %v\npage state: %s", what, expr, err, pageState(ctx))
	}
}

// roomMessages is a page expression: the data of the messages the chat
// page shows for room, in order, as one comma-separated string (ES5).
func roomMessages(room string) string {
	return fmt.Sprintf(`(function () { var out = [], m = window.chat.messages; for (var i = 0; i < m.length; i++) if (m[i].room === %q) out.push(m[i].data); return out.join(","); })()`, room)
}

// legacyHas is hasMessage in ES5: the page shows a message with data d.
func legacyHas(d string) string {
	return fmt.Sprintf(`(function () { var m = window.chat.messages; for (var i = 0; i < m.length; i++) if (m[i].data === %q) return true; return false; })()`, d)
}

// TestLegacyBrowser: the legacy build, in the chat page, in Chromium
// reduced to each floor it supports. On every path it connects over the
// expected transport and browser API, receives a room message and a
// direct message, publishes what the user types (shown once), and
// survives a restart of its edge while another edge on the same Redis
// keeps publishing: every message shown exactly once, in order.
func TestLegacyBrowser(t *testing.T) {
	rs := redistest.Start(t)
	redis := func(c *config.Config) { c.Broker.Name, c.Broker.URL = "redis", rs.URL }
	floor := es5Floor(t)
	cases := []struct {
		name       string
		script     string // run before the page
		transports string // the page's transports; "" for the default
		transport  string // the transport it must use
		via        string // and the browser API under it
		fallbacks  string
	}{
		{"no WebSocket EventSource fetch Promise: SSE streamed over XHR", floor, "", "sse", "xhr", "websocket>sse"},
		{"no WebSocket EventSource fetch Promise: long-poll over XHR", floor, "longpoll", "longpoll", "xhr", ""},
		{"no WebSocket: SSE over EventSource", "delete window.WebSocket;", "", "sse", "eventsource", "websocket>sse"},
		{"nothing deleted: WebSocket", "", "", "websocket", "websocket", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			room := fmt.Sprintf("legacy-%d", i)
			a := startChat(t, redis)
			b := startChat(t, redis) // the publisher's edge, never restarted
			ctx := newBrowser(t)
			query := url.Values{"legacy": {"1"}, "user": {"alice"}, "rooms": {"lobby," + room}}
			if tc.transports != "" {
				query.Set("transports", tc.transports)
			}
			open(t, ctx, a, query, tc.script)
			legacyUntil(t, ctx, "open", `window.chat.client && window.chat.client.state === "open"`)
			if got := eval[string](t, ctx, `window.chat.build + " " + window.chat.client.transport + " " + window.chat.client.via`); got != "legacy "+tc.transport+" "+tc.via {
				t.Fatalf("build, transport and API: %q, want %q", got, "legacy "+tc.transport+" "+tc.via)
			}
			if got := eval[string](t, ctx, `window.chat.fallbacks.join(",")`); got != tc.fallbacks {
				t.Fatalf("fallbacks %q, want %q", got, tc.fallbacks)
			}
			if tc.script == floor {
				missing := eval[string](t, ctx, `[typeof WebSocket, typeof EventSource, typeof fetch, typeof Promise, typeof Map, typeof Symbol, typeof Object.assign].join(",")`)
				if missing != strings.TrimSuffix(strings.Repeat("undefined,", 7), ",") {
					t.Fatalf("the page still has some of WebSocket, EventSource, fetch, Promise, Map, Symbol, Object.assign: %s", missing)
				}
			}

			// A room message and a direct message from bob.
			a.send(t, "bob", "lobby", `{"v":1,"type":"publish","room":"lobby","data":"hi alice"}`)
			legacyUntil(t, ctx, "room message", legacyHas("hi alice"))
			a.send(t, "bob", "", `{"v":1,"type":"direct","to":"alice","data":"psst"}`)
			legacyUntil(t, ctx, "direct message", `(function () { var m = window.chat.messages; for (var i = 0; i < m.length; i++) if (m[i].data === "psst" && m[i].to === "alice" && m[i].from === "bob") return true; return false; })()`)
			// What alice types is published (over the WebSocket, or POST
			// /send over XHR) and comes back on her stream.
			submit(t, ctx, "text", "typed on "+tc.transport)
			legacyUntil(t, ctx, "own message", legacyHas("typed on "+tc.transport))
			if got := eval[string](t, ctx, roomMessages("lobby")); got != "hi alice,typed on "+tc.transport {
				t.Fatalf("lobby shows %q", got)
			}

			// The restart: messages before, during and after it, each
			// shown once, in order.
			want := publishAcrossRestart(t, ctx, a, b, room, 40, 10, legacyUntil, legacyHas)
			if got := eval[string](t, ctx, roomMessages(room)); got != strings.Join(want, ",") {
				t.Fatalf("messages shown:\n got %s\nwant %s", got, strings.Join(want, ","))
			}
			// A stream open across the restart ends and reconnects; a
			// long-poll client notices only if a poll was in flight
			// (TestBrowserEdgeRestart says more).
			if states := eval[string](t, ctx, `window.chat.states.join(",")`); tc.transport != "longpoll" && !strings.Contains(states, "reconnecting") {
				t.Fatalf("the client never reconnected: %s", states)
			}
			if got := eval[string](t, ctx, `window.chat.client.transport + " " + window.chat.client.via`); got != tc.transport+" "+tc.via {
				t.Fatalf("ended on %s, want %s %s", got, tc.transport, tc.via)
			}
			if tc.transport == "sse" && tc.via == "xhr" {
				recycledXHRStream(t, ctx, b, room)
			}
			if errs := eval[[]string](t, ctx, `window.chat.errors`); len(errs) != 0 {
				t.Fatalf("errors on the page: %v", errs)
			}
			if i == 0 {
				screenshot(t, ctx, "chat-legacy-es5")
			}
		})
	}
}

// recycledXHRStream: an XHR stream keeps its whole response in memory, so
// past 256 KiB the client reopens it, resuming from its last id. 48
// messages of 8 KB through the page's open stream make it reopen at
// least once, without a reconnect (no backoff, no "reconnecting"), and
// every message is shown once, in order.
func recycledXHRStream(t *testing.T, ctx context.Context, pub *chatEdge, room string) {
	t.Helper()
	connecting := eval[int](t, ctx, `window.chat.states.filter(function (s) { return s.indexOf("connecting:") === 0; }).length`)
	reconnecting := eval[int](t, ctx, `window.chat.states.filter(function (s) { return s.indexOf("reconnecting:") === 0; }).length`)
	const n = 48
	pad := strings.Repeat("x", 8000)
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("big%02d", i)
		pub.send(t, "bob", room, fmt.Sprintf(`{"v":1,"type":"publish","room":%q,"data":%q}`, room, want[i]+pad))
	}
	legacyUntil(t, ctx, "every large message", legacyHas(want[n-1]+pad))
	legacyUntil(t, ctx, "open", `window.chat.client.state === "open"`)
	got := eval[string](t, ctx, fmt.Sprintf(`(function () { var out = [], m = window.chat.messages; for (var i = 0; i < m.length; i++) if (m[i].room === %q && m[i].data.length > 8000) out.push(m[i].data.slice(0, 5)); return out.join(","); })()`, room))
	if got != strings.Join(want, ",") {
		t.Fatalf("large messages shown:\n got %s\nwant %s", got, strings.Join(want, ","))
	}
	if c := eval[int](t, ctx, `window.chat.states.filter(function (s) { return s.indexOf("connecting:") === 0; }).length`); c <= connecting {
		t.Fatalf("the XHR stream was not reopened after %d KB (connecting %d times before and after)", n*8, c)
	}
	if r := eval[int](t, ctx, `window.chat.states.filter(function (s) { return s.indexOf("reconnecting:") === 0; }).length`); r != reconnecting {
		t.Fatalf("reopening the XHR stream went through a reconnect: %v", eval[[]string](t, ctx, `window.chat.states`))
	}
}

// TestLegacyBrowserClientAPI drives the legacy build directly, on a blank
// page at the ES5 floor, against an edge in JWT mode, over SSE streamed
// over XHR and over long-poll over XHR: the token travels in an
// Authorization header, so a bad one is seen as 401 and ends the client
// (4001) instead of being mistaken for a blocked stream; a token
// callback in the Node-style form is asked; requests take callbacks and
// fail with the server's codes; join reopens the stream with the new
// room.
func TestLegacyBrowserClientAPI(t *testing.T) {
	const secret = "legacy-browser-test-secret-0123456789"
	e := startChat(t, func(c *config.Config) { c.Auth.Secret = []byte(secret) })
	good := token(t, secret, "carol", time.Now().Add(time.Hour))
	floor := es5Floor(t)
	for _, transport := range []string{"sse", "longpoll"} {
		t.Run(transport, func(t *testing.T) {
			ctx := newBrowser(t)
			open(t, ctx, e, url.Values{"autoconnect": {"0"}}, floor) // the chat page, which loads the module but does not connect
			legacyUntil(t, ctx, "the page", `window.chat && document.readyState === "complete"`)
			eval[bool](t, ctx, `(function () { var s = document.createElement("script"); s.src = "/client.legacy.js"; document.head.appendChild(s); return true; })()`)
			legacyUntil(t, ctx, "window.Switchboard", `typeof window.Switchboard === "object"`)
			eval[bool](t, ctx, fmt.Sprintf(`(function () {
  var S = window.Switchboard, out = window.out = {}, T = %[1]d, transports = [%[2]q];
  var bad = S.connect(location.origin, { token: "not-a-jwt", rooms: ["r"], transports: transports, connectTimeout: T, requestTimeout: T });
  var states = [];
  bad.on("state", function (d) {
    states.push(d.state + (d.code ? ":" + d.code : ""));
    if (d.state === "closed") { out.badStates = states.join(","); good(); }
  });
  function good() {
    var calls = 0;
    var c = S.connect(location.origin, { rooms: ["r"], transports: transports, connectTimeout: T, requestTimeout: T,
      token: function (done) { calls++; setTimeout(function () { done(null, %[3]q); }, 0); } });
    c.on("open", function (d) {
      if (out.via) return;
      out.via = d.transport + " " + d.via; out.user = c.user; out.asked = calls > 0;
      c.publish("elsewhere", 1, function (err) {
        out.notJoined = err && err.code;
        c.on("message", function (env) {
          if (env.data !== "x") return;
          out.got = env.room + ":" + env.data;
          c.direct("not a user", 1, function (err) {
            out.badUser = err && err.code;
            c.close();
            out.closed = c.state;
            c.publish("r", 1, function (err) { out.afterClose = err && err.code; out.done = true; });
          });
        });
        c.join("s", function (err, ack) {
          out.join = err ? err.code : ack.room;
          c.publish("s", "x", function (err, ack) { out.ackHasId = !err && typeof ack.id === "string" && ack.id.length > 0; });
        });
      });
    });
  }
  return true;
})()`, browserTimeout.Milliseconds(), transport, good))
			legacyUntil(t, ctx, "the script's end", `window.out.done === true`)
			got := eval[map[string]any](t, ctx, `window.out`)
			wantFields(t, got, map[string]any{
				"badStates":  "connecting,closed:4001",
				"via":        transport + " xhr",
				"asked":      true,
				"notJoined":  "not_joined",
				"join":       "s",
				"ackHasId":   true,
				"got":        "s:x",
				"badUser":    "invalid_user",
				"closed":     "closed",
				"afterClose": "closed",
			})
			if transport == "sse" {
				// The welcome names the user on a stream; long-poll has none.
				wantFields(t, got, map[string]any{"user": "carol"})
			}
		})
	}
}

// TestLegacyBrowserPollThrows: at the ES5 floor long-poll runs over XHR,
// whose setRequestHeader throws at once on a header value it refuses. A
// token function that gives such a token for a later poll once made that
// poll throw and the loop stop, the client still "open" and deaf until
// the abandoned request's timeout fired (pollWait + 15 s); the poll now
// fails at once as a network failure does, the client reconnects (with
// backoff, asking for a token again) and receives what is published.
func TestLegacyBrowserPollThrows(t *testing.T) {
	const secret = "legacy-browser-test-secret-0123456789"
	e := startChat(t, func(c *config.Config) { c.Auth.Secret = []byte(secret) })
	good := token(t, secret, "carol", time.Now().Add(time.Hour))
	ctx := newBrowser(t)
	open(t, ctx, e, url.Values{"autoconnect": {"0"}}, es5Floor(t))
	legacyUntil(t, ctx, "the page", `window.chat && document.readyState === "complete"`)
	eval[bool](t, ctx, `(function () { var s = document.createElement("script"); s.src = "/client.legacy.js"; document.head.appendChild(s); return true; })()`)
	legacyUntil(t, ctx, "window.Switchboard", `typeof window.Switchboard === "object"`)
	eval[bool](t, ctx, fmt.Sprintf(`(function () {
  var S = window.Switchboard, out = window.out = { states: [] }, T = %[1]d, calls = 0;
  var c = S.connect(location.origin, { rooms: ["r"], transports: ["longpoll"], connectTimeout: T, requestTimeout: T, backoff: { initial: 50 },
    token: function (done) { calls++; done(null, calls === 2 ? "bad\ntoken" : %[2]q); } });
  c.on("state", function (d) {
    out.states.push(d.state + (d.code ? ":" + d.code + " " + d.reason : ""));
    if (d.state !== "open" || calls < 3 || out.published) return;
    out.published = true;
    c.on("message", function (env) { if (env.data === "after") { out.got = env.data; out.via = c.transport + " " + c.via; c.close(); out.done = true; } });
    c.publish("r", "after", function (err) { out.publishErr = err && err.code; });
  });
  return true;
})()`, browserTimeout.Milliseconds(), good))
	legacyUntil(t, ctx, "the script's end", `window.out.done === true`)
	got := eval[map[string]any](t, ctx, `window.out`)
	wantFields(t, got, map[string]any{"got": "after", "via": "longpoll xhr", "publishErr": nil})
	states := fmt.Sprint(got["states"])
	// Before, the poll's own timeout (pollWait + 15 s) ended it at last:
	// "no answer within 40000 ms", the client deaf until then.
	if !strings.Contains(states, "reconnecting:1006 poll failed:") || strings.Contains(states, "no answer") {
		t.Fatalf("the refused header did not end the poll at once as a network failure: states %s", states)
	}
}

// TestLegacyBrowserSilentStream: at the ES5 floor, behind a proxy that
// takes /sse and never answers (as one that buffers event streams does),
// the stream streamed over XHR shows nothing; when connectTimeout runs out
// (the test's clock: holdTimers) the client falls back to long-poll over
// XHR, and receives, publishes and sees its own message there.
func TestLegacyBrowserSilentStream(t *testing.T) {
	e := startChat(t, nil)
	page, swallowed := hostileProxy(t, e, "/sse")
	ctx := newBrowser(t)
	query := url.Values{"legacy": {"1"}, "user": {"alice"}, "rooms": {"lobby"}, "connectTimeout": {fmt.Sprint(heldTimeout.Milliseconds())}}
	open(t, ctx, page, query, es5Floor(t)+holdTimers)
	fireWhenSwallowed(t, ctx, swallowed, 1)
	legacyUntil(t, ctx, "open", `window.chat.client && window.chat.client.state === "open"`)
	if got := eval[string](t, ctx, `window.chat.build + " " + window.chat.client.transport + " " + window.chat.client.via`); got != "legacy longpoll xhr" {
		t.Fatalf("build, transport and API: %q, want %q", got, "legacy longpoll xhr")
	}
	if got := eval[string](t, ctx, `window.chat.fallbacks.join(",")`); got != "websocket>sse,sse>longpoll" {
		t.Fatalf("fallbacks %q, want %q", got, "websocket>sse,sse>longpoll")
	}
	e.send(t, "bob", "lobby", `{"v":1,"type":"publish","room":"lobby","data":"hi alice"}`)
	legacyUntil(t, ctx, "room message", legacyHas("hi alice"))
	submit(t, ctx, "text", "typed on longpoll")
	legacyUntil(t, ctx, "own message", legacyHas("typed on longpoll"))
	if got := eval[string](t, ctx, roomMessages("lobby")); got != "hi alice,typed on longpoll" {
		t.Fatalf("lobby shows %q", got)
	}
	if errs := eval[[]string](t, ctx, `window.chat.errors`); len(errs) != 0 {
		t.Fatalf("errors on the page: %v", errs)
	}
}
