package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/cors"
	"github.com/switchboard-dev/switchboard/adapters/httpsend"
	"github.com/switchboard-dev/switchboard/adapters/longpoll"
	"github.com/switchboard-dev/switchboard/adapters/sse"
	"github.com/switchboard-dev/switchboard/adapters/websocket"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// serveFiber is the other way to embed: the same node and transports on
// a Fiber app (docs/embedding.md shows it). It serves on ln until ctx
// ends, then shuts down in order.
func serveFiber(ctx context.Context, node *core.Node, ln net.Listener) error {
	app := fiber.New(fiber.Config{DisableStartupMessage: true}) // keep WriteTimeout 0: it would cut event streams
	websocket.DetachConnections(app)                            // idle WebSockets wait in the epoll poller, not in a goroutine
	origins := []string{cors.Self}
	app.Get("/ws", websocket.New(node, websocket.Config{Origins: origins}))
	for _, p := range []string{"/sse", "/poll", "/send"} {
		app.Use(p, cors.New(cors.Config{Origins: origins}))
	}
	app.Get("/sse", sse.New(node))
	app.Get("/poll", longpoll.New(node))
	app.Post("/send", httpsend.New(node))
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString("your own routes") })
	// Every route is registered before the app serves.
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	<-ctx.Done()

	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	node.DrainDeliveries(sctx)                  // deliver what the broker accepted before streams end
	err := app.ShutdownWithContext(sctx)        // stop accepting; Fiber ends event streams (1012)
	err = errors.Join(err, node.Shutdown(sctx)) // every other session (1012), then the broker
	return errors.Join(err, <-served)
}

// TestFiber: the Fiber way serves every transport and shuts down
// cleanly, with 1012 to a WebSocket and an event stream.
func TestFiber(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{Authenticator: core.Insecure}, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- serveFiber(ctx, node, ln) }()
	r := &running{addr: ln.Addr().String(), base: "http://" + ln.Addr().String(), hc: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}

	if page := r.get(t, "/"); page.status != http.StatusOK || page.body != "your own routes" {
		t.Fatalf("GET /: %d %q", page.status, page.body)
	}
	ws := dialWS(t, r.addr, "w", "")
	if w := ws.next(t); w.Type != core.TypeWelcome {
		t.Fatalf("websocket: %+v, want the welcome", w)
	}
	ev := openSSE(t, r.hc, r.base, "s", "")
	if w := ev.next(t); w.Type != core.TypeWelcome {
		t.Fatalf("sse: %+v, want the welcome", w)
	}
	cursor := r.poll(t, "p", "", "0").Cursor
	sent := r.post(t, "/send?user=s&rooms="+Room, `{"v":1,"type":"publish","room":"`+Room+`","ref":"s1","data":1}`)
	var ack struct {
		Type string `json:"type"`
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if sent.status != http.StatusOK || json.Unmarshal([]byte(sent.body), &ack) != nil || ack.Type != core.TypeAck || ack.Data.ID == "" {
		t.Fatalf("POST /send: %d %s", sent.status, sent.body)
	}
	id := ack.Data.ID
	wantMessage(t, "websocket", ws.next(t), id, "s")
	wantMessage(t, "sse", ev.next(t), id, "s")
	if a := r.poll(t, "p", cursor, "30s"); len(a.Messages) != 1 || a.Messages[0].ID != id {
		t.Fatalf("poll: %+v, want %s", a.Messages, id)
	}

	stop()
	if code := ws.closeCode(t); code != int(core.DisconnectShutdown.Code) {
		t.Errorf("websocket closed with %d, want 1012", code)
	}
	if code := ev.closeCode(t); code != int(core.DisconnectShutdown.Code) {
		t.Errorf("sse closed with %d, want 1012", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveFiber: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("serveFiber did not return after its context ended")
	}
}
