package sse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/adaptertest"
	"github.com/switchboard-dev/switchboard/adapters/sse"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// smallBuffers shrinks the send buffer of every accepted connection, so a
// client that stops reading stalls the server's writes after kilobytes
// rather than megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// TestStalledReader: a client that opens a stream and never reads, while
// a room it is in gets many messages, is dropped (its queue overflows:
// 4008; its blocked write passes the write deadline) without delaying
// another member of the room, which receives every message in order, and
// its session is cleaned up. TestMain then checks that its stream's
// goroutines are gone.
func TestStalledReader(t *testing.T) {
	t.Parallel()
	b, err := memory.New(memory.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{SendQueueSize: 32}, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/sse", sse.New(node, sse.Config{WriteTimeout: 300 * time.Millisecond}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- app.Listener(smallBuffers{ln}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := app.ShutdownWithContext(ctx); err != nil {
			t.Errorf("app shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(func() { // runs before the app's shutdown
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	addr := ln.Addr().String()

	// The stalled client: a raw connection that sends its request and
	// never reads a byte.
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stalled.Close() })
	_ = stalled.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := fmt.Fprintf(stalled, "GET /sse?user=stalled&rooms=r HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
		t.Fatal(err)
	}
	hub := node.Hub()
	deadline := time.Now().Add(waitFor)
	for hub.Members(core.UserChannel("stalled")) != 1 { // no signal for "joined": poll
		if time.Now().After(deadline) {
			t.Fatal("the stalled client's session never started")
		}
		time.Sleep(5 * time.Millisecond)
	}

	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	healthy, err := dialSSE(hc, "http://"+addr, adaptertest.ConnectOpts{User: "healthy", Rooms: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = healthy.Close() })
	if env := nextEnv(t, healthy); env.Type != core.TypeWelcome {
		t.Fatalf("first envelope %+v, want the welcome", env)
	}

	// Publish until the stalled session is gone; the healthy client must
	// get each message before the next is published.
	data := json.RawMessage(`"` + strings.Repeat("x", 1<<10) + `"`)
	const most = 20000 // far beyond socket buffers plus the queue
	sent := 0
	for ; sent < most && hub.Members(core.UserChannel("stalled")) == 1; sent++ {
		id, err := node.Publish(context.Background(), core.RoomChannel("r"),
			&core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", From: "test", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if env := nextEnv(t, healthy); env.ID != id {
			t.Fatalf("message %d: the healthy client got %+v, want %s", sent, env, id)
		}
	}
	if sent == most {
		t.Fatalf("the stalled client was still connected after %d messages", most)
	}
	if n := node.Stats().SlowClosed; n != 1 {
		t.Errorf("%d sessions closed as slow consumers, want the stalled one", n)
	}
	// Cleaned up: only the healthy session is left, and it still works.
	deadline = time.Now().Add(waitFor)
	for node.Stats().Connections != 1 || hub.Members(core.RoomChannel("r")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after the drop: %d connections, %d members of r; want 1 and 1", node.Stats().Connections, hub.Members(core.RoomChannel("r")))
		}
		time.Sleep(5 * time.Millisecond)
	}
	id, err := node.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", From: "test", Data: json.RawMessage(`"after"`)})
	if err != nil {
		t.Fatal(err)
	}
	if env := nextEnv(t, healthy); env.ID != id {
		t.Fatalf("after the drop the healthy client got %+v, want %s", env, id)
	}
	t.Logf("stalled client dropped after %d messages of 1 KiB", sent)
}

// waitFor bounds each wait of the stalled-reader test.
const waitFor = 10 * time.Second

func nextEnv(t *testing.T, c adaptertest.Client) *core.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	env, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("next envelope: %v", err)
	}
	return env
}
