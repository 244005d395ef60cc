package kafka

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/broker/engine"
)

// ErrInvalidConfig is wrapped by the error Validate (and New) returns for a
// Config it refuses, and by ParseURL's errors.
var ErrInvalidConfig = errors.New("switchboard/broker/kafka: invalid config")

// Config configures the Kafka broker. Zero values mean the default; where
// a field says so, a negative value disables the bound or defers to the
// Kafka cluster's own default.
//
// The client settings are chosen deliberately rather than left to
// franz-go's defaults, which dial for up to 10s, retry a request for up
// to 30s and never give up on a record, so an outage would surface late.
// Here one request is bounded by RequestTimeout, retries are few and
// short, and produces are idempotent, so a retried produce never appends
// a message twice.
type Config struct {
	// Brokers are the seed brokers, host:port each. ParseURL reads them
	// from a kafka://host:9092,host2:9092 URL.
	// Required.
	Brokers []string

	// Topic is the one topic every channel is published to. The driver
	// creates it (one partition) if it does not exist.
	// Optional. Default: "switchboard".
	Topic string

	// Retention is the topic's retention.ms when the driver creates the
	// topic: the resume window shared by every channel. An existing topic
	// keeps its own setting. Negative leaves it to the cluster's default
	// (log.retention.hours, 7 days unless configured).
	// Optional. Default: 24h.
	Retention time.Duration

	// ReplicationFactor is the topic's replication factor when the driver
	// creates it. Negative leaves it to the cluster's
	// default.replication.factor.
	// Optional. Default: 1.
	ReplicationFactor int

	// DialTimeout bounds establishing a connection to one broker.
	// Optional. Default: 2s.
	DialTimeout time.Duration

	// RequestTimeout bounds one request's round trip (on top of a fetch's
	// long poll) and the retries of a metadata or offsets request; a
	// message not produced within it fails, and one publish (a produce
	// and its acknowledgement) gives up after DialTimeout +
	// RequestTimeout. The reader going RequestTimeout without a completed
	// fetch makes Healthy report ErrUnavailable.
	// Optional. Default: 5s.
	RequestTimeout time.Duration

	// PublishRetries is how often the producer retries a failed produce
	// request before the publish fails. The producer is idempotent, so a
	// retry after a lost reply does not append the message twice.
	// Negative disables retries.
	// Optional. Default: 3.
	PublishRetries int

	// RetryBackoff is the clients' first wait before retrying a failed
	// request (a produce, metadata, a fetch); it doubles on each further
	// failure up to MaxRetryBackoff. The engine's reader waits between
	// failed reads on its own (Engine.ReconnectBackoff).
	// Optional. Default: 100ms, doubling up to 2s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration

	// ClientID is the client.id the broker's clients present to Kafka.
	// Optional. Default: "switchboard".
	ClientID string

	// Engine tunes the log engine (index, history reads, batching,
	// idempotency window, reader backoff): see engine.Config. Its
	// IndexAge defaults to Retention when that is shorter than the
	// engine's default, so the index never answers for a record the
	// topic (created by New) has already dropped.
	Engine engine.Config
}

// Defaults applied to zero Config fields.
const (
	DefaultTopic             = "switchboard"
	DefaultRetention         = 24 * time.Hour
	DefaultReplicationFactor = 1
	DefaultDialTimeout       = 2 * time.Second
	DefaultRequestTimeout    = 5 * time.Second
	DefaultPublishRetries    = 3
	DefaultRetryBackoff      = 100 * time.Millisecond
	DefaultMaxRetryBackoff   = 2 * time.Second
	DefaultClientID          = "switchboard"
)

// fetchMaxWait is the reader's fetch long poll: the most a fetch waits
// for new records, so an idle healthy reader completes a fetch at least
// this often.
const fetchMaxWait = 500 * time.Millisecond

// readBlock is how long one Read waits for records before it returns an
// empty batch (the engine calls it again at once).
const readBlock = time.Second

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.PublishRetries == 0 {
		c.PublishRetries = DefaultPublishRetries
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = max(DefaultMaxRetryBackoff, c.RetryBackoff)
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Engine.IndexAge == 0 && c.Retention > 0 && c.Retention < engine.DefaultIndexAge {
		c.Engine.IndexAge = c.Retention // never beyond the topic's own window
	}
}

// Validate reports a Config that New would refuse; the error wraps
// ErrInvalidConfig. Zero values are valid (they mean the default), except
// Brokers, which is required.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers: set Brokers (host:port, or a kafka://host:9092,host2:9092 URL through ParseURL)"))
	}
	for _, b := range c.Brokers {
		if err := checkHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("brokers: %w", err))
		}
	}
	if c.Topic != "" {
		if err := checkTopic(c.Topic); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ReplicationFactor > 1<<15-1 {
		errs = append(errs, fmt.Errorf("ReplicationFactor %d is too large", c.ReplicationFactor))
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout},
		{"RequestTimeout", c.RequestTimeout},
		{"RetryBackoff", c.RetryBackoff},
		{"MaxRetryBackoff", c.MaxRetryBackoff},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", f.name))
		}
	}
	if c.Retention > 0 && c.Retention < time.Millisecond {
		errs = append(errs, fmt.Errorf("retention %s is below Kafka's 1ms resolution", c.Retention))
	}
	if c.RetryBackoff > 0 && c.MaxRetryBackoff > 0 && c.MaxRetryBackoff < c.RetryBackoff {
		errs = append(errs, fmt.Errorf("MaxRetryBackoff %s is below RetryBackoff %s", c.MaxRetryBackoff, c.RetryBackoff))
	}
	if err := c.Engine.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// checkTopic applies Kafka's rules for topic names.
func checkTopic(t string) error {
	if t == "." || t == ".." || len(t) > 249 {
		return fmt.Errorf("topic %q is not a valid Kafka topic name", t)
	}
	for _, c := range []byte(t) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic %q is not a valid Kafka topic name (letters, digits, '.', '_', '-')", t)
		}
	}
	return nil
}

func checkHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q: want host:port: %w", hp, err)
	}
	if host == "" {
		return fmt.Errorf("%q: missing host", hp)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: bad port %q", hp, port)
	}
	return nil
}

// DefaultPort is the port ParseURL assumes for a broker given without one.
const DefaultPort = "9092"

// ParseURL reads the seed brokers from a broker URL of the form
// kafka://host:9092,host2:9092 (a host without a port gets DefaultPort;
// IPv6 addresses in brackets). It refuses other schemes, credentials,
// paths and query options, which this driver does not support, with an
// error wrapping ErrInvalidConfig.
func ParseURL(raw string) ([]string, error) {
	bad := func(format string, args ...any) ([]string, error) {
		return nil, fmt.Errorf("%w: broker URL %q: %s", ErrInvalidConfig, raw, fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(raw, "kafka://")
	if !ok {
		return bad("want kafka://host:9092[,host2:9092…]")
	}
	if rest == "" || rest == "/" {
		return bad("no broker address")
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		if rest[i:] != "/" {
			return bad("paths and options (%q) are not supported", rest[i:])
		}
		rest = rest[:i]
	}
	if strings.Contains(rest, "@") {
		return bad("credentials are not supported")
	}
	var brokers []string
	for _, hp := range strings.Split(rest, ",") {
		if hp == "" {
			return bad("empty broker address")
		}
		if _, _, err := net.SplitHostPort(hp); err != nil {
			hp = net.JoinHostPort(strings.Trim(hp, "[]"), DefaultPort)
		}
		if err := checkHostPort(hp); err != nil {
			return bad("%v", err)
		}
		brokers = append(brokers, hp)
	}
	return brokers, nil
}
