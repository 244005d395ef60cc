package longpoll_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/internal/testserver"
	"github.com/switchboard-dev/switchboard/adapters/longpoll"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// waitFor bounds every wait in these tests; it matters only when
// something is broken.
const waitFor = 10 * time.Second

// lp is one node on a memory broker with GET /poll mounted on a Fiber app
// on 127.0.0.1:0. The node shuts down, then the app, when the test ends.
type lp struct {
	node *core.Node
	base string
	hc   *http.Client
}

type setup struct {
	core   core.Config
	memory memory.Config
	poll   longpoll.Config
	// wrap, if set, wraps the broker the node uses.
	wrap func(*memory.Broker) core.Broker
	// front is "fiber" (New, the default) or "nethttp" (NewHandler).
	front string
}

func start(t *testing.T, s setup) *lp {
	t.Helper()
	b, err := memory.New(s.memory, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var br core.Broker = b
	if s.wrap != nil {
		br = s.wrap(b)
	}
	return startFront(t, br, s.core, s.poll, s.front)
}

// startOn is start on any broker: the node takes it over (its Shutdown
// closes it).
func startOn(t testing.TB, br core.Broker, cfg core.Config, pcfg longpoll.Config) *lp {
	t.Helper()
	return startFront(t, br, cfg, pcfg, "fiber")
}

// startFront is startOn with GET /poll on front: "fiber" (New) or
// "nethttp" (NewHandler).
func startFront(t testing.TB, br core.Broker, cfg core.Config, pcfg longpoll.Config, front string) *lp {
	t.Helper()
	node, err := core.NewNode(cfg, br, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var base string
	if front == "nethttp" {
		mux := http.NewServeMux()
		mux.Handle("GET /poll", longpoll.NewHandler(node, pcfg))
		base = "http://" + testserver.HTTP(t, mux, nil)
	} else {
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		app.Get("/poll", longpoll.New(node, pcfg))
		base = serve(t, app)
	}
	t.Cleanup(func() { // registered after serve's: runs first
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	return &lp{node: node, base: base, hc: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
}

// poll runs GET /poll with q and returns the status and decoded body.
func (l *lp) poll(t *testing.T, q url.Values) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor+time.Minute)
	defer cancel()
	a, err := getPoll(ctx, l.hc, l.base, q, "")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// pollAsync runs GET /poll on a goroutine; the answer (or the error)
// arrives on the channel.
func (l *lp) pollAsync(q url.Values) <-chan result {
	out := make(chan result, 1)
	go func() {
		a, err := getPoll(context.Background(), l.hc, l.base, q, "")
		out <- result{a, err}
	}()
	return out
}

type result struct {
	a   answer
	err error
}

// await returns the answer of a pollAsync, failing after waitFor: a poll
// that waits longer than that (the tests' polls wait 30s or more) did not
// wake when it should have.
func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r
	case <-time.After(waitFor):
		t.Fatalf("no answer within %s", waitFor)
		return result{}
	}
}

// publish publishes to room through the node and returns the id.
func (l *lp) publish(t *testing.T, room string, i int) string {
	t.Helper()
	return l.publishOn(t, core.RoomChannel(room), &core.Envelope{Type: core.TypeMessage, Room: room, Data: json.RawMessage(strconv.Itoa(i))})
}

func (l *lp) publishOn(t *testing.T, channel string, env *core.Envelope) string {
	t.Helper()
	env.V, env.From = core.Version, "test"
	id, err := l.node.Publish(context.Background(), channel, env)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// eventually polls cond, a state with no signal of its own (hub
// membership), until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func query(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func ids(envs []*core.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

// TestWaitingPollAnswersOnPublish: a poll waiting with nothing to return
// answers as soon as a message is published in its room (or to its
// user), long before its wait ends, with that message and its id as the
// cursor.
func TestWaitingPollAnswersOnPublish(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		channel func(user, room string) string
		env     func(user, room string) *core.Envelope
	}{
		{"room", func(_, room string) string { return core.RoomChannel(room) },
			func(_, room string) *core.Envelope {
				return &core.Envelope{Type: core.TypeMessage, Room: room, Data: json.RawMessage(`"r"`)}
			}},
		{"direct", func(user, _ string) string { return core.UserChannel(user) },
			func(user, _ string) *core.Envelope {
				return &core.Envelope{Type: core.TypeDirect, To: user, Data: json.RawMessage(`"d"`)}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := start(t, setup{})
			user, room := "u", "r"
			first := l.poll(t, query("user", user, "rooms", room, "wait", "0"))
			ch := l.pollAsync(query("user", user, "rooms", room, "cursor", first.Cursor, "wait", "30s"))
			eventually(t, "the poll to wait in the room", func() bool { return l.node.Hub().Members(core.RoomChannel(room)) == 1 })
			id := l.publishOn(t, tc.channel(user, room), tc.env(user, room))
			r := await(t, ch)
			if r.a.status != http.StatusOK || !slices.Equal(ids(r.a.Messages), []string{id}) || r.a.Cursor != id || !r.a.Recovered {
				t.Fatalf("answer %+v, want 200 with exactly %s, cursor %s, recovered", r.a, id, id)
			}
			eventually(t, "the poll's session to end", func() bool { return l.node.Stats().Connections == 0 })
		})
	}
}

// TestLatePollGetsGap: a poll whose cursor is behind gets what it missed
// at once, oldest first, from its rooms and its direct channel only.
func TestLatePollGetsGap(t *testing.T) {
	t.Parallel()
	l := start(t, setup{})
	cursor := l.poll(t, query("user", "u", "rooms", "a,b", "wait", "0")).Cursor
	var want []string
	for i := range 6 {
		switch i % 3 {
		case 0:
			want = append(want, l.publish(t, "a", i))
		case 1:
			l.publish(t, "other", i)
		case 2:
			want = append(want, l.publishOn(t, core.UserChannel("u"), &core.Envelope{Type: core.TypeDirect, To: "u", Data: json.RawMessage(`1`)}))
		}
	}
	want = append(want, l.publish(t, "b", 9))
	a := l.poll(t, query("user", "u", "rooms", "a,b", "cursor", cursor, "wait", "30s"))
	if a.status != http.StatusOK || !slices.Equal(ids(a.Messages), want) || !a.Recovered || a.Cursor != want[len(want)-1] {
		t.Fatalf("late poll: %d %v recovered=%v cursor=%s, want %v recovered, cursor the last", a.status, ids(a.Messages), a.Recovered, a.Cursor, want)
	}
}

// TestCursorlessPoll: a poll without a cursor answers the broker's head,
// so a message published before the next poll is not lost; without a
// broker head (Head returns "") it answers an empty cursor.
func TestCursorlessPoll(t *testing.T) {
	t.Parallel()
	t.Run("head", func(t *testing.T) {
		t.Parallel()
		l := start(t, setup{})
		old := l.publish(t, "r", 0)
		a := l.poll(t, query("rooms", "r", "wait", "0"))
		if a.status != http.StatusOK || len(a.Messages) != 0 || !a.Recovered || a.Cursor != old {
			t.Fatalf("cursorless poll: %+v, want no message, recovered, cursor = the head %s", a, old)
		}
		// Published between two polls: the next poll gets it.
		id := l.publish(t, "r", 1)
		a = l.poll(t, query("rooms", "r", "cursor", a.Cursor, "wait", "0"))
		if !slices.Equal(ids(a.Messages), []string{id}) || a.Cursor != id || !a.Recovered {
			t.Fatalf("next poll: %+v, want exactly %s", a, id)
		}
	})
	t.Run("empty log", func(t *testing.T) {
		t.Parallel()
		l := start(t, setup{})
		a := l.poll(t, query("rooms", "r", "wait", "0"))
		if a.Cursor == "" {
			t.Fatal("the memory broker names a head even before the first message; got an empty cursor")
		}
		id := l.publish(t, "r", 1)
		a = l.poll(t, query("rooms", "r", "cursor", a.Cursor, "wait", "0"))
		if !slices.Equal(ids(a.Messages), []string{id}) || !a.Recovered {
			t.Fatalf("after the first message: %+v, want exactly %s", a, id)
		}
	})
	t.Run("no head", func(t *testing.T) {
		t.Parallel()
		l := start(t, setup{wrap: func(b *memory.Broker) core.Broker { return headless{b} }})
		l.publish(t, "r", 0)
		a := l.poll(t, query("rooms", "r", "wait", "0"))
		if a.status != http.StatusOK || len(a.Messages) != 0 || !a.Recovered || a.Cursor != "" {
			t.Fatalf("cursorless poll without a broker head: %+v, want the old answer: no message, empty cursor", a)
		}
		// A waiting cursorless poll still gets what is published during
		// its wait.
		ch := l.pollAsync(query("rooms", "r", "wait", "30s"))
		eventually(t, "the poll to wait", func() bool { return l.node.Hub().Members(core.RoomChannel("r")) == 1 })
		id := l.publish(t, "r", 1)
		if r := await(t, ch); !slices.Equal(ids(r.a.Messages), []string{id}) || r.a.Cursor != id {
			t.Fatalf("waiting cursorless poll: %+v, want exactly %s", r.a, id)
		}
	})
}

// headless is the memory broker unable to name its head, as a
// third-party broker may be: Head returns "", nil (the port's honest
// answer), so a cursorless poll starts from "now".
type headless struct{ *memory.Broker }

func (headless) Head(context.Context) (string, error) { return "", nil }

var _ core.Broker = headless{}

// TestUnrecoverableCursor: a cursor the log cannot continue from answers
// at once with recovered:false and what the log still has; with nothing,
// the cursor is the head, from which the next poll loses nothing.
func TestUnrecoverableCursor(t *testing.T) {
	t.Parallel()
	other, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := other.Publish(context.Background(), core.Publication{Channel: core.RoomChannel("r"), Envelope: &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r"}})
	if err != nil {
		t.Fatal(err)
	}
	foreign := res.ID
	if err := other.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup setup
		// publish is how many messages go to room r before the poll.
		publish int
		// cursor picks the poll's cursor from the published ids.
		cursor func(ids []string) string
		// want picks the messages the answer must carry.
		want func(ids []string) []string
	}{
		{"unparseable", setup{}, 3,
			func([]string) string { return "not-a-cursor" },
			func([]string) []string { return nil }},
		{"another epoch", setup{}, 3,
			func([]string) string { return foreign },
			func([]string) []string { return nil }},
		{"beyond retention", setup{memory: memory.Config{HistorySize: 4}}, 10,
			func(ids []string) string { return ids[0] },
			func(ids []string) []string { return ids[6:] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := start(t, tc.setup)
			var published []string
			for i := range tc.publish {
				published = append(published, l.publish(t, "r", i))
			}
			ch := l.pollAsync(query("rooms", "r", "cursor", tc.cursor(published), "wait", "30s"))
			r := await(t, ch) // at once: the client must hear it
			want := tc.want(published)
			if r.a.status != http.StatusOK || r.a.Recovered || !slices.Equal(ids(r.a.Messages), want) {
				t.Fatalf("answer %d %v recovered=%v, want 200 %v recovered=false", r.a.status, ids(r.a.Messages), r.a.Recovered, want)
			}
			wantCursor := published[len(published)-1] // the last message, or the head
			if r.a.Cursor != wantCursor {
				t.Fatalf("cursor %q, want %q", r.a.Cursor, wantCursor)
			}
			next := l.publish(t, "r", 99)
			a := l.poll(t, query("rooms", "r", "cursor", r.a.Cursor, "wait", "0"))
			if !a.Recovered || !slices.Equal(ids(a.Messages), []string{next}) {
				t.Fatalf("poll after the gap: %+v, want exactly %s, recovered", a, next)
			}
		})
	}
}

// TestBatchLimit: a backlog larger than BatchLimit comes in batches of at
// most BatchLimit, oldest first, each recovered, each cursor the last id
// of its batch, until the backlog is drained.
func TestBatchLimit(t *testing.T) {
	t.Parallel()
	l := start(t, setup{poll: longpoll.Config{BatchLimit: 3}})
	cursor := l.poll(t, query("rooms", "r", "wait", "0")).Cursor
	var want []string
	for i := range 8 {
		want = append(want, l.publish(t, "r", i))
	}
	var got []string
	for _, n := range []int{3, 3, 2} {
		a := l.poll(t, query("rooms", "r", "cursor", cursor, "wait", "0"))
		if a.status != http.StatusOK || len(a.Messages) != n || !a.Recovered {
			t.Fatalf("batch: %d %v recovered=%v, want %d messages, recovered", a.status, ids(a.Messages), a.Recovered, n)
		}
		got = append(got, ids(a.Messages)...)
		if a.Cursor != got[len(got)-1] {
			t.Fatalf("cursor %s, want the batch's last id %s", a.Cursor, got[len(got)-1])
		}
		cursor = a.Cursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("batches gave %v, want %v", got, want)
	}
	if a := l.poll(t, query("rooms", "r", "cursor", cursor, "wait", "0")); len(a.Messages) != 0 || a.Cursor != cursor {
		t.Fatalf("after the backlog: %+v, want nothing and the same cursor", a)
	}
}

// TestStatuses: requests refused before polling, on both front ends.
func TestStatuses(t *testing.T) {
	t.Parallel()
	forFronts(t, testStatuses)
}

func testStatuses(t *testing.T, front string) {
	reject := core.AuthenticatorFunc(func(_ context.Context, c core.Credentials) (core.Identity, error) {
		switch c.Token {
		case "good":
			return core.Identity{User: "u"}, nil
		case "bad-user":
			return core.Identity{User: "not a valid user!"}, nil
		}
		return core.Identity{}, fmt.Errorf("%w: token rejected", core.ErrUnauthorized)
	})
	l := start(t, setup{core: core.Config{Authenticator: reject}, front: front})
	cases := []struct {
		name   string
		q      url.Values
		header string
		status int
		code   string
	}{
		{"token in query", query("token", "good", "wait", "0"), "", 200, ""},
		{"bearer header", query("wait", "0"), "Bearer good", 200, ""},
		{"wait in seconds", query("token", "good", "wait", "1"), "", 200, ""},
		{"no token", query("wait", "0"), "", 401, "unauthorized"},
		{"bad token", query("token", "nope", "wait", "0"), "", 401, "unauthorized"},
		{"bad bearer", query("wait", "0"), "Bearer nope", 401, "unauthorized"},
		{"wait not a duration", query("token", "good", "wait", "soon"), "", 400, core.CodeBadRequest},
		{"negative wait", query("token", "good", "wait", "-1s"), "", 400, core.CodeBadRequest},
		{"fractional seconds", query("token", "good", "wait", "1.5"), "", 400, core.CodeBadRequest},
		{"invalid user", query("token", "bad-user", "wait", "0"), "", 401, core.CodeUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, l.base+"/poll?"+tc.q.Encode(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := l.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Messages []json.RawMessage `json:"messages"`
				Error    struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body: %v", err)
			}
			if resp.StatusCode != tc.status || body.Error.Code != tc.code {
				t.Fatalf("HTTP %d code %q, want %d %q", resp.StatusCode, body.Error.Code, tc.status, tc.code)
			}
			if tc.status == 200 && body.Messages == nil {
				t.Fatal("200 without a messages array")
			}
		})
	}
	if n := l.node.Stats().ConnectionsTotal; n != 3 {
		t.Errorf("%d sessions accepted, want 3 (only the good requests)", n)
	}
}

// TestRequestErrors: an invalid room does not fail the poll: the answer
// carries an error envelope and the valid rooms still deliver.
func TestRequestErrors(t *testing.T) {
	t.Parallel()
	l := start(t, setup{})
	cursor := l.poll(t, query("rooms", "ok", "wait", "0")).Cursor
	id := l.publish(t, "ok", 1)
	a := l.poll(t, query("rooms", "ok,bad room", "cursor", cursor, "wait", "0"))
	if a.status != http.StatusOK || !slices.Equal(ids(a.Messages), []string{id}) {
		t.Fatalf("answer %+v, want the message %s", a, id)
	}
	if len(a.Errors) != 1 || a.Errors[0].Type != core.TypeError || !json.Valid(a.Errors[0].Data) {
		t.Fatalf("errors %+v, want one error envelope for the invalid room", a.Errors)
	}
	var ed struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(a.Errors[0].Data, &ed)
	if ed.Code != core.CodeInvalidRoom {
		t.Fatalf("error code %q, want %s", ed.Code, core.CodeInvalidRoom)
	}
}

// TestShutdown: a poll waiting when the node shuts down answers 503 at
// once (not at the end of its wait), and a poll arriving afterwards is
// refused with 503 without a session, on both front ends.
func TestShutdown(t *testing.T) {
	t.Parallel()
	forFronts(t, testShutdown)
}

func testShutdown(t *testing.T, front string) {
	l := start(t, setup{front: front})
	cursor := l.poll(t, query("rooms", "r", "wait", "0")).Cursor
	ch := l.pollAsync(query("rooms", "r", "cursor", cursor, "wait", "50s"))
	eventually(t, "the poll to wait", func() bool { return l.node.Hub().Members(core.RoomChannel("r")) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := l.node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r := await(t, ch)
	if r.a.status != http.StatusServiceUnavailable || r.a.Error == nil || r.a.Error.Code != core.CodeUnavailable {
		t.Fatalf("waiting poll at shutdown: %d %+v, want 503 %s", r.a.status, r.a.Error, core.CodeUnavailable)
	}
	a := l.poll(t, query("rooms", "r", "cursor", cursor, "wait", "0"))
	if a.status != http.StatusServiceUnavailable || a.Error == nil || a.Error.Code != core.CodeUnavailable {
		t.Fatalf("poll after shutdown: %d %+v, want 503 %s", a.status, a.Error, core.CodeUnavailable)
	}
	if n := l.node.Stats().ConnectionsTotal; n != 2 {
		t.Errorf("%d sessions in all, want 2 (the poll after shutdown gets none)", n)
	}
}

// TestSessionsEnd: every poll's session is gone once its answer is sent,
// whichever way the poll ended (TestMain then checks that no goroutine is
// left), on both front ends.
func TestSessionsEnd(t *testing.T) {
	t.Parallel()
	forFronts(t, testSessionsEnd)
}

func testSessionsEnd(t *testing.T, front string) {
	l := start(t, setup{front: front})
	cursor := l.poll(t, query("user", "u", "rooms", "a,b", "wait", "0")).Cursor
	l.poll(t, query("user", "u", "rooms", "a,b", "cursor", cursor, "wait", "50ms")) // times out
	ch := l.pollAsync(query("user", "u", "rooms", "a", "cursor", cursor, "wait", "30s"))
	eventually(t, "the poll to wait", func() bool { return l.node.Hub().Members(core.RoomChannel("a")) == 1 })
	l.publish(t, "a", 1)
	await(t, ch)
	l.poll(t, query("user", "u", "rooms", "a", "cursor", "garbage", "wait", "30s")) // recovered:false, at once
	hub := l.node.Hub()
	eventually(t, "every poll's session to end", func() bool {
		return l.node.Stats().Connections == 0 && hub.Members(core.RoomChannel("a")) == 0 &&
			hub.Members(core.RoomChannel("b")) == 0 && hub.Members(core.UserChannel("u")) == 0
	})
}

// forFronts runs test on both front ends, in parallel.
func forFronts(t *testing.T, test func(t *testing.T, front string)) {
	for _, front := range []string{"fiber", "nethttp"} {
		t.Run(front, func(t *testing.T) {
			t.Parallel()
			test(t, front)
		})
	}
}

// TestClientGoneNetHTTP: on net/http a poll whose client gives up ends at
// once, not at the end of its wait (Fiber cannot see the client leave).
func TestClientGoneNetHTTP(t *testing.T) {
	t.Parallel()
	l := start(t, setup{front: "nethttp"})
	cursor := l.poll(t, query("rooms", "r", "wait", "0")).Cursor
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/poll?"+query("rooms", "r", "cursor", cursor, "wait", "50s").Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	gave := make(chan error, 1)
	go func() {
		resp, err := l.hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gave <- err
	}()
	eventually(t, "the poll to wait", func() bool { return l.node.Hub().Members(core.RoomChannel("r")) == 1 })
	cancel()
	if err := <-gave; !errors.Is(err, context.Canceled) {
		t.Fatalf("the abandoned poll returned %v, want context.Canceled", err)
	}
	eventually(t, "the abandoned poll's session to end", func() bool {
		return l.node.Stats().Connections == 0 && l.node.Hub().Members(core.RoomChannel("r")) == 0
	})
}

// TestServerWriteTimeoutNetHTTP: a poll that waits longer than the
// net/http server's WriteTimeout still gets its answer (NewHandler gives
// the answer its own write deadline).
func TestServerWriteTimeoutNetHTTP(t *testing.T) {
	t.Parallel()
	b, err := memory.New(memory.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{}, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /poll", longpoll.NewHandler(node))
	base := "http://" + testserver.Serve(t, &http.Server{Handler: mux, WriteTimeout: 100 * time.Millisecond}, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	l := &lp{node: node, base: base, hc: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	a := l.poll(t, query("rooms", "r", "wait", "500ms")) // nothing arrives: answered after the wait
	if a.status != http.StatusOK || a.Messages == nil {
		t.Fatalf("poll past the server's WriteTimeout: %+v", a)
	}
}

// gapBroker lets a test deliver a gap, as a broker's reader does when
// its log lost records the node may not have delivered.
type gapBroker struct {
	*memory.Broker
	deliver func(core.Delivery)
}

func (b *gapBroker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	b.deliver = deliver
	return b.Broker.Start(ctx, deliver)
}

// TestGapAnswersNotRecovered: a waiting poll that learns of a gap (the
// log lost what the node may not have delivered) answers at once with
// recovered:false and the cursor it had, so the client knows, and its
// next poll resumes from before the gap.
func TestGapAnswersNotRecovered(t *testing.T) {
	t.Parallel()
	var gb *gapBroker
	l := start(t, setup{wrap: func(b *memory.Broker) core.Broker { gb = &gapBroker{Broker: b}; return gb }})
	first := l.poll(t, query("user", "u", "rooms", "r", "wait", "0"))
	ch := l.pollAsync(query("user", "u", "rooms", "r", "cursor", first.Cursor, "wait", "30s"))
	eventually(t, "the poll to wait in the room", func() bool { return l.node.Hub().Members(core.RoomChannel("r")) == 1 })
	gb.deliver(core.Delivery{Gap: true})
	r := await(t, ch)
	if r.a.status != http.StatusOK || r.a.Recovered || len(r.a.Messages) != 0 || r.a.Cursor != first.Cursor {
		t.Fatalf("answer %+v, want 200, recovered:false, no message, cursor %s", r.a, first.Cursor)
	}
}

// TestGzipOverHTTP: on both front ends a client that accepts gzip gets a
// gzip answer that decodes to the messages; the standard client, which
// asks for gzip by itself, reads it transparently.
func TestGzipOverHTTP(t *testing.T) {
	forFronts(t, func(t *testing.T, front string) {
		b, err := memory.New(memory.Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := startFront(t, b, core.Config{}, longpoll.Config{}, front)
		first := l.poll(t, query("rooms", "r", "wait", "0", "user", "u"))
		data := `"` + strings.Repeat("a quote, a price, a symbol; ", 30) + `"`
		id := l.publishOn(t, core.RoomChannel("r"), &core.Envelope{Type: core.TypeMessage, Room: "r", Data: json.RawMessage(data)})

		req, _ := http.NewRequest(http.MethodGet, l.base+"/poll?"+query("rooms", "r", "wait", "0", "user", "u", "cursor", first.Cursor).Encode(), nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("headers %v, want gzip", resp.Header)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var a longpoll.Response
		if err := json.NewDecoder(zr).Decode(&a); err != nil || len(a.Messages) != 1 || a.Cursor != id || !strings.Contains(string(a.Messages[0]), data) {
			t.Fatalf("decoded %+v, %v", a, err)
		}
		// The standard client asks for gzip itself and decodes it.
		if got := l.poll(t, query("rooms", "r", "wait", "0", "user", "u", "cursor", first.Cursor)); len(got.Messages) != 1 || got.Cursor != id {
			t.Fatalf("transparent: %+v", got)
		}
	})
}
