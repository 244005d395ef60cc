package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

func TestMatchGlob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"chat:*", "chat:lobby", true},
		{"chat:*", "chat:", true},
		{"chat:*", "chat", false},
		{"chat:*", "chatter", false},
		{"*", "anything/at:all", true},
		{"user:42", "user:42", true},
		{"user:42", "user:420", false},
		{"user:4?", "user:42", true},
		{"user:4?", "user:4", false},
		{"a*b*c", "a-x-b-y-c", true},
		{"a*b*c", "a-x-c-y-b", false},
		{"*/private", "team/x/private", true},
		{"", "", true},
		{"", "a", false},
		{"*a*a*a*a*a*a*a*b", strings.Repeat("a", 100), false}, // no exponential backtracking
	}
	for _, tt := range tests {
		if got := core.MatchGlob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestValidatePattern(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"*", "chat:*", "user:4?", "a/b=c@d"} {
		if err := core.ValidatePattern(ok); err != nil {
			t.Errorf("ValidatePattern(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "chat:[x]", strings.Repeat("a", 129), "ü*"} {
		if err := core.ValidatePattern(bad); err == nil {
			t.Errorf("ValidatePattern(%q) = nil", bad)
		}
	}
}

func TestPermissionsNilAllowsAll(t *testing.T) {
	t.Parallel()
	var p *core.Permissions
	if !p.CanSubscribe("x") || !p.CanPublish("x") {
		t.Fatal("nil permissions must allow everything")
	}
	empty := &core.Permissions{}
	if empty.CanSubscribe("x") || empty.CanPublish("x") {
		t.Fatal("empty permissions must allow nothing")
	}
}

// TestPermissionsEnforced: joins (and ?rooms=) outside Subscribe and
// publishes outside Publish get forbidden, and the connection stays open.
func TestPermissionsEnforced(t *testing.T) {
	t.Parallel()
	perms := &core.Permissions{Subscribe: []string{"chat:*", "news"}, Publish: []string{"chat:*"}}
	n := newNode(t, core.Config{Authenticator: identities{"t": {User: "u", Permissions: perms}}}, nil)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{Token: "t"}, Rooms: []string{"chat:a", "secret", "news"}})
	if got := strings.Join(slices.Sorted(slices.Values(c.welcome.Rooms)), ","); got != "chat:a,news" {
		t.Fatalf("welcome rooms %q", got)
	}
	if d := c.expectError(core.CodeForbidden, ""); !strings.Contains(d.Message, `"secret"`) {
		t.Fatalf("message %q does not name the room", d.Message)
	}
	c.send(`{"v":1,"type":"join","room":"admin","ref":"j1"}`)
	c.expectError(core.CodeForbidden, "j1")
	c.send(`{"v":1,"type":"join","room":"chat:b","ref":"j2"}`)
	c.expectAck("j2")
	c.send(`{"v":1,"type":"publish","room":"news","data":1,"ref":"p1"}`)
	c.expectError(core.CodeForbidden, "p1")
	c.send(`{"v":1,"type":"publish","room":"chat:b","data":1,"ref":"p2"}`)
	c.ackAnd(t, "p2")
	// Forbidden is checked before membership: publish rights do not
	// depend on what the connection joined.
	c.send(`{"v":1,"type":"publish","room":"chat:z","data":1,"ref":"p3"}`)
	c.expectError(core.CodeNotJoined, "p3")
	c.expectQuiet()

	// The stateless path (POST /send) applies the same rules.
	replies := n.HandleStateless(context.Background(), core.StatelessRequest{Principal: n.principal(core.Credentials{Token: "t"}), Rooms: []string{"news"}},
		&core.Envelope{V: 1, Type: core.TypePublish, Room: "news", Ref: "s1", Data: json.RawMessage(`1`)})
	if len(replies) != 1 || !strings.Contains(string(replies[0]), `"code":"forbidden"`) {
		t.Fatalf("stateless publish: %s", replies)
	}
}

// ackAnd reads the ack for ref and the session's own copy of the
// message, in either order.
func (c *client) ackAnd(t *testing.T, ref string) {
	t.Helper()
	for range 2 {
		env := c.next()
		if env.Type == core.TypeAck && env.Ref != ref {
			t.Fatalf("ack for %q, want %q", env.Ref, ref)
		}
		if env.Type != core.TypeAck && env.Type != core.TypeMessage {
			t.Fatalf("got %s", env.Encode())
		}
	}
}

// tokenAuth is an Authenticator for refresh tests: a token is
// "user|expires-in|subscribe-pattern".
type tokenAuth struct{}

func (tokenAuth) Authenticate(_ context.Context, c core.Credentials) (core.Identity, error) {
	parts := strings.Split(c.Token, "|")
	if len(parts) != 3 {
		return core.Identity{}, fmt.Errorf("%w: malformed token", core.ErrUnauthorized)
	}
	d, err := time.ParseDuration(parts[1])
	if err != nil || d <= 0 {
		return core.Identity{}, fmt.Errorf("%w: token expired", core.ErrUnauthorized)
	}
	return core.Identity{User: parts[0], Expires: time.Now().Add(d), Permissions: &core.Permissions{Subscribe: []string{parts[2]}, Publish: []string{parts[2]}}}, nil
}

// TestTokenExpiryAndRefresh: a session closes with 4001 "token expired"
// when its credentials expire, unless a refresh with a valid token for the
// same user moved the expiry; a refresh also replaces the permissions
// and leaves rooms no longer allowed.
func TestTokenExpiryAndRefresh(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, core.Config{Authenticator: tokenAuth{}, HeartbeatInterval: -1}, nil)
		exp := time.Now().Add(time.Minute)
		c := n.connect(core.ConnectRequest{Credentials: core.Credentials{Token: "u|1m|*"}, Rooms: []string{"a:1", "b:1"}})
		if c.welcome.User != "u" || c.welcome.Expires != exp.Unix() {
			t.Fatalf("welcome user %q expires %d, want u and %d (the token's)", c.welcome.User, c.welcome.Expires, exp.Unix())
		}

		// Refused refreshes change nothing.
		c.send(`{"v":1,"type":"refresh","ref":"r0"}`)
		c.expectError(core.CodeBadRequest, "r0")
		c.send(`{"v":1,"type":"refresh","data":{"token":"garbage"},"ref":"r1"}`)
		c.expectError(core.CodeUnauthorized, "r1")
		c.send(`{"v":1,"type":"refresh","data":{"token":"other|1h|*"},"ref":"r2"}`)
		c.expectError(core.CodeForbidden, "r2")

		time.Sleep(50 * time.Second)
		c.send(`{"v":1,"type":"refresh","data":{"token":"u|2m|a:*"},"ref":"r3"}`)
		ack := c.expect(core.TypeAck)
		var d struct {
			Expires int64    `json:"expires"`
			Left    []string `json:"left"`
		}
		if err := json.Unmarshal(ack.Data, &d); err != nil || d.Expires == 0 || strings.Join(d.Left, ",") != "b:1" {
			t.Fatalf("refresh ack %s", ack.Encode())
		}
		if c.s.InRoom("b:1") || !c.s.InRoom("a:1") {
			t.Fatal("refresh did not leave the room it no longer allows")
		}
		c.send(`{"v":1,"type":"join","room":"b:2","ref":"j"}`)
		c.expectError(core.CodeForbidden, "j")

		// Past the first expiry: still open.
		time.Sleep(time.Minute)
		synctest.Wait()
		if _, closed := c.tr.Disconnect(); closed {
			t.Fatal("closed at the old expiry despite the refresh")
		}
		// Past the refreshed one: closed with 4001 token expired.
		time.Sleep(time.Minute)
		c.expectClosed(core.DisconnectTokenExpired)
	})
}

// TestRefreshInDevelopmentMode: the default authenticator (Insecure) takes
// no tokens, so a refresh is a bad request, not a refused token.
func TestRefreshInDevelopmentMode(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}})
	c.send(`{"v":1,"type":"refresh","data":{"token":"x"},"ref":"r"}`)
	if d := c.expectError(core.CodeBadRequest, "r"); !strings.Contains(d.Message, "development mode") {
		t.Fatalf("message %q", d.Message)
	}
}

// TestConnectionCaps: beyond MaxConnections or MaxConnectionsPerIP a new
// connection is refused with 1013 (ErrTooManyConnections); a freed slot
// is usable again; other IPs are unaffected by one IP's cap.
func TestConnectionCaps(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{MaxConnections: 4, MaxConnectionsPerIP: 2}, nil)
	req := func(ip string) core.ConnectRequest {
		return core.ConnectRequest{Credentials: core.Credentials{User: "u"}, RemoteAddr: ip + ":5000"}
	}
	a1 := n.connect(req("10.0.0.1"))
	n.connect(req("10.0.0.1"))
	tr, _, err := n.accept(req("10.0.0.1"))
	if !errors.Is(err, core.ErrTooManyConnections) {
		t.Fatalf("third from one IP: %v", err)
	}
	if d, closed := tr.Disconnect(); !closed || d != core.DisconnectTryAgain {
		t.Fatalf("refused transport: %v %v, want 1013", d, closed)
	}
	// ClientIP wins over RemoteAddr (a trusted proxy header).
	n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, RemoteAddr: "10.0.0.1:1", ClientIP: "10.0.0.2"})
	a1.s.Close(core.DisconnectNormal)
	n.connect(req("10.0.0.1")) // the freed slot
	n.connect(req("10.0.0.3")) // 4 open now
	if _, _, err := n.accept(req("10.0.0.4")); !errors.Is(err, core.ErrTooManyConnections) {
		t.Fatalf("fifth overall: %v", err)
	}
	if got := n.Stats(); got.Refused != 2 || got.Connections != 4 {
		t.Fatalf("stats refused=%d connections=%d, want 2 and 4", got.Refused, got.Connections)
	}
}
