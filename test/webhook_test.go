package test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/webhook"
)

// TestConnectWebhookSeesRequestDetails: the connect webhook reads the
// request's headers and query parameters, so every transport collects
// them for it (core.DetailsReader), without any adapter setting, and
// leaves the token out.
func TestConnectWebhookSeesRequestDetails(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]webhook.ConnectRequest{} // by transport
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req webhook.ConnectRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen[req.Transport] = req
		mu.Unlock()
		_, _ = w.Write([]byte(`{"accept":true}`))
	}))
	t.Cleanup(hook.Close)
	e := startEdge(t, func(c *config.Config) {
		c.Webhooks.ConnectURL, c.Webhooks.Secret = hook.URL, []byte("details-test-secret-0123")
	})
	query := "?user=ada&ticket=t-42&token=not-for-the-hook&rooms=r"

	connect(t, "ws://"+e.addr+"/ws"+query, withHeader("X-App", "web"))
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/sse", ""},
		{"GET", "/poll", ""}, // with &wait=0 below: answered at once
		{"POST", "/send", `{"v":1,"type":"publish","room":"r","data":1}`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		req, _ := http.NewRequestWithContext(ctx, r.method, "http://"+e.addr+r.path+query+"&wait=0", strings.NewReader(r.body))
		req.Header.Set("X-App", "web")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		_ = resp.Body.Close() // the webhook was called before the status
		cancel()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: status %d", r.method, r.path, resp.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, tr := range []string{"websocket", "sse", "longpoll", "send"} {
		req, ok := seen[tr]
		switch {
		case !ok:
			t.Errorf("%s: the connect webhook was not called", tr)
		case len(req.Query["ticket"]) != 1 || req.Query["ticket"][0] != "t-42" || len(req.Headers["X-App"]) != 1 || req.Headers["X-App"][0] != "web":
			t.Errorf("%s: the webhook saw query %v, headers %v; want ticket=t-42 and X-App: web", tr, req.Query, req.Headers)
		case req.Query["token"] != nil:
			t.Errorf("%s: the webhook saw the token", tr)
		}
	}
}
