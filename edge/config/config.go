package config

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/adapters/websocket"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/broker/postgres"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/auth"
	"github.com/switchboard-dev/switchboard/edge/presence"
	"github.com/switchboard-dev/switchboard/edge/webhook"
)

// ErrHelp is returned by Load when -h or --help was given; the usage has
// been written to the help writer.
var ErrHelp = flag.ErrHelp

// Config is the edge's configuration: the edge's own settings, and the
// configuration of each package it wires, nested, each defined, defaulted
// and validated by the package that owns it. A flag writes into the
// field it names; Load validates each package's part with that package's
// Validate and restates a refusal with the flag.
type Config struct {
	Addr      string
	LogFormat string
	LogLevel  string
	// Transports are the client transports served: websocket (/ws), sse
	// (/sse) and longpoll (/poll). POST /send is always served.
	Transports []string
	// AllowedOrigins are the browser origins every transport accepts
	// (cors.Allowed's forms).
	AllowedOrigins []string
	// ProxyHeader names the header carrying the client IP (e.g.
	// X-Forwarded-For), trusted only from TrustedProxies.
	ProxyHeader    string
	TrustedProxies []string
	TLSCert        string
	TLSKey         string
	// TLS is built from TLSCert and TLSKey (nil: plain HTTP).
	TLS *tls.Config
	// WriteTimeout bounds each write to a client (the WebSocket and SSE
	// adapters' WriteTimeout).
	WriteTimeout    time.Duration
	ShutdownTimeout time.Duration

	// AdminAddr, when set, serves /stats, /metrics and /healthz on a
	// separate listener instead of the public one, without a token.
	AdminAddr string
	// AdminToken (at least 16 bytes) protects /dashboard and, in
	// production mode, /stats and /metrics on the public listener (Bearer,
	// or the password of Basic authentication). Without it, those are
	// served only on AdminAddr; development mode leaves /stats and
	// /metrics open.
	AdminToken string
	// Dashboard serves the live /dashboard page next to /stats.
	Dashboard bool
	// APIKeys enable the server API (/api/v1) when non-empty.
	APIKeys []string

	// Tracer reports spans (publish, delivery, webhooks). Not a flag: the
	// binary sets it from the OTEL_* environment (edge/tracing). Default:
	// nil, no tracing.
	Tracer core.Tracer

	// Node is the core node's configuration. The server adds what is not
	// a setting: the authenticator, metrics and tracer hooks.
	Node core.Config
	// Broker chooses and configures the log.
	Broker Broker
	// Outbox is the database the edge installs switchboard_publish into
	// and forwards from (transactional publishing, docs/brokers.md); an
	// empty URL turns it off. Default: the broker's URL with --broker
	// postgres, off otherwise.
	Outbox postgres.OutboxConfig
	// Auth is the JWT configuration; with a key source the edge runs in
	// production mode (Production).
	Auth auth.Config
	// Webhooks configures the upstream routes; off without a URL.
	Webhooks webhook.Config
	// Presence configures the presence tracker. The server sets Local for
	// the memory broker.
	Presence presence.Config
	// WebSocket configures /ws; the server sets Origins and WriteTimeout
	// from AllowedOrigins and WriteTimeout, which other transports share,
	// and gives its compression settings to /poll too.
	WebSocket websocket.Config
}

// Broker chooses the log and carries the settings of its drivers that
// the edge exposes.
type Broker struct {
	// Name is memory, redis, kafka, nats or postgres.
	Name string
	// URL locates the broker (by default on 127.0.0.1); empty for memory.
	URL string
	// Wait keeps the edge up while the broker is unreachable at start.
	Wait bool
	// RetentionMessages bounds the log: redis.Config.MaxLen,
	// nats.Config.MaxMsgs, postgres.Config.MaxMsgs. Negative: unbounded.
	RetentionMessages int64
	// RetentionAge bounds the log by age: kafka.Config.Retention,
	// nats.Config.MaxAge, postgres.Config.MaxAge. Negative: the broker's
	// default (for postgres: unbounded).
	RetentionAge time.Duration
	// Memory configures the memory broker (its DedupWindow is
	// Engine.DedupWindow).
	Memory memory.Config
	// Engine configures the log engine of redis, kafka, nats and postgres.
	Engine engine.Config
}

// Production reports whether tokens are required: a JWT key source is
// configured. Otherwise the edge runs in development mode (?user= is
// trusted).
func (c Config) Production() bool {
	return c.Auth.HasKeys()
}

// Logger returns the edge's logger: log/slog on w, in LogFormat (text or
// json), dropping records below LogLevel. Load has validated both; an
// unknown level logs at info.
func (c Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Transport names, as the browser client spells them.
var transportNames = []string{"websocket", "sse", "longpoll"}

// Serves reports whether transport t (websocket, sse, longpoll) is on.
func (c Config) Serves(t string) bool {
	for _, x := range c.Transports {
		if x == t {
			return true
		}
	}
	return false
}

// Default returns the configuration with every default applied.
func Default() Config {
	c, err := Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		panic(err)
	}
	return c
}

// Load parses args (without the program name) over the environment read
// by getenv. Usage for --help goes to help. extra, if given, defines an
// application's own flags on the same set (examples/custom-adapter's
// --tcp-addr): they are read from the environment and explained the same
// way, and listed by --help.
func Load(args []string, getenv func(string) string, help io.Writer, extra ...func(*flag.FlagSet)) (Config, error) {
	var c Config
	fs := newFlagSet(&c)
	for _, define := range extra {
		define(fs.FlagSet)
	}

	// Every value explains its own parse errors, naming flag and variable.
	var valueErr error
	fs.VisitAll(func(f *flag.Flag) {
		g, _ := f.Value.(flag.Getter)
		f.Value = &explained{Value: f.Value, name: f.Name, zeroIsDef: g != nil && nonZeroNumber(g.Get()), err: &valueErr}
	})
	// The environment first, so flags override it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			envErr = fs.Set(f.Name, v)
		}
	})
	if envErr != nil {
		return Config{}, valueErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs.FlagSet, help)
			return Config{}, ErrHelp
		}
		if valueErr != nil {
			return Config{}, valueErr
		}
		return Config{}, fmt.Errorf("%s (see --help)", strings.TrimPrefix(err.Error(), "flag: "))
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (settings are flags, see --help)", fs.Arg(0))
	}
	if c.Broker.URL == "" {
		c.Broker.URL = defaultBrokerURL[c.Broker.Name]
	}
	switch c.Outbox.URL {
	case "":
		if c.Broker.Name == "postgres" {
			c.Outbox.URL = c.Broker.URL
		}
	case OutboxOff:
		c.Outbox.URL = ""
	}
	if len(c.AllowedOrigins) == 0 {
		// Development mode trusts everyone anyway; with JWT the default
		// makes cross-site WebSocket hijacking impossible.
		c.AllowedOrigins = []string{"*"}
		if c.Production() {
			c.AllowedOrigins = []string{"self"}
		}
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	if err := c.validatePackages(); err != nil {
		return Config{}, err
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return Config{}, fmt.Errorf("invalid --tls-cert/--tls-key (%s, %s): %v", EnvName("tls-cert"), EnvName("tls-key"), err)
		}
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	// The key files are read here, so a bad one stops the edge before it
	// opens a listener; a JWKS URL is only fetched by the server.
	if c.Production() {
		if err := c.Auth.CheckFiles(); err != nil {
			return Config{}, Restate(err)
		}
	}
	return c, nil
}

// validate checks the edge's own settings.
func (c Config) validate() error {
	bad := func(flag, format string, args ...any) error {
		return fmt.Errorf("invalid --%s (%s): %s", flag, EnvName(flag), fmt.Sprintf(format, args...))
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && o != "self" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return bad("allowed-origins", "entry %q: use an origin such as https://app.example.com, a glob such as https://*.example.com, self or *", o)
		}
	}
	for _, t := range c.Transports {
		if !slices.Contains(transportNames, t) {
			return bad("transports", "unknown transport %q; use websocket, sse and/or longpoll", t)
		}
	}
	for _, p := range c.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				return bad("trusted-proxies", "entry %q: use IPs or CIDRs such as 10.0.0.0/8", p)
			}
		}
	}
	for _, k := range c.APIKeys {
		if len(k) < 16 {
			return bad("api-keys", "a key is shorter than 16 bytes; use long random keys")
		}
	}
	switch {
	case c.Addr == "":
		return bad("addr", "empty; use host:port such as :8080")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return bad("log-format", "%q; use text or json", c.LogFormat)
	case !validLevel(c.LogLevel):
		return bad("log-level", "%q; use debug, info, warn or error", c.LogLevel)
	case len(c.Transports) == 0:
		return bad("transports", "empty; serve at least one of websocket, sse, longpoll")
	case c.ProxyHeader != "" && len(c.TrustedProxies) == 0:
		return bad("proxy-header", "set --trusted-proxies too, or anyone could forge the client IP")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return fmt.Errorf("invalid --tls-cert/--tls-key (%s, %s): set both or neither", EnvName("tls-cert"), EnvName("tls-key"))
	case c.WriteTimeout < 0:
		return bad("write-timeout", "must be positive")
	case c.ShutdownTimeout < 0:
		return bad("shutdown-timeout", "must be positive")
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		return bad("admin-token", "shorter than 16 bytes; use a long random token")
	case c.Auth.Anonymous != nil && !c.Production():
		return fmt.Errorf("invalid --anon-subscribe/--anon-publish (%s): they apply only with JWT (--jwt-secret, --jwt-public-key, --jwks-url or --jwks-file); development mode allows everything", EnvName("anon-subscribe"))
	case defaultBrokerURL[c.Broker.Name] == "" && c.Broker.Name != "memory":
		return bad("broker", "unknown broker %q; available: memory, redis, kafka, nats, postgres", c.Broker.Name)
	case c.Broker.Name == "memory" && c.Broker.URL != "":
		return bad("broker-url", "the memory broker takes no URL; set --broker redis to use one")
	}
	if err := checkBrokerURL(c.Broker.Name, c.Broker.URL); err != nil {
		return fmt.Errorf("invalid --broker-url (%s) %q: %s", EnvName("broker-url"), c.Broker.URL, err)
	}
	if c.Outbox.URL != "" {
		if err := checkBrokerURL("postgres", c.Outbox.URL); err != nil {
			shown := ""
			if u, perr := url.Parse(c.Outbox.URL); perr == nil {
				shown = fmt.Sprintf(" %q", u.Redacted())
			}
			return fmt.Errorf("invalid --outbox-url (%s)%s: %s, or %s", EnvName("outbox-url"), shown, err, OutboxOff)
		}
	}
	return nil
}

// OutboxOff, as --outbox-url, turns the outbox off (with --broker
// postgres, whose URL it defaults to).
const OutboxOff = "off"

// validatePackages runs each package's Validate on its part, with its
// defaults applied as it will apply them, and restates a refusal with
// the flag.
func (c Config) validatePackages() error {
	checks := []func() error{
		c.Node.WithDefaults().Validate,
		c.Broker.Memory.WithDefaults().Validate,
		c.Broker.Engine.WithDefaults().Validate,
		c.Presence.WithDefaults().Validate,
		c.Webhooks.WithDefaults().Validate,
		c.WebSocket.Validate,
	}
	if c.Outbox.URL != "" {
		checks = append(checks, c.Outbox.WithDefaults().Validate)
	}
	if c.Production() {
		checks = append(checks, c.Auth.WithDefaults().Validate)
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return Restate(err)
		}
	}
	return nil
}

// Restate restates a package's refusal of a setting (a
// *core.ConfigError, or an *auth.SourceError about a key source) as the
// edge's: one line naming the flag, its environment variable and what to
// fix. The result still matches what err matches (errors.Is, errors.As).
// Other errors, and fields no flag sets, are returned as they are.
func Restate(err error) error {
	var ce *core.ConfigError
	var se *auth.SourceError
	switch {
	case errors.As(err, &se):
		if name, ok := fieldFlags()["Auth."+se.Field]; ok {
			return restated{fmt.Sprintf("invalid --%s (%s) %q: %v", name, EnvName(name), se.Value, se.Err), err}
		}
	case errors.As(err, &ce):
		for path, name := range fieldFlags() {
			if strings.HasSuffix(path, "."+ce.Field) && sectionOf(ce.Err) == strings.TrimSuffix(path, "."+ce.Field) {
				return restated{fmt.Sprintf("invalid --%s (%s): %s", name, EnvName(name), ce.Problem), err}
			}
		}
	}
	return err
}

// sectionOf is the Config path of the package whose sentinel err is.
func sectionOf(err error) string {
	switch err {
	case core.ErrInvalidConfig:
		return "Node"
	case memory.ErrInvalidConfig:
		return "Broker.Memory"
	case engine.ErrInvalidConfig:
		return "Broker.Engine"
	case presence.ErrInvalidConfig:
		return "Presence"
	case webhook.ErrInvalidConfig:
		return "Webhooks"
	case auth.ErrInvalidConfig:
		return "Auth"
	case websocket.ErrInvalidConfig:
		return "WebSocket"
	case postgres.ErrInvalidConfig:
		return "Outbox" // the broker's Config is built by the server, not nested
	}
	return ""
}

// restated is an error with a new message for the error it wraps.
type restated struct {
	msg string
	err error
}

func (e restated) Error() string { return e.msg }
func (e restated) Unwrap() error { return e.err }

var defaultBrokerURL = map[string]string{
	"redis":    "redis://127.0.0.1:6379/0",
	"kafka":    "kafka://127.0.0.1:9092",
	"nats":     "nats://127.0.0.1:4222",
	"postgres": "postgres://postgres@127.0.0.1:5432/postgres",
}

// checkBrokerURL catches a malformed URL before any connection attempt.
func checkBrokerURL(broker, raw string) error {
	if broker == "memory" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL; use %s", defaultBrokerURL[broker])
	}
	if broker == "kafka" {
		if u.Scheme != "kafka" || u.Host == "" {
			return errors.New("use kafka://host:9092[,host2:9092]")
		}
		return nil
	}
	if broker == "postgres" {
		if (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			return errors.New("use postgres://[user[:pass]@]host:5432/db[?sslmode=…]")
		}
		return nil
	}
	if broker == "nats" {
		if (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return errors.New("use nats://host:4222 (or tls://host:4222)")
		}
		return nil
	}
	switch {
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return fmt.Errorf("scheme %q; use redis:// or rediss://", u.Scheme)
	case u.Host == "":
		return errors.New("no host; use redis://host:port/db")
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if _, err := strconv.Atoi(p); err != nil {
			return fmt.Errorf("database %q is not a number", p)
		}
	}
	return nil
}

func validLevel(l string) bool {
	switch l {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}

// EnvName is the environment variable for a flag: SWITCHBOARD_ and the
// flag in upper snake case.
func EnvName(flag string) string {
	return "SWITCHBOARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "switchboard: a real-time push edge (WebSocket) on a pluggable broker.\n\n")
	fmt.Fprintf(w, "Usage: switchboard [flags]\n\nEvery flag can also be set with its environment variable; flags win.\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  --%s (%s)\n      %s (default %q)\n", f.Name, EnvName(f.Name), f.Usage, f.DefValue)
	})
}
