package postgres

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/core"
)

// OutboxConfig configures an Outbox: the database whose backends publish
// with switchboard_publish, and how this edge forwards what they commit.
// Zero values mean the default.
type OutboxConfig struct {
	// URL locates the database, as Config.URL. It may be the log's (with
	// --broker postgres) or any other: the outbox works whatever the
	// broker. The user needs to create tables and functions in Schema
	// (the outbox is migrated at start) or, once migrated, to use them.
	// Required.
	URL string

	// Schema holds switchboard_outbox, its companions, the functions
	// switchboard_publish and switchboard_publish_user, and the
	// switchboard_schema_version table.
	// Optional. Default: "public".
	Schema string

	// BatchSize bounds the rows read (and deleted) at a time.
	// Optional. Default: 100.
	BatchSize int

	// Lanes bounds the channels (rooms, users' direct channels) whose
	// rows are published at once. Rows of one channel are published one
	// after the other, in outbox order.
	// Optional. Default: 16.
	Lanes int

	// PollInterval bounds the wait for a notification: the forwarding
	// edge reads the outbox at least this often, in case one was lost.
	// Optional. Default: 1s.
	PollInterval time.Duration

	// TakeoverInterval is how often an edge that does not forward tries
	// to take over (one edge forwards at a time): how long rows may wait
	// after the forwarding edge died, beyond PostgreSQL noticing it.
	// Optional. Default: 500ms.
	TakeoverInterval time.Duration

	// PublishTimeout bounds the publication of one row.
	// Optional. Default: 5s.
	PublishTimeout time.Duration

	// DialTimeout bounds establishing the connection.
	// Optional. Default: 2s.
	DialTimeout time.Duration

	// QueryTimeout bounds one statement.
	// Optional. Default: 5s.
	QueryTimeout time.Duration

	// RetryBackoff is the first wait after a failure (the database
	// unreachable, a publication not accepted), doubling up to
	// MaxRetryBackoff.
	// Optional. Default: 100ms and 2s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
}

// Defaults applied to zero OutboxConfig fields.
const (
	DefaultOutboxBatchSize        = 100
	DefaultOutboxLanes            = 16
	DefaultOutboxTakeoverInterval = 500 * time.Millisecond
	DefaultOutboxPublishTimeout   = 5 * time.Second
	DefaultOutboxRetryBackoff     = 100 * time.Millisecond
	DefaultOutboxMaxRetryBackoff  = 2 * time.Second
)

// maxOutboxSchema leaves room for the NOTIFY channel,
// "<Schema>.switchboard_outbox", in PostgreSQL's 63 bytes.
const maxOutboxSchema = 63 - len(".switchboard_outbox")

// WithDefaults returns c with every zero field set to its default, as
// NewOutbox applies them.
func (c OutboxConfig) WithDefaults() OutboxConfig {
	c.setDefaults()
	return c
}

func (c *OutboxConfig) setDefaults() {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultOutboxBatchSize
	}
	if c.Lanes == 0 {
		c.Lanes = DefaultOutboxLanes
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.TakeoverInterval == 0 {
		c.TakeoverInterval = DefaultOutboxTakeoverInterval
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultOutboxPublishTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultOutboxRetryBackoff
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = max(DefaultOutboxMaxRetryBackoff, c.RetryBackoff)
	}
}

// Validate reports the first field NewOutbox refuses, as a
// *core.ConfigError wrapping ErrInvalidConfig. Zero values are valid
// (they mean the default), except URL, which is required.
func (c OutboxConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return core.Invalid(ErrInvalidConfig, field, format, args...)
	}
	if c.URL == "" {
		return bad("URL", "required (postgres://user@host:5432/db)")
	}
	if _, err := pgx.ParseConfig(c.URL); err != nil {
		return bad("URL", "%v", err) // pgx hides the password
	}
	if c.Schema != "" && (!identifier.MatchString(c.Schema) || len(c.Schema) > maxOutboxSchema) {
		return bad("Schema", "%q: want lower-case letters, digits and '_', starting with a letter or '_', at most %d", c.Schema, maxOutboxSchema)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"BatchSize", c.BatchSize}, {"Lanes", c.Lanes}} {
		if f.v < 0 {
			return bad(f.name, "%d must not be negative", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"PollInterval", c.PollInterval},
		{"TakeoverInterval", c.TakeoverInterval},
		{"PublishTimeout", c.PublishTimeout},
		{"DialTimeout", c.DialTimeout},
		{"QueryTimeout", c.QueryTimeout},
		{"RetryBackoff", c.RetryBackoff},
		{"MaxRetryBackoff", c.MaxRetryBackoff},
	} {
		if f.v < 0 {
			return bad(f.name, "%s must not be negative", f.v)
		}
	}
	return nil
}
