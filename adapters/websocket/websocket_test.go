package websocket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/internal/testserver"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// serveNode runs the handler on 127.0.0.1:0 and returns its ws:// URL.
func serveNode(t *testing.T, cfg core.Config) string {
	t.Helper()
	return serveNodeWith(t, cfg, Config{CloseGrace: time.Second})
}

// serveNodeWith is serveNode with the adapter's configuration.
func serveNodeWith(t *testing.T, cfg core.Config, acfg Config) string {
	t.Helper()
	return serveNodeMode(t, cfg, acfg, "fiber/detached")
}

// fronts are the handler's front ends (New on Fiber, NewHandler on
// net/http), each in both reading modes: detached (the poller) or
// blocking (a goroutine per connection).
var fronts = []string{"fiber/detached", "fiber/blocking", "nethttp/detached", "nethttp/blocking"}

// serveNodeMode serves a new node on front and returns its ws:// URL.
// The node shuts down when the test ends.
func serveNodeMode(t *testing.T, cfg core.Config, acfg Config, front string) string {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(cfg, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveFront(t, node, acfg, front)
	t.Cleanup(func() { // runs before the server's cleanup
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return "ws://" + addr + "/ws"
}

// serveFront mounts node's /ws on front (one of fronts), on 127.0.0.1:0
// until the test ends, and returns host:port.
func serveFront(t *testing.T, node *core.Node, acfg Config, front string) string {
	t.Helper()
	switch front {
	case "fiber/detached", "fiber/blocking":
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		if front == "fiber/detached" {
			DetachConnections(app)
		}
		app.Get("/ws", New(node, acfg))
		return testserver.Fiber(t, app, nil)
	case "nethttp/detached", "nethttp/blocking":
		mux := http.NewServeMux()
		mux.Handle("GET /ws", NewHandler(node, acfg))
		// Blocking: connections wrapped in a type that is not a
		// *net.TCPConn cannot go to the poller.
		var wrap func(net.Listener) net.Listener
		if front == "nethttp/blocking" {
			wrap = testserver.NotTCP
		}
		return testserver.HTTP(t, mux, wrap)
	}
	t.Fatalf("unknown front %q", front)
	return ""
}

// TestFrameSizeLimit: a frame of exactly MaxMessageSize is processed; one
// byte more closes the connection with 4003.
func TestFrameSizeLimit(t *testing.T) {
	const limit = 1024
	url := serveNode(t, core.Config{MaxMessageSize: limit})
	frame := func(size int) []byte {
		head, tail := `{"v":1,"type":"ping","ref":"r","data":"`, `"}`
		return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
	}
	conn, _, err := fws.DefaultDialer.Dial(url+"?user=u", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, m, err := conn.ReadMessage(); err != nil || !bytes.Contains(m, []byte(`"welcome"`)) {
		t.Fatalf("welcome: %s %v", m, err)
	}
	if err := conn.WriteMessage(fws.TextMessage, frame(limit)); err != nil {
		t.Fatal(err)
	}
	if _, m, err := conn.ReadMessage(); err != nil || !bytes.Contains(m, []byte(`"pong"`)) {
		t.Fatalf("frame at the limit: got %s %v, want pong", m, err)
	}
	if err := conn.WriteMessage(fws.TextMessage, frame(limit+1)); err != nil {
		t.Fatal(err)
	}
	_, _, err = conn.ReadMessage()
	var ce *fws.CloseError
	if !errors.As(err, &ce) || ce.Code != 4003 || ce.Text != "message too large" {
		t.Fatalf("err = %v, want close 4003 message too large", err)
	}
}

// fixedAuth accepts only the token "good", as user "u" with identity's
// permissions and expiry.
func fixedAuth(identity core.Identity) core.Authenticator {
	return core.AuthenticatorFunc(func(_ context.Context, c core.Credentials) (core.Identity, error) {
		if c.Token != "good" {
			return core.Identity{}, fmt.Errorf("%w: bad token", core.ErrUnauthorized)
		}
		return identity, nil
	})
}

// TestTokenSources: the token is read from ?token=, an Authorization
// header, or a "switchboard.token.<jwt>" subprotocol (browsers), and the
// server then selects "switchboard.v1", never echoing the token.
func TestTokenSources(t *testing.T) {
	for _, front := range []string{"fiber/detached", "nethttp/detached"} {
		t.Run(front, func(t *testing.T) { testTokenSources(t, front) })
	}
}

func testTokenSources(t *testing.T, front string) {
	url := serveNodeMode(t, core.Config{Authenticator: fixedAuth(core.Identity{User: "u"})}, Config{CloseGrace: time.Second}, front)
	cases := []struct {
		name      string
		query     string
		header    http.Header
		protocols []string
		want      string // welcome user, or "" for 4001
		protocol  string // the subprotocol the server selects
	}{
		{"query", "?token=good", nil, nil, "u", ""},
		{"bearer header", "", http.Header{"Authorization": {"Bearer good"}}, nil, "u", ""},
		{"subprotocol", "", nil, []string{Subprotocol, TokenSubprotocolPrefix + "good"}, "u", Subprotocol},
		{"subprotocol, bad token", "", nil, []string{Subprotocol, TokenSubprotocolPrefix + "bad"}, "", Subprotocol},
		{"query wins", "?token=bad", http.Header{"Authorization": {"Bearer good"}}, nil, "", ""},
		{"none", "", nil, nil, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := fws.Dialer{Subprotocols: tc.protocols, HandshakeTimeout: 5 * time.Second}
			conn, resp, err := d.Dial(url+tc.query, tc.header)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := resp.Header.Get("Sec-Websocket-Protocol"); got != tc.protocol {
				t.Fatalf("selected subprotocol %q, want %q", got, tc.protocol)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, m, err := conn.ReadMessage()
			if tc.want == "" {
				var ce *fws.CloseError
				if !errors.As(err, &ce) || ce.Code != 4001 {
					t.Fatalf("got %s %v, want close 4001", m, err)
				}
				return
			}
			if err != nil || !bytes.Contains(m, []byte(`"user":"`+tc.want+`"`)) {
				t.Fatalf("welcome: %s %v", m, err)
			}
		})
	}
}

// TestIdentityPermissionsAndExpiry: the adapter hands the identity's
// permissions and expiry to core: a join outside them is forbidden, the
// welcome carries the expiry, and the connection closes with 4001 "token
// expired" when it passes.
func TestIdentityPermissionsAndExpiry(t *testing.T) {
	t.Run("permissions", func(t *testing.T) {
		// Expires in an hour: the exchange cannot race the expiry.
		exp := time.Now().Add(time.Hour)
		url := serveNodeWith(t, core.Config{Authenticator: fixedAuth(core.Identity{
			User: "u", Permissions: &core.Permissions{Subscribe: []string{"ok:*"}}, Expires: exp,
		})}, Config{CloseGrace: time.Second})
		conn, _, err := fws.DefaultDialer.Dial(url+"?token=good&rooms=ok:1", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, m, err := conn.ReadMessage()
		if err != nil || !bytes.Contains(m, []byte(fmt.Sprintf(`"expires":%d`, exp.Unix()))) || !bytes.Contains(m, []byte(`"rooms":["ok:1"]`)) {
			t.Fatalf("welcome: %s %v", m, err)
		}
		if err := conn.WriteMessage(fws.TextMessage, []byte(`{"v":1,"type":"join","room":"secret","ref":"j"}`)); err != nil {
			t.Fatal(err)
		}
		if _, m, err := conn.ReadMessage(); err != nil || !bytes.Contains(m, []byte(`"code":"forbidden"`)) {
			t.Fatalf("join outside permissions: %s %v", m, err)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		// Expires shortly after the credentials are checked (or already
		// has, on a slow machine): the close with 4001 drops whatever is
		// queued, so only the close is asserted.
		auth := core.AuthenticatorFunc(func(_ context.Context, c core.Credentials) (core.Identity, error) {
			if c.Token != "good" {
				return core.Identity{}, fmt.Errorf("%w: bad token", core.ErrUnauthorized)
			}
			return core.Identity{User: "u", Expires: time.Now().Add(50 * time.Millisecond)}, nil
		})
		url := serveNodeWith(t, core.Config{Authenticator: auth}, Config{CloseGrace: time.Second})
		conn, _, err := fws.DefaultDialer.Dial(url+"?token=good", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, m, err := conn.ReadMessage()
			if err == nil {
				continue // the welcome, if it went out before the expiry
			}
			var ce *fws.CloseError
			if !errors.As(err, &ce) || ce.Code != 4001 || ce.Text != "token expired" {
				t.Fatalf("got %s %v, want close 4001 token expired", m, err)
			}
			return
		}
	})
}

// TestHandshakeRefusals: both front ends refuse a bad upgrade request
// the same way, with a JSON error before any upgrade: 426 a plain
// request, 400 a version other than 13 (naming 13), 403 an origin not
// allowed, 503 while the node shuts down.
func TestHandshakeRefusals(t *testing.T) {
	for _, front := range []string{"fiber/detached", "nethttp/detached"} {
		t.Run(front, func(t *testing.T) {
			b, err := memory.New(memory.Config{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			node, err := core.NewNode(core.Config{}, b, nil)
			if err != nil {
				t.Fatal(err)
			}
			addr := serveFront(t, node, Config{Origins: []string{"https://app.example"}}, front)
			upgrade := "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			cases := []struct {
				name, headers string
				status        int
				code          string
			}{
				{"plain request", "", http.StatusUpgradeRequired, "upgrade_required"},
				{"version 12", upgrade + "Sec-WebSocket-Version: 12\r\n", http.StatusBadRequest, core.CodeBadRequest},
				{"origin", upgrade + "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n", http.StatusForbidden, core.CodeForbidden},
				{"allowed origin", upgrade + "Sec-WebSocket-Version: 13\r\nOrigin: https://app.example\r\n", http.StatusSwitchingProtocols, ""},
			}
			check := func(name, headers string, status int, code string) {
				t.Helper()
				resp, body := rawRequest(t, addr, "GET /ws?user=u HTTP/1.1\r\nHost: "+addr+"\r\n"+headers+"\r\n")
				if resp.StatusCode != status || code != "" && (!bytes.Contains(body, []byte(`"code":"`+code+`"`)) || resp.Header.Get("Content-Type") != "application/json") {
					t.Errorf("%s: %d %v %s, want %d %s", name, resp.StatusCode, resp.Header, body, status, code)
				}
				if status == http.StatusBadRequest && resp.Header.Get("Sec-Websocket-Version") != "13" {
					t.Errorf("%s: no Sec-WebSocket-Version: 13 in %v", name, resp.Header)
				}
			}
			for _, c := range cases {
				check(c.name, c.headers, c.status, c.code)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := node.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			check("shutting down", upgrade+"Sec-WebSocket-Version: 13\r\n", http.StatusServiceUnavailable, core.CodeUnavailable)
		})
	}
}

// rawRequest sends req on a new connection to addr and reads the
// response head and, unless it is a 101, its body.
func rawRequest(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestDetachedHoldsNoGoroutine: on either front end, an idle connection
// in detached mode holds no goroutine once its handshake is done: the
// poller watches it. (In blocking mode each would hold one.)
func TestDetachedHoldsNoGoroutine(t *testing.T) {
	const conns = 20
	for _, front := range []string{"fiber/detached", "nethttp/detached"} {
		t.Run(front, func(t *testing.T) {
			url := serveNodeMode(t, core.Config{}, Config{CloseGrace: time.Second}, front)
			base := runtime.NumGoroutine()
			for i := range conns {
				r := dialRaw(t, fmt.Sprintf("%s?user=u%d", url, i), nil)
				r.expectEnv(`"welcome"`)
			}
			// Handlers return and handshake goroutines end on their own
			// after the welcome: no signal, so poll with a deadline.
			deadline := time.Now().Add(10 * time.Second)
			for {
				extra := runtime.NumGoroutine() - base
				if extra < conns/2 {
					t.Logf("%d idle connections, %d more goroutines", conns, extra)
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d idle connections hold %d more goroutines, want far fewer than one each", conns, extra)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
