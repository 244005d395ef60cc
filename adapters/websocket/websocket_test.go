package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

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
	return serveNodeMode(t, cfg, acfg, true)
}

// serveNodeMode chooses the reading mode: detached (the poller) or
// blocking (a goroutine per connection).
func serveNodeMode(t *testing.T, cfg core.Config, acfg Config, detach bool) string {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(cfg, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	if detach {
		DetachConnections(app)
	}
	app.Get("/ws", New(node, acfg))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = app.ShutdownWithContext(ctx)
		if err := node.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return "ws://" + ln.Addr().String() + "/ws"
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
	url := serveNodeWith(t, core.Config{Authenticator: fixedAuth(core.Identity{User: "u"})}, Config{CloseGrace: time.Second})
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
