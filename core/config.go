package core

import (
	"context"
	"fmt"
	"path"
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
	// SlowConflate keeps at most one queued message per room, the newest:
	// for tickers and state. A new message replaces the room's queued one
	// in place; when the queue is full of other rooms, the oldest is
	// dropped.
	SlowConflate
	// SlowResume stops queueing a room for a connection whose queue is
	// full, and once the queue drains replays the room from the broker's
	// log from the last message queued. Nothing is lost while the log holds
	// the gap; otherwise the client gets a "gap" envelope with
	// recovered:false. Exact with brokers whose ids are ordered
	// (Broker.After).
	SlowResume
)

var slowNames = [...]string{SlowClose: "close", SlowDropOldest: "drop-oldest", SlowConflate: "conflate", SlowResume: "resume"}

func (p SlowPolicy) String() string {
	if int(p) < len(slowNames) {
		return slowNames[p]
	}
	return fmt.Sprintf("SlowPolicy(%d)", int(p))
}

// ParseSlowPolicy parses close, drop-oldest, conflate or resume.
func ParseSlowPolicy(s string) (SlowPolicy, error) {
	if s == "" {
		return SlowClose, nil
	}
	for i, name := range slowNames {
		if s == name {
			return SlowPolicy(i), nil
		}
	}
	return 0, fmt.Errorf("%w: slow-consumer policy %q (use close, drop-oldest, conflate or resume)", ErrInvalidConfig, s)
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

	// SlowConsumer is the policy when a send queue is full, for direct
	// messages and rooms no RoomPolicies rule matches.
	// Optional. Default: SlowClose.
	SlowConsumer SlowPolicy

	// RoomPolicies choose a slow-consumer policy by room name pattern;
	// the first match wins. Optional. Default: none.
	RoomPolicies []RoomPolicy

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

	// MaxConnections caps the sessions open on this node; beyond it
	// Accept refuses with ErrTooManyConnections and closes the transport
	// with 1013 "try again later" (clients retry, ideally elsewhere).
	// Optional. Default: 0, no cap.
	MaxConnections int

	// MaxConnectionsPerIP caps the sessions from one client IP
	// (ConnectRequest.ClientIP), refused the same way. Optional.
	// Default: 0, no cap.
	MaxConnectionsPerIP int

	// HistoryLimit caps how many missed messages a resuming client gets;
	// beyond it, welcome says recovered:false. Optional. Default: 1000.
	HistoryLimit int

	// OnDeliveryLatency, when set, receives the time from a message's
	// acceptance (its ts) to its delivery to this node by the broker,
	// once per message. OnPublish receives each broker publish's duration
	// and error. Both run on hot paths: they must be cheap (a histogram
	// observation) and must not block. Optional.
	OnDeliveryLatency func(time.Duration)
	OnPublish         func(time.Duration, error)

	// Tracer, when set, reports spans for publish, broker delivery and
	// fan-out (see Tracer). Optional. Default: nil, no tracing.
	Tracer Tracer

	// BeforeBrokerClose, when set, runs during Shutdown once every
	// session has ended and before the broker closes, bounded by
	// BrokerTimeout: the last chance to publish (a node's goodbye).
	BeforeBrokerClose func(ctx context.Context)

	// OnEvent, when set, receives every session lifecycle event (see
	// Event), synchronously on the goroutine that caused it and possibly
	// with the session's room lock held: it must not block and must not
	// call back into the node or the session (hand the event to a
	// queue). Optional.
	OnEvent func(Event)

	// Authenticator decides every connection's identity from the
	// credentials its adapter collected (Accept, Authenticate), and
	// verifies the token of a refresh envelope (Credentials.Refresh).
	// Adapters only collect credentials: none can skip it.
	// Optional. Default: Insecure (development mode: trusts ?user=)
	Authenticator Authenticator

	// AuthTimeout bounds one authentication (a JWKS fetch, a connect
	// webhook).
	// Optional. Default: 10s.
	AuthTimeout time.Duration

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
	if c.Authenticator == nil {
		c.Authenticator = Insecure
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 10 * time.Second
	}
}

// WithDefaults returns c with every zero field set to its default, as
// NewNode applies them. A front end shows these as its defaults (the
// edge's --help) instead of restating them.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// Validate reports the first invalid field as a *ConfigError wrapping
// ErrInvalidConfig. Call it after defaults are applied (NewNode does
// both).
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return Invalid(ErrInvalidConfig, field, format, args...)
	}
	switch {
	case c.HeartbeatTimeout < 0:
		return bad("HeartbeatTimeout", "must not be negative (0: 2.5 x the heartbeat interval)")
	case c.HeartbeatInterval > 0 && c.HeartbeatTimeout <= c.HeartbeatInterval:
		return bad("HeartbeatTimeout", "%s must be longer than the heartbeat interval %s", c.HeartbeatTimeout, c.HeartbeatInterval)
	case c.AuthTimeout < 0:
		return bad("AuthTimeout", "%s must be positive", c.AuthTimeout)
	case c.SendQueueSize < 1:
		return bad("SendQueueSize", "%d must be at least 1", c.SendQueueSize)
	case c.WriteBatch < 1:
		return bad("WriteBatch", "%d must be at least 1", c.WriteBatch)
	case c.MaxMessageSize < 256:
		return bad("MaxMessageSize", "%d must be at least 256 bytes", c.MaxMessageSize)
	case c.RateLimit > 0 && c.RateBurst < 1:
		return bad("RateBurst", "%d must be at least 1 while there is a rate limit", c.RateBurst)
	case c.HistoryLimit < 1:
		return bad("HistoryLimit", "%d must be at least 1", c.HistoryLimit)
	case c.SlowConsumer < SlowClose || c.SlowConsumer > SlowResume:
		return bad("SlowConsumer", "unknown policy %d", c.SlowConsumer)
	case badRoomPolicy(c.RoomPolicies) != nil:
		return bad("RoomPolicies", "%v", badRoomPolicy(c.RoomPolicies))
	case c.MaxConnections < 0:
		return bad("MaxConnections", "must not be negative (0: no cap)")
	case c.MaxConnectionsPerIP < 0:
		return bad("MaxConnectionsPerIP", "must not be negative (0: no cap)")
	case c.BrokerTimeout < 0:
		return bad("BrokerTimeout", "must not be negative")
	}
	return nil
}

// ConfigError is a setting that a Validate refused: which field of its
// Config, and why. Err is the refusing package's ErrInvalidConfig, so
// errors.Is(err, ErrInvalidConfig) holds; a front end restates it in its
// own names with errors.As (the edge names the flag). Every package of
// Switchboard validates its Config this way.
type ConfigError struct {
	Err     error  // the package's sentinel, e.g. core.ErrInvalidConfig
	Field   string // the Config field refused, e.g. "SendQueueSize"
	Problem string // what is wrong, e.g. "0 must be at least 1"
}

// Invalid returns the *ConfigError for a field of a package's Config
// that it refuses: its sentinel (the package's ErrInvalidConfig), the
// field's name and the problem, formatted.
func Invalid(sentinel error, field, format string, args ...any) *ConfigError {
	return &ConfigError{Err: sentinel, Field: field, Problem: fmt.Sprintf(format, args...)}
}

func (e *ConfigError) Error() string { return fmt.Sprintf("%v: %s: %s", e.Err, e.Field, e.Problem) }
func (e *ConfigError) Unwrap() error { return e.Err }

func badRoomPolicy(rules []RoomPolicy) error {
	for _, r := range rules {
		if _, err := path.Match(r.Pattern, ""); err != nil || r.Pattern == "" {
			return fmt.Errorf("room pattern %q is not a valid glob", r.Pattern)
		}
		if r.Policy < SlowClose || r.Policy > SlowResume {
			return fmt.Errorf("room pattern %q: unknown slow-consumer policy %d", r.Pattern, r.Policy)
		}
	}
	return nil
}
