package webhook_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/edge/webhook"
)

// A backend verifies the raw body before decoding it.
func ExampleVerify() {
	secret := []byte("a-long-random-secret")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header.Get(webhook.SignatureHeader), body, 0); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"accept":true}`)
	})

	body := `{"route":"connect"}`
	for _, key := range [][]byte{secret, []byte("someone-else's-secret")} {
		req := httptest.NewRequest(http.MethodPost, "/connect", strings.NewReader(body))
		req.Header.Set(webhook.SignatureHeader, webhook.Sign(key, time.Now(), []byte(body)))
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	// Output:
	// 200 {"accept":true}
	// 401 bad signature
}
