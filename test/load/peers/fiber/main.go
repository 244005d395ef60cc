// Command fiber is the load tool's naive floor (issue #7): a broadcast
// server on raw Fiber v2 and gofiber/contrib/websocket that writes every
// message to every subscriber as its own frame, one write per message per
// connection, with no batching. It is what "just use Fiber" gives, and
// Switchboard's numbers are read against it.
//
// It lives in its own module so that it never enters Switchboard's go.mod;
// test/load builds it with `go build` in this directory.
//
//	GET  /ws?rooms=a,b   WebSocket; joins the rooms, sends {"type":"welcome"}
//	                     once joined, then every message of those rooms as
//	                     one text frame {"room":"a","data":<data>}
//	POST /publish        body: one JSON object per line, {"room":"a","data":…}
//	                     (other fields are ignored, so a Switchboard publish
//	                     envelope works); each is broadcast before the next,
//	                     and the answer, {"published":n}, comes after the last
//	GET  /stats          {"connections","goroutines","heap_bytes","sys_bytes"}
//	GET  /healthz        200
//
// The broadcast is the textbook one: the publishing request's goroutine
// writes the message (encoded once) to each member in turn, under that
// connection's mutex (fasthttp/websocket allows one writer at a time),
// with a write deadline (--write-timeout) after which the member is
// dropped. There is no queue and no writer goroutine: an idle connection
// costs its handler goroutine, which only reads. --addr must be a loopback
// address. SIGTERM or SIGINT closes every connection and stops.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address (loopback only)")
	writeTimeout := flag.Duration("write-timeout", 5*time.Second, "a write to a subscriber that takes longer drops it")
	flag.Parse()
	if err := run(*addr, *writeTimeout); err != nil {
		log.Fatalf("fiber peer: %v", err)
	}
}

func run(addr string, writeTimeout time.Duration) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %q: only loopback addresses", addr)
	}
	if writeTimeout <= 0 {
		return fmt.Errorf("--write-timeout %s: must be positive", writeTimeout)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	h := &hub{rooms: map[string]map[*client]struct{}{}, writeTimeout: writeTimeout}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/ws", websocket.New(h.serve))
	app.Post("/publish", h.publish)
	app.Get("/stats", func(c *fiber.Ctx) error {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return c.JSON(fiber.Map{
			"connections": h.conns.Load(), "goroutines": runtime.NumGoroutine(),
			"heap_bytes": ms.HeapAlloc, "sys_bytes": ms.Sys,
		})
	})
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Fiber's shutdown does not track upgraded connections: close them first.
	h.closeAll()
	if err := app.ShutdownWithTimeout(5 * time.Second); err != nil {
		return err
	}
	return <-served
}

// hub maps rooms to their subscribers.
type hub struct {
	writeTimeout time.Duration
	conns        atomic.Int64

	mu    sync.RWMutex
	rooms map[string]map[*client]struct{}
}

// client is one subscriber. mu serializes its writers (the broadcasts)
// and guards closed: once the handler has set it, nothing writes to the
// Conn, which contrib/websocket reuses after the handler returns.
type client struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	closed bool
}

// write sends msg as one frame; a failed write closes the socket, which
// ends the handler's read loop.
func (c *client) write(msg []byte, timeout time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		c.closed = true
		_ = c.conn.Close()
	}
}

var welcome = []byte(`{"type":"welcome"}`)

// serve runs one connection. Everything kept from the request is copied
// before the handler's first blocking call.
func (h *hub) serve(conn *websocket.Conn) {
	var rooms []string
	for _, r := range strings.Split(conn.Query("rooms"), ",") {
		if r != "" {
			rooms = append(rooms, strings.Clone(r))
		}
	}
	c := &client{conn: conn}
	c.mu.Lock() // the welcome goes out before any broadcast
	h.join(c, rooms)
	h.conns.Add(1)
	_ = conn.SetWriteDeadline(time.Now().Add(h.writeTimeout))
	err := conn.WriteMessage(websocket.TextMessage, welcome)
	c.mu.Unlock()
	for err == nil {
		_, _, err = conn.ReadMessage()
	}
	h.leave(c, rooms)
	h.conns.Add(-1)
	c.mu.Lock() // waits for a broadcast's write in progress
	c.closed = true
	c.mu.Unlock()
}

func (h *hub) join(c *client, rooms []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range rooms {
		m := h.rooms[r]
		if m == nil {
			m = map[*client]struct{}{}
			h.rooms[r] = m
		}
		m[c] = struct{}{}
	}
}

func (h *hub) leave(c *client, rooms []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range rooms {
		delete(h.rooms[r], c)
		if len(h.rooms[r]) == 0 {
			delete(h.rooms, r)
		}
	}
}

// broadcast writes msg (encoded once, shared) to every member of room, one
// after the other. The members are copied first so that joins and leaves
// are not held up by the writes.
func (h *hub) broadcast(room string, msg []byte) {
	h.mu.RLock()
	members := make([]*client, 0, len(h.rooms[room]))
	for c := range h.rooms[room] {
		members = append(members, c)
	}
	h.mu.RUnlock()
	for _, c := range members {
		c.write(msg, h.writeTimeout)
	}
}

// closeAll closes every socket; the handlers then see read errors and end.
func (h *hub) closeAll() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, m := range h.rooms {
		for c := range m {
			_ = c.conn.Close()
		}
	}
}

// publishLine is what /publish reads from each line of its body.
type publishLine struct {
	Room string          `json:"room"`
	Data json.RawMessage `json:"data"`
}

func (h *hub) publish(c *fiber.Ctx) error {
	n := 0
	for _, line := range bytes.Split(c.Body(), []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var p publishLine
		if err := json.Unmarshal(line, &p); err != nil || p.Room == "" {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": fmt.Sprintf("line %d: want {\"room\":…,\"data\":…}", n+1), "published": n})
		}
		msg := make([]byte, 0, len(p.Room)+len(p.Data)+20)
		msg = append(msg, `{"room":`...)
		room, _ := json.Marshal(p.Room)
		msg = append(msg, room...)
		msg = append(msg, `,"data":`...)
		if len(p.Data) == 0 {
			msg = append(msg, "null"...)
		} else {
			msg = append(msg, p.Data...)
		}
		msg = append(msg, '}')
		h.broadcast(p.Room, msg)
		n++
	}
	return c.JSON(fiber.Map{"published": n})
}
