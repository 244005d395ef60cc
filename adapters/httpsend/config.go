package httpsend

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
)

// Config configures the /send handler.
type Config struct {
	// Next skips this handler when it returns true.
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// Authenticator decides who sends from the token (?token= or
	// "Authorization: Bearer") and the claimed ?user=; rejection is 401.
	// Use the same one as the stream adapters.
	// Optional. Default: core.Insecure (development mode)
	Authenticator core.Authenticator

	// RequestDetails copies the request's headers and query parameters
	// into core.Credentials for the Authenticator (a connect webhook reads
	// them). Off, only the token, user and address are read: fewer
	// allocations per connect.
	// Optional. Default: false
	RequestDetails bool

	// RateLimit is the sustained number of envelopes per second per user
	// (per IP for anonymous senders). Negative disables.
	// Optional. Default: the node's RateLimit (the WebSocket limit)
	RateLimit float64

	// RateBurst is the token-bucket size for RateLimit.
	// Optional. Default: the node's RateBurst
	RateBurst int

	// AuthTimeout bounds the Authenticator call.
	// Optional. Default: 10s
	AuthTimeout time.Duration
}

// ConfigDefault is the default config. Zero rate fields take the node's
// values in New.
var ConfigDefault = Config{
	Next:          nil,
	Authenticator: core.Insecure,
	AuthTimeout:   10 * time.Second,
}

func configDefault(node core.Config, config ...Config) Config {
	cfg := ConfigDefault
	if len(config) > 0 {
		cfg = config[0]
	}
	if cfg.Authenticator == nil {
		cfg.Authenticator = ConfigDefault.Authenticator
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = ConfigDefault.AuthTimeout
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = node.RateLimit
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = node.RateBurst
	}
	return cfg
}
