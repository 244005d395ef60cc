package core_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/core"
)

// TestAcceptAuthenticates: Accept runs the configured Authenticator on
// the credentials the adapter collected and applies the whole Identity;
// refused credentials close the transport as Refuse says and return a
// *RefusedError, and no session exists.
func TestAcceptAuthenticates(t *testing.T) {
	t.Parallel()
	forbidden := &core.Rejection{Disconnect: core.Disconnect{Code: 4003, Reason: "forbidden"}, Status: http.StatusForbidden, Err: errors.New("webhook says no")}
	auth := core.AuthenticatorFunc(func(ctx context.Context, c core.Credentials) (core.Identity, error) {
		switch c.Token {
		case "alice":
			return core.Identity{User: "alice", Rooms: []string{"assigned"}, Permissions: &core.Permissions{Subscribe: []string{"a*"}, Publish: []string{"a*"}}}, nil
		case "bad-user":
			return core.Identity{User: "has space"}, nil
		case "webhook":
			return core.Identity{}, forbidden
		}
		return core.Identity{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
	})
	n := newNode(t, core.Config{Authenticator: auth}, nil)

	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{Token: "alice", User: "mallory"}, Rooms: []string{"asked", "b"}})
	if c.welcome.User != "alice" {
		t.Errorf("user %q: the claimed ?user= won over the token", c.welcome.User)
	}
	if got := slices.Sorted(slices.Values(c.welcome.Rooms)); !slices.Equal(got, []string{"asked", "assigned"}) {
		t.Errorf("rooms %v, want asked (allowed) and assigned (the identity's), not b", got)
	}
	c.expectError(core.CodeForbidden, "")

	for _, tc := range []struct {
		token  string
		code   uint16
		status int
	}{
		{"", 4001, http.StatusUnauthorized},
		{"nope", 4001, http.StatusUnauthorized},
		{"bad-user", 4001, http.StatusUnauthorized},
		{"webhook", 4003, http.StatusForbidden},
	} {
		tr, s, err := n.accept(core.ConnectRequest{Credentials: core.Credentials{Token: tc.token}})
		var re *core.RefusedError
		if s != nil || !errors.As(err, &re) {
			t.Errorf("token %q: session %v, err %v; want none and a *RefusedError", tc.token, s, err)
			continue
		}
		if d, closed := tr.Disconnect(); !closed || d.Code != tc.code {
			t.Errorf("token %q: transport closed %v with %d, want %d", tc.token, closed, d.Code, tc.code)
		}
		if r := core.Refuse(err); r.Status != tc.status || r.Disconnect.Code != tc.code {
			t.Errorf("token %q: Refuse = %+v, want status %d", tc.token, r, tc.status)
		}
	}
}

// TestStatelessNeedsPrincipal: a stateless request acts as a Principal
// from Node.Authenticate; the zero one is refused.
func TestStatelessNeedsPrincipal(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	out := n.HandleStateless(context.Background(), core.StatelessRequest{Rooms: []string{"r"}},
		&core.Envelope{V: 1, Type: core.TypePublish, Room: "r", Ref: "p", Data: []byte(`1`)})
	if len(out) != 1 || !strings.Contains(string(out[0]), `"code":"unauthorized"`) {
		t.Fatalf("replies = %q, want one unauthorized error", out)
	}
}

func TestRefuse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err     error
		close   uint16
		status  int
		code    string
		message string
	}{
		{fmt.Errorf("%w: token expired", core.ErrUnauthorized), 4001, 401, "unauthorized", "token expired"},
		{&core.RefusedError{Err: fmt.Errorf("%w: token expired", core.ErrUnauthorized)}, 4001, 401, "unauthorized", "token expired"},
		{errors.New("boom"), 4001, 401, "unauthorized", "boom"},
		{&core.Rejection{Disconnect: core.Disconnect{Code: 4403, Reason: "banned"}, Status: 403, Err: errors.New("banned user")}, 4403, 403, "forbidden", "banned user"},
		{&core.Rejection{Status: 401, Err: errors.New("no session")}, 4001, 401, "unauthorized", "no session"},
		{fmt.Errorf("webhook: %w", &core.Rejection{Disconnect: core.DisconnectTryAgain, Status: 503, Err: errors.New("busy")}), 1013, 503, "unavailable", "webhook: busy"},
	}
	for _, tc := range cases {
		r := core.Refuse(tc.err)
		if r.Disconnect.Code != tc.close || r.Status != tc.status || r.Code != tc.code || r.Message != tc.message {
			t.Errorf("Refuse(%v) = %+v", tc.err, r)
		}
	}
}
