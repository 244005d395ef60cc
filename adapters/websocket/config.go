package websocket

import (
	"compress/flate"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/switchboard-dev/switchboard/adapters/internal/deflate"
	"github.com/switchboard-dev/switchboard/adapters/internal/request"
	"github.com/switchboard-dev/switchboard/core"
)

// Config configures the WebSocket handler, New (Fiber) and NewHandler
// (net/http) alike.
type Config struct {
	// Next skips this handler when it returns true. Fiber only (New):
	// with NewHandler, route around the handler in your mux instead.
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// Origins allowed to upgrade, compared with the Origin header by
	// cors.Allowed: exact origins, globs ("https://*.example.com"),
	// "self" (same host) or "*" (any). A request without Origin (not a
	// browser) is allowed. A refused origin gets HTTP 403.
	// Optional. Default: []string{"*"}
	Origins []string

	// WriteTimeout bounds every write (batch, ping, close frame): a write
	// blocked on a client that does not read fails after between half of
	// it and all of it (the deadline is renewed when half is spent).
	// Optional. Default: 10s
	WriteTimeout time.Duration

	// CloseGrace is how long, after sending a close frame, the server keeps
	// reading for the client's close reply before dropping the TCP
	// connection (closing at once can reset it before the client reads
	// the close code).
	// Optional. Default: 2s
	CloseGrace time.Duration

	// HandshakeTimeout bounds the upgrade, and then the authentication
	// and resume of the connection.
	// Optional. Default: 10s
	HandshakeTimeout time.Duration

	// CompressionLevel is the deflate level of permessage-deflate (RFC
	// 7692), from 1 (fastest) to 9 (smallest), negotiated with every
	// client that offers it (browsers do), without context takeover: each
	// message is compressed once for all the connections it goes to, and
	// no connection keeps compression state. Negative disables it: the
	// extension is never negotiated.
	// Optional. Default: 6
	CompressionLevel int

	// CompressionThreshold is the size, in bytes, from which an envelope
	// is sent compressed; a batch of smaller ones goes as it is (deflate
	// gains little on them).
	// Optional. Default: 256
	CompressionThreshold int

	// ReadBufferSize is the read buffer of Fiber's upgrade (New only;
	// after it the adapter reads with pooled buffers of its own).
	// Optional. Default: 1024
	ReadBufferSize int

	// WriteBufferSize is the size of the write buffers of Fiber's upgrade
	// (New only; after it the adapter writes from pooled buffers of its
	// own).
	// Optional. Default: 4096
	WriteBufferSize int
}

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Next:                 nil,
	Origins:              []string{"*"},
	WriteTimeout:         request.WriteTimeout,
	CloseGrace:           2 * time.Second,
	HandshakeTimeout:     10 * time.Second,
	CompressionLevel:     deflate.DefaultLevel,
	CompressionThreshold: deflate.DefaultThreshold,
	ReadBufferSize:       1024,
	WriteBufferSize:      4096,
}

func configDefault(config ...Config) Config {
	if len(config) < 1 {
		return ConfigDefault
	}
	cfg := config[0]
	if len(cfg.Origins) == 0 {
		cfg.Origins = ConfigDefault.Origins
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = ConfigDefault.WriteTimeout
	}
	if cfg.CloseGrace <= 0 {
		cfg.CloseGrace = ConfigDefault.CloseGrace
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = ConfigDefault.HandshakeTimeout
	}
	if cfg.CompressionLevel == 0 {
		cfg.CompressionLevel = ConfigDefault.CompressionLevel
	}
	if cfg.CompressionThreshold <= 0 {
		cfg.CompressionThreshold = ConfigDefault.CompressionThreshold
	}
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = ConfigDefault.ReadBufferSize
	}
	if cfg.WriteBufferSize <= 0 {
		cfg.WriteBufferSize = ConfigDefault.WriteBufferSize
	}
	return cfg
}

// ErrInvalidConfig is wrapped by Validate's error (a *core.ConfigError
// naming the field).
var ErrInvalidConfig = errors.New("switchboard/adapters/websocket: invalid config")

// Validate reports the first field New and NewHandler would refuse (they
// panic on it), as a *core.ConfigError wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	if c.CompressionLevel > flate.BestCompression {
		return core.Invalid(ErrInvalidConfig, "CompressionLevel", "%d; use 1 (fastest) to 9 (smallest), or negative to disable compression", c.CompressionLevel)
	}
	return nil
}
