package request

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
)

// collect runs Credentials (with and without details) on a request to
// url with header, as Fiber and as net/http see it.
func collect(t *testing.T, url string, header http.Header) (fiberFull, fiberLean, httpFull, httpLean core.Credentials) {
	t.Helper()
	newReq := func() *http.Request {
		req := httptest.NewRequest("GET", url, nil)
		req.Header = header.Clone()
		req.RemoteAddr = "192.0.2.7:5555"
		return req
	}
	app := fiber.New()
	app.Get("/x", func(c *fiber.Ctx) error {
		r := Fiber(c)
		fiberFull, fiberLean = Credentials(r, "websocket", true), Credentials(r, "websocket", false)
		return nil
	})
	if _, err := app.Test(newReq()); err != nil {
		t.Fatal(err)
	}
	r := HTTP(newReq())
	httpFull, httpLean = Credentials(r, "websocket", true), Credentials(r, "websocket", false)
	return
}

func TestCredentials(t *testing.T) {
	cases := []struct {
		name   string
		url    string
		header http.Header
		token  string
	}{
		{"query", "/x?token=q&user=u&rooms=a", http.Header{"Authorization": {"Bearer h"}}, "q"},
		{"bearer", "/x?user=u&rooms=a", http.Header{"Authorization": {"Bearer h"}}, "h"},
		{"subprotocol", "/x?user=u&rooms=a", http.Header{"Sec-Websocket-Protocol": {"switchboard.v1, switchboard.token.s"}}, "s"},
		{"none", "/x?user=u&rooms=a", http.Header{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header.Clone()
			h.Set("X-Trace", "t1")
			h.Set("Cookie", "session=secret")
			fiberFull, fiberLean, httpFull, httpLean := collect(t, "http://example.com"+tc.url, h)
			for name, got := range map[string]core.Credentials{"fiber": fiberFull, "net/http": httpFull} {
				lean := map[string]core.Credentials{"fiber": fiberLean, "net/http": httpLean}[name]
				if got.Token != tc.token || got.User != "u" || got.Transport != "websocket" || got.RemoteAddr == "" {
					t.Fatalf("%s: credentials %+v", name, got)
				}
				if lean.Token != tc.token || lean.User != "u" || lean.Header != nil || lean.Query != nil {
					t.Fatalf("%s: without details: %+v", name, lean)
				}
				if got.Query["rooms"][0] != "a" || got.Query["token"] != nil || got.Header["X-Trace"][0] != "t1" {
					t.Fatalf("%s: query %v header %v", name, got.Query, got.Header)
				}
				for k, v := range got.Header {
					for _, s := range v {
						if s == "Bearer h" || k == "Cookie" || s == "switchboard.v1, switchboard.token.s" {
							t.Fatalf("%s: credential leaked into headers: %s: %s", name, k, s)
						}
					}
				}
				if tc.name == "subprotocol" && got.Header["Sec-Websocket-Protocol"][0] != "switchboard.v1" {
					t.Fatalf("%s: subprotocols kept: %v", name, got.Header["Sec-Websocket-Protocol"])
				}
			}
			// Both front ends hand core the same credentials. Fiber lists
			// a few headers net/http's test request does not carry.
			for k := range fiberFull.Header {
				if _, ok := httpFull.Header[k]; !ok && k != "Content-Length" && k != "User-Agent" {
					t.Errorf("header %s seen by Fiber only", k)
				}
			}
			for k, v := range httpFull.Header {
				if k == "Host" {
					continue // app.Test's requests carry it in the request line
				}
				if !reflect.DeepEqual(fiberFull.Header[k], v) {
					t.Errorf("header %s: Fiber %q, net/http %q", k, fiberFull.Header[k], v)
				}
			}
			if !reflect.DeepEqual(fiberFull.Query, httpFull.Query) || fiberFull.Token != httpFull.Token || fiberFull.User != httpFull.User {
				t.Errorf("Fiber %+v, net/http %+v", fiberFull, httpFull)
			}
			if httpFull.Header["Host"][0] != "example.com" {
				t.Errorf("net/http headers %v without Host", httpFull.Header)
			}
			if httpFull.RemoteAddr != "192.0.2.7" {
				t.Errorf("net/http client address %q, want the host of RemoteAddr", httpFull.RemoteAddr)
			}
		})
	}
}

func TestHeaderHasToken(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.Header["Connection"] = []string{"keep-alive", "foo, Upgrade"}
	r := HTTP(req)
	if !HeaderHasToken(r, "connection", "upgrade") || HeaderHasToken(r, "Connection", "close") || HeaderHasToken(r, "Upgrade", "websocket") {
		t.Fatal("token lists misread")
	}
}
