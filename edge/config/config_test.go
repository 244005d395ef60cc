package config

import (
	"bytes"
	"errors"
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
	if c.Addr != ":8080" || c.Broker != "memory" || c.MaxMessageSize != 64<<10 || c.RateLimit != 50 || c.RateBurst != 100 ||
		c.SendQueue != 256 || c.SlowConsumer != core.SlowClose || c.HeartbeatInterval != 25*time.Second ||
		c.HeartbeatTimeout != 0 || c.JWTSecret != "" || len(c.AllowedOrigins) != 1 || c.AllowedOrigins[0] != "*" {
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
		{"KiB size", []string{"--max-message-size", "128KiB"}, nil, func(c Config) bool { return c.MaxMessageSize == 128<<10 }},
		{"MiB size from env", nil, map[string]string{"SWITCHBOARD_MAX_MESSAGE_SIZE": "1MiB"}, func(c Config) bool { return c.MaxMessageSize == 1<<20 }},
		{"drop-oldest", []string{"--slow-consumer", "drop-oldest"}, nil, func(c Config) bool { return c.SlowConsumer == core.SlowDropOldest }},
		{"room policies", []string{"--slow-consumer-rooms", "ticker:*=conflate, feed:*=resume"}, nil, func(c Config) bool {
			return len(c.RoomPolicies) == 2 && c.RoomPolicies[0] == core.RoomPolicy{Pattern: "ticker:*", Policy: core.SlowConflate} &&
				c.RoomPolicies[1] == core.RoomPolicy{Pattern: "feed:*", Policy: core.SlowResume}
		}},
		{"origins list", []string{"--allowed-origins", "https://a.example, https://b.example"}, nil, func(c Config) bool {
			return len(c.AllowedOrigins) == 2 && c.AllowedOrigins[1] == "https://b.example"
		}},
		{"interval alone is valid", []string{"--heartbeat-interval", "90s"}, nil, func(c Config) bool { return c.HeartbeatInterval == 90*time.Second }},
		{"history limit", []string{"--history-limit", "5000"}, nil, func(c Config) bool { return c.HistoryLimit == 5000 }},
		{"redis default URL", []string{"--broker", "redis"}, nil, func(c Config) bool { return c.BrokerURL == "redis://127.0.0.1:6379/0" }},
		{"redis URL from env", []string{"--broker", "redis"}, map[string]string{"SWITCHBOARD_BROKER_URL": "redis://10.0.0.5:6380/2"}, func(c Config) bool { return c.BrokerURL == "redis://10.0.0.5:6380/2" }},
		{"retention", []string{"--retention-messages", "500", "--retention-age", "2h"}, nil, func(c Config) bool { return c.RetentionMessages == 500 && c.RetentionAge == 2*time.Hour }},
		{"nats default URL", []string{"--broker", "nats"}, nil, func(c Config) bool { return c.BrokerURL == "nats://127.0.0.1:4222" }},
		{"kafka default URL", []string{"--broker", "kafka"}, nil, func(c Config) bool { return c.BrokerURL == "kafka://127.0.0.1:9092" }},
		{"rate limit disabled", []string{"--rate-limit", "-1"}, nil, func(c Config) bool { return c.RateLimit < 0 }},
		{"anonymous policy", []string{"--jwks-url", "https://id.example/jwks", "--anon-subscribe", "public:*, news"}, nil, func(c Config) bool {
			return c.Production() && c.Anonymous != nil && strings.Join(c.Anonymous.Subscribe, ",") == "public:*,news" && c.Anonymous.Publish == nil &&
				c.AllowedOrigins[0] == "self"
		}},
		{"origins default to self with JWT", []string{"--jwt-secret", "0123456789abcdef"}, nil, func(c Config) bool {
			return len(c.AllowedOrigins) == 1 && c.AllowedOrigins[0] == "self"
		}},
		{"explicit * with JWT", []string{"--jwt-secret", "0123456789abcdef", "--allowed-origins", "*"}, nil, func(c Config) bool {
			return len(c.AllowedOrigins) == 1 && c.AllowedOrigins[0] == "*"
		}},
		{"a JWKS URL is not fetched by Load", []string{"--jwks-url", "http://127.0.0.1:1/jwks"}, nil, func(c Config) bool {
			return c.Production() && c.JWKSURL == "http://127.0.0.1:1/jwks"
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
		{[]string{"--heartbeat-interval", "30s", "--heartbeat-timeout", "30s"}, nil, "must be longer than --heartbeat-interval"},
		{[]string{"--log-format", "xml"}, nil, "use text or json"},
		{[]string{"--history-limit", "0"}, nil, "--history-limit (SWITCHBOARD_HISTORY_LIMIT): must be at least 1"},
		{[]string{"--log-level", "loud"}, nil, "use debug, info, warn or error"},
		{[]string{"--broker", "pigeon"}, nil, `unknown broker "pigeon"`},
		{[]string{"--retention-messages", "0"}, nil, "--retention-messages (SWITCHBOARD_RETENTION_MESSAGES): must be positive"},
		{[]string{"--retention-messages", "lots"}, nil, "expected a whole number"},
		{[]string{"--broker", "kafka", "--broker-url", "redis://x:1"}, nil, "use kafka://host:9092"},
		{[]string{"--broker", "redis", "--broker-url", "http://x:1"}, nil, `--broker-url (SWITCHBOARD_BROKER_URL) "http://x:1": scheme "http"`},
		{[]string{"--broker", "redis", "--broker-url", "redis:///0"}, nil, "no host"},
		{[]string{"--broker", "redis", "--broker-url", "redis://h:1/zero"}, nil, `database "zero"`},
		{[]string{"--broker-url", "redis://h:1"}, nil, "memory broker takes no URL"},
		{[]string{"--slow-consumer", "wait"}, nil, "use close, drop-oldest, conflate or resume"},
		{[]string{"--slow-consumer-rooms", "ticker:*"}, nil, `rule "ticker:*": use pattern=policy`},
		{[]string{"--slow-consumer-rooms", "[=close"}, nil, `rule "[=close"`},
		{[]string{"--slow-consumer-rooms", "a*=snooze"}, nil, `rule "a*=snooze"`},
		{[]string{"--rate-limit", "0"}, nil, "negative to disable"},
		{[]string{"--jwt-secret", "short"}, nil, "shorter than 16 bytes"},
		{[]string{"--admin-token", "0123456789abcde"}, nil, "invalid --admin-token (SWITCHBOARD_ADMIN_TOKEN): shorter than 16 bytes; use a long random token"},
		{[]string{"--jwt-public-key", "/nonexistent/k.pem"}, nil, `invalid --jwt-public-key (SWITCHBOARD_JWT_PUBLIC_KEY) "/nonexistent/k.pem": open: no such file or directory`},
		{nil, map[string]string{"SWITCHBOARD_JWKS_FILE": "/nonexistent/j.json"}, `invalid --jwks-file (SWITCHBOARD_JWKS_FILE) "/nonexistent/j.json": open: no such file or directory`},
		{[]string{"--jwks-url", "ftp://id.example/jwks"}, nil, `invalid --jwks-url (SWITCHBOARD_JWKS_URL) "ftp://id.example/jwks": want an absolute http or https URL`},
		{[]string{"--jwks-url", "id.example/jwks"}, nil, `invalid --jwks-url (SWITCHBOARD_JWKS_URL) "id.example/jwks": want an absolute http or https URL`},
		{[]string{"--allowed-origins", "app.example.com"}, nil, `entry "app.example.com": use an origin such as https://app.example.com`},
		{[]string{"--anon-subscribe", "public:*"}, nil, "they apply only with JWT"},
		{[]string{"--jwt-secret", "0123456789abcdef", "--anon-subscribe", "a b"}, nil, `--anon-subscribe (SWITCHBOARD_ANON_SUBSCRIBE): room pattern "a b"`},
		{[]string{"--proxy-header", "X-Forwarded-For"}, nil, "set --trusted-proxies too"},
		{[]string{"--proxy-header", "X-Forwarded-For", "--trusted-proxies", "10.0.0.0/33"}, nil, `entry "10.0.0.0/33"`},
		{[]string{"--tls-cert", "c.pem"}, nil, "set both or neither"},
		{[]string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, nil, "no such file"},
		{[]string{"--max-connections", "-1"}, nil, "must not be negative"},
		{[]string{"--api-keys", "short"}, nil, "--api-keys (SWITCHBOARD_API_KEYS): a key is shorter than 16 bytes"},
		{[]string{"--idempotency-ttl", "-1s"}, nil, "--idempotency-ttl (SWITCHBOARD_IDEMPOTENCY_TTL): must be positive"},
		{[]string{"--presence-interval", "5s", "--presence-ttl", "5s"}, nil, "--presence-ttl (SWITCHBOARD_PRESENCE_TTL): must exceed --presence-interval"},
		{[]string{"--presence-interval", "0s"}, nil, "--presence-interval (SWITCHBOARD_PRESENCE_INTERVAL): must be positive"},
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
			for _, field := range []string{"PublicKeyFile", "JWKSURL", "JWKSFile", "switchboard/edge/auth"} {
				if strings.Contains(err.Error(), field) {
					t.Fatalf("err = %v names %s, not the flag", err, field)
				}
			}
		})
	}
}

// TestAuthErrorKeepsTheSource: a key source error restated with the flag
// still matches *auth.SourceError and what it wraps.
func TestAuthErrorKeepsTheSource(t *testing.T) {
	_, err := Load([]string{"--jwks-file", "/nonexistent/j.json"}, env(nil), nil)
	var se *auth.SourceError
	if !errors.As(err, &se) || se.Field != "JWKSFile" || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v (%T), want it to wrap the *auth.SourceError for JWKSFile and fs.ErrNotExist", err, err)
	}
	other := errors.New("switchboard/edge/auth: something else")
	if AuthError(other) != other {
		t.Fatal("AuthError changed an error that names no key source")
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
