package httpsend

import (
	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
)

// Config configures the /send handler, New (Fiber) and NewHandler
// (net/http) alike.
type Config struct {
	// Next skips this handler when it returns true. Fiber only (New):
	// with NewHandler, route around the handler in your mux instead.
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// RateLimit is the sustained number of envelopes per second per user
	// (per IP for anonymous senders). Negative disables.
	// Optional. Default: the node's RateLimit (the WebSocket limit)
	RateLimit float64

	// RateBurst is the token-bucket size for RateLimit.
	// Optional. Default: the node's RateBurst
	RateBurst int
}

// ConfigDefault is the default config. Zero rate fields take the node's
// values in New.
var ConfigDefault = Config{
	Next: nil,
}

func configDefault(node core.Config, config ...Config) Config {
	cfg := ConfigDefault
	if len(config) > 0 {
		cfg = config[0]
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = node.RateLimit
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = node.RateBurst
	}
	return cfg
}
