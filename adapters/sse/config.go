package sse

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
)

// Config configures the SSE handler.
type Config struct {
	// Next skips this handler when it returns true.
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// Authenticator decides who connects from the token (?token= or
	// "Authorization: Bearer") and the claimed ?user=. Rejection answers
	// HTTP 401 with a JSON error before the stream starts.
	// Optional. Default: core.Insecure (development mode)
	Authenticator core.Authenticator

	// RequestDetails copies the request's headers and query parameters
	// into core.Credentials for the Authenticator (a connect webhook reads
	// them). Off, only the token, user and address are read: fewer
	// allocations per connect.
	// Optional. Default: false
	RequestDetails bool

	// WriteTimeout bounds every write (events, heartbeat, close event) to
	// the client's socket.
	// Optional. Default: 10s
	WriteTimeout time.Duration

	// Retry is the reconnection delay sent to EventSource clients in the
	// stream's first line ("retry: <ms>").
	// Optional. Default: 2s
	Retry time.Duration

	// AuthTimeout bounds the Authenticator call.
	// Optional. Default: 10s
	AuthTimeout time.Duration
}

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Next:          nil,
	Authenticator: core.Insecure,
	WriteTimeout:  10 * time.Second,
	Retry:         2 * time.Second,
	AuthTimeout:   10 * time.Second,
}

func configDefault(config ...Config) Config {
	if len(config) < 1 {
		return ConfigDefault
	}
	cfg := config[0]
	if cfg.Authenticator == nil {
		cfg.Authenticator = ConfigDefault.Authenticator
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = ConfigDefault.WriteTimeout
	}
	if cfg.Retry <= 0 {
		cfg.Retry = ConfigDefault.Retry
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = ConfigDefault.AuthTimeout
	}
	return cfg
}
