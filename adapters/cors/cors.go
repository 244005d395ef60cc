package cors

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

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

// Config configures New.
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

// New returns middleware that refuses requests from Origins not on the
// list with 403 {"error":{"code":"forbidden",…}} and answers preflight
// (OPTIONS) requests itself. Allowed cross-origin responses carry
// Access-Control-Allow-Origin with the request's origin and Vary: Origin.
// No credentials (cookies) are allowed: Switchboard authenticates with
// bearer tokens.
func New(config ...Config) fiber.Handler {
	cfg := Config{}
	if len(config) > 0 {
		cfg = config[0]
	}
	if len(cfg.Origins) == 0 {
		cfg.Origins = []string{Self}
	}
	if len(cfg.AllowHeaders) == 0 {
		cfg.AllowHeaders = []string{fiber.HeaderAuthorization, fiber.HeaderContentType, "Last-Event-ID"}
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 600
	}
	allowHeaders := strings.Join(cfg.AllowHeaders, ", ")
	maxAge := strconv.Itoa(cfg.MaxAge)
	return func(c *fiber.Ctx) error {
		origin := c.Get(fiber.HeaderOrigin)
		if origin == "" {
			return c.Next()
		}
		c.Vary(fiber.HeaderOrigin)
		if !Allowed(cfg.Origins, origin, string(c.Request().Host())) {
			if cfg.Log != nil {
				// origin points into fasthttp's reused buffer.
				cfg.Log(strings.Clone(origin), c.Context().RemoteAddr().String())
			}
			return c.Status(fiber.StatusForbidden).JSON(fiber.Map{
				"error": fiber.Map{"code": core.CodeForbidden, "message": "origin not allowed (see --allowed-origins)"},
			})
		}
		c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
		if c.Method() == fiber.MethodOptions {
			c.Set(fiber.HeaderAccessControlAllowMethods, "GET, POST, OPTIONS")
			c.Set(fiber.HeaderAccessControlAllowHeaders, allowHeaders)
			c.Set(fiber.HeaderAccessControlMaxAge, maxAge)
			return c.SendStatus(fiber.StatusNoContent)
		}
		return c.Next()
	}
}
