// Command chat is a complete Switchboard app in one file: the edge
// (in-memory broker) plus a browser page at / that chats over raw
// WebSocket, and a custom envelope type, "typing", registered on the
// router to show routing by type.
//
//	go run ./examples/chat            # then open http://localhost:8080/
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
)

//go:embed index.html
var page []byte

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
	Register(srv)
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

// Register adds the page and the "typing" type to an edge server. A
// typing envelope {"type":"typing","room":"r"} is relayed through the
// broker to the room's members as {"type":"typing","room":"r","from":user}.
func Register(srv *server.Server) {
	srv.App().Get("/", func(c *fiber.Ctx) error {
		c.Type("html")
		return c.Send(page)
	})
	node := srv.Node()
	node.Router().Handle("typing", func(ctx context.Context, s *core.Session, env *core.Envelope) error {
		if env.Room == "" || !s.InRoom(env.Room) {
			return core.Errorf(core.CodeNotJoined, "join the room before typing in it")
		}
		data, _ := json.Marshal(map[string]bool{"typing": true})
		_, err := node.Publish(ctx, core.RoomChannel(env.Room), &core.Envelope{
			V: core.Version, Type: "typing", Room: env.Room, From: s.User(), TS: time.Now().UnixMilli(), Data: data,
		})
		return err
	})
}
