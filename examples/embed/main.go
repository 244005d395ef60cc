// Command embed is a net/http application that embeds Switchboard: its
// own page and JSON API, and Switchboard's WebSocket (/ws), Server-Sent
// Events (/sse), long-poll (/poll) and POST /send, all on one
// http.ServeMux and one port, with a node on the in-memory broker. It is
// the library way to use Switchboard (docs/embedding.md); the switchboard
// binary (./edge) is the other.
//
//	go run ./examples/embed                          # development mode: ?user= is trusted
//	go run ./examples/embed --jwt-secret "$SECRET"   # HS256 JWTs, checked as the edge checks them
//
// Then open http://127.0.0.1:8080/?user=ada in two tabs, and announce
// something from one (or: curl -d '{"text":"hi"}' 127.0.0.1:8080/api/announce).
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-dev/switchboard/adapters/cors"
	"github.com/switchboard-dev/switchboard/adapters/httpsend"
	"github.com/switchboard-dev/switchboard/adapters/longpoll"
	"github.com/switchboard-dev/switchboard/adapters/sse"
	"github.com/switchboard-dev/switchboard/adapters/websocket"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/edge/webclient"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address (host:port)")
	secret := flag.String("jwt-secret", os.Getenv("EMBED_JWT_SECRET"), "HS256 secret for clients' JWTs (env EMBED_JWT_SECRET); empty: development mode")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, Options{JWTSecret: *secret}, logger); err != nil {
		logger.Error("embed", "err", err)
		os.Exit(1)
	}
}

// run serves the application on addr until ctx ends, then shuts it down
// within shutdownTimeout.
func run(ctx context.Context, addr string, opts Options, logger *slog.Logger) error {
	app, err := New(opts, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = app.Shutdown(context.Background())
		return err
	}
	logger.Info("serving", "url", "http://"+ln.Addr().String()+"/")
	served := make(chan error, 1)
	go func() { served <- app.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = errors.Join(err, app.Shutdown(sctx))
	if ctx.Err() != nil {
		err = errors.Join(err, <-served)
	}
	return err
}

const shutdownTimeout = 10 * time.Second

// Options configure New.
type Options struct {
	// JWTSecret switches on JWT authentication (HS256, at least 16
	// bytes): every client needs a token whose sub is its user id. Empty:
	// development mode, clients name themselves with ?user=.
	JWTSecret string
}

// App is the application: its routes and Switchboard's on one mux.
type App struct {
	node *core.Node
	auth *server.Authenticator
	srv  *http.Server
	log  *slog.Logger
}

// Room is where the application announces.
const Room = "lobby"

// New builds the application: authentication, the node, the mux.
func New(opts Options, logger *slog.Logger) (*App, error) {
	// 1. Authentication, configured once: the node runs it for every
	// transport. server.NewAuthenticator is the edge's own chain (JWT
	// with an HMAC secret, a public key or JWKS, the anonymous rules, a
	// connect webhook; core.Insecure in development mode). Any
	// core.Authenticator will do, such as one asking your session store.
	cfg := config.Default()
	cfg.Auth.Secret = []byte(opts.JWTSecret)
	authn, err := server.NewAuthenticator(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("authenticator: %w", err)
	}
	// 2. The broker and the node. The node owns the broker from here: its
	// Shutdown closes it.
	b, err := memory.New(memory.Config{}, logger)
	if err != nil {
		_ = authn.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	node, err := core.NewNode(core.Config{Authenticator: authn}, b, logger)
	if err != nil {
		_ = b.Close(context.Background())
		_ = authn.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	a := &App{node: node, auth: authn, log: logger}

	// 3. One mux: the application's routes and Switchboard's transports.
	// Browsers on other origins may use the HTTP transports only when
	// cors allows them (here: pages from this host); the WebSocket
	// handler checks its own Origins.
	origins := []string{cors.Self}
	allowed := func(h http.Handler) http.Handler { return cors.NewHandler(h, cors.Config{Origins: origins}) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /client.js", clientJS)
	mux.HandleFunc("GET /api/stats", a.stats)
	mux.HandleFunc("POST /api/announce", a.announce)
	mux.Handle("GET /ws", websocket.NewHandler(node, websocket.Config{Origins: origins}))
	// No method in these patterns: cors answers the preflight (OPTIONS).
	mux.Handle("/sse", allowed(sse.NewHandler(node)))
	mux.Handle("/poll", allowed(longpoll.NewHandler(node)))
	mux.Handle("/send", allowed(httpsend.NewHandler(node)))
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return a, nil
}

// Node is the application's Switchboard node: publish through it, add
// envelope types to its Router, read its Stats.
func (a *App) Node() *core.Node { return a.node }

// Serve accepts connections on ln until Shutdown; it then returns nil.
func (a *App) Serve(ln net.Listener) error {
	if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the application in order, within ctx: the server stops
// accepting and waits for requests in flight, while the node closes
// every Switchboard session with 1012 "service restart" after flushing
// its queue (net/http's Shutdown ends neither event streams nor upgraded
// connections: the node's does, and a waiting poll answers 503); then
// the node closes the broker, and the authenticator is released.
func (a *App) Shutdown(ctx context.Context) error {
	stopped := make(chan error, 1)
	go func() { stopped <- a.srv.Shutdown(ctx) }()
	nodeErr := a.node.Shutdown(ctx)
	return errors.Join(<-stopped, nodeErr, a.auth.Close())
}

//go:embed index.html
var indexHTML []byte

// page is the application's own page, a client of both its API and
// Switchboard.
func (a *App) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(indexHTML)
}

// clientJS serves Switchboard's browser client, which the page imports.
func clientJS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = w.Write(webclient.Module())
}

// stats is an application endpoint reading the node.
func (a *App) stats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.node.Stats())
}

// Announcement is the body of POST /api/announce.
type Announcement struct {
	Text string `json:"text"`
}

// announce publishes the posted text to Room through the node, for
// every client on every transport: {"id": message id}.
func (a *App) announce(w http.ResponseWriter, r *http.Request) {
	var in Announcement
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&in); err != nil || in.Text == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `send {"text": "…"}`})
		return
	}
	data, _ := json.Marshal(in)
	id, err := a.node.Publish(r.Context(), core.RoomChannel(Room), &core.Envelope{
		V: core.Version, Type: core.TypeMessage, Room: Room, From: "app", TS: time.Now().UnixMilli(), Data: data,
	})
	if err != nil {
		a.log.Warn("announce", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
