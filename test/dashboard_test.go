package test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

const adminToken = "dashboard-test-token"

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestDashboardAuth: with --admin-token every dashboard path needs it, as
// a Bearer token or a Basic password; a browser is asked for it.
func TestDashboardAuth(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.AdminToken = adminToken })
	cases := []struct {
		name, auth string
		want       int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong bearer", "Bearer nope", http.StatusUnauthorized},
		{"wrong basic", basic("admin", "nope"), http.StatusUnauthorized},
		{"bad base64", "Basic !!!", http.StatusUnauthorized},
		{"bearer", "Bearer " + adminToken, http.StatusOK},
		{"basic, any user", basic("ops", adminToken), http.StatusOK},
	}
	for _, path := range []string{"/dashboard", "/dashboard/samples", "/dashboard/client.js", "/dashboard/sse?rooms=nodes"} {
		for _, tc := range cases {
			req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d, want %d", path, tc.name, resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s %s: WWW-Authenticate %q, want a Basic challenge", path, tc.name, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	// Every refusal is logged, at Warn at most once per 10 s.
	refusals := e.logs.lines("dashboard: missing or wrong admin token")
	warns := 0
	for _, l := range refusals {
		if l["level"] == "WARN" {
			warns++
		}
	}
	if len(refusals) != 16 || warns != 1 {
		t.Errorf("%d refusals logged, %d at Warn; want 16, 1", len(refusals), warns)
	}
}

// TestDashboardRightTokenLogsNoWarning: opening the dashboard the way a
// browser does (a first request without credentials answered with the
// Basic challenge, then the page, its script, samples and event stream
// with the token) logs no warning: warnings are for wrong tokens.
func TestDashboardRightTokenLogsNoWarning(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.Auth.Secret, c.AdminToken = []byte(strings.Repeat("k", 32)), adminToken })
	before := warnings(e.logs)
	base := "http://" + e.addr
	if code := statusOf(base + "/dashboard"); code != http.StatusUnauthorized {
		t.Fatalf("/dashboard without credentials: %d, want 401 (the Basic challenge)", code)
	}
	creds := http.Header{"Authorization": {basic("", adminToken)}}
	for _, path := range []string{"/dashboard", "/dashboard/client.js", "/dashboard/samples"} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header = creds.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	page := openSSE(t, base+"/dashboard/sse?rooms=nodes", creds)
	page.welcome()
	page.close()
	if got := warnings(e.logs); len(got) != len(before) {
		t.Fatalf("warnings logged while opening the dashboard with its token: %v", got[len(before):])
	}
	// A wrong token still warns.
	req, _ := http.NewRequest(http.MethodGet, base+"/dashboard", nil)
	req.Header.Set("Authorization", basic("", "not-the-admin-token"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := warnings(e.logs); resp.StatusCode != http.StatusUnauthorized || len(got) != len(before)+1 {
		t.Fatalf("wrong token: %d, warnings %v; want 401 and one warning", resp.StatusCode, got[len(before):])
	}
}

// warnings returns the messages of the Warn and Error records in logs.
func warnings(logs *syncBuffer) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &rec) == nil && (rec.Level == "WARN" || rec.Level == "ERROR") {
			out = append(out, rec.Msg)
		}
	}
	return out
}

// TestDashboardNeedsAPrivatePlace: without --admin-addr or --admin-token
// the dashboard is not served on the public listener, in production or
// development mode.
func TestDashboardNeedsAPrivatePlace(t *testing.T) {
	for _, mod := range []func(*config.Config){
		func(c *config.Config) { c.Auth.Secret = []byte(strings.Repeat("k", 32)) },
		nil,
	} {
		e := startEdge(t, mod)
		if code := statusOf("http://" + e.addr + "/dashboard"); code != http.StatusNotFound {
			t.Fatalf("/dashboard: %d, want 404", code)
		}
		if !strings.Contains(e.logs.String(), "dashboard not served") {
			t.Error("no log line says why the dashboard is off")
		}
	}
}

// TestBrowserDashboard loads /dashboard in headless Chromium against an
// edge with traffic: the page goes live over SSE (the dashboard's own
// room), shows the connections, and its numbers follow new connections,
// traffic and a warning. Screenshot: test/artifacts/dashboard.png.
func TestBrowserDashboard(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.AdminToken = adminToken })
	for i := range 3 {
		connect(t, e.url(q("user", "u"+strconv.Itoa(i), "rooms", "lobby")))
	}
	ctx := newBrowser(t)
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	// As a browser does after the Basic prompt: every request of the page,
	// its event stream included, carries the credentials.
	headers := network.Headers{"Authorization": basic("admin", adminToken)}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: headers}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+e.addr+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	num := func(id string) string { return `Number(document.getElementById("` + id + `").textContent)` }
	until(t, ctx, "the page live over SSE", `document.body.dataset.state === "open" && document.getElementById("status").textContent.includes("sse")`)
	until(t, ctx, "3 WebSocket connections", num("conn-websocket")+` === 3`)
	until(t, ctx, "one node", num("nodes")+` === 1`)
	until(t, ctx, "the busiest room", `document.querySelector("#rooms tbody").textContent.includes("lobby")`)

	// More connections, then traffic: the figures must follow.
	a, _ := connect(t, e.url(q("user", "a", "rooms", "lobby")))
	connect(t, e.url(q("user", "b", "rooms", "lobby")))
	until(t, ctx, "5 WebSocket connections", num("conn-websocket")+` === 5`)
	for range 20 {
		a.send(`{"v":1,"type":"publish","room":"lobby","data":1}`)
		a.ackAnd(core.TypeMessage)
	}
	until(t, ctx, "a message rate", `document.querySelector("#node-table tbody td:nth-child(6)").textContent !== "0"`)
	// A warning reaches the recent-errors list.
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+"/dashboard/samples", nil)
	req.Header.Set("Authorization", "Bearer wrong-token") // refused: logs a warning
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	until(t, ctx, "the refusal in recent warnings", `document.querySelector("#errors").textContent.includes("missing or wrong admin token")`)
	screenshot(t, ctx, "dashboard")
}
