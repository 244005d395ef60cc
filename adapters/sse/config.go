package sse

import (
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/switchboard-dev/switchboard/adapters/internal/request"
)

// Config configures the SSE handler, New (Fiber) and NewHandler
// (net/http) alike.
type Config struct {
	// Next skips this handler when it returns true. Fiber only (New):
	// with NewHandler, route around the handler in your mux instead.
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// WriteTimeout bounds every write (events, heartbeat, close event) to
	// the client's socket.
	// Optional. Default: 10s
	WriteTimeout time.Duration

	// Retry is the reconnection delay sent to EventSource clients in the
	// stream's first line ("retry: <ms>").
	// Optional. Default: 2s
	Retry time.Duration
}

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Next:         nil,
	WriteTimeout: request.WriteTimeout,
	Retry:        2 * time.Second,
}

func configDefault(config ...Config) Config {
	if len(config) < 1 {
		return ConfigDefault
	}
	cfg := config[0]
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = ConfigDefault.WriteTimeout
	}
	if cfg.Retry <= 0 {
		cfg.Retry = ConfigDefault.Retry
	}
	return cfg
}
