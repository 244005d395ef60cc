package longpoll_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/adapters/longpoll"
	"github.com/switchboard-dev/switchboard/broker/engine"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
)

// Long-poll on a real log: Redis Streams through the log engine, as every
// broker but memory runs.

// startRedis serves GET /poll from a node on the engine over srv, on a
// stream of the test's own.
func startRedis(t testing.TB, srv *redistest.Server, rcfg sbredis.Config, cfg core.Config, pcfg longpoll.Config) (*lp, *engine.Broker) {
	t.Helper()
	rcfg.URL = srv.URL
	rcfg.Stream = "sb:" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	b, err := sbredis.New(context.Background(), rcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return startOn(t, b, cfg, pcfg), b
}

// publishAll publishes n messages to room from a few goroutines and
// returns their ids in log order (the order every subscriber must get).
func publishAll(t testing.TB, node *core.Node, room string, n int) []string {
	t.Helper()
	const workers = 8
	ids := make([]string, n)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: room, From: "test", Data: json.RawMessage(strconv.Itoa(i))}
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				id, err := node.Publish(ctx, core.RoomChannel(room), env)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sortByLog(t, ids)
	return ids
}

// sortByLog sorts engine ids of one epoch by their position in the log.
func sortByLog(t testing.TB, ids []string) {
	t.Helper()
	pos := make(map[string]engine.Pos, len(ids))
	for _, id := range ids {
		_, p, ok := engine.ParseID(id)
		if !ok {
			t.Fatalf("id %q is not an engine id", id)
		}
		pos[id] = p
	}
	slices.SortFunc(ids, func(a, b string) int {
		switch {
		case pos[a].Less(pos[b]):
			return -1
		case pos[b].Less(pos[a]):
			return 1
		}
		return 0
	})
}

// wantUnavailable checks a 503 broker_unavailable that carries neither a
// cursor nor recovered: nothing the client could take for a position.
func wantUnavailable(t *testing.T, what string, a answer) {
	t.Helper()
	if a.status != http.StatusServiceUnavailable || a.Error == nil || a.Error.Code != core.CodeBrokerDown ||
		strings.Contains(a.body, `"cursor"`) || strings.Contains(a.body, `"recovered"`) {
		t.Fatalf("%s: HTTP %d %s, want 503 %s without cursor or recovered", what, a.status, a.body, core.CodeBrokerDown)
	}
}

// TestHeadUnavailable: when the broker cannot name its head, a poll
// without a cursor and a poll whose cursor the log cannot continue from
// answer 503 broker_unavailable, never a cursor guessed from this node's
// own position in the log (which may be behind what the client has, or
// ahead of it). Once the broker is back they answer again.
func TestHeadUnavailable(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	l, _ := startRedis(t, srv, sbredis.Config{}, core.Config{}, longpoll.Config{})
	first := l.publish(t, "r", 0)
	if a := l.poll(t, query("rooms", "r", "wait", "0")); a.status != http.StatusOK || a.Cursor != first {
		t.Fatalf("cursorless poll with the broker up: %d %s, want 200 with the head %s", a.status, a.body, first)
	}
	srv.Stop()
	wantUnavailable(t, "cursorless poll", l.poll(t, query("rooms", "r", "wait", "0")))
	wantUnavailable(t, "waiting cursorless poll", l.poll(t, query("rooms", "r", "wait", "5s")))
	wantUnavailable(t, "unparseable cursor", l.poll(t, query("rooms", "r", "cursor", "garbage", "wait", "0")))
	wantUnavailable(t, "cursor of another epoch", l.poll(t, query("rooms", "r", "cursor", "elsewhere-1-0", "wait", "0")))
	wantUnavailable(t, "cursor", l.poll(t, query("rooms", "r", "cursor", first, "wait", "0")))
	// A session is unregistered just after it ends, which may be after
	// its poll has answered.
	eventually(t, "no session left after the 503s", func() bool { return l.node.Stats().Connections == 0 })

	srv.Restart() // empty: a new log
	eventually(t, "a cursorless poll answering 200 after the restart", func() bool {
		return l.poll(t, query("rooms", "r", "wait", "0")).status == http.StatusOK
	})
	a := l.poll(t, query("rooms", "r", "cursor", "garbage", "wait", "0"))
	if a.status != http.StatusOK || a.Recovered || len(a.Messages) != 0 {
		t.Fatalf("unparseable cursor after the restart: %d %s, want 200 recovered:false", a.status, a.body)
	}
}

// TestBrokerBlip: while the broker is down, polls answer 503
// broker_unavailable (no recovered:false, no head cursor); once it is back
// (with its data), the same cursor gets every message published before,
// during (none could be) and after the outage exactly once, recovered.
func TestBrokerBlip(t *testing.T) {
	t.Parallel()
	srv := redistest.StartPersistent(t)
	l, b := startRedis(t, srv, sbredis.Config{}, core.Config{BrokerTimeout: 2 * time.Second}, longpoll.Config{BatchLimit: 4})
	cursor := l.publish(t, "seed", 0) // an empty log has no head to start from
	if a := l.poll(t, query("user", "u", "rooms", "r", "wait", "0")); a.Cursor != cursor {
		t.Fatalf("cursorless poll: %s, want the head %s", a.body, cursor)
	}
	var want []string
	for i := range 6 {
		want = append(want, l.publish(t, "r", i))
	}
	// A poll waiting across the outage answers with the cursor it had.
	waiting := l.pollAsync(query("user", "u", "rooms", "r", "cursor", want[5], "wait", "2s"))
	eventually(t, "the poll to wait", func() bool { return l.node.Hub().Members(core.RoomChannel("r")) == 1 })
	srv.Stop()
	if r := await(t, waiting); r.a.status != http.StatusOK || len(r.a.Messages) != 0 || r.a.Cursor != want[5] || !r.a.Recovered {
		t.Fatalf("poll waiting across the outage: %d %s, want 200, nothing, the same cursor", r.a.status, r.a.body)
	}
	for i := range 3 {
		wantUnavailable(t, fmt.Sprintf("poll %d during the outage", i), l.poll(t, query("user", "u", "rooms", "r", "cursor", cursor, "wait", "0")))
	}
	wantUnavailable(t, "cursorless poll during the outage", l.poll(t, query("user", "u", "rooms", "r", "wait", "0")))

	srv.Restart() // the same log: saved at the stop, loaded now
	eventually(t, "the engine to read the log again", func() bool { return b.Healthy() == nil })
	for i := 6; i < 10; i++ {
		var id string
		eventually(t, "a publish after the outage", func() bool {
			var err error
			id, err = l.node.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: json.RawMessage(strconv.Itoa(i))})
			return err == nil && !errors.Is(err, core.ErrUnconfirmed)
		})
		want = append(want, id)
	}
	got, unavailable := catchUp(t, l, "u", "r", cursor, len(want))
	if !slices.Equal(got, want) {
		t.Fatalf("after the outage the cursor got %v, want %v (%d answers were 503)", got, want, unavailable)
	}
}

// catchUp polls from cursor until it has n messages and a poll finds
// nothing more, retrying with the same cursor on 503, and returns the
// ids in order. Every 200 must be recovered.
func catchUp(t *testing.T, l *lp, user, room, cursor string, n int) (got []string, unavailable int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		a := l.poll(t, query("user", user, "rooms", room, "cursor", cursor, "wait", "0"))
		switch {
		case a.status == http.StatusServiceUnavailable && a.Error != nil && a.Error.Code == core.CodeBrokerDown:
			unavailable++
			time.Sleep(50 * time.Millisecond) // the client's backoff
			continue
		case a.status != http.StatusOK || !a.Recovered:
			t.Fatalf("poll from %s: %d %s, want 200 recovered", cursor, a.status, a.body)
		}
		got = append(got, ids(a.Messages)...)
		if len(a.Messages) == 0 && a.Cursor == cursor && len(got) >= n {
			return got, unavailable
		}
		cursor = a.Cursor
	}
	t.Fatalf("not caught up within a minute: %d of %d messages", len(got), n)
	return nil, 0
}

// TestCatchUpFarBehind: a poll client 20,000 messages behind (inside
// retention, far past HistoryLimit, older than the resume index) pages
// through: every answer recovered, every message once and in log order,
// including those published live while it pages, and each poll reads
// about a page from the log and the index, not the whole lag.
func TestCatchUpFarBehind(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const behind, live, page = 20_000, 300, 100
	l, b := startRedis(t, srv, sbredis.Config{Engine: engine.Config{IndexEntries: 5000}}, core.Config{}, longpoll.Config{BatchLimit: page})
	cursor := l.publish(t, "seed", 0) // an empty log has no head to start from
	want := publishAll(t, l.node, "r", behind)

	// Live traffic while the client pages through: it must come after the
	// backlog, never between two pages.
	liveIDs := make(chan []string, 1)
	go func() {
		var out []string
		for i := range live {
			id, err := l.node.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: json.RawMessage(strconv.Itoa(behind + i))})
			if err != nil {
				break // the test fails on the count below
			}
			out = append(out, id)
		}
		liveIDs <- out
	}()

	var got []string
	const channels = 3 // the user's, broadcast, the room
	backlogPolls := 0
	for len(got) < behind+live {
		before := b.Stats()
		// A poll with a backlog answers at once; caught up, it waits for
		// the live publisher.
		a := l.poll(t, query("user", "u", "rooms", "r", "cursor", cursor, "wait", "5s"))
		after := b.Stats()
		if len(got) < behind {
			backlogPolls++
		}
		if a.status != http.StatusOK || !a.Recovered || len(a.Messages) > page {
			t.Fatalf("poll from %s: %d recovered=%v, %d messages; want 200, recovered, at most %d", cursor, a.status, a.Recovered, len(a.Messages), page)
		}
		if n := after.LogRecordsRead - before.LogRecordsRead; n > page+1 {
			t.Fatalf("a poll read %d log records, want at most %d", n, page+1)
		}
		if n := after.IndexEntriesRead - before.IndexEntriesRead; n > channels*(page+1) {
			t.Fatalf("a poll took %d index entries, want at most %d", n, channels*(page+1))
		}
		if len(a.Messages) == 0 {
			t.Fatalf("a poll waited 5s for nothing at %d of %d messages", len(got), behind+live)
		}
		got = append(got, ids(a.Messages)...)
		cursor = a.Cursor
	}
	if a := l.poll(t, query("user", "u", "rooms", "r", "cursor", cursor, "wait", "0")); a.status != http.StatusOK || len(a.Messages) != 0 || a.Cursor != cursor {
		t.Fatalf("after catching up: %s, want nothing and the same cursor", a.body)
	}
	if backlogPolls > behind/page+2 {
		t.Fatalf("%d polls for a backlog of %d in pages of %d", backlogPolls, behind, page)
	}
	all := append(want, <-liveIDs...)
	if len(all) != behind+live {
		t.Fatalf("published %d messages, want %d", len(all), behind+live)
	}
	if !slices.Equal(got, all) {
		t.Fatalf("got %d messages, want %d, each once in log order (first difference at %d)", len(got), len(all), firstDiff(got, all))
	}
	if st := b.Stats(); st.HistoryFromLog == 0 || st.HistoryFromIndex == 0 {
		t.Fatalf("stats %+v: want pages from the log (older than the index) and from the index", st)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRecoveredOnlyOnGaps: a poll says recovered:false exactly when
// messages after its cursor are missing from the log, whatever the
// HistoryLimit; the answer's cursor then continues without another gap.
func TestRecoveredOnlyOnGaps(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	l, _ := startRedis(t, srv, sbredis.Config{MaxLen: 50}, core.Config{HistoryLimit: 5}, longpoll.Config{BatchLimit: 20})
	all := publishAll(t, l.node, "r", 200)
	epoch, pos, _ := engine.ParseID(all[0])
	cases := []struct {
		name      string
		cursor    string
		recovered bool
		// first is where the answer starts in all (-1: no message, the
		// cursor is the head).
		first int
	}{
		{"inside retention, past HistoryLimit", all[170], true, 171},
		{"inside retention, near the head", all[197], true, 198},
		{"at the head", all[199], true, -1},
		{"before retention (trimmed)", all[0], false, 0},
		{"unparseable", "not-a-cursor", false, -1},
		// The log of that epoch is gone: this one from its start.
		{"another epoch", engine.FormatID(epoch+"x", pos), false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := l.poll(t, query("rooms", "r", "cursor", tc.cursor, "wait", "0"))
			if a.status != http.StatusOK || a.Recovered != tc.recovered {
				t.Fatalf("HTTP %d recovered=%v (%s), want 200 recovered=%v", a.status, a.Recovered, a.body, tc.recovered)
			}
			got := ids(a.Messages)
			switch {
			case tc.first > 0:
				if end := min(tc.first+20, len(all)); !slices.Equal(got, all[tc.first:end]) {
					t.Fatalf("messages %v, want %v", got, all[tc.first:end])
				}
			case tc.first == 0: // the oldest retained first, in order
				i := slices.Index(all, got[0])
				if len(got) == 0 || i < 1 || !slices.Equal(got, all[i:i+len(got)]) {
					t.Fatalf("messages %v, want a run of the retained ones", got)
				}
			case len(got) != 0 || a.Cursor != all[199]:
				t.Fatalf("messages %v cursor %s, want none and the head %s", got, a.Cursor, all[199])
			}
			next := l.poll(t, query("rooms", "r", "cursor", a.Cursor, "wait", "0"))
			if next.status != http.StatusOK || !next.Recovered {
				t.Fatalf("poll after it: %d %s, want recovered", next.status, next.body)
			}
		})
	}
}
