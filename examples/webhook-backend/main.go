// Command webhook-backend is a small backend for Switchboard's webhooks
// (docs/webhooks.md), on plain net/http. It verifies every signature;
// connect admits clients presenting a known ?ticket=, connecting them as
// that ticket's user in room "lobby" (others are rejected with 4403);
// message answers "echo" to the sender and publishes "shout" to a room;
// disconnect logs (once per delivery id: retries repeat it).
//
//	go run ./examples/webhook-backend -addr 127.0.0.1:9000 -secret "$SECRET" -tickets t1=alice,t2=bob
//	go run ./edge --webhook-secret "$SECRET" \
//	  --webhook-connect http://127.0.0.1:9000/connect \
//	  --webhook-message http://127.0.0.1:9000/message --webhook-message-types echo,shout \
//	  --webhook-disconnect http://127.0.0.1:9000/disconnect
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard/edge/webhook"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	secret := flag.String("secret", os.Getenv("WEBHOOK_SECRET"), "the edge's --webhook-secret (default $WEBHOOK_SECRET)")
	tickets := flag.String("tickets", "t1=alice,t2=bob", "ticket=user pairs admitted by connect, comma-separated")
	flag.Parse()
	if len(*secret) < 16 {
		log.Fatal("set -secret (or WEBHOOK_SECRET) to the edge's --webhook-secret, at least 16 bytes")
	}
	b := &Backend{Secret: []byte(*secret), Tickets: parseTickets(*tickets), Log: slog.Default()}
	srv := &http.Server{Addr: *addr, Handler: b.Handler(), ReadHeaderTimeout: 5 * time.Second}
	slog.Info("webhook backend listening", "addr", *addr)
	log.Fatal(srv.ListenAndServe())
}

func parseTickets(s string) map[string]string {
	m := make(map[string]string)
	for pair := range strings.SplitSeq(s, ",") {
		if t, u, ok := strings.Cut(strings.TrimSpace(pair), "="); ok {
			m[t] = u
		}
	}
	return m
}

// Backend answers the three routes.
type Backend struct {
	Secret  []byte
	Tickets map[string]string // ticket → user id
	Log     *slog.Logger
	// OnDisconnect, when set, sees each disconnect once.
	OnDisconnect func(webhook.DisconnectRequest)

	mu   sync.Mutex
	seen map[string]bool // disconnect delivery ids handled (a real backend expires them)
}

// Handler serves POST /connect, /message and /disconnect.
func (b *Backend) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /connect", b.verified(b.connect))
	mux.Handle("POST /message", b.verified(b.message))
	mux.Handle("POST /disconnect", b.verified(b.disconnect))
	return mux
}

// verified checks the signature on the raw body before fn decodes it.
func (b *Backend) verified(fn func(w http.ResponseWriter, body []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(b.Secret, r.Header.Get(webhook.SignatureHeader), body, 0); err != nil {
			b.Log.Warn("bad webhook signature", "err", err, "remote", r.RemoteAddr)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		fn(w, body)
	})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (b *Backend) connect(w http.ResponseWriter, body []byte) {
	var req webhook.ConnectRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var ticket string
	if t := req.Query["ticket"]; len(t) > 0 {
		ticket = t[0]
	}
	user, ok := b.Tickets[ticket]
	if !ok {
		reply(w, map[string]any{"accept": false, "code": 4403, "reason": "ticket required", "status": 403})
		return
	}
	reply(w, map[string]any{"accept": true, "user": user, "rooms": []string{"lobby"}, "meta": map[string]string{"ticket": ticket}})
}

// envelope is the part of a client envelope this backend reads.
type envelope struct {
	Type string          `json:"type"`
	Room string          `json:"room"`
	Data json.RawMessage `json:"data"`
}

func (b *Backend) message(w http.ResponseWriter, body []byte) {
	var req webhook.MessageRequest
	var env envelope
	if json.Unmarshal(body, &req) != nil || json.Unmarshal(req.Envelope, &env) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var text struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(env.Data, &text)
	switch env.Type {
	case "echo": // a reply: no room, no to; the edge adds the request's ref
		reply(w, map[string]any{"v": 1, "type": "echo", "data": map[string]any{"text": text.Text, "user": req.User, "meta": req.Meta}})
	case "shout": // a publication to the room the client named (default lobby)
		room := env.Room
		if room == "" {
			room = "lobby"
		}
		reply(w, []map[string]any{{"v": 1, "type": "message", "room": room, "data": map[string]any{"text": strings.ToUpper(text.Text)}}})
	default:
		reply(w, map[string]any{"v": 1, "type": "error", "data": map[string]string{"code": "unknown_type", "message": "this backend handles echo and shout"}})
	}
}

func (b *Backend) disconnect(w http.ResponseWriter, body []byte) {
	var req webhook.DisconnectRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	dup := b.seen[req.ID]
	if b.seen == nil {
		b.seen = make(map[string]bool)
	}
	b.seen[req.ID] = true
	b.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	if dup {
		return
	}
	b.Log.Info("disconnected", "conn", req.Conn, "user", req.User, "code", req.Code, "reason", req.Reason, "duration_ms", req.DurationMS)
	if b.OnDisconnect != nil {
		b.OnDisconnect(req)
	}
}
