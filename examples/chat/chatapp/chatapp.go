// Package chatapp is the chat example's server side, importable so the
// browser tests in test/ serve the same page: Register adds the page at /
// and the custom "typing" envelope type to an edge server.
package chatapp

import (
	"context"
	_ "embed"
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/server"
)

//go:embed index.html
var page []byte

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
