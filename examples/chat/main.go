// Command chat is a complete Switchboard app: the edge (any broker, the
// same flags as the switchboard binary) plus a browser page at / built on
// the Switchboard browser client (/client.js): rooms, private messages,
// the transport in use on screen, and a custom envelope type, "typing",
// registered on the router to show routing by type.
//
//	go run ./examples/chat            # then open http://localhost:8080/
package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/examples/chat/chatapp"
)

func main() {
	cfg, err := config.Load(os.Args[1:], os.Getenv, os.Stdout)
	if err != nil {
		slog.Error("config", "err", err)
		os.Exit(2)
	}
	srv, err := server.New(cfg, slog.Default())
	if err != nil {
		slog.Error("start", "err", err)
		os.Exit(1)
	}
	chatapp.Register(srv)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		slog.Error("listen", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil {
		slog.Error("serve", "err", err)
		os.Exit(1)
	}
}
