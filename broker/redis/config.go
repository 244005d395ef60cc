package redis

import (
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-dev/switchboard/broker/engine"
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

	// PoolSize is the connection pool size of the publishing client and
	// of the reader's client.
	// Optional. Default: go-redis's, 10 per GOMAXPROCS.
	PoolSize int

	// HistoryPoolSize is the connection pool of the history client, which
	// serves resumes older than the engine's index (Engine.HistoryReads
	// bounds how many run at once).
	// Optional. Default: Engine.HistoryReads.
	HistoryPoolSize int

	// Engine tunes the log engine (index, history reads, batching,
	// idempotency window, reader backoff): see engine.Config.
	Engine engine.Config
}

// Defaults applied to zero Config fields.
const (
	DefaultStream          = "switchboard"
	DefaultMaxLen          = 100_000
	DefaultBlock           = time.Second
	DefaultDialTimeout     = 2 * time.Second
	DefaultReadTimeout     = 3 * time.Second
	DefaultWriteTimeout    = 3 * time.Second
	DefaultMaxRetries      = 2
	DefaultMinRetryBackoff = 10 * time.Millisecond
	DefaultMaxRetryBackoff = 500 * time.Millisecond
)

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.MaxLen == 0 {
		c.MaxLen = DefaultMaxLen
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
	if c.Engine.IndexEntries == 0 && c.MaxLen > 0 {
		c.Engine.IndexEntries = int(c.MaxLen) // never beyond the stream's own window
	}
	if c.HistoryPoolSize == 0 {
		c.HistoryPoolSize = max(c.Engine.HistoryReads, engine.DefaultHistoryReads)
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
		{"Block", int64(c.Block)},
		{"DialTimeout", int64(c.DialTimeout)},
		{"ReadTimeout", int64(c.ReadTimeout)},
		{"WriteTimeout", int64(c.WriteTimeout)},
		{"PoolSize", int64(c.PoolSize)},
		{"HistoryPoolSize", int64(c.HistoryPoolSize)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", f.name))
		}
	}
	if err := c.Engine.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MinRetryBackoff > 0 && c.MaxRetryBackoff > 0 && c.MaxRetryBackoff < c.MinRetryBackoff {
		errs = append(errs, fmt.Errorf("MaxRetryBackoff %s is below MinRetryBackoff %s", c.MaxRetryBackoff, c.MinRetryBackoff))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
