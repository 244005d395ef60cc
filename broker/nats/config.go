package nats

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
)

// ErrInvalidConfig is wrapped by the error Validate (and New) returns for a
// Config it refuses, and by ParseURL's errors.
var ErrInvalidConfig = errors.New("switchboard/broker/nats: invalid config")

// Config configures the NATS JetStream broker. Zero values mean the
// default; where a field says so, a negative value disables the bound.
//
// The client settings are chosen deliberately rather than left to
// nats.go's defaults: nats.go pings every 2 minutes (a silently dead
// connection would go unnoticed for up to 6), gives up after 60 reconnect
// attempts, and buffers up to 8 MB of publishes while reconnecting (so a
// publish during an outage would "succeed" into a buffer and be appended
// minutes later, or never). Here the connection is pinged every
// PingInterval, reconnects forever every ReconnectWait (with jitter), and
// buffers nothing: a publish during an outage fails at once with
// ErrUnavailable.
type Config struct {
	// URL locates the NATS servers: nats://[user:pass@]host:4222, several
	// separated by commas (nats://a:4222,nats://b:4222, or
	// nats://a:4222,b:4222); tls:// for TLS. A host without a port gets
	// DefaultPort. The server must run with JetStream (nats-server -js).
	// Required.
	URL string

	// Stream is the one JetStream stream every channel is published to.
	// New creates it if missing, and updates its subjects, limits and
	// duplicate window to this Config if they differ (nodes sharing a
	// stream should agree).
	// Optional. Default: "SWITCHBOARD".
	Stream string

	// Subject is the subject prefix: a message of channel c is published
	// on "<Subject>.<c in unpadded base64url>" and the stream captures
	// "<Subject>.>". No other stream may capture these subjects.
	// Optional. Default: "switchboard".
	Subject string

	// MaxMsgs, MaxAge and MaxBytes are the stream's limits: the resume
	// window shared by every channel (the oldest messages go first).
	// Negative means unlimited. MaxMsgs also bounds the engine's resume
	// index (Engine.IndexEntries) unless that is set.
	// Optional. Default: 100000 messages, 24h, unlimited bytes.
	MaxMsgs  int64
	MaxAge   time.Duration
	MaxBytes int64

	// Storage is the stream's storage when New creates it: "file" or
	// "memory". A memory stream does not survive a server restart; the
	// driver then recreates it under a new epoch. An existing stream keeps
	// its storage.
	// Optional. Default: "file".
	Storage string

	// Replicas is the stream's replica count (1 on a single server; 3 or
	// 5 in a cluster).
	// Optional. Default: 1.
	Replicas int

	// ConnectTimeout bounds establishing a connection to one server.
	// Optional. Default: 2s.
	ConnectTimeout time.Duration

	// RequestTimeout bounds one JetStream request: a publish's ack, a
	// stream lookup, a consumer creation, a history fetch.
	// Optional. Default: 5s.
	RequestTimeout time.Duration

	// ReconnectWait is the wait between reconnect attempts (plus up to
	// 100ms of jitter).
	// Optional. Default: 500ms.
	ReconnectWait time.Duration

	// MaxReconnects is how many reconnect attempts are made before the
	// connection is given up for good (the broker then stays unavailable
	// until it is replaced). Negative reconnects forever.
	// Optional. Default: -1 (forever).
	MaxReconnects int

	// PingInterval is how often the client pings the server; two pings
	// without a reply close the connection and start reconnecting, so a
	// silently dead server is noticed within about 3 intervals.
	// Optional. Default: 5s.
	PingInterval time.Duration

	// Heartbeat is the idle heartbeat the reader's pull requests ask the
	// server for; two missed make the reader recreate its consumer from
	// the last sequence it read. From 500ms to 30s.
	// Optional. Default: 1s.
	Heartbeat time.Duration

	// Name is the connection name the server shows (e.g. in /connz),
	// suffixed with each connection's role: "switchboard publish",
	// "switchboard read", "switchboard history".
	// Optional. Default: "switchboard".
	Name string

	// Engine tunes the log engine (index, history reads, batching,
	// idempotency window, reader backoff): see engine.Config. Its
	// DedupWindow is also the stream's duplicate window (capped at
	// MaxAge, as JetStream requires), in which a keyed publish is refused
	// by the stream itself.
	Engine engine.Config
}

// Defaults applied to zero Config fields.
const (
	DefaultStream         = "SWITCHBOARD"
	DefaultSubject        = "switchboard"
	DefaultMaxMsgs        = 100_000
	DefaultMaxAge         = 24 * time.Hour
	DefaultStorage        = "file"
	DefaultReplicas       = 1
	DefaultConnectTimeout = 2 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultReconnectWait  = 500 * time.Millisecond
	DefaultMaxReconnects  = -1
	DefaultPingInterval   = 5 * time.Second
	DefaultHeartbeat      = time.Second
	DefaultName           = "switchboard"
)

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.MaxMsgs == 0 {
		c.MaxMsgs = DefaultMaxMsgs
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = -1
	}
	if c.Storage == "" {
		c.Storage = DefaultStorage
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.MaxReconnects == 0 {
		c.MaxReconnects = DefaultMaxReconnects
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Engine.DedupWindow == 0 {
		c.Engine.DedupWindow = broker.DefaultDedupWindow // the stream's window and the engine's agree
	}
	if c.Engine.IndexEntries == 0 && c.MaxMsgs > 0 {
		c.Engine.IndexEntries = int(min(c.MaxMsgs, math.MaxInt)) // never beyond the stream's own window
	}
}

// Validate reports a Config that New would refuse; the error wraps
// ErrInvalidConfig. Zero values are valid (they mean the default), except
// URL, which is required.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("URL is required (nats://host:4222)"))
	} else if _, err := ParseURL(c.URL); err != nil {
		errs = append(errs, err)
	}
	if c.Stream != "" {
		if err := checkStreamName(c.Stream); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Subject != "" {
		if err := checkSubject(c.Subject); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.Storage {
	case "", "file", "memory":
	default:
		errs = append(errs, fmt.Errorf("storage %q: want \"file\" or \"memory\"", c.Storage))
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: want 1 to 5", c.Replicas))
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"ConnectTimeout", c.ConnectTimeout},
		{"RequestTimeout", c.RequestTimeout},
		{"ReconnectWait", c.ReconnectWait},
		{"PingInterval", c.PingInterval},
		{"Heartbeat", c.Heartbeat},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", f.name))
		}
	}
	if c.Heartbeat > 0 && (c.Heartbeat < 500*time.Millisecond || c.Heartbeat > 30*time.Second) {
		errs = append(errs, fmt.Errorf("heartbeat %s: want 500ms to 30s (JetStream's range)", c.Heartbeat))
	}
	if c.MaxAge > 0 && c.MaxAge < time.Second {
		errs = append(errs, fmt.Errorf("max age %s is below 1s", c.MaxAge))
	}
	if err := c.Engine.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// checkStreamName applies JetStream's rules for stream names (kept to a
// portable subset: they become file names on the server).
func checkStreamName(s string) error {
	if len(s) > 255 {
		return fmt.Errorf("stream %q is too long", s)
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("stream %q is not a valid stream name (letters, digits, '_', '-')", s)
		}
	}
	return nil
}

// checkSubject accepts a literal subject: dot-separated non-empty tokens
// of printable characters other than the wildcards.
func checkSubject(s string) error {
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return fmt.Errorf("subject %q has an empty token", s)
		}
		for _, c := range []byte(tok) {
			if c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return fmt.Errorf("subject %q: want a literal subject (printable ASCII, no spaces or wildcards)", s)
			}
		}
	}
	return nil
}

// DefaultPort is the port ParseURL assumes for a server given without one.
const DefaultPort = "4222"

// ParseURL checks a broker URL, nats://[user:pass@]host:4222 (tls:// for
// TLS), or several separated by commas, and returns the server URLs with
// DefaultPort filled in. A bare host:port after the first URL inherits its
// scheme. Paths and query options are refused: this driver does not read
// them. Errors wrap ErrInvalidConfig and never echo a password.
func ParseURL(raw string) ([]string, error) {
	bad := func(format string, args ...any) ([]string, error) {
		return nil, fmt.Errorf("%w: broker URL %q: %s", ErrInvalidConfig, redact(raw), fmt.Sprintf(format, args...))
	}
	if raw == "" {
		return bad("want nats://host:4222")
	}
	var out []string
	scheme := ""
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return bad("empty server address")
		}
		if !strings.Contains(part, "://") {
			if scheme == "" {
				return bad("want nats://host:4222")
			}
			part = scheme + "://" + part
		}
		u, err := url.Parse(part)
		if err != nil {
			return bad("%v", errors.Unwrap(err))
		}
		switch u.Scheme {
		case "nats", "tls":
		default:
			return bad("scheme %q: want nats:// or tls://", u.Scheme)
		}
		scheme = u.Scheme
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return bad("paths and options are not supported")
		}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return bad("missing host")
		}
		if port == "" {
			port = DefaultPort
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("bad port %q", port)
		}
		u.Host = net.JoinHostPort(host, port)
		u.Path = ""
		out = append(out, u.String())
	}
	return out, nil
}

// redact hides passwords and tokens in a broker URL for messages.
func redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("xxxxx")
			parts[i] = u.String()
		} else if at := strings.LastIndexByte(p, '@'); at >= 0 {
			parts[i] = "xxxxx" + p[at:]
		}
	}
	return strings.Join(parts, ",")
}

// hosts lists the servers' host:port, for messages.
func hosts(servers []string) string {
	hs := make([]string, 0, len(servers))
	for _, s := range servers {
		if u, err := url.Parse(s); err == nil {
			hs = append(hs, u.Host)
		}
	}
	return strings.Join(hs, ",")
}
