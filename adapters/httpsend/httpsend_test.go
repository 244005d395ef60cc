package httpsend

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(2, 4)
	now := time.Now()
	if !l.allow("u", 3, now) || l.allow("u", 2, now) || !l.allow("u", 1, now) {
		t.Fatal("burst of 4 not honoured (all or none per request)")
	}
	if !l.allow("v", 4, now) {
		t.Fatal("buckets are not per key")
	}
	if l.allow("u", 1, now.Add(100*time.Millisecond)) || !l.allow("u", 1, now.Add(600*time.Millisecond)) {
		t.Fatal("refill at 2/s wrong")
	}
	l.allow("w", 1, now.Add(2*time.Minute)) // sweeps refilled buckets
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", len(l.buckets))
	}
	if !newLimiter(-1, 1).allow("x", 1000, now) {
		t.Fatal("negative rate must disable the limit")
	}
}

func TestStatusOf(t *testing.T) {
	cases := map[string]int{
		core.CodeBadRequest: 400, core.CodeReconnectRequired: 400, core.CodeNotJoined: 403,
		core.CodeForbidden: 403, core.CodeBrokerDown: 503, core.CodeUnavailable: 503,
		core.CodeUnconfirmed: 202, core.CodeInternal: 500,
	}
	for code, want := range cases {
		if got := statusOf(errorEnvelope("", code, "m")); got != want {
			t.Errorf("statusOf(%s) = %d, want %d", code, got, want)
		}
	}
	if got := statusOf((&core.Envelope{V: 1, Type: core.TypeAck}).Encode()); got != 200 {
		t.Errorf("ack: %d", got)
	}
}

// TestFronts: New (Fiber) and NewHandler (net/http) answer the same
// requests the same way: one envelope, several, an oversized body, a
// refused token.
func TestFronts(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := core.AuthenticatorFunc(func(ctx context.Context, c core.Credentials) (core.Identity, error) {
		if c.Token == "bad" {
			return core.Identity{}, fmt.Errorf("%w: bad token", core.ErrUnauthorized)
		}
		return core.Insecure.Authenticate(ctx, c)
	})
	node, err := core.NewNode(core.Config{MaxMessageSize: 256, Authenticator: auth}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(context.Background()) })
	app := fiber.New()
	app.Post("/send", New(node))
	h := NewHandler(node)
	fronts := map[string]func(*http.Request) *http.Response{
		"fiber": func(req *http.Request) *http.Response {
			res, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			return res
		},
		"nethttp": func(req *http.Request) *http.Response {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Result()
		},
	}
	cases := []struct {
		name, query, body string
		status            int
		want              string // in the body
	}{
		{"one", "user=u", `{"v":1,"type":"ping","ref":"1"}`, 200, `"type":"pong","ref":"1"`},
		{"two", "user=u", "{\"v\":1,\"type\":\"ping\",\"ref\":\"1\"}\n{\"v\":1,\"type\":\"ping\",\"ref\":\"2\"}", 200, `"ref":"2"`},
		{"too large", "user=u", strings.Repeat(" ", 257), 413, `"code":"too_large"`},
		{"refused", "user=u&token=bad", `{"v":1,"type":"ping"}`, 401, `"code":"unauthorized"`},
		{"not joined", "user=u", `{"v":1,"type":"publish","room":"r","ref":"p","data":1}`, 403, `"code":"not_joined"`},
	}
	for name, do := range fronts {
		for _, tc := range cases {
			res := do(httptest.NewRequest(http.MethodPost, "/send?"+tc.query, strings.NewReader(tc.body)))
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status || !strings.Contains(string(body), tc.want) || res.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %s: %d %s %s, want %d with %s", name, tc.name, res.StatusCode, res.Header.Get("Content-Type"), body, tc.status, tc.want)
			}
			if tc.name == "two" && !strings.HasPrefix(string(body), "[") {
				t.Errorf("%s two envelopes: %s, want an array", name, body)
			}
		}
	}
}
