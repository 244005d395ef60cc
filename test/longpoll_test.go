package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

type pollResult struct {
	status    int
	messages  []*core.Envelope
	cursor    string
	recovered bool
	body      string
	took      time.Duration
}

// poll sends GET /poll?query and decodes the answer.
func (e *edge) poll(t *testing.T, query string) pollResult {
	t.Helper()
	r, err := e.tryPoll(query)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pollAsync polls on another goroutine; errors come back on the channel.
func (e *edge) pollAsync(query string) <-chan polled {
	ch := make(chan polled, 1)
	go func() {
		r, err := e.tryPoll(query)
		ch <- polled{r, err}
	}()
	return ch
}

type polled struct {
	r   pollResult
	err error
}

func (e *edge) tryPoll(query string) (pollResult, error) {
	start := time.Now()
	resp, err := http.Get("http://" + e.addr + "/poll?" + query)
	if err != nil {
		return pollResult{}, fmt.Errorf("GET /poll: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := pollResult{status: resp.StatusCode, body: string(raw), took: time.Since(start)}
	if resp.StatusCode != http.StatusOK {
		return r, nil
	}
	var body struct {
		Messages  []json.RawMessage `json:"messages"`
		Cursor    string            `json:"cursor"`
		Recovered *bool             `json:"recovered"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Messages == nil || body.Recovered == nil {
		return r, fmt.Errorf("poll body %q: %v", raw, err)
	}
	for _, m := range body.Messages {
		env, err := core.UnmarshalEnvelope(m)
		if err != nil {
			return r, fmt.Errorf("poll message %q: %w", m, err)
		}
		r.messages = append(r.messages, env)
	}
	r.cursor, r.recovered = body.Cursor, *body.Recovered
	return r, nil
}

// await waits for an async poll's answer.
func await(t *testing.T, ch <-chan polled) pollResult {
	t.Helper()
	select {
	case p := <-ch:
		if p.err != nil {
			t.Fatal(p.err)
		}
		return p.r
	case <-time.After(waitFor):
		t.Fatal("waiting poll did not answer")
	}
	return pollResult{}
}

func (r pollResult) data(t *testing.T) []string {
	t.Helper()
	out := []string{}
	for _, m := range r.messages {
		out = append(out, dataString(t, m))
	}
	return out
}

func wantData(t *testing.T, what string, r pollResult, want ...string) {
	t.Helper()
	if got := r.data(t); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: messages %q, want %q (%s)", what, got, want, r.body)
	}
	if n := len(r.messages); n > 0 && r.cursor != r.messages[n-1].ID {
		t.Fatalf("%s: cursor %q, want the last id %q", what, r.cursor, r.messages[n-1].ID)
	}
}

// publisher connects a WebSocket client to room and returns a function
// publishing data there (after the ack) and returning the message id.
func publisher(t *testing.T, e *edge, room string) func(string) string {
	pub, _ := connect(t, e.url(q("user", "pub", "rooms", room)))
	return func(data string) string {
		pub.send(fmt.Sprintf(`{"v":1,"type":"publish","room":%q,"data":%q}`, room, data))
		_, m := pub.ackAnd(core.TypeMessage)
		return m.ID
	}
}

func TestLongPollCursorBatchesAndWaits(t *testing.T) {
	e := startEdge(t, nil)
	publish := publisher(t, e, "feed")
	first := publish("m0")
	publish("m1")
	publish("m2")

	r := e.poll(t, q("user", "lp", "rooms", "feed", "cursor", first))
	if r.status != http.StatusOK || !r.recovered {
		t.Fatalf("poll: %d %s", r.status, r.body)
	}
	wantData(t, "batch", r, "m1", "m2")

	publish("m3")
	r = e.poll(t, q("user", "lp", "rooms", "feed", "cursor", r.cursor))
	wantData(t, "next", r, "m3")

	// Nothing new: the poll waits, and answers as soon as a message is
	// published. It asks for the longest wait (55 s), so an answer within
	// await's bound (waitFor) came from the publish, not the wait's end.
	got := e.pollAsync(q("user", "lp", "rooms", "feed", "cursor", r.cursor, "wait", "55s"))
	waitPolling(t, e, "feed", 2) // the publisher and the poll
	select {
	case p := <-got:
		t.Fatalf("poll answered before any message: %+v", p)
	default:
	}
	publish("m4")
	r = await(t, got)
	wantData(t, "waited", r, "m4")

	// A poll that finds nothing answers at the end of its wait with the
	// cursor unchanged.
	r2 := e.poll(t, q("user", "lp", "rooms", "feed", "cursor", r.cursor, "wait", "200ms"))
	if r2.status != http.StatusOK || len(r2.messages) != 0 || r2.cursor != r.cursor || !r2.recovered || r2.took < 200*time.Millisecond {
		t.Fatalf("empty poll: %+v", r2)
	}

	// A late poll gets the gap from history; direct messages come too.
	publish("m5")
	publish("m6")
	alice, _ := connect(t, e.url(q("user", "alice")))
	alice.send(`{"v":1,"type":"direct","to":"lp","data":"psst"}`)
	alice.expect(core.TypeAck)
	r = e.poll(t, q("user", "lp", "rooms", "feed", "cursor", r.cursor))
	wantData(t, "late", r, "m5", "m6", "psst")
	if r.messages[2].Type != core.TypeDirect {
		t.Fatalf("direct: %s", r.messages[2].Encode())
	}

	// Bad wait is 400; a garbage cursor is recovered:false, not an error.
	if r := e.poll(t, q("user", "lp", "rooms", "feed", "wait", "soon")); r.status != http.StatusBadRequest {
		t.Fatalf("bad wait: %d %s", r.status, r.body)
	}
	// It answers at once: with the longest wait (55 s), any answer within
	// await's bound (waitFor) proves it did not wait.
	r = await(t, e.pollAsync(q("user", "lp", "rooms", "feed", "cursor", "garbage", "wait", "55s")))
	if r.status != http.StatusOK || r.recovered {
		t.Fatalf("garbage cursor: %+v", r)
	}
}

func TestLongPollNoCursorWaitsFromNow(t *testing.T) {
	e := startEdge(t, nil)
	publish := publisher(t, e, "feed")
	publish("old")
	got := e.pollAsync(q("user", "lp", "rooms", "feed", "wait", "20s"))
	waitPolling(t, e, "feed", 2) // the publisher and the poll
	publish("new")
	r := await(t, got)
	wantData(t, "from now", r, "new")
	if !r.recovered {
		t.Fatalf("recovered = false: %s", r.body)
	}
}

func TestLongPollBeyondRetention(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.Broker.Memory.HistorySize = 3 })
	publish := publisher(t, e, "feed")
	first := publish("m0")
	for i := 1; i <= 6; i++ {
		publish(fmt.Sprint("m", i))
	}
	r := e.poll(t, q("user", "lp", "rooms", "feed", "cursor", first))
	if r.status != http.StatusOK || r.recovered {
		t.Fatalf("beyond retention: %d recovered=%v %s", r.status, r.recovered, r.body)
	}
	if got := r.data(t); len(got) == 0 || got[len(got)-1] != "m6" {
		t.Fatalf("beyond retention gave %q, want the retained tail", got)
	}
}

func TestLongPollJWT(t *testing.T) {
	const secret = "0123456789abcdef-test-secret"
	e := startEdge(t, func(c *config.Config) { c.Auth.Secret = []byte(secret) })
	if r := e.poll(t, q("user", "mallory", "rooms", "r", "wait", "0")); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "unauthorized") {
		t.Fatalf("poll without token: %d %s", r.status, r.body)
	}
	if r := e.poll(t, q("token", "nope", "rooms", "r", "wait", "0")); r.status != http.StatusUnauthorized {
		t.Fatalf("poll with a bad token: %d %s", r.status, r.body)
	}
	tok := token(t, secret, "tess", time.Now().Add(time.Hour))
	if r := e.poll(t, q("token", tok, "rooms", "r", "wait", "0")); r.status != http.StatusOK {
		t.Fatalf("poll with token: %d %s", r.status, r.body)
	}
}

// The cursor is all the state: poll node A, continue on node B, no loss
// and no duplicate.
func TestLongPollAnyNodeAnswers(t *testing.T) {
	rs := redistest.Start(t)
	redis := func(c *config.Config) { c.Broker.Name, c.Broker.URL = "redis", rs.URL }
	a, b := startEdge(t, redis), startEdge(t, redis)
	publish := publisher(t, a, "feed")
	first := publish("m0")
	publish("m1")
	publish("m2")

	r := a.poll(t, q("user", "lp", "rooms", "feed", "cursor", first))
	wantData(t, "node A", r, "m1", "m2")
	publish("m3")
	publish("m4")
	r = b.poll(t, q("user", "lp", "rooms", "feed", "cursor", r.cursor))
	wantData(t, "node B", r, "m3", "m4")
	if !r.recovered {
		t.Fatalf("node B: recovered false: %s", r.body)
	}

	// A poll waiting on B sees a publication made through A.
	got := b.pollAsync(q("user", "lp", "rooms", "feed", "cursor", r.cursor, "wait", "20s"))
	waitPolling(t, b, "feed", 1) // the poll; the publisher is on A
	publish("m5")
	r = await(t, got)
	wantData(t, "node B waited", r, "m5")
	r = a.poll(t, q("user", "lp", "rooms", "feed", "cursor", r.cursor, "wait", "200ms"))
	wantData(t, "back on A", r)
}

// waitPolling waits until room has members connections on e, a waiting
// poll's among them: from then on a publication reaches it. Membership is
// exact, unlike the node's connection count: a poll leaves its rooms
// before it answers, but its session leaves the node only after.
func waitPolling(t *testing.T, e *edge, room string, members int) {
	t.Helper()
	eventually(t, "the poll to be waiting", func() bool {
		return e.srv.Node().Hub().Members(core.RoomChannel(room)) == members
	})
}
