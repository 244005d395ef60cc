// Command centrifuge is the load tool's reference peer (issue #7): a server
// on github.com/centrifugal/centrifuge, the library at the core of
// Centrifugo, with its own WebSocket handler and client protocol, so that
// Switchboard's numbers can be read as ratios against it.
//
// It lives in its own module so that it never enters Switchboard's go.mod;
// test/load builds it with `go build` in this directory.
//
//	GET  /connection/websocket  Centrifuge's WebSocket handler (JSON protocol)
//	POST /publish               body: one JSON object per line,
//	                            {"room":"a","data":…} (other fields are
//	                            ignored, so a Switchboard publish envelope
//	                            works); each is node.Publish(room, data);
//	                            answers {"published":n}
//	GET  /stats                 {"connections","goroutines","heap_bytes","sys_bytes"}
//	GET  /healthz               200
//
// Subscriptions are server-side: the client names its channels in the
// connect command, {"id":1,"connect":{"subs":{"a":{}}}}, and OnConnecting
// subscribes the connection to each of them, so the connect reply confirms
// the subscriptions in one round trip and publications then arrive as
// pushes, {"push":{"channel":"a","pub":{"data":…}}}. Connections are
// anonymous (user "load"). Channels have no history, positioning or
// presence: a plain broadcast, like the other servers measured. Everything
// else is Centrifuge's defaults (16 messages per frame, 1 s write timeout,
// server pings every 25 s that the client answers with {}).
//
// --addr must be a loopback address. SIGTERM or SIGINT shuts the node down
// (which disconnects every client) and stops.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/centrifugal/centrifuge"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "listen address (loopback only)")
	flag.Parse()
	if err := run(*addr); err != nil {
		log.Fatalf("centrifuge peer: %v", err)
	}
}

func run(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %q: only loopback addresses", addr)
	}
	node, err := centrifuge.New(centrifuge.Config{})
	if err != nil {
		return err
	}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		subs := make(map[string]centrifuge.SubscribeOptions, len(e.Channels))
		for _, ch := range e.Channels {
			subs[ch] = centrifuge.SubscribeOptions{}
		}
		return centrifuge.ConnectReply{
			Credentials:   &centrifuge.Credentials{UserID: "load"},
			Subscriptions: subs,
		}, nil
	})
	if err := node.Run(); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{}))
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		n, err := publish(node, r)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"published": n, "error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"published": n})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"connections": node.Hub().NumClients(), "goroutines": runtime.NumGoroutine(),
			"heap_bytes": ms.HeapAlloc, "sys_bytes": ms.Sys,
		})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Hijacked WebSocket connections are not tracked by http.Server: the
	// node disconnects its clients.
	err = errors.Join(node.Shutdown(sctx), srv.Shutdown(sctx))
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// publishLine is what /publish reads from each line of its body.
type publishLine struct {
	Room string          `json:"room"`
	Data json.RawMessage `json:"data"`
}

// publish publishes every line of the request body and returns how many
// were published.
func publish(node *centrifuge.Node, r *http.Request) (int, error) {
	body, err := readBody(r)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var p publishLine
		if err := json.Unmarshal(line, &p); err != nil || p.Room == "" {
			return n, fmt.Errorf("line %d: want {\"room\":…,\"data\":…}", n+1)
		}
		if len(p.Data) == 0 {
			p.Data = json.RawMessage("null")
		}
		if _, err := node.Publish(p.Room, p.Data); err != nil {
			return n, fmt.Errorf("publish to %q: %w", p.Room, err)
		}
		n++
	}
	return n, nil
}

func readBody(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, r.Body, 16<<20))
	return b.Bytes(), err
}
