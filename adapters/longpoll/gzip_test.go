package longpoll

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/adapters/internal/request"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// TestGzipAnswer: to a client that accepts gzip, an answer with an
// envelope from the threshold up is a gzip member that decodes to the
// plain answer's JSON, built from envelopes compressed once for every
// poll carrying them; other answers, and answers to other clients, are
// plain. Vary says so.
func TestGzipAnswer(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{}, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(t.Context()) })
	h := newHandler(node, Config{CompressionThreshold: 100})
	big := func(i int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"v":1,"type":"message","room":"r","id":"%d","data":"%s"}`, i, strings.Repeat("quote ", 40)))
	}
	res := Response{Messages: []json.RawMessage{big(1), json.RawMessage(`{"v":1,"type":"message","id":"2","data":1}`), big(3)},
		Cursor: "c-3", Recovered: true, Errors: []json.RawMessage{json.RawMessage(`{"v":1,"type":"error","data":{"code":"invalid_room"}}`)}}
	accepting := request.HTTP(httptest.NewRequest("GET", "/poll", nil))
	get := httptest.NewRequest("GET", "/poll", nil)
	get.Header.Set("Accept-Encoding", "br, gzip")
	gz := request.HTTP(get)

	plainAnswer := h.answer(accepting, http.StatusOK, res)
	if plainAnswer.Header["Content-Encoding"] != "" || plainAnswer.Header["Vary"] != "Accept-Encoding" {
		t.Fatalf("headers without Accept-Encoding: %v", plainAnswer.Header)
	}
	var decoded Response
	if err := json.Unmarshal(plainAnswer.Body, &decoded); err != nil || len(decoded.Messages) != 3 || decoded.Cursor != "c-3" || !decoded.Recovered || len(decoded.Errors) != 1 {
		t.Fatalf("plain answer %s: %v", plainAnswer.Body, err)
	}
	for range 10 { // ten polls carrying the same envelopes
		a := h.answer(gz, http.StatusOK, res)
		if a.Header["Content-Encoding"] != "gzip" || a.Header["Vary"] != "Accept-Encoding" {
			t.Fatalf("headers with Accept-Encoding gzip: %v", a.Header)
		}
		zr, err := gzip.NewReader(bytes.NewReader(a.Body))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr) // checks the CRC-32 and the size
		if err != nil || !bytes.Equal(body, plainAnswer.Body) {
			t.Fatalf("gzip answer decodes to %s, %v; want %s", body, err, plainAnswer.Body)
		}
		if len(a.Body) >= len(body)/2 {
			t.Fatalf("%d bytes for %d", len(a.Body), len(body))
		}
	}
	if n := h.gzip.Compressions(); n != 2 {
		t.Fatalf("%d compressions for 2 envelopes over the threshold in 10 answers, want 2", n)
	}
	small := Response{Messages: []json.RawMessage{json.RawMessage(`{"v":1,"id":"9"}`)}, Cursor: "9", Recovered: true}
	if a := h.answer(gz, http.StatusOK, small); a.Header["Content-Encoding"] != "" {
		t.Fatal("an answer of small envelopes was compressed")
	}
	off := newHandler(node, Config{CompressionLevel: -1})
	if a := off.answer(gz, http.StatusOK, res); a.Header["Content-Encoding"] != "" || a.Header["Vary"] != "" {
		t.Fatalf("compression off: headers %v", a.Header)
	}
}
