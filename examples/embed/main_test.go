package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if the application leaves a goroutine
// behind once it has shut down: the server, the node, the broker, a
// stream or a poll. fasthttp's date updater and worker-pool cleaner
// (TestFiber) are process-wide, not leaks.
func TestMain(m *testing.M) {
	coretest.VerifyNone(m, "fasthttp.updateServerDate", "fasthttp.(*workerPool).Start.func2")
}

// waitFor bounds every wait: it matters only when something is broken.
const waitFor = 20 * time.Second

// running is the application serving on 127.0.0.1:0.
type running struct {
	app    *App
	addr   string // host:port
	base   string // http://host:port
	served chan error
	hc     *http.Client
}

func start(t *testing.T, opts Options) *running {
	t.Helper()
	app, err := New(opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &running{app: app, addr: ln.Addr().String(), base: "http://" + ln.Addr().String(), served: make(chan error, 1),
		// No keep-alive: no idle client connection outlives a test.
		hc: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	go func() { r.served <- app.Serve(ln) }()
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

// shutdown shuts the application down (again, if the test did) and
// checks that Serve returned nil.
func (r *running) shutdown(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := r.app.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	select {
	case err := <-r.served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
		r.served <- nil // for a later call
	case <-ctx.Done():
		t.Error("Serve did not return after Shutdown")
	}
}

// TestEmbed: the application serves its own page and API, and on the
// same port a client of each Switchboard transport receives what the
// application publishes and what the others send; shutting down ends
// every transport's clients with 1012 (a poll: 503), returns nil, and
// leaves nothing running (TestMain).
func TestEmbed(t *testing.T) {
	r := start(t, Options{})

	// The application's own routes.
	page := r.get(t, "/")
	if page.status != http.StatusOK || !strings.HasPrefix(page.contentType, "text/html") || !strings.Contains(page.body, `import { connect } from "/client.js"`) {
		t.Fatalf("GET /: %d %s %.80q", page.status, page.contentType, page.body)
	}
	if js := r.get(t, "/client.js"); js.status != http.StatusOK || !strings.Contains(js.body, "export { connect") {
		t.Fatalf("GET /client.js: %d %.80q", js.status, js.body)
	}

	// One client on each transport, all in the room.
	ws := dialWS(t, r.addr, "w", "")
	if w := ws.next(t); w.Type != core.TypeWelcome {
		t.Fatalf("websocket: first envelope %+v, want the welcome", w)
	}
	ev := openSSE(t, r.hc, r.base, "s", "")
	if w := ev.next(t); w.Type != core.TypeWelcome {
		t.Fatalf("sse: first envelope %+v, want the welcome", w)
	}
	cursor := r.poll(t, "p", "", "0").Cursor
	// The answered poll's session ends on its own, a moment after the
	// answer: a state with no signal, polled.
	for deadline := time.Now().Add(waitFor); ; time.Sleep(10 * time.Millisecond) {
		n := r.stats(t).Connections
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /api/stats: %d connections, want the WebSocket and the stream", n)
		}
	}

	// The application publishes through the node (its API).
	var ann struct {
		ID string `json:"id"`
	}
	if res := r.post(t, "/api/announce", `{"text":"hello"}`); res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &ann) != nil || ann.ID == "" {
		t.Fatalf("POST /api/announce: %d %s", res.status, res.body)
	}
	wantMessage(t, "websocket", ws.next(t), ann.ID, "app")
	wantMessage(t, "sse", ev.next(t), ann.ID, "app")
	a := r.poll(t, "p", cursor, "30s")
	if len(a.Messages) != 1 {
		t.Fatalf("poll: %d messages, want the announcement", len(a.Messages))
	}
	wantMessage(t, "long-poll", a.Messages[0], ann.ID, "app")
	cursor = a.Cursor

	// The stream's client sends through POST /send; the others receive it.
	sent := r.post(t, "/send?user=s&rooms="+Room, `{"v":1,"type":"publish","room":"`+Room+`","ref":"s1","data":"from sse"}`)
	var ack core.Envelope
	if sent.status != http.StatusOK || json.Unmarshal([]byte(sent.body), &ack) != nil || ack.Type != core.TypeAck || ack.Ref != "s1" {
		t.Fatalf("POST /send: %d %s", sent.status, sent.body)
	}
	var acked struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(ack.Data, &acked)
	wantMessage(t, "websocket", ws.next(t), acked.ID, "s")
	wantMessage(t, "sse", ev.next(t), acked.ID, "s")
	// The WebSocket client publishes on its connection.
	ws.send(t, `{"v":1,"type":"publish","room":"`+Room+`","ref":"w1","data":"from ws"}`)
	var fromWS string
	for fromWS == "" {
		switch env := ws.next(t); env.Type {
		case core.TypeAck:
			var d struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(env.Data, &d)
			fromWS = d.ID
		case core.TypeMessage: // its own message, before or after the ack
		default:
			t.Fatalf("websocket: %+v, want the ack of w1", env)
		}
	}
	wantMessage(t, "sse", ev.next(t), fromWS, "w")
	a = r.poll(t, "p", cursor, "30s")
	if len(a.Messages) != 2 || a.Messages[0].ID != acked.ID || a.Messages[1].ID != fromWS {
		t.Fatalf("poll after the sends: %+v, want %s then %s", a.Messages, acked.ID, fromWS)
	}

	// A poll waiting when the application shuts down.
	waiting := make(chan answer, 1)
	go func() { waiting <- r.pollQuiet("p", a.Cursor, "30s") }()
	members := r.app.Node().Hub()
	deadline := time.Now().Add(waitFor)
	for members.Members(core.RoomChannel(Room)) != 3 { // no signal for "the poll waits": poll
		if time.Now().After(deadline) {
			t.Fatalf("%d members of %s, want the WebSocket, the stream and the poll", members.Members(core.RoomChannel(Room)), Room)
		}
		time.Sleep(5 * time.Millisecond)
	}

	r.shutdown(t)
	if code := ws.closeCode(t); code != int(core.DisconnectShutdown.Code) {
		t.Errorf("websocket closed with %d, want 1012", code)
	}
	if code := ev.closeCode(t); code != int(core.DisconnectShutdown.Code) {
		t.Errorf("sse closed with %d, want 1012", code)
	}
	if w := <-waiting; w.status != http.StatusServiceUnavailable {
		t.Errorf("waiting poll at shutdown: %d %v, want 503", w.status, w.err)
	}
	if res, err := r.hc.Get(r.base + "/"); err == nil {
		res.Body.Close()
		t.Error("the application still answers after its shutdown")
	}
}

// TestEmbedJWT: with a JWT secret, the authenticator configured once on
// the node holds on every transport: no token is refused with 401 (or
// 4001 on a WebSocket), a valid one is the user its sub names.
func TestEmbedJWT(t *testing.T) {
	const secret = "a-secret-of-at-least-16-bytes"
	r := start(t, Options{JWTSecret: secret})
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if page := r.get(t, "/"); page.status != http.StatusOK {
		t.Fatalf("GET /: %d: the application's own page needs no token", page.status)
	}
	if res := r.get(t, "/sse?user=mallory&rooms="+Room); res.status != http.StatusUnauthorized {
		t.Errorf("GET /sse without a token: %d %s, want 401", res.status, res.body)
	}
	if a := r.pollQuiet("mallory", "", "0"); a.status != http.StatusUnauthorized {
		t.Errorf("GET /poll without a token: %d, want 401", a.status)
	}
	if res := r.post(t, "/send?user=mallory", `{"v":1,"type":"ping"}`); res.status != http.StatusUnauthorized {
		t.Errorf("POST /send without a token: %d %s, want 401", res.status, res.body)
	}
	if code := dialWS(t, r.addr, "mallory", "").closeCode(t); code != int(core.DisconnectUnauthorized.Code) {
		t.Errorf("websocket without a token closed with %d, want 4001", code)
	}
	ws := dialWS(t, r.addr, "mallory", token) // the claimed user is ignored
	if w := ws.next(t); w.Type != core.TypeWelcome || !bytes.Contains(w.Data, []byte(`"user":"alice"`)) {
		t.Fatalf("websocket with a token: %+v, want the welcome of alice", w)
	}
	ev := openSSE(t, r.hc, r.base, "", token)
	if w := ev.next(t); w.Type != core.TypeWelcome || !bytes.Contains(w.Data, []byte(`"user":"alice"`)) {
		t.Fatalf("sse with a token: %+v, want the welcome of alice", w)
	}
}

func wantMessage(t *testing.T, transport string, env *core.Envelope, id, from string) {
	t.Helper()
	if env.Type != core.TypeMessage || env.ID != id || env.From != from || env.Room != Room {
		t.Fatalf("%s: %+v, want message %s from %s in %s", transport, env, id, from, Room)
	}
}

// response is a whole HTTP answer.
type response struct {
	status      int
	contentType string
	body        string
}

func (r *running) get(t *testing.T, path string) response {
	t.Helper()
	return r.do(t, http.MethodGet, path, "")
}

func (r *running) post(t *testing.T, path, body string) response {
	t.Helper()
	return r.do(t, http.MethodPost, path, body)
}

func (r *running) do(t *testing.T, method, path, body string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return response{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), body: string(b)}
}

func (r *running) stats(t *testing.T) core.Stats {
	t.Helper()
	res := r.get(t, "/api/stats")
	var s core.Stats
	if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &s) != nil {
		t.Fatalf("GET /api/stats: %d %s", res.status, res.body)
	}
	return s
}

// answer is a GET /poll reply.
type answer struct {
	status   int
	err      error
	Messages []*core.Envelope `json:"messages"`
	Cursor   string           `json:"cursor"`
}

// poll runs GET /poll for user in Room and requires a 200.
func (r *running) poll(t *testing.T, user, cursor, wait string) answer {
	t.Helper()
	a := r.pollQuiet(user, cursor, wait)
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("GET /poll: %d %v", a.status, a.err)
	}
	return a
}

// pollQuiet runs GET /poll, reporting failures in the answer (it may run
// on another goroutine than the test's).
func (r *running) pollQuiet(user, cursor, wait string) answer {
	q := url.Values{"user": {user}, "rooms": {Room}, "wait": {wait}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor+time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/poll?"+q.Encode(), nil)
	if err != nil {
		return answer{err: err}
	}
	res, err := r.hc.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode}
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		a.err = fmt.Errorf("decoding the answer: %w", err)
	}
	return a
}

// wsClient is a WebSocket client read on the test goroutine.
type wsClient struct {
	conn  *fws.Conn
	lines [][]byte // envelopes of a frame not yet returned
}

func dialWS(t *testing.T, addr, user, token string) *wsClient {
	t.Helper()
	q := url.Values{"rooms": {Room}}
	if user != "" {
		q.Set("user", user)
	}
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	d := fws.Dialer{HandshakeTimeout: waitFor}
	conn, res, err := d.Dial("ws://"+addr+"/ws?"+q.Encode(), h)
	if err != nil {
		t.Fatalf("websocket: %v (%v)", err, res)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &wsClient{conn: conn}
}

// next returns the next envelope; a frame may carry several.
func (c *wsClient) next(t *testing.T) *core.Envelope {
	t.Helper()
	for len(c.lines) == 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(waitFor))
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			t.Fatalf("websocket: %v", err)
		}
		c.lines = bytes.Split(data, []byte{'\n'})
	}
	env := new(core.Envelope)
	if err := json.Unmarshal(c.lines[0], env); err != nil {
		t.Fatalf("websocket: %q: %v", c.lines[0], err)
	}
	c.lines = c.lines[1:]
	return env
}

func (c *wsClient) send(t *testing.T, frame string) {
	t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if err := c.conn.WriteMessage(fws.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("websocket: %v", err)
	}
}

// closeCode reads until the server closes and returns its close code.
func (c *wsClient) closeCode(t *testing.T) int {
	t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(waitFor))
		if _, _, err := c.conn.ReadMessage(); err != nil {
			var ce *fws.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("websocket: %v, want a close frame", err)
			}
			return ce.Code
		}
	}
}

// sseClient reads an event stream on a goroutine of its own.
type sseClient struct {
	events chan sseEvent // closed at the end of the stream
}

type sseEvent struct {
	name string // "" for a message, "close"
	data string
}

func openSSE(t *testing.T, hc *http.Client, base, user, token string) *sseClient {
	t.Helper()
	q := url.Values{"rooms": {Room}}
	if user != "" {
		q.Set("user", user)
	}
	req, err := http.NewRequest(http.MethodGet, base+"/sse?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		res.Body.Close()
		t.Fatalf("GET /sse: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	c := &sseClient{events: make(chan sseEvent, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.events)
		br := bufio.NewReader(res.Body)
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch line = strings.TrimSuffix(line, "\n"); {
			case line == "" && ev.data != "":
				c.events <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(func() {
		_ = res.Body.Close()
		<-done
	})
	return c
}

// next returns the next envelope of the stream.
func (c *sseClient) next(t *testing.T) *core.Envelope {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok || ev.name != "" {
			t.Fatalf("sse: %+v (open %v), want an envelope", ev, ok)
		}
		env := new(core.Envelope)
		if err := json.Unmarshal([]byte(ev.data), env); err != nil {
			t.Fatalf("sse: %q: %v", ev.data, err)
		}
		return env
	case <-time.After(waitFor):
		t.Fatal("sse: no event")
		return nil
	}
}

// closeCode reads until the stream's close event and returns its code.
func (c *sseClient) closeCode(t *testing.T) int {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatal("sse: the stream ended without a close event")
			}
			if ev.name == "close" {
				var d struct {
					Code int `json:"code"`
				}
				_ = json.Unmarshal([]byte(ev.data), &d)
				return d.Code
			}
		case <-timeout:
			t.Fatal("sse: no close event")
		}
	}
}
