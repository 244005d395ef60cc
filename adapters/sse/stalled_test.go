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
	"github.com/switchboard-dev/switchboard/adapters/internal/testserver"
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
// a room it is in gets many messages, is closed as a slow consumer (its
// queue overflows: 4008) without delaying another member of the room,
// which receives every message in order, and once its blocked write is
// released its session is cleaned up. TestMain then checks that its
// stream's goroutines are gone.
//
// The write deadline is an hour, so the overflow cannot lose a race
// against it however slowly the machine runs; TestStalledReaderWriteDeadline
// covers the deadline.
func TestStalledReader(t *testing.T) {
	t.Parallel()
	for _, front := range fronts {
		t.Run(front, func(t *testing.T) {
			t.Parallel()
			testStalledReader(t, front)
		})
	}
}

func testStalledReader(t *testing.T, front string) {
	st := startStalled(t, core.Config{SendQueueSize: 32}, time.Hour, front)
	sent := st.publishUntil(t, "the stalled client was closed as a slow consumer", func() bool {
		return st.node.Stats().SlowClosed > 0 // bumped when the queue overflows
	})
	if n := st.node.Stats().SlowClosed; n != 1 {
		t.Errorf("%d sessions closed as slow consumers, want the stalled one", n)
	}
	// The session's writer is still blocked on the stalled socket (the
	// deadline is an hour away): the client going away releases it.
	_ = st.stalled.Close()
	st.cleanedUp(t)
	t.Logf("stalled client closed as a slow consumer after %d messages of 1 KiB", sent)
}

// TestStalledReaderWriteDeadline: with a queue too large to overflow, a
// stalled client's blocked write passes the write deadline, which ends
// its session (not as a slow consumer) without delaying another member of
// the room, and its session is cleaned up.
func TestStalledReaderWriteDeadline(t *testing.T) {
	t.Parallel()
	for _, front := range fronts {
		t.Run(front, func(t *testing.T) {
			t.Parallel()
			testStalledReaderWriteDeadline(t, front)
		})
	}
}

func testStalledReaderWriteDeadline(t *testing.T, front string) {
	st := startStalled(t, core.Config{SendQueueSize: 2 * mostMessages}, 200*time.Millisecond, front)
	sent := st.publishUntil(t, "the stalled client's session ended", func() bool {
		return st.hub.Members(core.UserChannel("stalled")) == 0
	})
	if n := st.node.Stats().SlowClosed; n != 0 {
		t.Errorf("%d sessions closed as slow consumers, want none: the write deadline ends the stalled one", n)
	}
	st.cleanedUp(t)
	t.Logf("stalled client's write passed the deadline after %d messages of 1 KiB", sent)
}

// stalledSetup is a node and an SSE server (front) with two members of room r: the
// stalled client, a raw connection that sent its request and never reads
// a byte, and a healthy one.
type stalledSetup struct {
	node    *core.Node
	hub     *core.Hub
	stalled net.Conn
	healthy adaptertest.Client
}

func startStalled(t *testing.T, cfg core.Config, writeTimeout time.Duration, front string) *stalledSetup {
	t.Helper()
	b, err := memory.New(memory.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(cfg, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	if front == "nethttp" {
		mux := http.NewServeMux()
		mux.Handle("GET /sse", sse.NewHandler(node, sse.Config{WriteTimeout: writeTimeout}))
		addr = testserver.HTTP(t, mux, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	} else {
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		app.Get("/sse", sse.New(node, sse.Config{WriteTimeout: writeTimeout}))
		addr = testserver.Fiber(t, app, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	}
	t.Cleanup(func() { // runs before the server's shutdown
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})

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
	return &stalledSetup{node: node, hub: hub, stalled: stalled, healthy: healthy}
}

// mostMessages is far beyond socket buffers plus the queue.
const mostMessages = 20000

// publishUntil publishes 1 KiB messages to r until done holds; the
// healthy client must get each before the next is published. It returns
// how many were published.
func (st *stalledSetup) publishUntil(t *testing.T, what string, done func() bool) int {
	t.Helper()
	data := json.RawMessage(`"` + strings.Repeat("x", 1<<10) + `"`)
	sent := 0
	for ; !done(); sent++ {
		if sent == mostMessages {
			t.Fatalf("after %d messages, still waiting until %s", sent, what)
		}
		id, err := st.node.Publish(context.Background(), core.RoomChannel("r"),
			&core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", From: "test", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if env := nextEnv(t, st.healthy); env.ID != id {
			t.Fatalf("message %d: the healthy client got %+v, want %s", sent, env, id)
		}
	}
	return sent
}

// cleanedUp checks that only the healthy session is left, and that it
// still works.
func (st *stalledSetup) cleanedUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for st.node.Stats().Connections != 1 || st.hub.Members(core.RoomChannel("r")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after the drop: %d connections, %d members of r; want 1 and 1", st.node.Stats().Connections, st.hub.Members(core.RoomChannel("r")))
		}
		time.Sleep(5 * time.Millisecond)
	}
	id, err := st.node.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", From: "test", Data: json.RawMessage(`"after"`)})
	if err != nil {
		t.Fatal(err)
	}
	if env := nextEnv(t, st.healthy); env.ID != id {
		t.Fatalf("after the drop the healthy client got %+v, want %s", env, id)
	}
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
