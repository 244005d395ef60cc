package core

import (
	"fmt"
	"time"
)

// SlowPolicy says what happens when a connection's send queue is full.
type SlowPolicy int

const (
	// SlowClose closes the connection with 4008 "slow consumer"; the client
	// reconnects and resumes from its last id, losing nothing.
	SlowClose SlowPolicy = iota
	// SlowDropOldest discards the oldest queued message to make room,
	// counts the drop and logs once per slow episode.
	SlowDropOldest
)

func (p SlowPolicy) String() string {
	if p == SlowDropOldest {
		return "drop-oldest"
	}
	return "close"
}

// ParseSlowPolicy parses "close" or "drop-oldest".
func ParseSlowPolicy(s string) (SlowPolicy, error) {
	switch s {
	case "close", "":
		return SlowClose, nil
	case "drop-oldest":
		return SlowDropOldest, nil
	}
	return 0, fmt.Errorf("%w: slow-consumer policy %q (use close or drop-oldest)", ErrInvalidConfig, s)
}

// Config tunes a Node. The zero value is valid: every zero field takes its
// default. Where noted, a negative value disables the feature.
type Config struct {
	// HeartbeatInterval is how often the server pings a connection whose
	// transport implements Pinger. Negative disables heartbeats entirely.
	// Optional. Default: 25s.
	HeartbeatInterval time.Duration

	// HeartbeatTimeout closes a bidirectional connection (4009) that sent
	// nothing (no frame, no pong) for this long. Must exceed
	// HeartbeatInterval. Optional. Default: 2.5 × HeartbeatInterval.
	HeartbeatTimeout time.Duration

	// SendQueueSize bounds each connection's outbound queue, in envelopes.
	// Optional. Default: 256.
	SendQueueSize int

	// SlowConsumer is the policy when a send queue is full.
	// Optional. Default: SlowClose.
	SlowConsumer SlowPolicy

	// WriteBatch caps how many queued envelopes one transport write
	// carries. Optional. Default: 64.
	WriteBatch int

	// MaxMessageSize is the largest inbound frame, in bytes; larger closes
	// the connection with 4003. Optional. Default: 65536.
	MaxMessageSize int

	// RateLimit is the sustained number of inbound frames per second per
	// connection (every frame counts, pings included); exceeding it closes
	// with 4002. Negative disables. Optional. Default: 50.
	RateLimit float64

	// RateBurst is the token-bucket size for RateLimit.
	// Optional. Default: 100.
	RateBurst int

	// MaxRoomsPerConn caps rooms joined by one connection (error
	// too_many_rooms). Negative disables. Optional. Default: 100.
	MaxRoomsPerConn int

	// HistoryLimit caps how many missed messages a resuming client gets;
	// beyond it, welcome says recovered:false. Optional. Default: 1000.
	HistoryLimit int

	// BrokerTimeout bounds each broker call made for a client request.
	// Optional. Default: 5s.
	BrokerTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 25 * time.Second
	}
	if c.HeartbeatTimeout == 0 && c.HeartbeatInterval > 0 {
		c.HeartbeatTimeout = c.HeartbeatInterval * 5 / 2
	}
	if c.SendQueueSize == 0 {
		c.SendQueueSize = 256
	}
	if c.WriteBatch == 0 {
		c.WriteBatch = 64
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 64 << 10
	}
	if c.RateLimit == 0 {
		c.RateLimit = 50
	}
	if c.RateBurst == 0 {
		c.RateBurst = 100
	}
	if c.MaxRoomsPerConn == 0 {
		c.MaxRoomsPerConn = 100
	}
	if c.HistoryLimit == 0 {
		c.HistoryLimit = 1000
	}
	if c.BrokerTimeout == 0 {
		c.BrokerTimeout = 5 * time.Second
	}
}

// Validate reports the first invalid field, wrapping ErrInvalidConfig.
// Call it after defaults are applied (NewNode does both).
func (c Config) Validate() error {
	switch {
	case c.HeartbeatInterval > 0 && c.HeartbeatTimeout <= c.HeartbeatInterval:
		return fmt.Errorf("%w: heartbeat timeout (%s) must be longer than the heartbeat interval (%s)", ErrInvalidConfig, c.HeartbeatTimeout, c.HeartbeatInterval)
	case c.SendQueueSize < 1:
		return fmt.Errorf("%w: send queue size %d must be at least 1", ErrInvalidConfig, c.SendQueueSize)
	case c.WriteBatch < 1:
		return fmt.Errorf("%w: write batch %d must be at least 1", ErrInvalidConfig, c.WriteBatch)
	case c.MaxMessageSize < 256:
		return fmt.Errorf("%w: max message size %d must be at least 256 bytes", ErrInvalidConfig, c.MaxMessageSize)
	case c.RateLimit > 0 && c.RateBurst < 1:
		return fmt.Errorf("%w: rate burst %d must be at least 1", ErrInvalidConfig, c.RateBurst)
	case c.HistoryLimit < 1:
		return fmt.Errorf("%w: history limit %d must be at least 1", ErrInvalidConfig, c.HistoryLimit)
	case c.SlowConsumer != SlowClose && c.SlowConsumer != SlowDropOldest:
		return fmt.Errorf("%w: unknown slow-consumer policy %d", ErrInvalidConfig, c.SlowConsumer)
	case c.BrokerTimeout < 0:
		return fmt.Errorf("%w: broker timeout must not be negative", ErrInvalidConfig)
	}
	return nil
}
