package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
)

// RequireToken returns a handler that passes on only requests carrying
// the admin token, as "Authorization: Bearer <token>" or as the password
// of HTTP Basic authentication (any user name), compared in constant
// time. Others get 401 with a Basic challenge, so a browser asks for the
// token. The edge guards /dashboard with it, and in production mode
// /stats and /metrics on the public listener; name ("dashboard",
// "stats") starts its log lines.
//
// A request without credentials is what a browser sends first, before
// it asks the user: it is logged at Debug. A wrong token is logged at
// Warn, at most once per 10 s (anyone who reaches the listener could
// otherwise flood the log and the recent-warnings list), then at Debug.
// The handler is safe for concurrent use.
func RequireToken(token, name string, logger *slog.Logger) fiber.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	var lastWarn atomic.Int64 // unix ns of the last refusal logged at Warn
	return func(c *fiber.Ctx) error {
		header := c.Get(fiber.HeaderAuthorization)
		given, ok := credential(header)
		if ok && equal(given, token) {
			return c.Next()
		}
		level := slog.LevelDebug
		if now := time.Now().UnixNano(); header != "" && now-lastWarn.Load() > int64(10*time.Second) {
			lastWarn.Store(now)
			level = slog.LevelWarn
		}
		logger.Log(c.Context(), level, name+": missing or wrong admin token", "remote", c.IP(), "path", c.Path())
		c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="switchboard admin", charset="UTF-8"`)
		return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{
			"error": fiber.Map{"code": core.CodeUnauthorized, "message": "missing or wrong admin token (--admin-token): send it as a Bearer token, or as the password of Basic authentication"},
		})
	}
}

// credential reads a Bearer token or a Basic password.
func credential(h string) (string, bool) {
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return tok, true
	}
	if b64, ok := strings.CutPrefix(h, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return "", false
		}
		_, pass, ok := strings.Cut(string(raw), ":")
		return pass, ok
	}
	return "", false
}

// equal compares in constant time (over hashes, so lengths leak nothing).
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
