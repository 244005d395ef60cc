package test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

const apiKey = "test-api-key-0123456789"

// apiCall sends an API request to e and decodes the JSON answer.
func apiCall(t *testing.T, e *edge, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+e.addr+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
	}
	return resp.StatusCode, out
}

// TestAPIAcrossNodes: with two edges on one Redis, everything the API does
// through node A reaches connections held by node B: room, direct and
// broadcast publishes (idempotent across nodes), sends to a connection,
// and disconnects of a connection or of a user.
func TestAPIAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	withAPI := func(c *config.Config) { c.Broker.Name, c.Broker.URL, c.APIKeys = "redis", rs.URL, []string{apiKey} }
	a, b := startEdge(t, withAPI), startEdge(t, withAPI)
	bob, w := connect(t, b.url(q("user", "bob", "rooms", "news")))

	status, res := apiCall(t, a, "POST", "/api/v1/publish", apiKey, `{"room":"news","data":{"headline":"hi"},"idempotency_key":"k1"}`)
	if status != 200 || res["id"] == "" {
		t.Fatalf("publish: %d %v", status, res)
	}
	m := bob.expect(core.TypeMessage)
	if m.Room != "news" || string(m.Data) != `{"headline":"hi"}` || m.ID != res["id"] {
		t.Fatalf("bob got %s, want id %v", m.Encode(), res["id"])
	}
	// The same key through node B: nothing published again, same id.
	status, dup := apiCall(t, b, "POST", "/api/v1/publish", apiKey, `{"room":"news","data":{"headline":"hi"},"idempotency_key":"k1"}`)
	if status != 200 || dup["id"] != res["id"] || dup["duplicate"] != true {
		t.Fatalf("retried publish: %d %v", status, dup)
	}

	// The same key for a different request is refused, not mistaken.
	if status, res := apiCall(t, b, "POST", "/api/v1/publish", apiKey, `{"room":"news","data":{"headline":"other"},"idempotency_key":"k1"}`); status != 422 {
		t.Fatalf("reused key: %d %v", status, res)
	}
	// A key with a control character is refused (a log header would
	// rewrite it, so "a\nb" and "a b" would collide).
	if status, res := apiCall(t, b, "POST", "/api/v1/publish", apiKey, `{"room":"news","data":1,"idempotency_key":"a\nb"}`); status != 400 {
		t.Fatalf("key with a newline: %d %v", status, res)
	}
	apiCall(t, a, "POST", "/api/v1/publish", apiKey, `{"to":"bob","data":"psst","from":"support"}`)
	if d := bob.expect(core.TypeDirect); d.To != "bob" || d.From != "support" || string(d.Data) != `"psst"` {
		t.Fatalf("direct %s", d.Encode())
	}
	apiCall(t, a, "POST", "/api/v1/publish", apiKey, `{"broadcast":true,"type":"maintenance","data":"soon"}`)
	if d := bob.expect("maintenance"); string(d.Data) != `"soon"` {
		t.Fatalf("broadcast %s", d.Encode())
	}
	status, batch := apiCall(t, a, "POST", "/api/v1/publish/batch", apiKey, `{"messages":[{"room":"news","data":1},{"room":"bad room","data":2},{"room":"news","data":3}]}`)
	results, _ := batch["results"].([]any)
	if status != 200 || len(results) != 3 || results[1].(map[string]any)["error"].(map[string]any)["code"] != core.CodeInvalidRoom {
		t.Fatalf("batch: %d %v", status, batch)
	}
	for _, want := range []string{"1", "3"} {
		if m := bob.expect(core.TypeMessage); string(m.Data) != want {
			t.Fatalf("batch delivered %s, want %s", m.Encode(), want)
		}
	}

	status, h := apiCall(t, a, "GET", "/api/v1/rooms/news/history?limit=10&since="+res["id"].(string), apiKey, "")
	if msgs, _ := h["messages"].([]any); status != 200 || len(msgs) != 2 || h["recovered"] != true {
		t.Fatalf("history: %d %v", status, h)
	}

	status, _ = apiCall(t, a, "POST", "/api/v1/connections/"+w.Conn+"/send", apiKey, `{"type":"notice","data":"only you"}`)
	if n := bob.expect("notice"); status != http.StatusAccepted || string(n.Data) != `"only you"` {
		t.Fatalf("send: %d %s", status, n.Encode())
	}

	status, _ = apiCall(t, a, "DELETE", "/api/v1/connections/"+w.Conn+"?code=4321&reason=moved", apiKey, "")
	if code := bob.closed(); status != http.StatusAccepted || code != 4321 {
		t.Fatalf("disconnect: %d, close %d", status, code)
	}
	b1, _ := connect(t, b.url(q("user", "eve")))
	b2, _ := connect(t, a.url(q("user", "eve")))
	apiCall(t, a, "DELETE", "/api/v1/users/eve", apiKey, "")
	for _, c := range []*client{b1, b2} {
		if code := c.closed(); code != 4010 {
			t.Fatalf("disconnect user: close %d, want 4010", code)
		}
	}
}

// TestAPIErrors: bad keys, malformed and oversize bodies, bad targets and
// unknown routes each get the documented status and error code.
func TestAPIErrors(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.APIKeys = []string{apiKey} })
	cases := []struct {
		name, method, path, key, body string
		status                        int
		code                          string
	}{
		{"no key", "POST", "/api/v1/publish", "", `{"room":"r","data":1}`, 401, "unauthorized"},
		{"wrong key", "POST", "/api/v1/publish", apiKey + "x", `{"room":"r","data":1}`, 401, "unauthorized"},
		{"malformed", "POST", "/api/v1/publish", apiKey, `{"room":`, 400, "bad_request"},
		{"unknown field", "POST", "/api/v1/publish", apiKey, `{"room":"r","data":1,"colour":"red"}`, 400, "bad_request"},
		{"no target", "POST", "/api/v1/publish", apiKey, `{"data":1}`, 400, "bad_request"},
		{"two targets", "POST", "/api/v1/publish", apiKey, `{"room":"r","to":"u","data":1}`, 400, "bad_request"},
		{"no data", "POST", "/api/v1/publish", apiKey, `{"room":"r"}`, 400, "bad_request"},
		{"bad room", "POST", "/api/v1/publish", apiKey, `{"room":"a b","data":1}`, 400, "invalid_room"},
		{"built-in type", "POST", "/api/v1/publish", apiKey, `{"room":"r","type":"welcome","data":1}`, 400, "bad_request"},
		{"oversize", "POST", "/api/v1/publish", apiKey, `{"room":"r","data":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "too_large"},
		{"empty batch", "POST", "/api/v1/publish/batch", apiKey, `{"messages":[]}`, 400, "bad_request"},
		{"bad close code", "DELETE", "/api/v1/connections/X-1?code=1000", apiKey, "", 400, "bad_request"},
		{"bad conn id", "DELETE", "/api/v1/connections/nodash", apiKey, "", 400, "bad_request"},
		{"bad history limit", "GET", "/api/v1/rooms/r/history?since=x&limit=0", apiKey, "", 400, "bad_request"},
		{"history without since", "GET", "/api/v1/rooms/r/history", apiKey, "", 400, "bad_request"},
		{"unknown route", "GET", "/api/v1/nope", apiKey, "", 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, res := apiCall(t, e, tc.method, tc.path, tc.key, tc.body)
			errObj, _ := res["error"].(map[string]any)
			if status != tc.status || errObj["code"] != tc.code || errObj["message"] == "" {
				t.Fatalf("%d %v, want %d %s", status, res, tc.status, tc.code)
			}
		})
	}
	// Without --api-keys the API does not exist.
	off := startEdge(t, nil)
	if status, _ := apiCall(t, off, "POST", "/api/v1/publish", apiKey, `{"room":"r","data":1}`); status != 404 {
		t.Fatalf("API without keys: %d, want 404", status)
	}
}
