package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/auth"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c := Default()
	if c.Addr != ":8080" || c.Broker.Name != "memory" || c.Node.MaxMessageSize != 64<<10 || c.Node.RateLimit != 50 || c.Node.RateBurst != 100 ||
		c.Node.SendQueueSize != 256 || c.Node.SlowConsumer != core.SlowClose || c.Node.HeartbeatInterval != 25*time.Second ||
		c.Node.HeartbeatTimeout != 0 || len(c.Auth.Secret) != 0 || len(c.AllowedOrigins) != 1 || c.AllowedOrigins[0] != "*" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(Config) bool
	}{
		{"env sets", nil, map[string]string{"SWITCHBOARD_ADDR": "127.0.0.1:9000"}, func(c Config) bool { return c.Addr == "127.0.0.1:9000" }},
		{"flag beats env", []string{"--addr", ":7000"}, map[string]string{"SWITCHBOARD_ADDR": ":9000"}, func(c Config) bool { return c.Addr == ":7000" }},
		{"KiB size", []string{"--max-message-size", "128KiB"}, nil, func(c Config) bool { return c.Node.MaxMessageSize == 128<<10 }},
		{"MiB size from env", nil, map[string]string{"SWITCHBOARD_MAX_MESSAGE_SIZE": "1MiB"}, func(c Config) bool { return c.Node.MaxMessageSize == 1<<20 }},
		{"drop-oldest", []string{"--slow-consumer", "drop-oldest"}, nil, func(c Config) bool { return c.Node.SlowConsumer == core.SlowDropOldest }},
		{"room policies", []string{"--slow-consumer-rooms", "ticker:*=conflate, feed:*=resume"}, nil, func(c Config) bool {
			return len(c.Node.RoomPolicies) == 2 && c.Node.RoomPolicies[0] == core.RoomPolicy{Pattern: "ticker:*", Policy: core.SlowConflate} &&
				c.Node.RoomPolicies[1] == core.RoomPolicy{Pattern: "feed:*", Policy: core.SlowResume}
		}},
		{"origins list", []string{"--allowed-origins", "https://a.example, https://b.example"}, nil, func(c Config) bool {
			return len(c.AllowedOrigins) == 2 && c.AllowedOrigins[1] == "https://b.example"
		}},
		{"interval alone is valid", []string{"--heartbeat-interval", "90s"}, nil, func(c Config) bool { return c.Node.HeartbeatInterval == 90*time.Second }},
		{"history limit", []string{"--history-limit", "5000"}, nil, func(c Config) bool { return c.Node.HistoryLimit == 5000 }},
		{"compression off", []string{"--compression-level", "-1", "--compression-threshold", "1024"}, nil, func(c Config) bool {
			return c.WebSocket.CompressionLevel == -1 && c.WebSocket.CompressionThreshold == 1024
		}},
		{"redis default URL", []string{"--broker", "redis"}, nil, func(c Config) bool { return c.Broker.URL == "redis://127.0.0.1:6379/0" }},
		{"redis URL from env", []string{"--broker", "redis"}, map[string]string{"SWITCHBOARD_BROKER_URL": "redis://10.0.0.5:6380/2"}, func(c Config) bool { return c.Broker.URL == "redis://10.0.0.5:6380/2" }},
		{"retention", []string{"--retention-messages", "500", "--retention-age", "2h"}, nil, func(c Config) bool { return c.Broker.RetentionMessages == 500 && c.Broker.RetentionAge == 2*time.Hour }},
		{"nats default URL", []string{"--broker", "nats"}, nil, func(c Config) bool { return c.Broker.URL == "nats://127.0.0.1:4222" }},
		{"kafka default URL", []string{"--broker", "kafka"}, nil, func(c Config) bool { return c.Broker.URL == "kafka://127.0.0.1:9092" }},
		{"no outbox by default", nil, nil, func(c Config) bool { return c.Outbox.URL == "" }},
		{"outbox on the postgres broker", []string{"--broker", "postgres", "--broker-url", "postgres://u@db:5432/app"}, nil, func(c Config) bool {
			return c.Outbox.URL == "postgres://u@db:5432/app"
		}},
		{"outbox off on the postgres broker", []string{"--broker", "postgres", "--outbox-url", "off"}, nil, func(c Config) bool { return c.Outbox.URL == "" }},
		{"outbox with redis, from env", []string{"--broker", "redis"}, map[string]string{"SWITCHBOARD_OUTBOX_URL": "postgresql://u@db/app?sslmode=disable"}, func(c Config) bool {
			return c.Outbox.URL == "postgresql://u@db/app?sslmode=disable" && c.Broker.URL == "redis://127.0.0.1:6379/0"
		}},
		{"postgres default URL", []string{"--broker", "postgres"}, nil, func(c Config) bool {
			return c.Broker.URL == "postgres://postgres@127.0.0.1:5432/postgres"
		}},
		{"postgres URL", []string{"--broker", "postgres", "--broker-url", "postgresql://app:pw@db:5433/app?sslmode=disable"}, nil, func(c Config) bool {
			return c.Broker.URL == "postgresql://app:pw@db:5433/app?sslmode=disable"
		}},
		{"rate limit disabled", []string{"--rate-limit", "-1"}, nil, func(c Config) bool { return c.Node.RateLimit < 0 }},
		{"anonymous policy", []string{"--jwks-url", "https://id.example/jwks", "--anon-subscribe", "public:*, news"}, nil, func(c Config) bool {
			return c.Production() && c.Auth.Anonymous != nil && strings.Join(c.Auth.Anonymous.Subscribe, ",") == "public:*,news" && c.Auth.Anonymous.Publish == nil &&
				c.AllowedOrigins[0] == "self"
		}},
		{"origins default to self with JWT", []string{"--jwt-secret", "0123456789abcdef"}, nil, func(c Config) bool {
			return len(c.AllowedOrigins) == 1 && c.AllowedOrigins[0] == "self"
		}},
		{"explicit * with JWT", []string{"--jwt-secret", "0123456789abcdef", "--allowed-origins", "*"}, nil, func(c Config) bool {
			return len(c.AllowedOrigins) == 1 && c.AllowedOrigins[0] == "*"
		}},
		{"a JWKS URL is not fetched by Load", []string{"--jwks-url", "http://127.0.0.1:1/jwks"}, nil, func(c Config) bool {
			return c.Production() && c.Auth.JWKSURL == "http://127.0.0.1:1/jwks"
		}},
		{"16-byte admin token", []string{"--admin-token", "0123456789abcdef"}, nil, func(c Config) bool { return c.AdminToken == "0123456789abcdef" }},
		{"all transports by default", nil, nil, func(c Config) bool {
			return c.Serves("websocket") && c.Serves("sse") && c.Serves("longpoll")
		}},
		{"no websocket", nil, map[string]string{"SWITCHBOARD_TRANSPORTS": "sse, longpoll,sse"}, func(c Config) bool {
			return !c.Serves("websocket") && len(c.Transports) == 2
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env), nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !tc.check(c) {
				t.Fatalf("config = %+v", c)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--send-queue", "many"}, nil, `invalid value "many" for --send-queue (SWITCHBOARD_SEND_QUEUE): expected a whole number`},
		{nil, map[string]string{"SWITCHBOARD_RATE_LIMIT": "fast"}, `--rate-limit (SWITCHBOARD_RATE_LIMIT): expected a number`},
		{[]string{"--heartbeat-interval", "5"}, nil, "expected a duration"},
		{[]string{"--max-message-size", "10GiB"}, nil, "up to 1GiB"},
		{[]string{"--max-message-size", "100"}, nil, "at least 256 bytes"},
		{[]string{"--heartbeat-interval", "30s", "--heartbeat-timeout", "30s"}, nil, "invalid --heartbeat-timeout (SWITCHBOARD_HEARTBEAT_TIMEOUT): 30s must be longer than the heartbeat interval 30s"},
		{[]string{"--log-format", "xml"}, nil, "use text or json"},
		{[]string{"--history-limit", "-5"}, nil, "invalid --history-limit (SWITCHBOARD_HISTORY_LIMIT): -5 must be at least 1"},
		{[]string{"--history-limit", "0"}, nil, `invalid value "0" for --history-limit (SWITCHBOARD_HISTORY_LIMIT): 0 is not a setting here`},
		{[]string{"--log-level", "loud"}, nil, "use debug, info, warn or error"},
		{[]string{"--broker", "pigeon"}, nil, `unknown broker "pigeon"`},
		{[]string{"--retention-messages", "0"}, nil, `invalid value "0" for --retention-messages (SWITCHBOARD_RETENTION_MESSAGES): 0 is not a setting here`},
		{[]string{"--retention-messages", "lots"}, nil, "expected a whole number"},
		{[]string{"--broker", "kafka", "--broker-url", "redis://x:1"}, nil, "use kafka://host:9092"},
		{[]string{"--broker", "postgres", "--broker-url", "redis://x:1"}, nil, "use postgres://"},
		{[]string{"--broker", "postgres", "--broker-url", "postgres:///db"}, nil, "use postgres://"},
		{[]string{"--outbox-url", "redis://x:1"}, nil, `invalid --outbox-url (SWITCHBOARD_OUTBOX_URL) "redis://x:1": use postgres://[user[:pass]@]host:5432/db[?sslmode=…], or off`},
		{[]string{"--broker", "redis", "--outbox-url", "mysql://u:hunter2@h/db"}, nil, `invalid --outbox-url (SWITCHBOARD_OUTBOX_URL) "mysql://u:xxxxx@h/db": use postgres://`},
		{nil, map[string]string{"SWITCHBOARD_OUTBOX_URL": "postgres://"}, `invalid --outbox-url (SWITCHBOARD_OUTBOX_URL) "postgres:": use postgres://`},
		{[]string{"--outbox-url", "postgres://u@h:5432/db?sslmode=sideways"}, nil, `invalid --outbox-url (SWITCHBOARD_OUTBOX_URL): cannot parse`},
		{[]string{"--broker", "redis", "--broker-url", "http://x:1"}, nil, `--broker-url (SWITCHBOARD_BROKER_URL) "http://x:1": scheme "http"`},
		{[]string{"--broker", "redis", "--broker-url", "redis:///0"}, nil, "no host"},
		{[]string{"--broker", "redis", "--broker-url", "redis://h:1/zero"}, nil, `database "zero"`},
		{[]string{"--broker-url", "redis://h:1"}, nil, "memory broker takes no URL"},
		{[]string{"--slow-consumer", "wait"}, nil, "use close, drop-oldest, conflate or resume"},
		{[]string{"--slow-consumer-rooms", "ticker:*"}, nil, `invalid value "ticker:*" for --slow-consumer-rooms (SWITCHBOARD_SLOW_CONSUMER_ROOMS): rule "ticker:*": use pattern=policy`},
		{[]string{"--slow-consumer-rooms", "[=close"}, nil, `rule "[=close"`},
		{[]string{"--slow-consumer-rooms", "a*=snooze"}, nil, `rule "a*=snooze"`},
		{[]string{"--rate-limit", "0"}, nil, "or a negative one where the flag says it disables"},
		{[]string{"--write-timeout", "0s"}, nil, "--write-timeout (SWITCHBOARD_WRITE_TIMEOUT): 0 is not a setting here"},
		{[]string{"--compression-level", "12"}, nil, "invalid --compression-level (SWITCHBOARD_COMPRESSION_LEVEL): 12; use 1 (fastest) to 9 (smallest), or negative to disable compression"},
		{[]string{"--compression-level", "0"}, nil, `invalid value "0" for --compression-level (SWITCHBOARD_COMPRESSION_LEVEL): 0 is not a setting here`},
		{[]string{"--compression-threshold", "big"}, nil, "--compression-threshold (SWITCHBOARD_COMPRESSION_THRESHOLD): expected a whole number"},
		{nil, map[string]string{"SWITCHBOARD_SEND_QUEUE": "0"}, "--send-queue (SWITCHBOARD_SEND_QUEUE): 0 is not a setting here"},
		{[]string{"--send-queue", "-1"}, nil, "invalid --send-queue (SWITCHBOARD_SEND_QUEUE): -1 must be at least 1"},
		{[]string{"--rate-burst", "-1"}, nil, "invalid --rate-burst (SWITCHBOARD_RATE_BURST): -1 must be at least 1 while there is a rate limit"},
		{[]string{"--resume-index-age", "-1s"}, nil, "invalid --resume-index-age (SWITCHBOARD_RESUME_INDEX_AGE): -1s must not be negative"},
		{[]string{"--history-size", "20000000"}, nil, "invalid --history-size (SWITCHBOARD_HISTORY_SIZE): 20000000 exceeds"},
		{[]string{"--webhook-connect", "http://127.0.0.1:1/c"}, nil, "invalid --webhook-secret (SWITCHBOARD_WEBHOOK_SECRET): required with a webhook URL"},
		{[]string{"--webhook-message", "http://127.0.0.1:1/m", "--webhook-secret", "0123456789abcdef"}, nil, "invalid --webhook-message-types (SWITCHBOARD_WEBHOOK_MESSAGE_TYPES): empty"},
		{[]string{"--webhook-disconnect", "ftp://x", "--webhook-secret", "0123456789abcdef"}, nil, "invalid --webhook-disconnect (SWITCHBOARD_WEBHOOK_DISCONNECT): \"ftp://x\"; use an http:// or https:// URL"},
		{[]string{"--webhook-disconnect", "http://127.0.0.1:1/d", "--webhook-secret", "0123456789abcdef", "--webhook-timeout", "2m"}, nil, "invalid --webhook-timeout (SWITCHBOARD_WEBHOOK_TIMEOUT): 2m0s is too long"},
		{[]string{"--jwt-secret", "short"}, nil, "invalid --jwt-secret (SWITCHBOARD_JWT_SECRET): 5 bytes is shorter than 16"},
		{[]string{"--admin-token", "0123456789abcde"}, nil, "invalid --admin-token (SWITCHBOARD_ADMIN_TOKEN): shorter than 16 bytes; use a long random token"},
		{[]string{"--jwt-public-key", "/nonexistent/k.pem"}, nil, `invalid --jwt-public-key (SWITCHBOARD_JWT_PUBLIC_KEY) "/nonexistent/k.pem": open: no such file or directory`},
		{nil, map[string]string{"SWITCHBOARD_JWKS_FILE": "/nonexistent/j.json"}, `invalid --jwks-file (SWITCHBOARD_JWKS_FILE) "/nonexistent/j.json": open: no such file or directory`},
		{[]string{"--jwks-url", "ftp://id.example/jwks"}, nil, `invalid --jwks-url (SWITCHBOARD_JWKS_URL) "ftp://id.example/jwks": want an absolute http or https URL`},
		{[]string{"--jwks-url", "id.example/jwks"}, nil, `invalid --jwks-url (SWITCHBOARD_JWKS_URL) "id.example/jwks": want an absolute http or https URL`},
		{[]string{"--allowed-origins", "app.example.com"}, nil, `entry "app.example.com": use an origin such as https://app.example.com`},
		{[]string{"--anon-subscribe", "public:*"}, nil, "they apply only with JWT"},
		{[]string{"--jwt-secret", "0123456789abcdef", "--anon-subscribe", "a b"}, nil, `invalid value "a b" for --anon-subscribe (SWITCHBOARD_ANON_SUBSCRIBE):`},
		{[]string{"--proxy-header", "X-Forwarded-For"}, nil, "set --trusted-proxies too"},
		{[]string{"--proxy-header", "X-Forwarded-For", "--trusted-proxies", "10.0.0.0/33"}, nil, `entry "10.0.0.0/33"`},
		{[]string{"--tls-cert", "c.pem"}, nil, "set both or neither"},
		{[]string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, nil, "no such file"},
		{[]string{"--max-connections", "-1"}, nil, "invalid --max-connections (SWITCHBOARD_MAX_CONNECTIONS): must not be negative"},
		{[]string{"--api-keys", "short"}, nil, "--api-keys (SWITCHBOARD_API_KEYS): a key is shorter than 16 bytes"},
		{[]string{"--idempotency-ttl", "-1s"}, nil, "invalid --idempotency-ttl (SWITCHBOARD_IDEMPOTENCY_TTL): -1s must not be negative"},
		{[]string{"--presence-interval", "5s", "--presence-ttl", "5s"}, nil, "invalid --presence-ttl (SWITCHBOARD_PRESENCE_TTL): 5s must exceed the interval 5s"},
		{[]string{"--presence-interval", "-1s"}, nil, "invalid --presence-interval (SWITCHBOARD_PRESENCE_INTERVAL): -1s must be positive"},
		{[]string{"--transports", "ws"}, nil, `unknown transport "ws"; use websocket, sse and/or longpoll`},
		{[]string{"--transports", ","}, nil, "--transports (SWITCHBOARD_TRANSPORTS): empty"},
		{[]string{"--nope"}, nil, "flag provided but not defined: -nope"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := Load(tc.args, env(tc.env), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			for _, field := range []string{"PublicKeyFile", "JWKSURL", "JWKSFile", "Secret:", "Node.", "invalid config", "hunter2"} {
				if strings.Contains(err.Error(), field) {
					t.Fatalf("err = %v names %s, not the flag", err, field)
				}
			}
		})
	}
}

// TestRestateKeepsTheSource: a key source error restated with the flag
// still matches *auth.SourceError and what it wraps.
func TestRestateKeepsTheSource(t *testing.T) {
	_, err := Load([]string{"--jwks-file", "/nonexistent/j.json"}, env(nil), nil)
	var se *auth.SourceError
	if !errors.As(err, &se) || se.Field != "JWKSFile" || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v (%T), want it to wrap the *auth.SourceError for JWKSFile and fs.ErrNotExist", err, err)
	}
	other := errors.New("switchboard/edge/auth: something else")
	if Restate(other) != other {
		t.Fatal("Restate changed an error that names no key source")
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := Load([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, name := range []string{"addr", "jwt-secret", "allowed-origins", "log-format", "broker", "history-size", "heartbeat-interval",
		"heartbeat-timeout", "send-queue", "slow-consumer", "max-message-size", "rate-limit", "rate-burst", "max-rooms", "write-timeout", "shutdown-timeout"} {
		if !strings.Contains(out.String(), "--"+name+" ("+EnvName(name)+")") {
			t.Errorf("help lacks --%s", name)
		}
	}
}

// TestLogger: the logger writes in --log-format and drops records below
// --log-level.
func TestLogger(t *testing.T) {
	cases := []struct {
		format, level string
		want          []string // substrings of the output
		wantNot       []string
	}{
		{"text", "info", []string{`level=INFO msg=shown`, `level=WARN msg=warned`}, []string{"hidden"}},
		{"text", "debug", []string{`level=DEBUG msg=hidden`, `level=INFO msg=shown`}, nil},
		{"text", "warn", []string{`level=WARN msg=warned`}, []string{"shown", "hidden"}},
		{"json", "info", []string{`"level":"INFO","msg":"shown"`, `"level":"WARN","msg":"warned"`}, []string{"hidden"}},
		{"json", "error", nil, []string{"shown", "hidden", "warned"}},
	}
	for _, tc := range cases {
		t.Run(tc.format+" "+tc.level, func(t *testing.T) {
			c, err := Load([]string{"--log-format", tc.format, "--log-level", tc.level}, env(nil), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			log := c.Logger(&out)
			log.Debug("hidden")
			log.Info("shown")
			log.Warn("warned")
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, &out)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, &out)
				}
			}
		})
	}
}

// TestEveryFlagSetsAField: each flag writes into one field of Config (the
// edge's own, or a package's nested configuration), so a package's
// refusal of that field is restated with the flag.
func TestEveryFlagSetsAField(t *testing.T) {
	byFlag := flagFields()
	var c Config
	newFlagSet(&c).VisitAll(func(f *flag.Flag) {
		if byFlag[f.Name] == "" {
			t.Errorf("--%s sets no field of Config", f.Name)
		}
	})
	for path, want := range map[string]string{
		"Node.SendQueueSize": "send-queue", "Node.MaxRoomsPerConn": "max-rooms", "Broker.Engine.DedupWindow": "idempotency-ttl",
		"Broker.Memory.HistorySize": "history-size", "Auth.JWKSURL": "jwks-url", "Webhooks.Secret": "webhook-secret", "Presence.RoomEvents": "presence-events",
	} {
		if got := fieldFlags()[path]; got != want {
			t.Errorf("%s is set by --%s, want --%s", path, got, want)
		}
	}
}

// TestRestateKeepsTheError: a refusal restated with the flag still
// matches the package's sentinel and *core.ConfigError.
func TestRestateKeepsTheError(t *testing.T) {
	_, err := Load([]string{"--send-queue", "-3"}, env(nil), nil)
	var ce *core.ConfigError
	if !errors.Is(err, core.ErrInvalidConfig) || !errors.As(err, &ce) || ce.Field != "SendQueueSize" {
		t.Fatalf("err = %v (%T), want it to wrap core's ConfigError on SendQueueSize", err, err)
	}
	other := &core.ConfigError{Err: core.ErrInvalidConfig, Field: "WriteBatch", Problem: "no flag sets it"}
	if Restate(other) != error(other) {
		t.Fatal("Restate changed a refusal of a field no flag sets")
	}
}

// TestExtraFlags: an application's own flags are read like the edge's:
// from the environment, with flags winning, explained when bad, and
// listed by --help.
func TestExtraFlags(t *testing.T) {
	var tcp string
	var port int
	extra := func(fs *flag.FlagSet) {
		fs.StringVar(&tcp, "tcp-addr", "127.0.0.1:9090", "NDJSON listen address")
		fs.IntVar(&port, "tcp-backlog", 5, "backlog")
	}
	if _, err := Load([]string{"--addr", ":1"}, env(map[string]string{"SWITCHBOARD_TCP_ADDR": "127.0.0.1:7"}), nil, extra); err != nil || tcp != "127.0.0.1:7" {
		t.Fatalf("Load = %v, --tcp-addr %q; want it read from SWITCHBOARD_TCP_ADDR", err, tcp)
	}
	if _, err := Load([]string{"--tcp-addr", "127.0.0.1:8"}, env(map[string]string{"SWITCHBOARD_TCP_ADDR": "127.0.0.1:7"}), nil, extra); err != nil || tcp != "127.0.0.1:8" {
		t.Fatalf("Load = %v, --tcp-addr %q; want the flag to win", err, tcp)
	}
	_, err := Load([]string{"--tcp-backlog", "x"}, env(nil), nil, extra)
	if err == nil || !strings.Contains(err.Error(), `invalid value "x" for --tcp-backlog (SWITCHBOARD_TCP_BACKLOG): expected a whole number`) {
		t.Fatalf("err = %v", err)
	}
	var out bytes.Buffer
	if _, err := Load([]string{"--help"}, env(nil), &out, extra); !errors.Is(err, ErrHelp) || !strings.Contains(out.String(), "--tcp-addr (SWITCHBOARD_TCP_ADDR)") {
		t.Fatalf("help = %v:\n%s", err, &out)
	}
}
