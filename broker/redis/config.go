package redis

import (
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ErrInvalidConfig is wrapped by the error Validate (and New) returns for a
// Config it refuses.
var ErrInvalidConfig = errors.New("switchboard/broker/redis: invalid config")

// Config configures the Redis Streams broker. Zero values mean the
// default; where a field says so, a negative value disables the bound.
type Config struct {
	// URL locates Redis: redis://[user:pass@]host:port[/db] (rediss:// for
	// TLS), parsed with go-redis's ParseURL; its query options (e.g.
	// ?dial_timeout=) are overridden by the fields below.
	// Required.
	URL string

	// Stream is the one Redis stream every channel is published to. The
	// epoch lives at "<Stream>:epoch".
	// Optional. Default: "switchboard".
	Stream string

	// MaxLen bounds the stream with XADD MAXLEN ~ MaxLen (approximate:
	// Redis trims whole radix-tree nodes, so somewhat more is kept). It is
	// the resume window shared by every channel. Negative keeps everything.
	// Optional. Default: 100000.
	MaxLen int64

	// ReadCount is the reader's XREAD COUNT: the most entries one round
	// trip delivers.
	// Optional. Default: 256.
	ReadCount int64

	// Block is the reader's XREAD BLOCK: how long one read waits for new
	// entries before it is reissued. It also bounds how long Close waits
	// for the reader.
	// Optional. Default: 1s.
	Block time.Duration

	// DialTimeout bounds establishing a connection.
	// Optional. Default: 2s.
	DialTimeout time.Duration

	// ReadTimeout and WriteTimeout bound one command's socket read and
	// write. The reader's blocking XREAD is allowed Block + ReadTimeout.
	// Optional. Default: 3s each.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration

	// MaxRetries is how often go-redis retries a failed read-only command
	// (XREAD, XRANGE, XINFO, GET). Publishes (XADD) are never retried: a
	// retry after a lost reply would append the message twice. Negative
	// disables retries.
	// Optional. Default: 2.
	MaxRetries int

	// MinRetryBackoff and MaxRetryBackoff bound go-redis's backoff between
	// retries. Negative disables the backoff.
	// Optional. Default: 10ms and 500ms.
	MinRetryBackoff time.Duration
	MaxRetryBackoff time.Duration

	// PoolSize is the connection pool size of each of the broker's two
	// clients (publishing; reading and history).
	// Optional. Default: go-redis's, 10 per GOMAXPROCS.
	PoolSize int

	// ReconnectBackoff is the reader loop's first wait after a failed
	// XREAD; it doubles on each further failure up to MaxReconnectBackoff
	// and resets once a read succeeds.
	// Optional. Default: 100ms, doubling up to 5s.
	ReconnectBackoff    time.Duration
	MaxReconnectBackoff time.Duration
}

// Defaults applied to zero Config fields.
const (
	DefaultStream              = "switchboard"
	DefaultMaxLen              = 100_000
	DefaultReadCount           = 256
	DefaultBlock               = time.Second
	DefaultDialTimeout         = 2 * time.Second
	DefaultReadTimeout         = 3 * time.Second
	DefaultWriteTimeout        = 3 * time.Second
	DefaultMaxRetries          = 2
	DefaultMinRetryBackoff     = 10 * time.Millisecond
	DefaultMaxRetryBackoff     = 500 * time.Millisecond
	DefaultReconnectBackoff    = 100 * time.Millisecond
	DefaultMaxReconnectBackoff = 5 * time.Second
)

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.MaxLen == 0 {
		c.MaxLen = DefaultMaxLen
	}
	if c.ReadCount == 0 {
		c.ReadCount = DefaultReadCount
	}
	if c.Block == 0 {
		c.Block = DefaultBlock
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MinRetryBackoff == 0 {
		c.MinRetryBackoff = DefaultMinRetryBackoff
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = DefaultMaxRetryBackoff
	}
	if c.ReconnectBackoff == 0 {
		c.ReconnectBackoff = DefaultReconnectBackoff
	}
	if c.MaxReconnectBackoff == 0 {
		c.MaxReconnectBackoff = max(DefaultMaxReconnectBackoff, c.ReconnectBackoff)
	}
}

// Validate reports a Config that New would refuse; the error wraps
// ErrInvalidConfig. Zero values are valid (they mean the default), except
// URL, which is required.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("URL is required (redis://[user:pass@]host:port[/db])"))
	} else if _, err := goredis.ParseURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("URL: %w", err))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"ReadCount", c.ReadCount},
		{"Block", int64(c.Block)},
		{"DialTimeout", int64(c.DialTimeout)},
		{"ReadTimeout", int64(c.ReadTimeout)},
		{"WriteTimeout", int64(c.WriteTimeout)},
		{"PoolSize", int64(c.PoolSize)},
		{"ReconnectBackoff", int64(c.ReconnectBackoff)},
		{"MaxReconnectBackoff", int64(c.MaxReconnectBackoff)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", f.name))
		}
	}
	if c.ReconnectBackoff > 0 && c.MaxReconnectBackoff > 0 && c.MaxReconnectBackoff < c.ReconnectBackoff {
		errs = append(errs, fmt.Errorf("MaxReconnectBackoff %s is below ReconnectBackoff %s", c.MaxReconnectBackoff, c.ReconnectBackoff))
	}
	if c.MinRetryBackoff > 0 && c.MaxRetryBackoff > 0 && c.MaxRetryBackoff < c.MinRetryBackoff {
		errs = append(errs, fmt.Errorf("MaxRetryBackoff %s is below MinRetryBackoff %s", c.MaxRetryBackoff, c.MinRetryBackoff))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
