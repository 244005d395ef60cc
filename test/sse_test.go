package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	ID, Event, Data string
	Retry           string
}

// sseClient reads an event stream on a goroutine and hands parsed events
// to the test goroutine. Comment lines (heartbeats) are counted.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
	pings  chan struct{}
	done   chan struct{}
	err    error // why the reader stopped; read after done
}

func (e *edge) sseURL(query string) string { return "http://" + e.addr + "/sse?" + query }

// openSSE connects; it fails the test unless the answer is a 200 stream.
func openSSE(t *testing.T, u string, header http.Header) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		cancel()
		t.Fatalf("GET %s: HTTP %d %s", u, resp.StatusCode, body)
	}
	c := &sseClient{t: t, resp: resp, cancel: cancel, events: make(chan sseEvent, 1024), pings: make(chan struct{}, 1024), done: make(chan struct{})}
	t.Cleanup(c.close)
	go c.read()
	return c
}

func (c *sseClient) close() {
	c.cancel()
	_ = c.resp.Body.Close()
}

func (c *sseClient) read() {
	defer close(c.done)
	defer close(c.events)
	r := bufio.NewReader(c.resp.Body)
	var ev sseEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			c.err = err
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev != (sseEvent{}) {
				c.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			select {
			case c.pings <- struct{}{}:
			default:
			}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.ID = value
			case "event":
				ev.Event = value
			case "data":
				if ev.Data != "" {
					ev.Data += "\n"
				}
				ev.Data += value
			case "retry":
				ev.Retry = value
			}
		}
	}
}

// next returns the next event that carries data.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				<-c.done
				c.t.Fatalf("stream ended while waiting for an event: %v", c.err)
			}
			if ev.Data == "" {
				continue // the retry line
			}
			return ev
		case <-time.After(waitFor):
			c.t.Fatalf("no SSE event within %s", waitFor)
		}
	}
}

// expect returns the next envelope event and checks its type and that
// the event id is the envelope id.
func (c *sseClient) expect(typ string) *core.Envelope {
	c.t.Helper()
	ev := c.next()
	if ev.Event != "" {
		c.t.Fatalf("got event %q %s, want a %s envelope", ev.Event, ev.Data, typ)
	}
	env, err := core.UnmarshalEnvelope([]byte(ev.Data))
	if err != nil {
		c.t.Fatalf("event data %q: %v", ev.Data, err)
	}
	if env.Type != typ {
		c.t.Fatalf("got %s, want type %q", ev.Data, typ)
	}
	if ev.ID != env.ID {
		c.t.Fatalf("event id %q, envelope id %q", ev.ID, env.ID)
	}
	return env
}

func (c *sseClient) welcome() welcome {
	c.t.Helper()
	var w welcome
	if err := json.Unmarshal(c.expect(core.TypeWelcome).Data, &w); err != nil {
		c.t.Fatal(err)
	}
	return w
}

type closeEvent struct {
	Code      int    `json:"code"`
	Reason    string `json:"reason"`
	Reconnect bool   `json:"reconnect"`
}

// closed skips envelopes until the close event and the end of the stream.
func (c *sseClient) closed() closeEvent {
	c.t.Helper()
	for {
		ev := c.next()
		if ev.Event != "close" {
			continue
		}
		var ce closeEvent
		if err := json.Unmarshal([]byte(ev.Data), &ce); err != nil {
			c.t.Fatalf("close event %q: %v", ev.Data, err)
		}
		select {
		case <-c.done:
		case <-time.After(waitFor):
			c.t.Fatal("stream still open after the close event")
		}
		return ce
	}
}

// post sends body to /send and returns the status and the reply
// envelopes (one, or the array's elements).
func (e *edge) post(t *testing.T, query, body string, header ...string) (int, []*core.Envelope) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.addr+"/send?"+query, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /send: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var list []json.RawMessage
	if len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatalf("reply %q: %v", raw, err)
		}
	} else {
		list = []json.RawMessage{raw}
	}
	var out []*core.Envelope
	for _, r := range list {
		env, err := core.UnmarshalEnvelope(r)
		if err != nil {
			t.Fatalf("reply %q: %v", raw, err)
		}
		out = append(out, env)
	}
	return resp.StatusCode, out
}

func replyCode(env *core.Envelope) string {
	var d struct{ Code string }
	_ = json.Unmarshal(env.Data, &d)
	return d.Code
}

func TestSSEReceivesRoomMessages(t *testing.T) {
	e := startEdge(t, nil)
	sub := openSSE(t, e.sseURL(q("user", "sue", "rooms", "lobby")), nil)
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
	} {
		if got := sub.resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	select {
	case ev := <-sub.events:
		if ev.Retry == "" {
			t.Fatalf("first event %+v, want the retry line", ev)
		}
	case <-time.After(waitFor):
		t.Fatal("no retry line")
	}
	if w := sub.welcome(); w.User != "sue" || len(w.Rooms) != 1 || w.Rooms[0] != "lobby" {
		t.Fatalf("welcome = %+v", w)
	}
	alice, _ := connect(t, e.url(q("user", "alice", "rooms", "lobby")))
	alice.send(`{"v":1,"type":"publish","room":"lobby","data":"hi","ref":"p"}`)
	ack, _ := alice.ackAnd(core.TypeMessage)
	m := sub.expect(core.TypeMessage)
	if m.From != "alice" || m.Room != "lobby" || dataString(t, m) != "hi" || m.ID == "" || !strings.Contains(string(ack.Data), m.ID) {
		t.Fatalf("message = %s (ack %s)", m.Encode(), ack.Encode())
	}
	alice.send(`{"v":1,"type":"direct","to":"sue","data":"psst"}`)
	if d := sub.expect(core.TypeDirect); dataString(t, d) != "psst" || d.ID == "" {
		t.Fatalf("direct = %s", d.Encode())
	}
}

func TestSSEResumeWithLastEventID(t *testing.T) {
	e := startEdge(t, nil)
	pub, _ := connect(t, e.url(q("user", "pub", "rooms", "feed")))
	publish := func(data string) {
		pub.send(fmt.Sprintf(`{"v":1,"type":"publish","room":"feed","data":%q}`, data))
		pub.ackAnd(core.TypeMessage)
	}
	sub := openSSE(t, e.sseURL(q("user", "sub", "rooms", "feed")), nil)
	sub.welcome()
	publish("m1")
	last := sub.expect(core.TypeMessage)
	sub.close()
	<-sub.done

	publish("m2")
	publish("m3")
	// The header wins over ?since= (a bogus one here would replay nothing).
	back := openSSE(t, e.sseURL(q("user", "sub", "rooms", "feed", "since", "bogus")), http.Header{"Last-Event-Id": {last.ID}})
	if w := back.welcome(); w.Recovered == nil || !*w.Recovered {
		t.Fatalf("welcome = %+v, want recovered:true", w)
	}
	for _, want := range []string{"m2", "m3"} {
		if got := dataString(t, back.expect(core.TypeMessage)); got != want {
			t.Fatalf("resumed %q, want %q", got, want)
		}
	}
	publish("m4") // live, no duplicate at the seam
	if got := dataString(t, back.expect(core.TypeMessage)); got != "m4" {
		t.Fatalf("after resume got %q, want m4", got)
	}

	// ?since= alone resumes too.
	again := openSSE(t, e.sseURL(q("user", "sub", "rooms", "feed", "since", last.ID)), nil)
	again.welcome()
	for _, want := range []string{"m2", "m3", "m4"} {
		if got := dataString(t, again.expect(core.TypeMessage)); got != want {
			t.Fatalf("since resumed %q, want %q", got, want)
		}
	}
}

func TestSendReachesWebSocketAndSSE(t *testing.T) {
	e := startEdge(t, nil)
	ws, _ := connect(t, e.url(q("user", "wendy", "rooms", "lobby")))
	sub := openSSE(t, e.sseURL(q("user", "sue", "rooms", "lobby")), nil)
	sub.welcome()

	status, out := e.post(t, q("user", "sue", "rooms", "lobby"), `{"v":1,"type":"publish","room":"lobby","data":"from sse","ref":"p1"}`)
	if status != http.StatusOK || len(out) != 1 || out[0].Type != core.TypeAck || out[0].Ref != "p1" {
		t.Fatalf("POST /send = %d %v", status, out)
	}
	for _, m := range []*core.Envelope{ws.expect(core.TypeMessage), sub.expect(core.TypeMessage)} {
		if m.From != "sue" || dataString(t, m) != "from sse" || !strings.Contains(string(out[0].Data), m.ID) {
			t.Fatalf("message = %s, ack %s", m.Encode(), out[0].Encode())
		}
	}
	// Several envelopes: an array of replies, in order.
	status, out = e.post(t, q("user", "sue", "rooms", "lobby"),
		`{"v":1,"type":"ping","ref":"a"}`+"\n"+`{"v":1,"type":"direct","to":"wendy","data":"dm","ref":"b"}`)
	if status != http.StatusOK || len(out) != 2 || out[0].Type != core.TypePong || out[1].Type != core.TypeAck || out[1].Ref != "b" {
		t.Fatalf("batch = %d %v", status, out)
	}
	if d := ws.expect(core.TypeDirect); d.From != "sue" || dataString(t, d) != "dm" {
		t.Fatalf("direct = %s", d.Encode())
	}
}

func TestSendStatusCodes(t *testing.T) {
	// A refill too slow to matter during the test (the burst is what is
	// checked), however far apart a loaded machine sends the requests.
	e := startEdge(t, func(c *config.Config) { c.Node.RateLimit, c.Node.RateBurst, c.Node.MaxMessageSize = 1e-6, 6, 1024 })
	cases := []struct {
		name, query, body string
		status            int
		code              string
	}{
		{"bad json", q("user", "u1", "rooms", "r"), `{"v":1,"type":`, 400, core.CodeBadRequest},
		{"empty", q("user", "u2"), "\n\n", 400, core.CodeBadRequest},
		{"not joined", q("user", "u3", "rooms", "r"), `{"v":1,"type":"publish","room":"other","data":1,"ref":"x"}`, 403, core.CodeNotJoined},
		{"join", q("user", "u4", "rooms", "r"), `{"v":1,"type":"join","room":"news","ref":"j"}`, 400, core.CodeReconnectRequired},
		{"too large", q("user", "u5"), `{"v":1,"type":"ping","data":"` + strings.Repeat("x", 1100) + `"}`, 413, "too_large"},
		{"bad user", q("user", "bad user!"), `{"v":1,"type":"ping"}`, 401, "unauthorized"},
	}
	for _, tc := range cases {
		status, out := e.post(t, tc.query, tc.body)
		if status != tc.status || len(out) != 1 || replyCode(out[0]) != tc.code {
			t.Errorf("%s: got %d %v, want %d %s", tc.name, status, out, tc.status, tc.code)
		}
	}
	// The ref of a bad envelope is echoed.
	if _, out := e.post(t, q("user", "u6"), `{"v":1,"type":"ping","ref":"r1","bogus":1}`); out[0].Ref != "r1" {
		t.Errorf("bad envelope reply %s, want ref r1", out[0].Encode())
	}
	// Rate limit: burst 6, one token per envelope, per user.
	ping := strings.Repeat(`{"v":1,"type":"ping"}`+"\n", 3)
	for i := 0; i < 2; i++ {
		if status, _ := e.post(t, q("user", "flood"), ping); status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, status)
		}
	}
	if status, out := e.post(t, q("user", "flood"), ping); status != http.StatusTooManyRequests || replyCode(out[0]) != "rate_limited" {
		t.Fatalf("over the burst: %d %v", status, out)
	}
	if status, _ := e.post(t, q("user", "calm"), `{"v":1,"type":"ping"}`); status != http.StatusOK {
		t.Fatalf("another user is limited too: %d", status)
	}
}

func TestSSEAndSendJWT(t *testing.T) {
	const secret = "0123456789abcdef-test-secret"
	e := startEdge(t, func(c *config.Config) { c.Auth.Secret = []byte(secret) })
	resp, err := http.Get(e.sseURL(q("rooms", "r")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "unauthorized") {
		t.Fatalf("SSE without token: %d %s", resp.StatusCode, body)
	}
	if status, out := e.post(t, q("user", "mallory", "rooms", "r"), `{"v":1,"type":"ping"}`); status != http.StatusUnauthorized || replyCode(out[0]) != "unauthorized" {
		t.Fatalf("send without token: %d %v", status, out)
	}
	tok := token(t, secret, "tess", time.Now().Add(time.Hour))
	sub := openSSE(t, e.sseURL(q("rooms", "r")), http.Header{"Authorization": {"Bearer " + tok}})
	if w := sub.welcome(); w.User != "tess" {
		t.Fatalf("welcome = %+v", w)
	}
	status, out := e.post(t, q("token", tok, "user", "mallory", "rooms", "r"), `{"v":1,"type":"publish","room":"r","data":1}`)
	if status != http.StatusOK {
		t.Fatalf("send with token: %d %v", status, out)
	}
	if m := sub.expect(core.TypeMessage); m.From != "tess" {
		t.Fatalf("from = %q, want the token's subject", m.From)
	}
}

// A client that goes away is noticed by the heartbeat (a failed Flush a
// write or two later) and its session cleaned up: without the heartbeat
// nothing would ever write to the idle stream, so it would stay.
func TestSSEGoneClientCleanedUp(t *testing.T) {
	e := startEdge(t, func(c *config.Config) {
		c.Node.HeartbeatInterval, c.Node.HeartbeatTimeout = 100*time.Millisecond, time.Second
	})
	sub := openSSE(t, e.sseURL(q("user", "gone", "rooms", "r")), nil)
	sub.welcome()
	select {
	case <-sub.pings:
	case <-time.After(waitFor):
		t.Fatal("no heartbeat comment")
	}
	if s := e.stats(t); s.Connections != 1 || s.Rooms != 1 {
		t.Fatalf("stats = %+v", s)
	}
	sub.close()
	eventually(t, "the gone client's session to end", func() bool {
		s := e.stats(t)
		return s.Connections == 0 && s.Rooms == 0
	})
}

// Shutdown ends every stream with a close event carrying 1012, and does
// not wait for the streams beyond that: a shutdown that did would wait
// out its context and return its error.
func TestSSEShutdownSendsClose(t *testing.T) {
	e := startEdge(t, nil)
	subs := []*sseClient{
		openSSE(t, e.sseURL(q("user", "a", "rooms", "r")), nil),
		openSSE(t, e.sseURL(q("user", "b")), nil),
	}
	for _, s := range subs {
		s.welcome()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, s := range subs {
		if ce := s.closed(); ce.Code != 1012 || !ce.Reconnect || ce.Reason != "service restart" {
			t.Fatalf("close event = %+v", ce)
		}
	}
}
