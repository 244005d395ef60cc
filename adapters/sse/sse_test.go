package sse

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/internal/testserver"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

func TestEnvelopeID(t *testing.T) {
	cases := []struct {
		env  core.Envelope
		want string
	}{
		{core.Envelope{ID: "1700000000000-0", Type: core.TypeMessage, Room: "r"}, "1700000000000-0"},
		{core.Envelope{Type: core.TypeWelcome}, ""},
		{core.Envelope{ID: `a"b`, Type: core.TypeDirect}, `a"b`},
		{core.Envelope{ID: "a\nb", Type: core.TypeDirect}, ""}, // would break the event framing
	}
	for _, tc := range cases {
		if got := envelopeID(tc.env.Encode()); got != tc.want {
			t.Errorf("envelopeID(%s) = %q, want %q", tc.env.Encode(), got, tc.want)
		}
	}
}

// TestNodeShutdownEndsStream: when the node shuts down first (not the
// HTTP server), the session's 1012 close event ends the stream and the
// handler returns, leaving no goroutine behind (TestMain checks), on both
// front ends.
func TestNodeShutdownEndsStream(t *testing.T) {
	for _, front := range []string{"fiber", "nethttp"} {
		t.Run(front, func(t *testing.T) {
			node := newNode(t, core.Config{})
			base := serveOn(t, front, node, New(node, Config{Retry: 1500 * time.Millisecond}), NewHandler(node, Config{Retry: 1500 * time.Millisecond}))
			resp, err := http.Get(base + "/sse?user=u&rooms=r")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			line := func() string {
				s, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				return strings.TrimSuffix(s, "\n")
			}
			if l := line(); l != "retry: 1500" {
				t.Fatalf("first line %q", l)
			}
			line()
			if l := line(); !strings.HasPrefix(l, `data: {"v":1,"type":"welcome"`) {
				t.Fatalf("welcome line %q", l)
			}
			line()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := node.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if l := line(); l != "event: close" {
				t.Fatalf("got %q, want the close event", l)
			}
			if l := line(); l != `data: {"code":1012,"reason":"service restart","reconnect":true}` {
				t.Fatalf("close data %q", l)
			}
			line()
			if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
				t.Fatalf("after close: %q %v, want the end of the stream", rest, err)
			}
		})
	}
}

// TestClientGoneNetHTTP: on net/http a client that goes away ends its
// session at once, with no write to find out (heartbeats are an hour
// apart here); on Fiber only a failed write would show it.
func TestClientGoneNetHTTP(t *testing.T) {
	node := newNode(t, core.Config{HeartbeatInterval: time.Hour})
	base := serveOn(t, "nethttp", node, nil, NewHandler(node))
	resp, err := http.Get(base + "/sse?user=u&rooms=r")
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	for { // through the welcome event
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(l, `"type":"welcome"`) {
			break
		}
	}
	if n := node.Stats().Connections; n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	_ = resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for node.Stats().Connections != 0 || node.Hub().Members(core.RoomChannel("r")) != 0 { // no signal: poll
		if time.Now().After(deadline) {
			t.Fatal("the session of a client that left is still open")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newNode is a node on a memory broker; serveOn shuts it down.
func newNode(t *testing.T, cfg core.Config) *core.Node {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(cfg, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// serveOn serves GET /sse with fh on a Fiber app or h on net/http, on
// 127.0.0.1:0 until the test ends, and returns the base URL. When the
// test ends node shuts down first (ending its streams), then the server.
func serveOn(t *testing.T, front string, node *core.Node, fh fiber.Handler, h http.Handler) string {
	t.Helper()
	defer t.Cleanup(func() { // registered last: runs first
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	if front == "nethttp" {
		mux := http.NewServeMux()
		mux.Handle("GET /sse", h)
		return "http://" + testserver.HTTP(t, mux, nil)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/sse", fh)
	return "http://" + testserver.Fiber(t, app, nil)
}

// TestServerWriteTimeoutNetHTTP: a net/http server's WriteTimeout does
// not cut a stream (each write sets its own deadline): heartbeats and a
// message still arrive well after it.
func TestServerWriteTimeoutNetHTTP(t *testing.T) {
	node := newNode(t, core.Config{HeartbeatInterval: 100 * time.Millisecond})
	mux := http.NewServeMux()
	mux.Handle("GET /sse", NewHandler(node))
	const writeTimeout = 200 * time.Millisecond
	base := "http://" + testserver.Serve(t, &http.Server{Handler: mux, WriteTimeout: writeTimeout}, nil)
	t.Cleanup(func() { // before the server's: it ends the stream
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	resp, err := http.Get(base + "/sse?user=u&rooms=r")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	start := time.Now()
	for pings := 0; pings < 5 || time.Since(start) < 3*writeTimeout; { // heartbeats, past the timeout
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream cut after %s: %v", time.Since(start), err)
		}
		if l == ": ping\n" {
			pings++
		}
	}
	id, err := node.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", From: "test", Data: []byte(`1`)})
	if err != nil {
		t.Fatal(err)
	}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream cut after %s: %v", time.Since(start), err)
		}
		if strings.HasPrefix(l, "id: "+id) {
			return
		}
	}
}
