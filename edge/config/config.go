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
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/auth"
)

// ErrHelp is returned by Load when -h or --help was given; the usage has
// been written to the help writer.
var ErrHelp = flag.ErrHelp

// Config is the edge's configuration.
type Config struct {
	Addr              string
	JWTSecret         string
	JWTLeeway         time.Duration
	AllowedOrigins    []string
	LogFormat         string
	LogLevel          string
	Broker            string
	BrokerURL         string
	RetentionMessages int64
	BrokerWait        bool
	RetentionAge      time.Duration
	// ResumeIndexBytes and ResumeIndexAge bound the log engine's
	// in-memory index of the recent log (redis, kafka, nats), which
	// resumes are served from: engine.Config.IndexBytes and IndexAge.
	ResumeIndexBytes  int64
	ResumeIndexAge    time.Duration
	HistorySize       int
	HistoryTTL        time.Duration
	HistoryLimit      int
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	SendQueue         int
	SlowConsumer      core.SlowPolicy
	RoomPolicies      []core.RoomPolicy
	MaxMessageSize    int
	RateLimit         float64
	RateBurst         int
	MaxRooms          int
	WriteTimeout      time.Duration
	ShutdownTimeout   time.Duration
	// Transports are the client transports served: websocket (/ws), sse
	// (/sse) and longpoll (/poll). POST /send is always served.
	Transports []string

	MaxConnections      int
	MaxConnectionsPerIP int
	// ProxyHeader names the header carrying the client IP (e.g.
	// X-Forwarded-For), trusted only from TrustedProxies.
	ProxyHeader    string
	TrustedProxies []string
	TLSCert        string
	TLSKey         string
	// TLS is built from TLSCert and TLSKey (nil: plain HTTP).
	TLS *tls.Config

	JWTPublicKey string
	JWKSURL      string
	JWKSFile     string
	JWKSRefresh  time.Duration
	JWTAudience  string
	JWTIssuer    string
	// Anonymous, in production mode, admits connections without a token
	// with these permissions (nil: refused).
	Anonymous *core.Permissions

	Webhooks Webhooks

	// PresenceInterval is how often a node renews its presence lease;
	// PresenceTTL how long a silent node counts as alive (0: 3 ×
	// interval).
	PresenceInterval time.Duration
	PresenceTTL      time.Duration
	// PresenceEvents sends room members join/leave envelopes.
	PresenceEvents bool

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

	// Tracer reports spans (publish, delivery, webhooks). Not a flag: the
	// binary sets it from the OTEL_* environment (edge/tracing). Default:
	// nil, no tracing.
	Tracer core.Tracer

	// APIKeys enable the server API (/api/v1) when non-empty.
	APIKeys        []string
	IdempotencyTTL time.Duration
}

// Production reports whether tokens are required: a JWT key source is
// configured. Otherwise the edge runs in development mode (?user= is
// trusted).
func (c Config) Production() bool {
	return c.JWTSecret != "" || c.JWTPublicKey != "" || c.JWKSURL != "" || c.JWKSFile != ""
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
// by getenv. Usage for --help goes to help.
func Load(args []string, getenv func(string) string, help io.Writer) (Config, error) {
	var c Config
	var r rawFlags
	fs := newFlagSet(&c, &r)

	// Every value explains its own parse errors, naming flag and variable.
	var valueErr error
	fs.VisitAll(func(f *flag.Flag) {
		f.Value = &explained{Value: f.Value, name: f.Name, err: &valueErr}
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
			usage(fs, help)
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
	origins, slow, slowRooms, transports, trusted, anonSub, anonPub, apiKeys, size := r.origins, r.slow, r.slowRooms, r.transports, r.trusted, r.anonSub, r.anonPub, r.apiKeys, r.size
	c.MaxMessageSize = int(size)
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			if o != "*" && o != "self" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
				return Config{}, fmt.Errorf("invalid --allowed-origins (%s) entry %q: use an origin such as https://app.example.com, a glob such as https://*.example.com, self or *", EnvName("allowed-origins"), o)
			}
			c.AllowedOrigins = append(c.AllowedOrigins, strings.TrimSuffix(o, "/"))
		}
	}
	if len(c.AllowedOrigins) == 0 {
		// Development mode trusts everyone anyway; with JWT the default
		// makes cross-site WebSocket hijacking impossible.
		c.AllowedOrigins = []string{"*"}
		if c.Production() {
			c.AllowedOrigins = []string{"self"}
		}
	}
	if anonSub != "" || anonPub != "" {
		if !c.Production() {
			return Config{}, fmt.Errorf("invalid --anon-subscribe/--anon-publish (%s): they apply only with JWT (--jwt-secret, --jwt-public-key, --jwks-url or --jwks-file); development mode allows everything", EnvName("anon-subscribe"))
		}
		c.Anonymous = &core.Permissions{}
		for _, l := range []struct {
			flag, raw string
			dst       *[]string
		}{{"anon-subscribe", anonSub, &c.Anonymous.Subscribe}, {"anon-publish", anonPub, &c.Anonymous.Publish}} {
			for _, p := range strings.Split(l.raw, ",") {
				if p = strings.TrimSpace(p); p == "" {
					continue
				}
				if err := core.ValidatePattern(p); err != nil {
					return Config{}, fmt.Errorf("invalid --%s (%s): %v", l.flag, EnvName(l.flag), err)
				}
				*l.dst = append(*l.dst, p)
			}
		}
	}
	for _, t := range strings.Split(transports, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(transportNames, t) {
			return Config{}, fmt.Errorf("invalid --transports (%s): unknown transport %q; use websocket, sse and/or longpoll", EnvName("transports"), t)
		}
		if !slices.Contains(c.Transports, t) {
			c.Transports = append(c.Transports, t)
		}
	}
	if len(c.Transports) == 0 {
		return Config{}, fmt.Errorf("invalid --transports (%s): empty; serve at least one of websocket, sse, longpoll", EnvName("transports"))
	}
	for _, p := range strings.Split(trusted, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				return Config{}, fmt.Errorf("invalid --trusted-proxies (%s) entry %q: use IPs or CIDRs such as 10.0.0.0/8", EnvName("trusted-proxies"), p)
			}
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	if c.ProxyHeader != "" && len(c.TrustedProxies) == 0 {
		return Config{}, fmt.Errorf("invalid --proxy-header (%s): set --trusted-proxies too, or anyone could forge the client IP", EnvName("proxy-header"))
	}
	for _, k := range strings.Split(apiKeys, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if len(k) < 16 {
			return Config{}, fmt.Errorf("invalid --api-keys (%s): a key is shorter than 16 bytes; use long random keys", EnvName("api-keys"))
		}
		c.APIKeys = append(c.APIKeys, k)
	}
	if c.PresenceInterval <= 0 {
		return Config{}, fmt.Errorf("invalid --presence-interval (%s): must be positive", EnvName("presence-interval"))
	}
	if c.PresenceTTL < 0 || (c.PresenceTTL > 0 && c.PresenceTTL <= c.PresenceInterval) {
		return Config{}, fmt.Errorf("invalid --presence-ttl (%s): must exceed --presence-interval (0: 3 x the interval)", EnvName("presence-ttl"))
	}
	if c.IdempotencyTTL <= 0 {
		return Config{}, fmt.Errorf("invalid --idempotency-ttl (%s): must be positive", EnvName("idempotency-ttl"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return Config{}, fmt.Errorf("invalid --tls-cert/--tls-key (%s, %s): set both or neither", EnvName("tls-cert"), EnvName("tls-key"))
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return Config{}, fmt.Errorf("invalid --tls-cert/--tls-key (%s, %s): %v", EnvName("tls-cert"), EnvName("tls-key"), err)
		}
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	p, err := core.ParseSlowPolicy(slow)
	if err != nil {
		return Config{}, fmt.Errorf("invalid --slow-consumer %q: use close, drop-oldest, conflate or resume", slow)
	}
	c.SlowConsumer = p
	for _, rule := range strings.Split(slowRooms, ",") {
		if rule = strings.TrimSpace(rule); rule == "" {
			continue
		}
		pattern, name, ok := strings.Cut(rule, "=")
		pol, perr := core.ParseSlowPolicy(strings.TrimSpace(name))
		pattern = strings.TrimSpace(pattern)
		_, merr := path.Match(pattern, "")
		if !ok || pattern == "" || perr != nil || merr != nil {
			return Config{}, fmt.Errorf("invalid --slow-consumer-rooms (%s) rule %q: use pattern=policy, e.g. 'ticker:*=conflate', with policy close, drop-oldest, conflate or resume", EnvName("slow-consumer-rooms"), rule)
		}
		c.RoomPolicies = append(c.RoomPolicies, core.RoomPolicy{Pattern: pattern, Policy: pol})
	}
	if c.BrokerURL == "" {
		c.BrokerURL = defaultBrokerURL[c.Broker]
	}
	if err := c.Webhooks.validate(); err != nil {
		return Config{}, err
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	// The key files are read here, so a bad one stops the edge before it
	// opens a listener; a JWKS URL is only fetched by the server.
	if c.Production() {
		if err := c.authConfig().CheckFiles(); err != nil {
			return Config{}, AuthError(err)
		}
	}
	if err := checkBrokerURL(c.Broker, c.BrokerURL); err != nil {
		return Config{}, fmt.Errorf("invalid --broker-url (%s) %q: %s", EnvName("broker-url"), c.BrokerURL, err)
	}
	return c, nil
}

func (c Config) validate() error {
	bad := func(flag, msg string) error {
		return fmt.Errorf("invalid --%s (%s): %s", flag, EnvName(flag), msg)
	}
	switch {
	case c.Addr == "":
		return bad("addr", "empty; use host:port such as :8080")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return bad("log-format", fmt.Sprintf("%q; use text or json", c.LogFormat))
	case !validLevel(c.LogLevel):
		return bad("log-level", fmt.Sprintf("%q; use debug, info, warn or error", c.LogLevel))
	case defaultBrokerURL[c.Broker] == "" && c.Broker != "memory":
		return bad("broker", fmt.Sprintf("unknown broker %q; available: memory, redis, kafka, nats", c.Broker))
	case c.Broker == "memory" && c.BrokerURL != "":
		return bad("broker-url", "the memory broker takes no URL; set --broker redis to use one")
	case c.HeartbeatTimeout < 0:
		return bad("heartbeat-timeout", "must not be negative (0 means 2.5 x --heartbeat-interval)")
	case c.HeartbeatInterval > 0 && c.HeartbeatTimeout != 0 && c.HeartbeatTimeout <= c.HeartbeatInterval:
		return bad("heartbeat-timeout", fmt.Sprintf("%s must be longer than --heartbeat-interval %s", c.HeartbeatTimeout, c.HeartbeatInterval))
	case c.RetentionMessages == 0:
		return bad("retention-messages", "must be positive, or negative for unbounded")
	case c.RetentionAge == 0:
		return bad("retention-age", "must be positive, or negative for the cluster's default")
	case c.ResumeIndexAge <= 0:
		return bad("resume-index-age", "must be positive")
	case c.HistoryLimit < 1:
		return bad("history-limit", "must be at least 1")
	case c.SendQueue < 1:
		return bad("send-queue", "must be at least 1")
	case c.MaxMessageSize < 256:
		return bad("max-message-size", "must be at least 256 bytes")
	case c.RateLimit == 0:
		return bad("rate-limit", "must be positive, or negative to disable")
	case c.RateLimit > 0 && c.RateBurst < 1:
		return bad("rate-burst", "must be at least 1")
	case c.MaxRooms == 0:
		return bad("max-rooms", "must be positive, or negative for unlimited")
	case c.MaxConnections < 0:
		return bad("max-connections", "must not be negative (0: no cap)")
	case c.MaxConnectionsPerIP < 0:
		return bad("max-connections-per-ip", "must not be negative (0: no cap)")
	case c.WriteTimeout <= 0:
		return bad("write-timeout", "must be positive")
	case c.ShutdownTimeout <= 0:
		return bad("shutdown-timeout", "must be positive")
	case c.JWTSecret != "" && len(c.JWTSecret) < 16:
		return bad("jwt-secret", "shorter than 16 bytes; use a long random secret")
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		return bad("admin-token", "shorter than 16 bytes; use a long random token")
	}
	return nil
}

// authConfig is the key part of the authenticator's configuration.
func (c Config) authConfig() auth.Config {
	return auth.Config{Secret: []byte(c.JWTSecret), PublicKeyFile: c.JWTPublicKey, JWKSURL: c.JWKSURL, JWKSFile: c.JWKSFile}
}

// authFlags names the flag of each auth.Config key source.
var authFlags = map[string]string{"PublicKeyFile": "jwt-public-key", "JWKSURL": "jwks-url", "JWKSFile": "jwks-file"}

// AuthError restates an edge/auth error about one key source (an
// *auth.SourceError) as the setting's: one line naming the flag, its
// environment variable and the value. The result still matches the
// *auth.SourceError with errors.As. Other errors are returned as they are.
func AuthError(err error) error {
	var se *auth.SourceError
	if !errors.As(err, &se) || authFlags[se.Field] == "" {
		return err
	}
	flag := authFlags[se.Field]
	return restated{fmt.Sprintf("invalid --%s (%s) %q: %v", flag, EnvName(flag), se.Value, se.Err), se}
}

// restated is an error with a new message for the error it wraps.
type restated struct {
	msg string
	err error
}

func (e restated) Error() string { return e.msg }
func (e restated) Unwrap() error { return e.err }

var defaultBrokerURL = map[string]string{
	"redis": "redis://127.0.0.1:6379/0",
	"kafka": "kafka://127.0.0.1:9092",
	"nats":  "nats://127.0.0.1:4222",
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

// explained wraps a flag.Value so a bad value yields one line naming the
// flag, its environment variable and what was expected.
type explained struct {
	flag.Value
	name string
	err  *error
}

func (e *explained) Set(s string) error {
	if err := e.Value.Set(s); err != nil {
		want := "a valid value"
		switch v := e.Value.(flag.Getter).Get().(type) {
		case int, int64:
			want = "a whole number"
		case float64:
			want = "a number"
		case time.Duration:
			want = "a duration such as 500ms, 25s or 1m"
		case bool:
			want = "true or false"
		default:
			_ = v
			want = err.Error()
		}
		*e.err = fmt.Errorf("invalid value %q for --%s (%s): expected %s", s, e.name, EnvName(e.name), want)
		return *e.err
	}
	return nil
}

// IsBoolFlag keeps boolean flags usable without a value.
func (e *explained) IsBoolFlag() bool {
	b, ok := e.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "switchboard: a real-time push edge (WebSocket) on a pluggable broker.\n\n")
	fmt.Fprintf(w, "Usage: switchboard [flags]\n\nEvery flag can also be set with its environment variable; flags win.\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  --%s (%s)\n      %s (default %q)\n", f.Name, EnvName(f.Name), f.Usage, f.DefValue)
	})
}

// byteSize parses 65536, 64KiB, 64KB, 1MiB.
type byteSize int

func (b *byteSize) String() string { return strconv.Itoa(int(*b)) }

func (b *byteSize) Get() any { return *b }

func (b *byteSize) Set(s string) error {
	units := []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}}
	mult := 1
	num := strings.TrimSpace(s)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > (1<<30)/mult {
		return errors.New("a size in bytes, or a number with KiB or MiB, up to 1GiB")
	}
	*b = byteSize(n * mult)
	return nil
}

// rawFlags holds flag values that Load turns into Config fields.
type rawFlags struct {
	origins, slow, slowRooms, transports, trusted, anonSub, anonPub, apiKeys string
	size                                                                     byteSize
}

// newFlagSet defines every flag of the edge on a new FlagSet, writing
// into c and r. It is the one place flags are declared: Load parses with
// it and Reference documents it.
func newFlagSet(c *Config, r *rawFlags) *flag.FlagSet {
	r.size = 64 << 10
	fs := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address (host:port)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret; when set every connection needs a valid JWT whose sub is the user id (empty: development mode, ?user= is trusted)")
	fs.DurationVar(&c.JWTLeeway, "jwt-leeway", 30*time.Second, "clock skew allowed when checking exp, nbf and iat")
	fs.StringVar(&c.JWTPublicKey, "jwt-public-key", "", "PEM file of RSA or ECDSA P-256 public keys (or certificates): accept RS256/ES256 tokens")
	fs.StringVar(&c.JWKSURL, "jwks-url", "", "JSON Web Key Set URL (RS256/ES256 keys by kid), read at start and refreshed")
	fs.StringVar(&c.JWKSFile, "jwks-file", "", "JSON Web Key Set file, read at start and refreshed")
	fs.DurationVar(&c.JWKSRefresh, "jwks-refresh", 10*time.Minute, "how often the JWKS is reloaded (an unknown kid also reloads it, at most every 30s)")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "required token aud (empty: not checked)")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "required token iss (empty: not checked)")
	fs.StringVar(&r.anonSub, "anon-subscribe", "", "production mode: rooms (comma-separated globs) that connections without a token may subscribe to; empty with --anon-publish empty refuses them")
	fs.StringVar(&r.anonPub, "anon-publish", "", "production mode: rooms (globs) that connections without a token may publish to")
	fs.StringVar(&r.origins, "allowed-origins", "", "comma-separated browser Origins allowed on every transport (https://app.example.com, https://*.example.com, self = same host, * = any); empty: * in development mode, self with JWT")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.Broker, "broker", "memory", "broker: memory (embedded, one node), redis (Redis Streams), kafka or nats (JetStream); all but memory let many nodes act as one")
	fs.StringVar(&c.BrokerURL, "broker-url", "", "broker address: redis://[user:pass@]host:port[/db] (default redis://127.0.0.1:6379/0) kafka://host:9092[,host2:9092] (default kafka://127.0.0.1:9092) or nats://host:4222[,nats://host2:4222] (default nats://127.0.0.1:4222); unused by memory")
	fs.BoolVar(&c.BrokerWait, "broker-wait", false, "if the broker is unreachable at start, serve /healthz, report not ready on /readyz and keep retrying instead of exiting")
	fs.Int64Var(&c.RetentionMessages, "retention-messages", 100000, "redis: messages the stream keeps (XADD MAXLEN ~, approximate); nats: the stream's MaxMsgs (negative: unbounded)")
	fs.Int64Var(&c.ResumeIndexBytes, "resume-index-bytes", engine.DefaultIndexBytes, "redis, kafka, nats: memory for each node's index of the recent log, which resumes are served from without reading the broker (negative: no index)")
	fs.DurationVar(&c.ResumeIndexAge, "resume-index-age", engine.DefaultIndexAge, "redis, kafka, nats: how long a message stays in the resume index")
	fs.DurationVar(&c.RetentionAge, "retention-age", 24*time.Hour, "kafka: retention.ms of the topic when switchboard creates it; nats: the stream's MaxAge (negative: the broker's default / unlimited)")
	fs.IntVar(&c.HistorySize, "history-size", 1000, "memory: messages kept for resume per room and per user's direct channel (negative disables)")
	fs.IntVar(&c.HistoryLimit, "history-limit", 1000, "messages per page of a resume's replay: a client further behind gets the next page once it has read this one (long-poll: one page per poll), so being far behind is never a gap")
	fs.DurationVar(&c.HistoryTTL, "history-ttl", 10*time.Minute, "memory: history of a room idle this long is dropped (negative keeps it)")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", 25*time.Second, "ping interval (negative disables heartbeats)")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", 0, "close a connection silent for this long (4009); 0 means 2.5 x --heartbeat-interval")
	fs.IntVar(&c.SendQueue, "send-queue", 256, "outbound queue per connection, in messages")
	fs.StringVar(&r.slow, "slow-consumer", "close", "when a send queue is full: close (4008), drop-oldest, conflate (newest per room) or resume (replay from the log)")
	fs.StringVar(&r.slowRooms, "slow-consumer-rooms", "", "per-room policies by name pattern, first match wins: e.g. 'ticker:*=conflate,feed:*=resume'")
	fs.Var(&r.size, "max-message-size", "largest inbound frame, e.g. 65536, 64KiB or 1MiB (4003 beyond)")
	fs.Float64Var(&c.RateLimit, "rate-limit", 50, "inbound frames per second per connection (4002 beyond; negative disables)")
	fs.IntVar(&c.RateBurst, "rate-burst", 100, "inbound burst allowance per connection")
	fs.IntVar(&c.MaxRooms, "max-rooms", 100, "rooms one connection may join (negative: unlimited)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", 10*time.Second, "deadline for each write to a client")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long SIGTERM waits for clients to drain")
	fs.IntVar(&c.MaxConnections, "max-connections", 0, "connections this node accepts; beyond, close 1013 / HTTP 503 (0: no cap)")
	fs.IntVar(&c.MaxConnectionsPerIP, "max-connections-per-ip", 0, "connections per client IP; beyond, close 1013 / HTTP 503 (0: no cap)")
	fs.StringVar(&c.ProxyHeader, "proxy-header", "", "header with the client IP set by a reverse proxy (e.g. X-Forwarded-For); trusted only from --trusted-proxies")
	fs.StringVar(&r.trusted, "trusted-proxies", "", "comma-separated IPs or CIDRs of reverse proxies whose --proxy-header is believed")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS and WSS directly (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file for --tls-cert")
	registerWebhookFlags(fs, &c.Webhooks)
	fs.StringVar(&c.AdminAddr, "admin-addr", "", "serve /stats, /metrics (Prometheus) and /healthz on this separate address (e.g. 127.0.0.1:9090) instead of the public one, without a token: keep it private")
	fs.StringVar(&c.AdminToken, "admin-token", "", "operator token, at least 16 bytes, sent as Authorization: Bearer or as the password of the browser's Basic authentication prompt; it protects /dashboard and, in production mode, /stats and /metrics on the public listener (without it those are served only on --admin-addr; development mode leaves /stats and /metrics open)")
	fs.BoolVar(&c.Dashboard, "dashboard", true, "serve the live operations page /dashboard where /stats is served, when --admin-addr or --admin-token is set")
	fs.StringVar(&r.apiKeys, "api-keys", "", "comma-separated keys (each at least 16 bytes) that backends send as Authorization: Bearer to the server API /api/v1; empty disables the API")
	fs.DurationVar(&c.PresenceInterval, "presence-interval", 5*time.Second, "how often a node renews its presence lease in the broker")
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", 0, "a node silent this long is dead: its connections leave presence and survivors publish their leave/disconnect events (0: 3 x --presence-interval)")
	fs.BoolVar(&c.PresenceEvents, "presence-events", false, "send room members a presence envelope when someone joins or leaves (rooms of at most 100 connections, at most 5 per second per room)")
	fs.DurationVar(&c.IdempotencyTTL, "idempotency-ttl", broker.DefaultDedupWindow, "how long a publish's idempotency_key is remembered: a retry with it within this window, on any node, publishes nothing again (kept in the broker's log: a Redis key, the JetStream duplicate window, every node's reader)")
	fs.StringVar(&r.transports, "transports", "websocket,sse,longpoll", "client transports to serve, comma-separated: websocket (/ws), sse (/sse), longpoll (/poll); POST /send is always served")
	return fs
}
