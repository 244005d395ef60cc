package core_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/switchboard-dev/switchboard/core"
)

// TestControlCommands: disconnect a connection, a user's connections,
// send to one connection, and broadcast to all, through the broker.
func TestControlCommands(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	ctx := context.Background()
	a1 := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "a"}})
	a2 := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "a"}})
	b := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "b"}, Rooms: []string{"r"}})

	id, err := n.Broadcast(ctx, &core.Envelope{V: 1, Data: json.RawMessage(`"all"`)})
	if err != nil || id == "" {
		t.Fatalf("Broadcast: %q %v", id, err)
	}
	for _, c := range []*client{a1, a2, b} {
		if env := c.expect(core.TypeBroadcast); env.ID != id || string(env.Data) != `"all"` {
			t.Fatalf("broadcast %s", env.Encode())
		}
	}

	if err := n.SendToConn(ctx, b.s.ID(), &core.Envelope{V: 1, Type: "notice", Data: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	if env := b.expect("notice"); string(env.Data) != "1" {
		t.Fatalf("send: %s", env.Encode())
	}
	a1.expectQuiet() // only b got it
	for _, env := range []*core.Envelope{nil, {V: 1, Type: core.TypeWelcome}, {V: 1, Type: "Bad Type"}} {
		if err := n.SendToConn(ctx, b.s.ID(), env); core.ErrorCode(err) != core.CodeBadRequest {
			t.Fatalf("SendToConn(%v) = %v, want bad_request", env, err)
		}
	}
	b.expectQuiet() // and it was neither sent nor disconnected

	// Unknown connections (this node's prefix or another's) are ignored.
	for _, conn := range []string{n.ID() + "-zzz", "OTHERNODE-1"} {
		if err := n.DisconnectConn(ctx, conn, core.DisconnectByApp); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.DisconnectConn(ctx, "nodash", core.DisconnectByApp); core.ErrorCode(err) != core.CodeBadRequest {
		t.Fatalf("malformed conn id: %v", err)
	}
	if err := n.DisconnectConn(ctx, b.s.ID(), core.Disconnect{Code: 4100, Reason: "moved", Reconnect: true}); err != nil {
		t.Fatal(err)
	}
	b.expectClosed(core.Disconnect{Code: 4100, Reason: "moved", Reconnect: true})

	if err := n.DisconnectUser(ctx, "a", core.DisconnectByApp); err != nil {
		t.Fatal(err)
	}
	a1.expectClosed(core.DisconnectByApp)
	a2.expectClosed(core.DisconnectByApp)

	// A resuming client gets the broadcasts it missed.
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "c"}})
	first, _ := n.Broadcast(ctx, &core.Envelope{V: 1, Data: json.RawMessage(`"one"`)})
	c.expect(core.TypeBroadcast)
	c.s.Close(core.DisconnectGoingAway)
	n.Broadcast(ctx, &core.Envelope{V: 1, Data: json.RawMessage(`"two"`)})
	c = n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "c"}, Since: first})
	if env := c.expect(core.TypeBroadcast); string(env.Data) != `"two"` {
		t.Fatalf("replayed %s", env.Encode())
	}
}
