package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

var testSecret = []byte("test-secret-0123456789")

// quiet discards logs; failures are asserted, not read.
var quiet = slog.New(slog.DiscardHandler)

// call is one request a test backend received.
type call struct {
	route, delivery string
	attempt         int
	body            []byte
}

// backend is a loopback webhook receiver: it verifies every signature
// (answering 401 on failure) and answers with fn.
type backend struct {
	t   *testing.T
	srv *httptest.Server

	mu    sync.Mutex
	calls []call
	seen  chan call // every verified request, in order (buffered)
}

func newBackend(t *testing.T, fn func(c call, w http.ResponseWriter, r *http.Request)) *backend {
	t.Helper()
	b := &backend{t: t, seen: make(chan call, 1000)}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify(testSecret, r.Header.Get(SignatureHeader), body, 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		n, _ := strconv.Atoi(r.Header.Get(AttemptHeader))
		c := call{route: r.Header.Get(RouteHeader), delivery: r.Header.Get(DeliveryHeader), attempt: n, body: body}
		b.mu.Lock()
		b.calls = append(b.calls, c)
		b.mu.Unlock()
		b.seen <- c
		fn(c, w, r)
	}))
	// Requests' contexts end with the test, so a handler still waiting
	// when a test fails (the edge never gave up) lets Close return.
	ctx, cancel := context.WithCancel(context.Background())
	b.srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	t.Cleanup(cancel) // runs first
	return b
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.calls)
}

func (b *backend) all() []call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]call(nil), b.calls...)
}

// answer writes status and body.
func answer(status int, body string) func(call, http.ResponseWriter, *http.Request) {
	return func(_ call, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// hang answers only when the client gives up (or the test ends).
func hang(_ call, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// atomicClock is a settable clock safe for concurrent readers.
type atomicClock struct{ ns atomic.Int64 }

func newClock() *atomicClock {
	c := &atomicClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *atomicClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *atomicClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func noBackoff(int) time.Duration { return 0 }

// waitFor bounds every wait on the code under test: it matters only when
// something is broken (hangs), never on a loaded machine.
const waitFor = 30 * time.Second

// within runs fn and returns its error, failing the test if fn hangs.
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(waitFor):
		t.Fatalf("%s: still running after %s", what, waitFor)
		return nil
	}
}

// newHooks builds Hooks for the test, closed when it ends.
func newHooks(t *testing.T, cfg Config) *Hooks {
	t.Helper()
	cfg.Secret = testSecret
	if cfg.Backoff == nil {
		cfg.Backoff = noBackoff
	}
	h, err := New(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

var creds = core.Credentials{
	Transport: "websocket", RemoteAddr: "127.0.0.1",
	Header: map[string][]string{"User-Agent": {"test"}}, Query: map[string][]string{"ticket": {"t1"}},
}

// connect runs the connect route for an identity next accepted as alice.
func connect(h *Hooks) (core.Identity, error) {
	next := core.AuthenticatorFunc(func(context.Context, core.Credentials) (core.Identity, error) {
		return core.Identity{User: "alice", Rooms: []string{"own"}, Meta: map[string]string{"a": "1", "b": "1"}}, nil
	})
	return h.Authenticator(next).Authenticate(context.Background(), creds)
}

func rejectionOf(t *testing.T, err error) *core.Rejection {
	t.Helper()
	var rej *core.Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("err = %v, want a *core.Rejection", err)
	}
	return rej
}

func TestConnect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   core.Identity // when accepted
		code   uint16        // when rejected
		http   int           // when rejected
		reason string        // when rejected (empty: not checked)
		is     error         // errors.Is on the rejection
	}{
		{name: "accept unchanged", status: 200, body: `{"accept":true}`,
			want: core.Identity{User: "alice", Rooms: []string{"own"}, Meta: map[string]string{"a": "1", "b": "1"}}},
		{name: "accept sets user, rooms, meta", status: 200, body: `{"accept":true,"user":"bob","rooms":["lobby","x"],"meta":{"b":"2","c":"3"}}`,
			want: core.Identity{User: "bob", Rooms: []string{"own", "lobby", "x"}, Meta: map[string]string{"a": "1", "b": "2", "c": "3"}}},
		{name: "reject defaults", status: 200, body: `{"accept":false}`, code: 4403, http: 403, reason: "forbidden", is: ErrRejected},
		{name: "reject with code and reason", status: 200, body: `{"accept":false,"code":4404,"reason":"no such ticket"}`, code: 4404, http: 403, reason: "no such ticket"},
		{name: "reject 401 maps to 4001", status: 200, body: `{"accept":false,"status":401}`, code: 4001, http: 401, reason: "unauthorized"},
		{name: "reject 4001 maps to 401", status: 200, body: `{"accept":false,"code":4001}`, code: 4001, http: 401},
		{name: "reject try again", status: 200, body: `{"accept":false,"code":1013}`, code: 1013, http: 503},
		{name: "reject 429 maps to 1013", status: 200, body: `{"accept":false,"status":429}`, code: 1013, http: 429},
		{name: "reject bad code falls back", status: 200, body: `{"accept":false,"code":1000,"status":200}`, code: 4403, http: 403},
		{name: "reject long reason is cut", status: 200, body: `{"accept":false,"reason":"` + strings.Repeat("é", 100) + `"}`, code: 4403, http: 403, reason: strings.Repeat("é", 61)},
		{name: "5xx fails closed", status: 500, body: ``, code: 1013, http: 503, is: new(StatusError)},
		{name: "4xx fails closed", status: 404, body: ``, code: 1013, http: 503},
		{name: "redirect is not followed", status: 307, body: ``, code: 1013, http: 503},
		{name: "accept missing", status: 200, body: `{"user":"bob"}`, code: 1011, http: 502, is: ErrBadResponse},
		{name: "not JSON", status: 200, body: `<html>`, code: 1011, http: 502, is: ErrBadResponse},
		{name: "empty body", status: 200, body: ``, code: 1011, http: 502, is: ErrBadResponse},
		{name: "unknown field", status: 200, body: `{"accept":true,"usr":"bob"}`, code: 1011, http: 502, is: ErrBadResponse},
		{name: "bad user", status: 200, body: `{"accept":true,"user":"b b"}`, code: 1011, http: 502},
		{name: "bad room", status: 200, body: `{"accept":true,"rooms":[""]}`, code: 1011, http: 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, answer(tc.status, tc.body))
			h := newHooks(t, Config{ConnectURL: b.srv.URL, ConnectRetries: -1})
			h.SetNodeID("N1")
			id, err := connect(h)
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if !reflect.DeepEqual(id, tc.want) {
					t.Fatalf("identity = %+v, want %+v", id, tc.want)
				}
			} else {
				rej := rejectionOf(t, err)
				if rej.Disconnect.Code != tc.code || rej.Status != tc.http {
					t.Fatalf("rejection = %d/%d, want %d/%d (%v)", rej.Disconnect.Code, rej.Status, tc.code, tc.http, err)
				}
				if tc.reason != "" && (rej.Disconnect.Reason != tc.reason || rej.Error() != tc.reason) {
					t.Fatalf("reason = %q / %q, want %q", rej.Disconnect.Reason, rej.Error(), tc.reason)
				}
				if tc.is != nil {
					var se *StatusError
					if _, isStatus := tc.is.(*StatusError); isStatus && !errors.As(err, &se) || !isStatus && !errors.Is(err, tc.is) {
						t.Fatalf("err = %v, want %v", err, tc.is)
					}
				}
			}
			var req ConnectRequest
			if err := json.Unmarshal(b.all()[0].body, &req); err != nil {
				t.Fatal(err)
			}
			if req.Route != "connect" || req.Node != "N1" || req.User != "alice" || req.Transport != "websocket" ||
				req.Query["ticket"][0] != "t1" || req.Headers["User-Agent"][0] != "test" || req.Meta["a"] != "1" || req.ID == "" {
				t.Fatalf("request = %+v", req)
			}
		})
	}
}

func TestConnectAfterNextOnly(t *testing.T) {
	b := newBackend(t, answer(200, `{"accept":true}`))
	h := newHooks(t, Config{ConnectURL: b.srv.URL})
	refused := core.AuthenticatorFunc(func(context.Context, core.Credentials) (core.Identity, error) {
		return core.Identity{}, core.ErrUnauthorized
	})
	if _, err := h.Authenticator(refused).Authenticate(context.Background(), creds); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	if b.count() != 0 {
		t.Fatal("the webhook was asked about a connection the authenticator refused")
	}
	var none *Hooks
	if none.Authenticator(refused) == nil || newHooks(t, Config{DisconnectURL: b.srv.URL}).Authenticator(refused) == nil {
		t.Fatal("no connect route must return next")
	}
}

func TestRetries(t *testing.T) {
	ok := answer(200, `{"accept":true}`)
	for _, tc := range []struct {
		name     string
		route    string
		fails    int32
		status   int // of the failures (default 503)
		attempts int
		success  bool
	}{
		{"connect: one retry recovers", RouteConnect, 1, 0, 2, true},
		{"connect: gives up after one retry", RouteConnect, 5, 0, 2, false},
		{"connect: 4xx is not retried", RouteConnect, 5, 400, 1, false},
		{"connect: 429 is retried", RouteConnect, 1, 429, 2, true},
		{"message: not retried", RouteMessage, 1, 0, 1, false},
		{"disconnect: recovers after 3 failures", RouteDisconnect, 3, 0, 4, true},
		{"disconnect: gives up after 5 retries", RouteDisconnect, 100, 0, 6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen atomic.Int32
			b := newBackend(t, func(c call, w http.ResponseWriter, r *http.Request) {
				if seen.Add(1) <= tc.fails {
					w.WriteHeader(cmp(tc.status, 503))
					return
				}
				ok(c, w, r)
			})
			h := newHooks(t, Config{ConnectURL: b.srv.URL, DisconnectURL: b.srv.URL, MessageURL: b.srv.URL,
				MessageTypes: []string{"x"}, BreakerThreshold: -1})
			r := map[string]*route{RouteConnect: h.connect, RouteMessage: h.message, RouteDisconnect: h.disconnect}[tc.route]
			_, err := h.call(context.Background(), r, "d1", []byte(`{}`), time.Hour) // no attempt times out
			if (err == nil) != tc.success {
				t.Fatalf("err = %v, want success %v", err, tc.success)
			}
			calls := b.all()
			if len(calls) != tc.attempts {
				t.Fatalf("%d attempts, want %d", len(calls), tc.attempts)
			}
			for i, c := range calls {
				if c.attempt != i+1 || c.delivery != "d1" || c.route != tc.route {
					t.Fatalf("attempt %d: %+v", i+1, c)
				}
			}
			if s := h.Stats(tc.route); s.Calls != 1 || s.Retries != uint64(tc.attempts-1) || (s.Failures == 1) == tc.success {
				t.Fatalf("stats = %+v", s)
			}
		})
	}
}

func cmp(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func TestBackoffIsExponentialWithJitter(t *testing.T) {
	h := &Hooks{cfg: Config{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second}}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 50 {
			if d := h.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", n, d, want/2, want)
			}
		}
	}
}

// TestTimeout: a connect backend that does not answer within Timeout
// fails the connection closed (1013), the deadline visible to errors.Is,
// and is not retried after the deadline.
func TestTimeout(t *testing.T) {
	b := newBackend(t, hang)
	h := newHooks(t, Config{ConnectURL: b.srv.URL, Timeout: 50 * time.Millisecond})
	err := within(t, "connect to a backend that never answers", func() error { _, err := connect(h); return err })
	if rej := rejectionOf(t, err); rej.Disconnect.Code != 1013 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v (%d), want 1013 after the deadline", err, rej.Disconnect.Code)
	}
	b.srv.Close() // waits for the handlers of the requests that reached it
	if n := b.count(); n > 1 {
		t.Fatalf("%d attempts: a retry after the connect deadline", n)
	}
}

// TestConnectRetryMustFitTheBudget: connect's retries share its one
// Timeout, so a retry whose backoff would outlast it is not made: the call
// fails at once with the first attempt's error instead of sleeping into
// the deadline.
func TestConnectRetryMustFitTheBudget(t *testing.T) {
	b := newBackend(t, answer(503, ""))
	h := newHooks(t, Config{ConnectURL: b.srv.URL, Timeout: MaxTimeout, Backoff: func(int) time.Duration { return 2 * time.Hour }})
	err := within(t, "connect whose retry cannot fit its budget", func() error { _, err := connect(h); return err })
	var se *StatusError
	if rej := rejectionOf(t, err); rej.Disconnect.Code != 1013 || !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("err = %v, want 1013 carrying the backend's 503", err)
	}
	if n := b.count(); n != 1 {
		t.Fatalf("%d attempts: a retry does not fit in the connect budget", n)
	}
	if s := h.Stats(RouteConnect); s.Calls != 1 || s.Retries != 0 || s.Failures != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestBreakerFailsFastAndRecovers(t *testing.T) {
	var healthy atomic.Bool
	b := newBackend(t, func(c call, w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(500)
			return
		}
		answer(200, `{"accept":true}`)(c, w, r)
	})
	clk := newClock()
	h := newHooks(t, Config{ConnectURL: b.srv.URL, BreakerThreshold: 2, BreakerCooldown: time.Minute, Now: clk.now})
	if _, err := connect(h); err == nil { // two failed attempts open it
		t.Fatal("accepted by a failing backend")
	}
	if s := h.Stats(RouteConnect); s.Breaker != "open" {
		t.Fatalf("breaker %s after 2 failures", s.Breaker)
	}
	healthy.Store(true)
	_, err := connect(h)
	if rej := rejectionOf(t, err); rej.Disconnect.Code != 1013 || rej.Status != 503 || !errors.Is(err, ErrOpen) {
		t.Fatalf("open breaker: %v", err)
	}
	if b.count() != 2 {
		t.Fatalf("an open breaker let a request through (%d)", b.count())
	}
	clk.advance(time.Minute)
	if _, err := connect(h); err != nil {
		t.Fatalf("after the cooldown: %v", err)
	}
	if s := h.Stats(RouteConnect); s.Breaker != "closed" || s.Refused != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	b := newBackend(t, func(c call, w http.ResponseWriter, r *http.Request) {
		<-release
		answer(200, `{"accept":true}`)(c, w, r)
	})
	h := newHooks(t, Config{ConnectURL: b.srv.URL, MaxInFlight: 1})
	done := make(chan error, 1)
	go func() { _, err := connect(h); done <- err }()
	<-b.seen // the first call holds the only slot
	if _, err := connect(h); !errors.Is(err, ErrBusy) {
		t.Fatalf("second call: %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := h.Stats(RouteConnect); s.Breaker != "closed" || s.Refused != 1 {
		t.Fatalf("busy must not count against the breaker: %+v", s)
	}
}

func disconnectEvent(conn string, at time.Time) core.Event {
	return core.Event{Type: core.EventDisconnect, Node: "N1", Conn: conn, User: "u-" + conn, Transport: "websocket",
		Meta: map[string]string{"k": "v"}, Code: 4009, Reason: "heartbeat timeout", Time: at}
}

func TestDisconnectQueueIsBounded(t *testing.T) {
	release := make(chan struct{})
	b := newBackend(t, func(c call, w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(204)
	})
	h, err := New(Config{DisconnectURL: b.srv.URL, Secret: testSecret, Workers: 1, QueueSize: 2}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_800_000_000, 0)
	h.OnEvent(core.Event{Type: core.EventConnect, Conn: "c1", Time: start})
	h.OnEvent(core.Event{Type: core.EventJoin, Conn: "c1", Room: "r", Time: start})
	h.OnEvent(disconnectEvent("c1", start.Add(1500*time.Millisecond)))
	<-b.seen // the only worker is busy with c1
	for _, c := range []string{"c2", "c3", "c4", "c5"} {
		h.OnEvent(disconnectEvent(c, start)) // c2, c3 queue; c4, c5 are dropped
	}
	if s := h.Stats(RouteDisconnect); s.Dropped != 2 {
		t.Fatalf("dropped %d, want 2", s.Dropped)
	}
	close(release)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	var got []DisconnectRequest
	for _, c := range b.all() {
		var d DisconnectRequest
		if err := json.Unmarshal(c.body, &d); err != nil {
			t.Fatal(err)
		}
		got = append(got, d)
	}
	if len(got) != 3 || got[0].Conn != "c1" || got[1].Conn != "c2" || got[2].Conn != "c3" {
		t.Fatalf("delivered %+v", got)
	}
	d := got[0]
	if d.Route != "disconnect" || d.User != "u-c1" || d.Code != 4009 || d.Reason != "heartbeat timeout" || d.Meta["k"] != "v" ||
		d.DurationMS == nil || *d.DurationMS != 1500 || d.ConnectedAt == nil || !d.ConnectedAt.Equal(start) {
		t.Fatalf("c1 = %+v", d)
	}
	if got[1].DurationMS != nil {
		t.Fatal("duration without a connect event")
	}
	h.OnEvent(disconnectEvent("late", start)) // after Close: dropped, never blocks
	if s := h.Stats(RouteDisconnect); s.Dropped != 3 {
		t.Fatalf("dropped %d after close, want 3", s.Dropped)
	}
}

func TestCloseIsBounded(t *testing.T) {
	b := newBackend(t, hang)
	h, err := New(Config{DisconnectURL: b.srv.URL, ConnectURL: b.srv.URL, Secret: testSecret, Workers: 2,
		DrainTimeout: 100 * time.Millisecond, Timeout: MaxTimeout, Backoff: noBackoff}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2", "c3", "c4", "c5"} {
		h.OnEvent(disconnectEvent(c, time.Now()))
	}
	<-b.seen
	<-b.seen // both workers stuck in a call that would last an hour
	// Only the drain timeout can end those calls: without it Close hangs.
	_ = within(t, "Close with a 100ms drain timeout", func() error { return h.Close() })
	if s := h.Stats(RouteDisconnect); s.Dropped != 5 {
		t.Fatalf("dropped %d, want 5", s.Dropped)
	}
	_ = h.Close() // idempotent
	if _, err := connect(h); !errors.Is(err, ErrClosed) {
		t.Fatalf("connect after Close: %v", err)
	}
}

// stateless runs env through node as a POST /send from alice.
func stateless(n *core.Node, env string) []*core.Envelope {
	e, err := core.DecodeEnvelope([]byte(env))
	if err != nil {
		panic(err)
	}
	p, err := n.Authenticate(context.Background(), core.Credentials{User: "alice"})
	if err != nil {
		panic(err)
	}
	var out []*core.Envelope
	for _, f := range n.HandleStateless(context.Background(), core.StatelessRequest{Principal: p}, e) {
		r, _ := core.UnmarshalEnvelope(f)
		out = append(out, r)
	}
	return out
}

func TestMessage(t *testing.T) {
	b := newBackend(t, func(c call, w http.ResponseWriter, r *http.Request) {
		var req MessageRequest
		_ = json.Unmarshal(c.body, &req)
		env, _ := core.UnmarshalEnvelope(req.Envelope)
		switch string(env.Data) {
		case `"reply"`:
			_, _ = io.WriteString(w, `{"v":1,"type":"app.x","data":{"user":"`+req.User+`","conn":"`+req.Conn+`"}}`)
		case `"publish"`:
			_, _ = io.WriteString(w, `[{"v":1,"type":"message","room":"lobby","data":1},{"v":1,"type":"direct","to":"bob","data":2}]`)
		case `"both"`:
			_, _ = io.WriteString(w, `[{"v":1,"type":"message","room":"lobby","data":1},{"v":1,"type":"error","data":{"code":"nope","message":"no"}}]`)
		case `"nothing"`:
			w.WriteHeader(204)
		case `"bad"`:
			_, _ = io.WriteString(w, `{"v":1,"type":"message","room":"lobby","to":"bob"}`)
		case `"bad-room"`:
			_, _ = io.WriteString(w, `[{"v":1,"type":"message","room":"lobby"},{"v":1,"type":"message","room":"a b"}]`)
		case `"fail"`:
			w.WriteHeader(500)
		}
	})
	br, err := memory.New(memory.Config{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	n, err := core.NewNode(core.Config{}, br, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
		_ = br.Close(ctx)
	})
	h := newHooks(t, Config{MessageURL: b.srv.URL, MessageTypes: []string{"app.x"}, BreakerThreshold: -1})
	h.Register(n)

	for _, tc := range []struct {
		data string
		want []string // type:ref:data of each reply
	}{
		{`"reply"`, []string{`app.x:r1:{"user":"alice","conn":"` + "*" + `"}`}},
		{`"publish"`, []string{`ack:r1:{"published":[{"room":"lobby","id":"*"},{"to":"bob","id":"*"}]}`}},
		{`"both"`, []string{`error:r1:{"code":"nope","message":"no"}`}},
		{`"nothing"`, []string{`ack:r1:`}},
		{`"bad"`, []string{`error:r1:{"code":"internal","message":"the app.x handler failed"}`}},
		{`"bad-room"`, []string{`error:r1:{"code":"internal","message":"the app.x handler failed"}`}},
		{`"fail"`, []string{`error:r1:{"code":"unavailable","message":"the app.x handler is unavailable; retry later"}`}},
	} {
		t.Run(tc.data, func(t *testing.T) {
			got := stateless(n, `{"v":1,"type":"app.x","ref":"r1","data":`+tc.data+`}`)
			if len(got) != len(tc.want) {
				t.Fatalf("replies %d, want %d", len(got), len(tc.want))
			}
			for i, e := range got {
				s := e.Type + ":" + e.Ref + ":" + string(e.Data)
				if !match(tc.want[i], s) {
					t.Fatalf("reply %d = %s, want %s", i, s, tc.want[i])
				}
			}
		})
	}
	var req MessageRequest
	_ = json.Unmarshal(b.all()[0].body, &req)
	if req.Route != "message" || req.Node != n.ID() || req.User != "alice" || req.Transport == "" || req.Conn == "" ||
		string(req.Envelope) != `{"v":1,"type":"app.x","ref":"r1","data":"reply"}` {
		t.Fatalf("request = %+v %s", req, req.Envelope)
	}
	// "bad-room" published nothing: the whole answer is checked before
	// anything is carried out.
	ack := stateless(n, `{"v":1,"type":"app.x","ref":"r2","data":"publish"}`)[0]
	var pub struct{ Published []published }
	if err := json.Unmarshal(ack.Data, &pub); err != nil || len(pub.Published) != 2 {
		t.Fatalf("ack %s: %v", ack.Data, err)
	}
	stateless(n, `{"v":1,"type":"app.x","ref":"r3","data":"bad-room"}`)
	res, err := br.History(context.Background(), core.HistoryRequest{Channels: []string{core.RoomChannel("lobby")}, Since: pub.Published[0].ID, Limit: 100})
	if err != nil || !res.Recovered || len(res.Envelopes) != 0 {
		t.Fatalf("lobby history after the publish: %+v %v %v, want nothing", res.Envelopes, res.Recovered, err)
	}
}

// match compares s with a pattern where * matches any run of characters
// other than a double quote.
func match(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1:] {
		i := strings.Index(s, p)
		if i < 0 || strings.Contains(s[:i], `"`) {
			return false
		}
		s = s[i+len(p):]
	}
	return s == ""
}

func TestConfigValidate(t *testing.T) {
	u := "http://127.0.0.1:1/hook"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; empty: valid
	}{
		{"valid", Config{ConnectURL: u, Secret: testSecret}, ""},
		{"no route", Config{Secret: testSecret}, "no route has a URL"},
		{"secret without a route", Config{Secret: []byte("short")}, "shorter than 16"},
		{"short secret", Config{ConnectURL: u, Secret: []byte("short")}, "shorter than 16"},
		{"bad URL", Config{ConnectURL: "ftp://x", Secret: testSecret}, "http"},
		{"relative URL", Config{DisconnectURL: "/hook", Secret: testSecret}, "http"},
		{"message without types", Config{MessageURL: u, Secret: testSecret}, "MessageTypes: empty"},
		{"types without message", Config{DisconnectURL: u, MessageTypes: []string{"x"}, Secret: testSecret}, "MessageURL: empty"},
		{"built-in type", Config{MessageURL: u, MessageTypes: []string{"publish"}, Secret: testSecret}, "built in"},
		{"malformed type", Config{MessageURL: u, MessageTypes: []string{"Echo"}, Secret: testSecret}, "lower-case"},
		{"negative timeout", Config{ConnectURL: u, Secret: testSecret, Timeout: -1}, "Timeout: -1ns must be positive"},
		{"long timeout", Config{ConnectURL: u, Secret: testSecret, Timeout: 2 * time.Minute}, "at most 1m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(tc.cfg, quiet)
			if h != nil {
				_ = h.Close()
			}
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("New = %v, want %q", err, tc.want)
			}
		})
	}
}
