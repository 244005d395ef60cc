package postgres

import (
	"errors"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/core"
)

// ErrInvalidConfig is wrapped by the error Validate (and New) returns for a
// Config it refuses.
var ErrInvalidConfig = errors.New("switchboard/broker/postgres: invalid config")

// Config configures the PostgreSQL broker. Zero values mean the default;
// where a field says so, a negative value disables the bound.
type Config struct {
	// URL locates the database, as pgx reads it:
	// postgres://[user[:pass]@]host[:port]/db[?sslmode=…], or a key=value
	// connection string. The user needs to create tables and functions
	// in Schema (New migrates the schema) or, once migrated, to use them.
	// Required.
	URL string

	// Schema holds the log's tables and functions, and the
	// switchboard_schema_version table. New creates it if missing.
	// Optional. Default: "public".
	Schema string

	// Table is the log's table, and the prefix of its companions:
	// <Table>_head (the epoch and the last position), <Table>_keys (the
	// idempotency keys), the functions <Table>_append and <Table>_trim;
	// the NOTIFY channel is "<Schema>.<Table>". Lower-case letters,
	// digits and '_', at most 40.
	// Optional. Default: "switchboard_log".
	Table string

	// MaxMsgs and MaxAge are the log's retention, shared by every
	// channel: older records are deleted every TrimInterval. Negative
	// keeps records whatever their number or age. MaxMsgs also bounds the
	// engine's resume index (Engine.IndexEntries) and MaxAge its age
	// (Engine.IndexAge), unless those are set.
	// Optional. Default: 100000 records, 24h.
	MaxMsgs int64
	MaxAge  time.Duration

	// TrimInterval is how often this node deletes what retention no
	// longer keeps, and the idempotency keys past their window (when
	// several nodes trim one log at once, one does the work). Negative:
	// this node never trims.
	// Optional. Default: 1s.
	TrimInterval time.Duration

	// PollInterval bounds the reader's wait for a notification: it reads
	// the log at least this often, in case a notification was lost.
	// Optional. Default: 1s.
	PollInterval time.Duration

	// DialTimeout bounds establishing a connection.
	// Optional. Default: 2s.
	DialTimeout time.Duration

	// QueryTimeout bounds one statement: an append, a read, a history
	// range, a trim.
	// Optional. Default: 5s.
	QueryTimeout time.Duration

	// PoolSize is the connection pool of appends and trimming.
	// Optional. Default: 2.
	PoolSize int

	// HistoryPoolSize is the connection pool of history reads and Head
	// (Engine.HistoryReads bounds how many history reads run at once).
	// Optional. Default: Engine.HistoryReads + 2.
	HistoryPoolSize int

	// Engine tunes the log engine (index, history reads, batching,
	// idempotency window, reader backoff): see engine.Config. Its
	// DedupWindow is how long the log itself keeps an idempotency key.
	Engine engine.Config
}

// Defaults applied to zero Config fields.
const (
	DefaultSchema       = "public"
	DefaultTable        = "switchboard_log"
	DefaultMaxMsgs      = 100_000
	DefaultMaxAge       = 24 * time.Hour
	DefaultTrimInterval = time.Second
	DefaultPollInterval = time.Second
	DefaultDialTimeout  = 2 * time.Second
	DefaultQueryTimeout = 5 * time.Second
	DefaultPoolSize     = 2
)

// maxTable leaves room in PostgreSQL's 63-byte identifiers for the
// suffixes of the log's companions.
const maxTable = 40

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// WithDefaults returns c with every zero field set to its default, as
// New applies them.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.MaxMsgs == 0 {
		c.MaxMsgs = DefaultMaxMsgs
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.TrimInterval == 0 {
		c.TrimInterval = DefaultTrimInterval
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.HistoryPoolSize == 0 {
		reads := c.Engine.HistoryReads
		if reads <= 0 {
			reads = engine.DefaultHistoryReads
		}
		c.HistoryPoolSize = reads + 2 // and Head, and Since
	}
	// The index never answers for what the log has dropped.
	if c.Engine.IndexEntries == 0 && c.MaxMsgs > 0 {
		c.Engine.IndexEntries = int(min(c.MaxMsgs, int64(^uint(0)>>1)))
	}
	if c.Engine.IndexAge == 0 && c.MaxAge > 0 && c.MaxAge < engine.DefaultIndexAge {
		c.Engine.IndexAge = c.MaxAge
	}
}

// Validate reports the first field New refuses, as a *core.ConfigError
// wrapping ErrInvalidConfig. Zero values are valid (they mean the
// default), except URL, which is required.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return core.Invalid(ErrInvalidConfig, field, format, args...)
	}
	if c.URL == "" {
		return bad("URL", "required (postgres://user@host:5432/db)")
	}
	if _, err := pgx.ParseConfig(c.URL); err != nil {
		return bad("URL", "%v", err) // pgx hides the password
	}
	if c.Schema != "" && (!identifier.MatchString(c.Schema) || len(c.Schema) > 63-1-maxTable) {
		return bad("Schema", "%q: want lower-case letters, digits and '_', starting with a letter or '_', at most %d", c.Schema, 63-1-maxTable)
	}
	if c.Table != "" && (!identifier.MatchString(c.Table) || len(c.Table) > maxTable) {
		return bad("Table", "%q: want lower-case letters, digits and '_', starting with a letter or '_', at most %d", c.Table, maxTable)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"PollInterval", c.PollInterval},
		{"DialTimeout", c.DialTimeout},
		{"QueryTimeout", c.QueryTimeout},
	} {
		if f.v < 0 {
			return bad(f.name, "%s must not be negative", f.v)
		}
	}
	if c.PoolSize < 0 {
		return bad("PoolSize", "%d must not be negative", c.PoolSize)
	}
	if c.HistoryPoolSize < 0 {
		return bad("HistoryPoolSize", "%d must not be negative", c.HistoryPoolSize)
	}
	return c.Engine.Validate()
}
