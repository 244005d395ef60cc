package core_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/switchboard-dev/switchboard/core"
)

func stateless(t *testing.T, n *testNode, req core.StatelessRequest, frame string) []*core.Envelope {
	t.Helper()
	env, err := core.DecodeEnvelope([]byte(frame))
	if err != nil {
		t.Fatalf("DecodeEnvelope(%s): %v", frame, err)
	}
	var out []*core.Envelope
	for _, b := range n.HandleStateless(context.Background(), req, env) {
		e, err := core.UnmarshalEnvelope(b)
		if err != nil {
			t.Fatalf("reply %q: %v", b, err)
		}
		out = append(out, e)
	}
	return out
}

func errCode(t *testing.T, env *core.Envelope) string {
	t.Helper()
	if env.Type != core.TypeError {
		t.Fatalf("got %s, want an error", env.Encode())
	}
	var d struct{ Code string }
	_ = json.Unmarshal(env.Data, &d)
	return d.Code
}

func TestHandleStateless(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	member := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "m"}, Rooms: []string{"lobby"}})
	target := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "dana"}})
	req := core.StatelessRequest{Principal: n.principal(core.Credentials{User: "sse-user"}), Rooms: []string{"lobby", "bad room!"}}

	out := stateless(t, n, req, `{"v":1,"type":"publish","room":"lobby","data":"hi","ref":"p1"}`)
	if len(out) != 1 || out[0].Type != core.TypeAck || out[0].Ref != "p1" {
		t.Fatalf("publish replies = %v", out)
	}
	if m := member.expectMessage("lobby", `"hi"`); m.From != "sse-user" {
		t.Fatalf("from = %q", m.From)
	}

	out = stateless(t, n, req, `{"v":1,"type":"publish","room":"other","data":1,"ref":"p2"}`)
	if len(out) != 1 || errCode(t, out[0]) != core.CodeNotJoined || out[0].Ref != "p2" {
		t.Fatalf("publish outside rooms = %v", out)
	}

	out = stateless(t, n, req, `{"v":1,"type":"direct","to":"dana","data":"psst","ref":"d"}`)
	if len(out) != 1 || out[0].Type != core.TypeAck {
		t.Fatalf("direct replies = %v", out)
	}
	if m := target.expect(core.TypeDirect); m.From != "sse-user" {
		t.Fatalf("direct = %s", m.Encode())
	}

	out = stateless(t, n, req, `{"v":1,"type":"ping","ref":"x"}`)
	if len(out) != 1 || out[0].Type != core.TypePong || out[0].Ref != "x" {
		t.Fatalf("ping replies = %v", out)
	}

	for _, typ := range []string{"join", "leave"} {
		out = stateless(t, n, req, `{"v":1,"type":"`+typ+`","room":"news","ref":"j"}`)
		if len(out) != 1 || errCode(t, out[0]) != core.CodeReconnectRequired {
			t.Fatalf("%s replies = %v", typ, out)
		}
	}
	out = stateless(t, n, req, `{"v":1,"type":"nosuch","ref":"u"}`)
	if len(out) != 1 || errCode(t, out[0]) != core.CodeUnknownType {
		t.Fatalf("unknown type replies = %v", out)
	}
	// Nothing was joined or left behind: only the two real sessions' rooms.
	if s := n.Stats(); s.Connections != 2 || s.Rooms != 1 {
		t.Fatalf("stats after stateless requests = %+v", s)
	}
	member.expectQuiet()
}

// A custom handler that tries to join from a stateless request gets
// reconnect_required, and middleware sees the request like any other.
func TestHandleStatelessCustomHandler(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	var seen []string
	n.Router().Use(func(next core.HandlerFunc) core.HandlerFunc {
		return func(ctx context.Context, s *core.Session, env *core.Envelope) error {
			seen = append(seen, s.User()+":"+env.Type)
			return next(ctx, s, env)
		}
	})
	n.Router().Handle("subscribe", func(ctx context.Context, s *core.Session, env *core.Envelope) error {
		return s.Join(ctx, env.Room)
	})
	out := stateless(t, n, core.StatelessRequest{Principal: n.principal(core.Credentials{})}, `{"v":1,"type":"subscribe","room":"r","ref":"s"}`)
	if len(out) != 1 || errCode(t, out[0]) != core.CodeReconnectRequired {
		t.Fatalf("replies = %v", out)
	}
	if len(seen) != 1 || seen[0][:5] != "anon-" {
		t.Fatalf("middleware saw %v", seen)
	}
	if s := n.Stats(); s.Rooms != 0 {
		t.Fatalf("rooms = %d after a refused join", s.Rooms)
	}
}

func TestHandleStatelessShuttingDown(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := stateless(t, n, core.StatelessRequest{Principal: n.principal(core.Credentials{User: "u"}), Rooms: []string{"r"}}, `{"v":1,"type":"publish","room":"r","data":1,"ref":"p"}`)
	if len(out) != 1 || errCode(t, out[0]) != core.CodeUnavailable || out[0].Ref != "p" {
		t.Fatalf("replies = %v", out)
	}
}
