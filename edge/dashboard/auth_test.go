package dashboard

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// levels records the level of every log record.
type levels struct {
	mu  sync.Mutex
	got []slog.Level
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r.Level)
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

// take returns the levels recorded since the last call.
func (l *levels) take() []slog.Level {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.got
	l.got = nil
	return out
}

// TestRequireTokenLevels: a browser opening a protected page first asks
// without credentials (the Basic challenge, logged at Debug), then with
// the token (nothing logged): a right token never logs a warning. A wrong
// one warns, once per 10 s, then Debug.
func TestRequireTokenLevels(t *testing.T) {
	const token = "0123456789abcdef-admin"
	rec := &levels{}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/p", RequireToken(token, "test", slog.New(rec)), func(c *fiber.Ctx) error { return c.SendString("ok") })
	steps := []struct {
		name, auth string
		status     int
		levels     []slog.Level
	}{
		{"no credentials: the challenge", "", http.StatusUnauthorized, []slog.Level{slog.LevelDebug}},
		{"basic with the token", basicAuth("", token), http.StatusOK, nil},
		{"bearer with the token", "Bearer " + token, http.StatusOK, nil},
		{"wrong token", "Bearer nope", http.StatusUnauthorized, []slog.Level{slog.LevelWarn}},
		{"wrong again, within 10 s", basicAuth("ops", "nope"), http.StatusUnauthorized, []slog.Level{slog.LevelDebug}},
		{"not base64", "Basic !!!", http.StatusUnauthorized, []slog.Level{slog.LevelDebug}},
		{"the token again", basicAuth("ops", token), http.StatusOK, nil},
	}
	for _, s := range steps {
		req := httptest.NewRequest(http.MethodGet, "/p", nil)
		if s.auth != "" {
			req.Header.Set("Authorization", s.auth)
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != s.status {
			t.Errorf("%s: %d, want %d", s.name, resp.StatusCode, s.status)
		}
		if s.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no Basic challenge", s.name)
		}
		if got := rec.take(); !slices.Equal(got, s.levels) {
			t.Errorf("%s: logged at %v, want %v", s.name, got, s.levels)
		}
	}
}

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}
