package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard/adapters/websocket"
	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/kafka"
	"github.com/switchboard-dev/switchboard/broker/nats"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/auth"
	"github.com/switchboard-dev/switchboard/edge/presence"
	"github.com/switchboard-dev/switchboard/edge/webhook"
)

// flagSet is the edge's flag set and, for each flag, the Config field it
// sets: a refusal of a package's Validate (a *core.ConfigError naming
// its field) is restated with the flag.
type flagSet struct {
	*flag.FlagSet
	target map[string]any // flag name → pointer to the field it sets
}

func (f *flagSet) bind(p any, name string) { f.target[name] = p }

func (f *flagSet) str(p *string, name, def, usage string) {
	f.StringVar(p, name, def, usage)
	f.bind(p, name)
}

func (f *flagSet) dur(p *time.Duration, name string, def time.Duration, usage string) {
	f.DurationVar(p, name, def, usage)
	f.bind(p, name)
}

func (f *flagSet) num(p *int, name string, def int, usage string) {
	f.IntVar(p, name, def, usage)
	f.bind(p, name)
}

func (f *flagSet) num64(p *int64, name string, def int64, usage string) {
	f.Int64Var(p, name, def, usage)
	f.bind(p, name)
}

func (f *flagSet) float(p *float64, name string, def float64, usage string) {
	f.Float64Var(p, name, def, usage)
	f.bind(p, name)
}

func (f *flagSet) boolean(p *bool, name string, def bool, usage string) {
	f.BoolVar(p, name, def, usage)
	f.bind(p, name)
}

func (f *flagSet) value(p any, v flag.Value, name, usage string) {
	f.Var(v, name, usage)
	f.bind(p, name)
}

// newFlagSet defines every flag of the edge on a new FlagSet, writing
// into c. It is the one place flags are declared: Load parses with it and
// Reference documents it. A flag of a package's setting writes into that
// package's configuration, nested in c, and shows its default.
func newFlagSet(c *Config) *flagSet {
	node, mem, hooks := core.Config{}.WithDefaults(), c.Broker.Memory.WithDefaults(), webhook.Config{}.WithDefaults()
	c.Node.MaxMessageSize = node.MaxMessageSize
	c.Auth.Leeway = auth.DefaultLeeway
	f := &flagSet{FlagSet: flag.NewFlagSet("switchboard", flag.ContinueOnError), target: map[string]any{}}
	f.SetOutput(io.Discard)
	f.str(&c.Addr, "addr", ":8080", "listen address (host:port)")

	// Authentication: edge/auth.
	f.value(&c.Auth.Secret, (*secret)(&c.Auth.Secret), "jwt-secret", "HS256 secret; when set every connection needs a valid JWT whose sub is the user id (empty: development mode, ?user= is trusted)")
	f.value(&c.Auth.Leeway, (*leeway)(&c.Auth.Leeway), "jwt-leeway", "clock skew allowed when checking exp, nbf and iat (0: none)")
	f.str(&c.Auth.PublicKeyFile, "jwt-public-key", "", "PEM file of RSA or ECDSA P-256 public keys (or certificates): accept RS256/ES256 tokens")
	f.str(&c.Auth.JWKSURL, "jwks-url", "", "JSON Web Key Set URL (RS256/ES256 keys by kid), read at start and refreshed")
	f.str(&c.Auth.JWKSFile, "jwks-file", "", "JSON Web Key Set file, read at start and refreshed")
	f.dur(&c.Auth.JWKSRefresh, "jwks-refresh", auth.DefaultJWKSRefresh, "how often the JWKS is reloaded (an unknown kid also reloads it, at most every 30s; negative: only then)")
	f.str(&c.Auth.Audience, "jwt-audience", "", "required token aud (empty: not checked)")
	f.str(&c.Auth.Issuer, "jwt-issuer", "", "required token iss (empty: not checked)")
	f.value(&c.Auth.Anonymous, &anonymous{&c.Auth.Anonymous, false}, "anon-subscribe", "production mode: rooms (comma-separated globs) that connections without a token may subscribe to; empty with --anon-publish empty refuses them")
	f.value(&c.Auth.Anonymous, &anonymous{&c.Auth.Anonymous, true}, "anon-publish", "production mode: rooms (globs) that connections without a token may publish to")
	f.value(&c.AllowedOrigins, (*list)(&c.AllowedOrigins), "allowed-origins", "comma-separated browser Origins allowed on every transport (https://app.example.com, https://*.example.com, self = same host, * = any); empty: * in development mode, self with JWT")

	f.str(&c.LogFormat, "log-format", "text", "log format: text or json")
	f.str(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")

	// The broker.
	f.str(&c.Broker.Name, "broker", "memory", "broker: memory (embedded, one node), redis (Redis Streams), kafka, nats (JetStream) or postgres (a table); all but memory let many nodes act as one")
	f.str(&c.Broker.URL, "broker-url", "", "broker address: redis://[user:pass@]host:port[/db] (default "+defaultBrokerURL["redis"]+") kafka://host:9092[,host2:9092] (default "+defaultBrokerURL["kafka"]+") nats://host:4222[,nats://host2:4222] (default "+defaultBrokerURL["nats"]+") or postgres://[user[:pass]@]host:5432/db (default "+defaultBrokerURL["postgres"]+"); unused by memory")
	f.str(&c.Outbox.URL, "outbox-url", "", "PostgreSQL database where the edge installs switchboard_publish() for backends to publish inside their own transactions, and forwards what they commit (exactly once, whatever the broker; docs/brokers.md): postgres://[user[:pass]@]host:5432/db; empty: --broker-url with --broker postgres, else off; "+OutboxOff+": never")
	f.boolean(&c.Broker.Wait, "broker-wait", false, "if the broker is unreachable at start, serve /healthz, report not ready on /readyz and keep retrying instead of exiting")
	f.num64(&c.Broker.RetentionMessages, "retention-messages", nats.DefaultMaxMsgs, "redis: messages the stream keeps (XADD MAXLEN ~, approximate); nats: the stream's MaxMsgs; postgres: rows the log table keeps (negative: unbounded)")
	f.num64(&c.Broker.Engine.IndexBytes, "resume-index-bytes", engine.DefaultIndexBytes, "redis, kafka, nats: memory for each node's index of the recent log, which resumes are served from without reading the broker (negative: no index)")
	f.dur(&c.Broker.Engine.IndexAge, "resume-index-age", engine.DefaultIndexAge, "redis, kafka, nats: how long a message stays in the resume index")
	f.dur(&c.Broker.RetentionAge, "retention-age", kafka.DefaultRetention, "kafka: retention.ms of the topic when switchboard creates it; nats: the stream's MaxAge; postgres: the age of the log table's oldest row (negative: the broker's default / unlimited)")
	f.num(&c.Broker.Memory.HistorySize, "history-size", mem.HistorySize, "memory: messages kept for resume per room and per user's direct channel (negative disables)")

	// The node: core.
	f.num(&c.Node.HistoryLimit, "history-limit", node.HistoryLimit, "messages per page of a resume's replay: a client further behind gets the next page once it has read this one (long-poll: one page per poll), so being far behind is never a gap")
	f.dur(&c.Broker.Memory.HistoryTTL, "history-ttl", mem.HistoryTTL, "memory: history of a room idle this long is dropped (negative keeps it)")
	f.dur(&c.Node.HeartbeatInterval, "heartbeat-interval", node.HeartbeatInterval, "ping interval (negative disables heartbeats)")
	f.dur(&c.Node.HeartbeatTimeout, "heartbeat-timeout", 0, "close a connection silent for this long (4009); 0 means 2.5 x --heartbeat-interval")
	f.num(&c.Node.SendQueueSize, "send-queue", node.SendQueueSize, "outbound queue per connection, in messages")
	f.value(&c.Node.SlowConsumer, (*slowPolicy)(&c.Node.SlowConsumer), "slow-consumer", "when a send queue is full: close (4008), drop-oldest, conflate (newest per room) or resume (replay from the log)")
	f.value(&c.Node.RoomPolicies, (*roomPolicies)(&c.Node.RoomPolicies), "slow-consumer-rooms", "per-room policies by name pattern, first match wins: e.g. 'ticker:*=conflate,feed:*=resume'")
	f.value(&c.Node.MaxMessageSize, (*byteSize)(&c.Node.MaxMessageSize), "max-message-size", "largest inbound frame, e.g. 65536, 64KiB or 1MiB (4003 beyond)")
	f.float(&c.Node.RateLimit, "rate-limit", node.RateLimit, "inbound frames per second per connection (4002 beyond; negative disables)")
	f.num(&c.Node.RateBurst, "rate-burst", node.RateBurst, "inbound burst allowance per connection")
	f.num(&c.Node.MaxRoomsPerConn, "max-rooms", node.MaxRoomsPerConn, "rooms one connection may join (negative: unlimited)")
	f.dur(&c.WriteTimeout, "write-timeout", websocket.ConfigDefault.WriteTimeout, "deadline for each write to a client")
	f.num(&c.WebSocket.CompressionLevel, "compression-level", websocket.ConfigDefault.CompressionLevel, "compression level, 1 (fastest) to 9 (smallest), of WebSocket permessage-deflate and gzip long-poll answers, for clients that ask (browsers do); each message is compressed once for all its recipients (negative: off)")
	f.num(&c.WebSocket.CompressionThreshold, "compression-threshold", websocket.ConfigDefault.CompressionThreshold, "messages from this many bytes are sent compressed; smaller ones go as they are")
	f.dur(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long SIGTERM waits for clients to drain")
	f.num(&c.Node.MaxConnections, "max-connections", 0, "connections this node accepts; beyond, close 1013 / HTTP 503 (0: no cap)")
	f.num(&c.Node.MaxConnectionsPerIP, "max-connections-per-ip", 0, "connections per client IP; beyond, close 1013 / HTTP 503 (0: no cap)")

	// The edge's listeners.
	f.str(&c.ProxyHeader, "proxy-header", "", "header with the client IP set by a reverse proxy (e.g. X-Forwarded-For); trusted only from --trusted-proxies")
	f.value(&c.TrustedProxies, (*list)(&c.TrustedProxies), "trusted-proxies", "comma-separated IPs or CIDRs of reverse proxies whose --proxy-header is believed")
	f.str(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS and WSS directly (with --tls-key)")
	f.str(&c.TLSKey, "tls-key", "", "PEM private key file for --tls-cert")

	// Webhooks: edge/webhook.
	f.str(&c.Webhooks.ConnectURL, "webhook-connect", "", "URL POSTed for every new connection after authentication; its answer accepts (may set user, rooms, meta) or rejects it (docs/webhooks.md)")
	f.str(&c.Webhooks.MessageURL, "webhook-message", "", "URL POSTed with client envelopes of the --webhook-message-types; its answer is replied or published")
	f.value(&c.Webhooks.MessageTypes, (*list)(&c.Webhooks.MessageTypes), "webhook-message-types", "comma-separated custom envelope types routed to --webhook-message, e.g. echo,shout")
	f.str(&c.Webhooks.DisconnectURL, "webhook-disconnect", "", "URL POSTed (in the background, with retries) when a connection ends")
	f.value(&c.Webhooks.Secret, (*secret)(&c.Webhooks.Secret), "webhook-secret", "HMAC-SHA256 key signing every webhook call (X-Switchboard-Signature); required with any webhook URL, at least 16 bytes")
	f.dur(&c.Webhooks.Timeout, "webhook-timeout", hooks.Timeout, "bound on each webhook attempt (connect: the whole call, retries included)")

	// Operations.
	f.str(&c.AdminAddr, "admin-addr", "", "serve /stats, /metrics (Prometheus) and /healthz on this separate address (e.g. 127.0.0.1:9090) instead of the public one, without a token: keep it private")
	f.str(&c.AdminToken, "admin-token", "", "operator token, at least 16 bytes, sent as Authorization: Bearer or as the password of the browser's Basic authentication prompt; it protects /dashboard and, in production mode, /stats and /metrics on the public listener (without it those are served only on --admin-addr; development mode leaves /stats and /metrics open)")
	f.boolean(&c.Dashboard, "dashboard", true, "serve the live operations page /dashboard where /stats is served, when --admin-addr or --admin-token is set")
	f.value(&c.APIKeys, (*list)(&c.APIKeys), "api-keys", "comma-separated keys (each at least 16 bytes) that backends send as Authorization: Bearer to the server API /api/v1; empty disables the API")

	// Presence: edge/presence.
	f.dur(&c.Presence.Interval, "presence-interval", presence.DefaultInterval, "how often a node renews its presence lease in the broker")
	f.dur(&c.Presence.TTL, "presence-ttl", 0, "a node silent this long is dead: its connections leave presence and survivors publish their leave/disconnect events (0: 3 x --presence-interval)")
	f.boolean(&c.Presence.RoomEvents, "presence-events", false, "send room members a presence envelope when someone joins or leaves (rooms of at most 100 connections, at most 5 per second per room)")
	f.dur(&c.Broker.Engine.DedupWindow, "idempotency-ttl", broker.DefaultDedupWindow, "how long a publish's idempotency_key is remembered: a retry with it within this window, on any node, publishes nothing again (kept in the broker's log: a Redis key, the JetStream duplicate window, every node's reader)")
	c.Transports = slices.Clone(transportNames)
	f.value(&c.Transports, (*list)(&c.Transports), "transports", "client transports to serve, comma-separated: websocket (/ws), sse (/sse), longpoll (/poll); POST /send is always served")
	return f
}

// flagFields maps each flag to the path of the Config field it sets
// ("Node.SendQueueSize", "Auth.JWKSURL").
func flagFields() map[string]string {
	var c Config
	f := newFlagSet(&c)
	out := map[string]string{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			fv, sf := v.Field(i), v.Type().Field(i)
			if !sf.IsExported() {
				continue
			}
			for name, p := range f.target {
				if p == fv.Addr().Interface() {
					out[name] = prefix + sf.Name
				}
			}
			if fv.Kind() == reflect.Struct {
				walk(fv, prefix+sf.Name+".")
			}
		}
	}
	walk(reflect.ValueOf(&c).Elem(), "")
	return out
}

// fieldFlags maps each Config field a flag sets to the flag (the first
// by name when two share it, as --anon-publish and --anon-subscribe do).
var fieldFlags = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	for name, path := range flagFields() {
		if prev, ok := out[path]; !ok || name < prev {
			out[path] = name
		}
	}
	return out
})

// explained wraps a flag.Value so a bad value yields one line naming the
// flag, its environment variable and what was expected. An explicit 0
// for a setting whose default is not 0 is refused: the packages read 0
// as "the default", which a person writing 0 rarely means.
type explained struct {
	flag.Value
	name      string
	zeroIsDef bool // the default is not zero
	err       *error
}

func (e *explained) Set(s string) error {
	if err := e.Value.Set(s); err != nil {
		var why string
		switch e.Value.(flag.Getter).Get().(type) {
		case int, int64:
			why = "expected a whole number"
		case float64:
			why = "expected a number"
		case time.Duration:
			why = "expected a duration such as 500ms, 25s or 1m"
		case bool:
			why = "expected true or false"
		default: // the edge's own values explain themselves
			why = err.Error()
		}
		*e.err = fmt.Errorf("invalid value %q for --%s (%s): %s", s, e.name, EnvName(e.name), why)
		return *e.err
	}
	if e.zeroIsDef && isZeroNumber(e.Value.(flag.Getter).Get()) {
		*e.err = fmt.Errorf("invalid value %q for --%s (%s): 0 is not a setting here; give the value you want, or a negative one where the flag says it disables", s, e.name, EnvName(e.name))
		return *e.err
	}
	return nil
}

// IsBoolFlag keeps boolean flags usable without a value.
func (e *explained) IsBoolFlag() bool {
	b, ok := e.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// isZeroNumber and nonZeroNumber tell numbers (of any numeric kind,
// byteSize included) that are zero, or not; anything else is neither.
func isZeroNumber(v any) bool  { return isNumber(v) && reflect.ValueOf(v).IsZero() }
func nonZeroNumber(v any) bool { return isNumber(v) && !reflect.ValueOf(v).IsZero() }

func isNumber(v any) bool {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int64, reflect.Float64:
		return true
	}
	return false
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
		return errors.New("expected a size in bytes, or a number with KiB or MiB, up to 1GiB")
	}
	*b = byteSize(n * mult)
	return nil
}

// list is a comma-separated list; blanks are skipped and repeats kept
// once.
type list []string

func (l *list) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *list) Get() any { return []string(*l) }

func (l *list) Set(s string) error {
	*l = nil
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(*l, t) {
			*l = append(*l, t)
		}
	}
	return nil
}

// secret is a key given as text.
type secret []byte

func (s *secret) String() string { return "" } // never shown
func (s *secret) Get() any       { return string(*s) }
func (s *secret) Set(v string) error {
	*s = []byte(v)
	return nil
}

// leeway reads 0 as no leeway (auth.Config's -1), not as the default.
type leeway time.Duration

func (l *leeway) String() string { return time.Duration(max(*l, 0)).String() }
func (l *leeway) Get() any       { return time.Duration(*l) }
func (l *leeway) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("expected a duration such as 30s")
	}
	if d <= 0 {
		d = -1
	}
	*l = leeway(d)
	return nil
}

type slowPolicy core.SlowPolicy

func (p *slowPolicy) String() string { return core.SlowPolicy(*p).String() }
func (p *slowPolicy) Get() any       { return core.SlowPolicy(*p) }
func (p *slowPolicy) Set(s string) error {
	pol, err := core.ParseSlowPolicy(strings.TrimSpace(s))
	if err != nil {
		return errors.New("use close, drop-oldest, conflate or resume")
	}
	*p = slowPolicy(pol)
	return nil
}

// roomPolicies parses pattern=policy rules.
type roomPolicies []core.RoomPolicy

func (r *roomPolicies) String() string {
	var parts []string
	for _, p := range *r {
		parts = append(parts, p.Pattern+"="+p.Policy.String())
	}
	return strings.Join(parts, ",")
}

func (r *roomPolicies) Get() any { return []core.RoomPolicy(*r) }

func (r *roomPolicies) Set(s string) error {
	*r = nil
	for rule := range strings.SplitSeq(s, ",") {
		if rule = strings.TrimSpace(rule); rule == "" {
			continue
		}
		pattern, name, ok := strings.Cut(rule, "=")
		pol, perr := core.ParseSlowPolicy(strings.TrimSpace(name))
		pattern = strings.TrimSpace(pattern)
		_, merr := path.Match(pattern, "")
		if !ok || pattern == "" || perr != nil || merr != nil {
			return fmt.Errorf("rule %q: use pattern=policy, e.g. 'ticker:*=conflate', with policy close, drop-oldest, conflate or resume", rule)
		}
		*r = append(*r, core.RoomPolicy{Pattern: pattern, Policy: pol})
	}
	return nil
}

// anonymous sets one list of auth.Config.Anonymous, creating it.
type anonymous struct {
	p       **core.Permissions
	publish bool
}

func (a *anonymous) String() string {
	if a == nil || a.p == nil || *a.p == nil {
		return ""
	}
	return strings.Join(*a.list(), ",")
}

func (a *anonymous) Get() any { return a.String() }

func (a *anonymous) list() *[]string {
	if a.publish {
		return &(*a.p).Publish
	}
	return &(*a.p).Subscribe
}

func (a *anonymous) Set(s string) error {
	var patterns []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if err := core.ValidatePattern(p); err != nil {
			var pe *core.Error
			if errors.As(err, &pe) {
				return errors.New(pe.Message)
			}
			return err
		}
		patterns = append(patterns, p)
	}
	if len(patterns) == 0 {
		return nil
	}
	if *a.p == nil {
		*a.p = &core.Permissions{}
	}
	*a.list() = patterns
	return nil
}
