package longpoll

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
)

// Config configures the long-poll handler.
type Config struct {
	// Next skips this handler when it returns true.
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// Authenticator decides who polls from the token (?token= or
	// "Authorization: Bearer") and the claimed ?user=. Rejection answers
	// HTTP 401 with a JSON error before anything else happens.
	// Optional. Default: core.Insecure (development mode)
	Authenticator core.Authenticator

	// RequestDetails copies the request's headers and query parameters
	// into core.Credentials for the Authenticator (a connect webhook reads
	// them). Off, only the token, user and address are read: fewer
	// allocations per connect.
	// Optional. Default: false
	RequestDetails bool

	// DefaultWait is how long a poll waits for a message when ?wait= is
	// absent.
	// Optional. Default: 25s
	DefaultWait time.Duration

	// MaxWait caps ?wait=. A client that goes away is not detected, so a
	// poll holds its handler and session for up to this long.
	// Optional. Default: 55s
	MaxWait time.Duration

	// BatchLimit is the most messages one answer carries; the cursor then
	// points at the last one returned and the next poll continues from the
	// log. It is also the page a poll reads (see
	// core.ConnectRequest.ReplayPage): a poll far behind reads about
	// BatchLimit entries of the log, however far behind it is.
	// Optional. Default: 100
	BatchLimit int

	// AuthTimeout bounds the Authenticator call.
	// Optional. Default: 10s
	AuthTimeout time.Duration
}

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Next:          nil,
	Authenticator: core.Insecure,
	DefaultWait:   25 * time.Second,
	MaxWait:       55 * time.Second,
	BatchLimit:    100,
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
	if cfg.DefaultWait <= 0 {
		cfg.DefaultWait = ConfigDefault.DefaultWait
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = ConfigDefault.MaxWait
	}
	if cfg.DefaultWait > cfg.MaxWait {
		cfg.DefaultWait = cfg.MaxWait
	}
	if cfg.BatchLimit <= 0 {
		cfg.BatchLimit = ConfigDefault.BatchLimit
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = ConfigDefault.AuthTimeout
	}
	return cfg
}
