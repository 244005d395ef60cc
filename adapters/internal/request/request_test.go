package request

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
)

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
		{"none", "/x?user=u&rooms=a", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := fiber.New()
			var got core.Credentials
			var lean core.Credentials
			app.Get("/x", func(c *fiber.Ctx) error {
				got, lean = Credentials(c, "websocket", true), Credentials(c, "websocket", false)
				return nil
			})
			req := httptest.NewRequest("GET", tc.url, nil)
			req.Header = tc.header
			if req.Header == nil {
				req.Header = http.Header{}
			}
			req.Header.Set("X-Trace", "t1")
			req.Header.Set("Cookie", "session=secret")
			if _, err := app.Test(req); err != nil {
				t.Fatal(err)
			}
			if got.Token != tc.token || got.User != "u" || got.Transport != "websocket" || got.RemoteAddr == "" {
				t.Fatalf("credentials %+v", got)
			}
			if lean.Token != tc.token || lean.User != "u" || lean.Header != nil || lean.Query != nil {
				t.Fatalf("without details: %+v", lean)
			}
			if got.Query["rooms"][0] != "a" || got.Query["token"] != nil || got.Header["X-Trace"][0] != "t1" {
				t.Fatalf("query %v header %v", got.Query, got.Header)
			}
			for k, v := range got.Header {
				for _, s := range v {
					if s == "Bearer h" || k == "Cookie" || s == "switchboard.v1, switchboard.token.s" {
						t.Fatalf("credential leaked into headers: %s: %s", k, s)
					}
				}
			}
			if tc.name == "subprotocol" && got.Header["Sec-Websocket-Protocol"][0] != "switchboard.v1" {
				t.Fatalf("subprotocols kept: %v", got.Header["Sec-Websocket-Protocol"])
			}
		})
	}
}
