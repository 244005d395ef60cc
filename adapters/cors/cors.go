package cors

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/internal/request"
	"github.com/switchboard-dev/switchboard/core"
)

// Self, in an Origins list, allows pages served from the same host
// (the Origin's host:port equals the request's Host; the scheme is not
// compared, so TLS terminated by a proxy still matches).
const Self = "self"

// Any, in an Origins list, allows every origin.
const Any = "*"

// Allowed reports whether a browser request from origin to host may
// proceed under the allowlist origins: exact origins
// ("https://app.example.com"), globs ("https://*.example.com", see
// core.MatchGlob), Self or Any. An empty origin (not a browser) is
// allowed; an empty list allows nothing but requests without Origin.
func Allowed(origins []string, origin, host string) bool {
	if origin == "" {
		return true
	}
	for _, o := range origins {
		switch {
		case o == Any:
			return true
		case o == Self:
			if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, host) {
				return true
			}
		case strings.EqualFold(o, origin), strings.Contains(o, "*") && core.MatchGlob(strings.ToLower(o), strings.ToLower(origin)):
			return true
		}
	}
	return false
}

// Config configures New and NewHandler.
type Config struct {
	// Origins is the allowlist (see Allowed).
	// Optional. Default: []string{Self}
	Origins []string

	// AllowHeaders are the request headers a cross-origin page may send.
	// Optional. Default: Authorization, Content-Type, Last-Event-ID
	AllowHeaders []string

	// MaxAge is how long (seconds) a browser may cache a preflight.
	// Optional. Default: 600
	MaxAge int

	// Log receives a line per refused origin.
	// Optional. Default: no logging
	Log func(origin, remote string)
}

// New returns Fiber middleware that refuses requests from Origins not on
// the list with 403 {"error":{"code":"forbidden",…}} and answers
// preflight (OPTIONS) requests itself. Allowed cross-origin responses
// carry Access-Control-Allow-Origin with the request's origin and Vary:
// Origin. No credentials (cookies) are allowed: Switchboard authenticates
// with bearer tokens. NewHandler is the same policy for net/http.
func New(config ...Config) fiber.Handler {
	p := newPolicy(config...)
	return func(c *fiber.Ctx) error {
		origin := c.Get(fiber.HeaderOrigin)
		if origin == "" {
			return c.Next()
		}
		c.Vary(fiber.HeaderOrigin)
		switch p.judge(origin, string(c.Request().Host()), c.Method()) {
		case refuse:
			// origin points into fasthttp's reused buffer.
			p.log(strings.Clone(origin), c.Context().RemoteAddr().String())
			return request.Reply(c, refusal)
		case preflight:
			c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
			for _, h := range p.preflight {
				c.Set(h[0], h[1])
			}
			return c.SendStatus(fiber.StatusNoContent)
		}
		c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
		return c.Next()
	}
}

// NewHandler is New for net/http: it applies the policy, then passes
// allowed requests (and those without an Origin) to next.
func NewHandler(next http.Handler, config ...Config) http.Handler {
	p := newPolicy(config...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		switch p.judge(origin, r.Host, r.Method) {
		case refuse:
			p.log(origin, r.RemoteAddr)
			request.Write(w, refusal)
			return
		case preflight:
			h.Set("Access-Control-Allow-Origin", origin)
			for _, kv := range p.preflight {
				h.Set(kv[0], kv[1])
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		next.ServeHTTP(w, r)
	})
}

// refusal is the answer to a request from an origin not on the list.
var refusal = request.Error(http.StatusForbidden, core.CodeForbidden, "origin not allowed (see --allowed-origins)")

// policy is Config with its defaults applied, shared by both front ends.
type policy struct {
	origins   []string
	preflight [3][2]string // the headers of a preflight answer
	logFn     func(origin, remote string)
}

func newPolicy(config ...Config) *policy {
	cfg := Config{}
	if len(config) > 0 {
		cfg = config[0]
	}
	if len(cfg.Origins) == 0 {
		cfg.Origins = []string{Self}
	}
	if len(cfg.AllowHeaders) == 0 {
		cfg.AllowHeaders = []string{"Authorization", "Content-Type", "Last-Event-ID"}
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 600
	}
	return &policy{
		origins: cfg.Origins,
		preflight: [3][2]string{
			{"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
			{"Access-Control-Allow-Headers", strings.Join(cfg.AllowHeaders, ", ")},
			{"Access-Control-Max-Age", strconv.Itoa(cfg.MaxAge)},
		},
		logFn: cfg.Log,
	}
}

// verdict is what the policy makes of a request carrying an Origin.
type verdict int

const (
	pass      verdict = iota // allowed: the handler runs, the response names the origin
	refuse                   // 403
	preflight                // allowed OPTIONS: answered here, 204
)

func (p *policy) judge(origin, host, method string) verdict {
	switch {
	case !Allowed(p.origins, origin, host):
		return refuse
	case method == http.MethodOptions:
		return preflight
	}
	return pass
}

func (p *policy) log(origin, remote string) {
	if p.logFn != nil {
		p.logFn(origin, remote)
	}
}
