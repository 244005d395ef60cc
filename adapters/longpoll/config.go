package longpoll

import (
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/switchboard-dev/switchboard/adapters/internal/deflate"
)

// Config configures the long-poll handler, New (Fiber) and NewHandler
// (net/http) alike.
type Config struct {
	// Next skips this handler when it returns true. Fiber only (New):
	// with NewHandler, route around the handler in your mux instead.
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

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

	// CompressionLevel is the gzip level of answers to clients that
	// accept gzip (Accept-Encoding), from 1 (fastest) to 9 (smallest):
	// each envelope is compressed once for every poll that carries it,
	// and the answer is built from the compressed envelopes. Negative
	// disables it.
	// Optional. Default: 6
	CompressionLevel int

	// CompressionThreshold is the size, in bytes, from which an envelope
	// is sent compressed; an answer with only smaller ones goes as it is.
	// Optional. Default: 256
	CompressionThreshold int
}

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Next:                 nil,
	DefaultWait:          25 * time.Second,
	MaxWait:              55 * time.Second,
	BatchLimit:           100,
	CompressionLevel:     deflate.DefaultLevel,
	CompressionThreshold: deflate.DefaultThreshold,
}

func configDefault(config ...Config) Config {
	if len(config) < 1 {
		return ConfigDefault
	}
	cfg := config[0]
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
	if cfg.CompressionLevel == 0 {
		cfg.CompressionLevel = ConfigDefault.CompressionLevel
	}
	if cfg.CompressionThreshold <= 0 {
		cfg.CompressionThreshold = ConfigDefault.CompressionThreshold
	}
	cfg.CompressionLevel = min(cfg.CompressionLevel, 9)
	return cfg
}
