package engine

import (
	"errors"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/core"
)

// ErrInvalidConfig is wrapped by the error Validate returns.
var ErrInvalidConfig = errors.New("switchboard/broker/engine: invalid config")

// Config tunes the engine; the same for every driver. Zero values mean
// the default.
type Config struct {
	// IndexBytes bounds the in-memory index of the recent log that
	// resumes are served from (payload bytes plus a per-entry overhead);
	// the oldest entries go first. Resumes from positions older than the
	// index read the log itself. Negative disables the index.
	// Optional. Default: 64 MiB.
	IndexBytes int64

	// IndexEntries bounds the entries in the index. A driver whose log
	// keeps a number of messages sets it to that number, so the index
	// never answers for positions the log has dropped: a resume gets the
	// same answer on every node. Zero: no bound but IndexBytes.
	// Optional.
	IndexEntries int

	// IndexAge bounds how long an entry stays in the index.
	// Optional. Default: 10m.
	IndexAge time.Duration

	// HistoryReads bounds the history reads from the log in flight on
	// this node (resumes older than the index, the history API). More
	// wait their turn, within their caller's deadline.
	// Optional. Default: 4.
	HistoryReads int

	// ReadCount is the most records one Read of the reader returns.
	// Optional. Default: 512.
	ReadCount int

	// MaxBatch is the most messages one Append carries (group commit:
	// concurrent publishes on a node share one).
	// Optional. Default: 256.
	MaxBatch int

	// DedupWindow is how long an idempotency key is remembered: a
	// publish with a key seen within the window is not delivered again
	// (its caller gets the first one's id). Keys are kept in the log
	// where the driver can (Redis, JetStream) and in every node's reader.
	// Optional. Default: broker.DefaultDedupWindow (5m).
	DedupWindow time.Duration

	// DedupKeys bounds the keys a node's reader remembers. Above it the
	// oldest are forgotten early (the window shrinks, with a warning):
	// memory stays bounded and a keyed publish is never refused.
	// Optional. Default: 500000.
	DedupKeys int

	// ReconnectBackoff is the reader's first wait after a failed Read; it
	// doubles up to MaxReconnectBackoff and resets after a good one.
	// Optional. Default: 100ms, doubling up to 5s.
	ReconnectBackoff    time.Duration
	MaxReconnectBackoff time.Duration
}

// Defaults.
const (
	DefaultIndexBytes   = 64 << 20
	DefaultIndexAge     = 10 * time.Minute
	DefaultHistoryReads = 4
	DefaultReadCount    = 512
	DefaultMaxBatch     = 256
)

// WithDefaults returns c with every zero field set to its default, as
// the engine applies them.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// Validate reports the first setting it refuses, as a *core.ConfigError
// wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	negative := func(field string, v any) error {
		return core.Invalid(ErrInvalidConfig, field, "%v must not be negative", v)
	}
	switch {
	case c.IndexAge < 0:
		return negative("IndexAge", c.IndexAge)
	case c.IndexEntries < 0:
		return negative("IndexEntries", c.IndexEntries)
	case c.HistoryReads < 0:
		return negative("HistoryReads", c.HistoryReads)
	case c.ReadCount < 0:
		return negative("ReadCount", c.ReadCount)
	case c.MaxBatch < 0:
		return negative("MaxBatch", c.MaxBatch)
	case c.DedupWindow < 0:
		return negative("DedupWindow", c.DedupWindow)
	case c.DedupKeys < 0:
		return negative("DedupKeys", c.DedupKeys)
	case c.ReconnectBackoff < 0:
		return negative("ReconnectBackoff", c.ReconnectBackoff)
	case c.MaxReconnectBackoff < 0:
		return negative("MaxReconnectBackoff", c.MaxReconnectBackoff)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.IndexBytes == 0 {
		c.IndexBytes = DefaultIndexBytes
	}
	if c.IndexAge == 0 {
		c.IndexAge = DefaultIndexAge
	}
	if c.HistoryReads == 0 {
		c.HistoryReads = DefaultHistoryReads
	}
	if c.ReadCount == 0 {
		c.ReadCount = DefaultReadCount
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = broker.DefaultDedupWindow
	}
	if c.DedupKeys == 0 {
		c.DedupKeys = broker.DefaultDedupKeys
	}
	if c.ReconnectBackoff == 0 {
		c.ReconnectBackoff = 100 * time.Millisecond
	}
	if c.MaxReconnectBackoff == 0 {
		c.MaxReconnectBackoff = 5 * time.Second
	}
	c.MaxReconnectBackoff = max(c.MaxReconnectBackoff, c.ReconnectBackoff)
}
