package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/examples/chat/chatapp"
	"github.com/switchboard-dev/switchboard/test/browsertest"
)

// TestTypingIsRoutedByType checks the custom "typing" type end to end: a
// registered router handler relays it to the room through the broker, and
// the page is served.
func TestTypingIsRoutedByType(t *testing.T) {
	srv, err := server.New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	chatapp.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET / = %v %v", resp, err)
	}
	resp.Body.Close()

	dial := func(user string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/ws?rooms=lobby&user="+user, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, m, err := c.ReadMessage(); err != nil || !strings.Contains(string(m), `"welcome"`) {
			t.Fatalf("welcome: %s %v", m, err)
		}
		return c
	}
	ann, bob := dial("ann"), dial("bob")
	if err := ann.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"typing","room":"lobby"}`)); err != nil {
		t.Fatal(err)
	}
	_, m, err := bob.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	env, err := core.UnmarshalEnvelope(m)
	if err != nil || env.Type != "typing" || env.From != "ann" || env.Room != "lobby" {
		t.Fatalf("bob got %s (%v)", m, err)
	}
	if err := ann.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"typing","room":"other","ref":"t"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, m, err := ann.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m), `"error"`) {
			if !strings.Contains(string(m), core.CodeNotJoined) || !strings.Contains(string(m), `"ref":"t"`) {
				t.Fatalf("got %s", m)
			}
			break
		}
	}
}

// waitFor bounds every wait for an event: generous, so a loaded machine
// passes; only a failing test waits this long.
const waitFor = 60 * time.Second

// logSink is the stderr of run: it keeps every line logged.
type logSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // signalled after each write
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written == nil {
		s.written = make(chan struct{}, 1)
	}
	select {
	case s.written <- struct{}{}:
	default:
	}
	return s.buf.Write(p)
}

// await waits until the log holds want.
func (s *logSink) await(t *testing.T, want string) {
	t.Helper()
	s.mu.Lock()
	if s.written == nil {
		s.written = make(chan struct{}, 1)
	}
	written := s.written
	s.mu.Unlock()
	deadline := time.After(waitFor)
	for !strings.Contains(s.String(), want) {
		select {
		case <-written:
		case <-deadline:
			t.Fatalf("no %q logged after %v; log:\n%s", want, waitFor, s)
		}
	}
}

func (s *logSink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.buf.String()), "\n")
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// chatRun is the example's run, started in-process as `chat args…`.
type chatRun struct {
	addr, adminAddr string // adminAddr is empty without an admin listener
	log             *logSink
	stop            func() int // ends run as a signal does; its exit status
}

// startChat runs the example with args (and an empty environment) and
// waits until its listeners are open.
func startChat(t *testing.T, args ...string) *chatRun {
	t.Helper()
	return startChatEnv(t, nil, io.Discard, args...)
}

// startChatEnv is startChat with the environment env and stdout.
func startChatEnv(t *testing.T, env map[string]string, stdout io.Writer, args ...string) *chatRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sink := &logSink{}
	type addrs struct{ addr, admin net.Addr }
	ready := make(chan addrs, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, args, func(k string) string { return env[k] }, stdout, sink, func(addr, admin net.Addr) { ready <- addrs{addr, admin} })
	}()
	r := &chatRun{log: sink}
	select {
	case a := <-ready:
		r.addr = a.addr.String()
		if a.admin != nil {
			r.adminAddr = a.admin.String()
		}
	case code := <-exit:
		cancel()
		t.Fatalf("run(%q) exited with %d before serving; log:\n%s", args, code, sink)
	case <-time.After(waitFor):
		cancel()
		t.Fatalf("run(%q) not serving after %v; log:\n%s", args, waitFor, sink)
	}
	var once sync.Once
	code := -1
	r.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-exit:
			case <-time.After(waitFor):
				t.Errorf("run(%q) still running %v after the signal", args, waitFor)
			}
		})
		return code
	}
	t.Cleanup(func() { r.stop() })
	return r
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: waitFor}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// TestAdminAddrAndJSONLogs: the example honours --admin-addr (/stats and
// /metrics are served there while the chat runs, not on the public
// listener), --log-format json (every line is a JSON record) and
// --log-level debug (a long-poll's connect, logged at debug, shows).
func TestAdminAddrAndJSONLogs(t *testing.T) {
	r := startChat(t, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug")
	if r.adminAddr == "" {
		t.Fatal("no admin listener with --admin-addr")
	}
	if code, body := get(t, "http://"+r.addr+"/"); code != http.StatusOK || !strings.Contains(body, "Switchboard chat") {
		t.Fatalf("GET / on the public listener = %d %.80q", code, body)
	}
	if code, body := get(t, "http://"+r.adminAddr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "# TYPE") {
		t.Fatalf("GET /metrics on the admin listener = %d %.80q", code, body)
	}
	if code, body := get(t, "http://"+r.adminAddr+"/stats"); code != http.StatusOK || !strings.Contains(body, `"connections"`) {
		t.Fatalf("GET /stats on the admin listener = %d %.80q", code, body)
	}
	if code, _ := get(t, "http://"+r.addr+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("GET /metrics on the public listener = %d, want 404 (it moved to --admin-addr)", code)
	}
	if code, body := get(t, "http://"+r.addr+"/poll?user=ann&rooms=lobby&wait=0"); code != http.StatusOK {
		t.Fatalf("GET /poll = %d %s", code, body)
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("exit status %d after the signal, want 0; log:\n%s", code, r.log)
	}

	var debugConnect, adminListening bool
	for _, line := range r.log.lines() {
		var rec struct{ Level, Msg, User string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON (%v): %s", err, line)
		}
		debugConnect = debugConnect || rec.Level == "DEBUG" && rec.Msg == "connect" && rec.User == "ann"
		adminListening = adminListening || rec.Msg == "admin listening"
	}
	if !debugConnect || !adminListening {
		t.Fatalf("debug connect logged: %v, admin listening logged: %v; log:\n%s", debugConnect, adminListening, r.log)
	}
}

// TestLogLevel: --log-level warn keeps the start-up warning and drops
// every info record (listening, shutdown), in the default text format.
func TestLogLevel(t *testing.T) {
	r := startChat(t, "--addr", "127.0.0.1:0", "--log-level", "warn")
	if code := r.stop(); code != 0 {
		t.Fatalf("exit status %d after the signal, want 0; log:\n%s", code, r.log)
	}
	log := r.log.String()
	if !strings.Contains(log, "level=WARN msg=\"development mode") || strings.Contains(log, "level=INFO") {
		t.Fatalf("with --log-level warn, want the development-mode warning and no info; log:\n%s", log)
	}
}

// TestTracing: the example honours the OTEL_* variables as the edge
// does: with the console exporter, a publish is a span on stdout.
func TestTracing(t *testing.T) {
	stdout := &logSink{}
	r := startChatEnv(t, map[string]string{"OTEL_TRACES_EXPORTER": "console"}, stdout, "--addr", "127.0.0.1:0")
	c, _, err := websocket.DefaultDialer.Dial("ws://"+r.addr+"/ws?rooms=lobby&user=ann", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"publish","room":"lobby","data":"hi","ref":"p"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m), `"ack"`) {
			break
		}
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("exit status %d after the signal, want 0; log:\n%s", code, r.log)
	}
	if !strings.Contains(r.log.String(), "tracing on") || !strings.Contains(stdout.String(), `"Name":"switchboard.publish"`) {
		t.Fatalf("want \"tracing on\" logged and a publish span on stdout; log:\n%s\nstdout:\n%s", r.log, stdout)
	}
}

// TestBrokerWait: with --broker-wait and the broker down, the example
// stays up as the edge does, alive on /healthz and not ready on /readyz,
// and stops on the signal.
func TestBrokerWait(t *testing.T) {
	// A port that was free a moment ago: run opens it only once it is
	// waiting, so the test cannot learn it from ready.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &logSink{}
	exit := make(chan int, 1)
	args := []string{"--addr", addr, "--broker", "redis", "--broker-url", "redis://127.0.0.1:1/0", "--broker-wait"}
	go func() {
		exit <- run(ctx, args, func(string) string { return "" }, io.Discard, sink, func(net.Addr, net.Addr) {
			t.Error("serving without a broker")
		})
	}()
	sink.await(t, "broker unreachable; not ready, retrying (--broker-wait)")
	if code, body := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Fatalf("GET /healthz while waiting = %d %s, want 200", code, body)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready") {
		t.Fatalf("GET /readyz while waiting = %d %s, want 503 not ready", code, body)
	}
	cancel()
	select {
	case <-exit:
	case <-time.After(waitFor):
		t.Fatalf("still running %v after the signal; log:\n%s", waitFor, sink)
	}
}

// TestBadSettingExits: a bad setting exits with status 2 and one line
// naming the flag, before anything listens.
func TestBadSettingExits(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--log-format", "yaml"}, func(string) string { return "" }, io.Discard, &stderr, func(net.Addr, net.Addr) {
		t.Error("listening despite a bad setting")
	})
	if code != 2 || !strings.Contains(stderr.String(), "--log-format") || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q; want 2 and one line naming --log-format", code, stderr.String())
	}
}

// TestBusyAddressExits: an address in use exits with status 1 and one
// line naming the flag, for --addr and for --admin-addr.
func TestBusyAddressExits(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, flag := range []string{"--addr", "--admin-addr"} {
		args := []string{"--log-level", "error", "--addr", "127.0.0.1:0", flag, busy.Addr().String()}
		var stderr bytes.Buffer
		code := run(context.Background(), args, func(string) string { return "" }, io.Discard, &stderr, func(net.Addr, net.Addr) {
			t.Errorf("%s: serving on a busy address", flag)
		})
		if code != 1 || !strings.Contains(stderr.String(), "cannot listen on "+flag+" ") || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%s busy: exit %d, stderr %q; want 1 and one line naming %s", flag, code, stderr.String(), flag)
		}
	}
}

// TestHelpExitsZero: --help prints the edge's settings and exits 0.
func TestHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &stdout, &stderr, nil)
	if code != 0 || !strings.Contains(stdout.String(), "-admin-addr") {
		t.Fatalf("exit %d, stdout %.200q, stderr %q; want 0 and the settings", code, stdout.String(), stderr.String())
	}
}

// until waits for the JavaScript expression to be truthy on the page.
func until(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if err := browsertest.Poll(ctx, expr, waitFor); err != nil {
		log, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("log").innerText`))
		t.Fatalf("waiting for %s (%s): %v\nthe page's log:\n%s", what, expr, err, log)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return browsertest.Eval[T](t, ctx, expr)
}

// sendPrivately fills in the page's private-message form and submits it.
func sendPrivately(t *testing.T, ctx context.Context, to, text string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { document.getElementById("to").value = %q; const f = document.getElementById("dmtext"); f.value = %q; f.form.requestSubmit(); return true })()`, to, text)
	if !eval[bool](t, ctx, js) {
		t.Fatal("submit the private message")
	}
}

// directLines counts the private messages in the page's log that read line.
func directLines(t *testing.T, ctx context.Context, line string) int {
	t.Helper()
	return eval[int](t, ctx, fmt.Sprintf(`[...document.querySelectorAll("#log li.direct")].filter(li => li.textContent === %q).length`, line))
}

// TestPrivateMessageShownToSender: in the chat page, whoever sends a
// private message sees it in their own log, once, also when it is to
// themselves (then it arrives as well).
func TestPrivateMessageShownToSender(t *testing.T) {
	r := startChat(t, "--addr", "127.0.0.1:0", "--log-level", "warn")
	ctx := browsertest.Start(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+r.addr+"/?user=ann&rooms=lobby")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	until(t, ctx, "connected", `window.chat.client && window.chat.client.state === "open"`)

	// bob is not connected: the message is accepted all the same.
	sendPrivately(t, ctx, "bob", "psst")
	until(t, ctx, "own private message in the log", fmt.Sprintf(`[...document.querySelectorAll("#log li.direct")].some(li => li.textContent === %q)`, "(private) ann → bob: psst"))

	// To yourself: the ack and the delivery both arrive; one line.
	sendPrivately(t, ctx, "ann", "note to self")
	until(t, ctx, "the message to self accepted and delivered", `window.chat.messages.some(m => m.data === "note to self") && window.chat.sent.some(m => m.data === "note to self")`)
	if n := directLines(t, ctx, "(private) ann → ann: note to self"); n != 1 {
		t.Fatalf("a private message to yourself is shown %d times, want once", n)
	}
	if n := directLines(t, ctx, "(private) ann → bob: psst"); n != 1 {
		t.Fatalf("the private message to bob is shown %d times, want once", n)
	}
	if errs := eval[[]string](t, ctx, `window.chat.errors`); len(errs) != 0 {
		t.Fatalf("errors on the page: %v", errs)
	}
}

// TestLegacySwitch: ?legacy=1 (the "legacy client" box) runs the page on
// the ES5 build, /client.legacy.js, through the client's callback form;
// the page shows which client it runs, and unticking the box reloads it
// on the ES module.
func TestLegacySwitch(t *testing.T) {
	r := startChat(t, "--addr", "127.0.0.1:0", "--log-level", "warn")
	ctx := browsertest.Start(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+r.addr+"/?user=ann&rooms=lobby&legacy=1")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	until(t, ctx, "connected on the legacy client", `window.chat.client && window.chat.client.state === "open"`)
	if got := eval[string](t, ctx, `[window.chat.build, document.getElementById("build").textContent, typeof window.Switchboard, String(document.getElementById("legacy").checked), document.getElementById("via").textContent].join(" ")`); got != "legacy legacy object true websocket" {
		t.Fatalf("build, badge, window.Switchboard, box, via: %q", got)
	}
	// The callback form: a private message is acknowledged and shown.
	sendPrivately(t, ctx, "bob", "from the legacy client")
	until(t, ctx, "own private message in the log", `window.chat.sent.some(m => m.data === "from the legacy client")`)
	if n := directLines(t, ctx, "(private) ann → bob: from the legacy client"); n != 1 {
		t.Fatalf("the private message is shown %d times, want once", n)
	}

	// Unticking the box reloads the page on the module: a click, and the
	// navigation it starts loaded.
	if _, err := chromedp.RunResponse(ctx, chromedp.Click("#legacy")); err != nil {
		t.Fatalf("untick the box: %v", err)
	}
	until(t, ctx, "reloaded on the module", `location.search.includes("legacy=0") && window.chat && window.chat.client && window.chat.client.state === "open"`)
	if got := eval[string](t, ctx, `window.chat.build + " " + typeof window.Switchboard + " " + document.getElementById("legacy").checked`); got != "module undefined false" {
		t.Fatalf("after unticking: build, window.Switchboard, box: %q", got)
	}
	if errs := eval[[]string](t, ctx, `window.chat.errors`); len(errs) != 0 {
		t.Fatalf("errors on the page: %v", errs)
	}
}
