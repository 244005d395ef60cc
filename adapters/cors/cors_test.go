package cors

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func TestAllowed(t *testing.T) {
	cases := []struct {
		origins      []string
		origin, host string
		want         bool
	}{
		{nil, "", "h", true}, // not a browser
		{nil, "https://a.example", "h", false},
		{[]string{Any}, "https://evil.example", "h", true},
		{[]string{Self}, "https://push.example:8443", "push.example:8443", true},
		{[]string{Self}, "http://PUSH.example", "push.example", true},
		{[]string{Self}, "https://push.example.evil", "push.example", false},
		{[]string{Self}, "https://push.example:8443", "push.example", false},
		{[]string{Self}, "null", "push.example", false},
		{[]string{"https://app.example"}, "https://app.example", "h", true},
		{[]string{"https://app.example"}, "http://app.example", "h", false},
		{[]string{"https://app.example"}, "https://app.example.evil", "h", false},
		{[]string{"https://*.example.com"}, "https://a.b.example.com", "h", true},
		{[]string{"https://*.example.com"}, "https://example.com", "h", false},
		{[]string{"https://*.example.com"}, "https://example.com.evil", "h", false},
		{[]string{"https://*.example.com"}, "https://evilexample.com", "h", false},
	}
	for _, tc := range cases {
		if got := Allowed(tc.origins, tc.origin, tc.host); got != tc.want {
			t.Errorf("Allowed(%v, %q, %q) = %v, want %v", tc.origins, tc.origin, tc.host, got, tc.want)
		}
	}
}

// TestMiddleware runs the same requests through New on Fiber and
// NewHandler on net/http: both front ends apply one policy.
func TestMiddleware(t *testing.T) {
	fronts := map[string]func(cfg Config) func(*http.Request) (*http.Response, error){
		"fiber": func(cfg Config) func(*http.Request) (*http.Response, error) {
			app := fiber.New()
			app.Use(New(cfg))
			app.All("/send", func(c *fiber.Ctx) error { return c.SendString("ok") })
			return func(req *http.Request) (*http.Response, error) { return app.Test(req) }
		},
		"nethttp": func(cfg Config) func(*http.Request) (*http.Response, error) {
			h := NewHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), cfg)
			return func(req *http.Request) (*http.Response, error) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec.Result(), nil
			}
		},
	}
	for name, front := range fronts {
		t.Run(name, func(t *testing.T) {
			var refused []string
			serve := front(Config{Origins: []string{"https://app.example", Self}, Log: func(o, _ string) { refused = append(refused, o) }})
			testPolicy(t, serve)
			if len(refused) != 3 || refused[0] != "https://evil.example" {
				t.Fatalf("refusals logged: %v", refused)
			}
		})
	}
}

func testPolicy(t *testing.T, serve func(*http.Request) (*http.Response, error)) {
	do := func(method, origin, host string) *http.Response {
		req := httptest.NewRequest(method, "http://push.example/send", nil)
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization")
		}
		res, err := serve(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Allowed cross-origin request: echoed origin, Vary.
	res := do(http.MethodPost, "https://app.example", "push.example")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "ok" || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || res.Header.Get("Vary") != "Origin" {
		t.Fatalf("allowed: %d %q %v", res.StatusCode, body, res.Header)
	}
	// Preflight.
	res = do(http.MethodOptions, "https://app.example", "push.example")
	if res.StatusCode != 204 || !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "POST") || res.Header.Get("Access-Control-Max-Age") != "600" ||
		res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
	// Same origin.
	if res = do(http.MethodPost, "http://push.example", "push.example"); res.StatusCode != 200 {
		t.Fatalf("self: %d", res.StatusCode)
	}
	// No Origin: not a browser, no CORS headers.
	if res = do(http.MethodPost, "", "push.example"); res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("no origin: %d %v", res.StatusCode, res.Header)
	}
	// A forged origin: 403 with a precise body, refused before the handler, logged.
	for _, m := range []string{http.MethodPost, http.MethodOptions, http.MethodGet} {
		res = do(m, "https://evil.example", "push.example")
		body, _ = io.ReadAll(res.Body)
		if res.StatusCode != 403 || !strings.Contains(string(body), `"code":"forbidden"`) || res.Header.Get("Access-Control-Allow-Origin") != "" ||
			res.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s forged: %d %s %v", m, res.StatusCode, body, res.Header)
		}
	}
}
