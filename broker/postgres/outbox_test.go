package postgres_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	sbpg "github.com/switchboard-dev/switchboard/broker/postgres"
	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
	"github.com/switchboard-dev/switchboard/core"
)

// sink is an OutboxPublisher that records every call. A request whose
// type is "refused" is refused for good. hook, when set, runs after a
// call is recorded and decides its outcome.
type sink struct {
	mu      sync.Mutex
	calls   []sinkCall
	changed chan struct{}
	hook    func(ctx context.Context, c sinkCall) error
}

type sinkCall struct {
	key     string
	request string
}

func newSink() *sink { return &sink{changed: make(chan struct{})} }

func (s *sink) Publish(ctx context.Context, request []byte, key string) error {
	var req struct{ Type string }
	if err := json.Unmarshal(request, &req); err != nil || req.Type == "refused" {
		return fmt.Errorf("%w: type refused", sbpg.ErrOutboxRefused)
	}
	c := sinkCall{key, string(request)}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	close(s.changed)
	s.changed = make(chan struct{})
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		return hook(ctx, c)
	}
	return nil
}

// wait waits until cond holds for the calls so far and returns them.
func (s *sink) wait(t *testing.T, what string, cond func([]sinkCall) bool) []sinkCall {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		calls, changed := slices.Clone(s.calls), s.changed
		s.mu.Unlock()
		if cond(calls) {
			return calls
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; calls: %v", what, calls)
		}
	}
}

// waitN waits for at least n calls.
func (s *sink) waitN(t *testing.T, n int) []sinkCall {
	t.Helper()
	return s.wait(t, fmt.Sprintf("%d publications", n), func(c []sinkCall) bool { return len(c) >= n })
}

// byData counts the calls per data value of their request.
func byData(calls []sinkCall) map[string]int {
	out := map[string]int{}
	for _, c := range calls {
		var req struct{ Data json.RawMessage }
		_ = json.Unmarshal([]byte(c.request), &req)
		out[compactJSON(req.Data)]++
	}
	return out
}

func compactJSON(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// keyID is the outbox row id of a key.
func keyID(t *testing.T, key string) (string, int64) {
	t.Helper()
	parts := strings.Split(key, ":")
	if len(parts) != 3 || parts[0] != "outbox" {
		t.Fatalf("key %q, want outbox:<epoch>:<id>", key)
	}
	id, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return parts[1], id
}

// fastOutbox makes failures, takeovers and lost notifications short.
func fastOutbox(url string) sbpg.OutboxConfig {
	return sbpg.OutboxConfig{URL: url, PollInterval: 200 * time.Millisecond, TakeoverInterval: 20 * time.Millisecond,
		RetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond}
}

func startOutbox(t *testing.T, cfg sbpg.OutboxConfig, pub sbpg.OutboxPublisher, logger *slog.Logger) *sbpg.Outbox {
	t.Helper()
	if logger == nil {
		logger = quiet
	}
	o, err := sbpg.NewOutbox(context.Background(), cfg, pub, logger)
	if err != nil {
		t.Fatalf("NewOutbox: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := o.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return o
}

// waitState polls o's state (it has no signal of its own) until want.
func waitState(t *testing.T, o *sbpg.Outbox, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for o.Stats().State != want {
		if time.Now().After(deadline) {
			t.Fatalf("outbox %+v, want state %s", o.Stats(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForwarded polls o's counter of rows published and deleted.
func waitForwarded(t *testing.T, o *sbpg.Outbox, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for o.Stats().Forwarded < n {
		if time.Now().After(deadline) {
			t.Fatalf("outbox %+v, want %d forwarded", o.Stats(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// backend is a connection of an application's own.
func backend(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// inTx runs the statements in one transaction, then commits or rolls
// back.
func inTx(t *testing.T, c *pgx.Conn, commit bool, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			_ = tx.Rollback(ctx)
			t.Fatalf("%s: %v", s, err)
		}
	}
	if commit {
		err = tx.Commit(ctx)
	} else {
		err = tx.Rollback(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func pub(room string, n int) string {
	return fmt.Sprintf(`SELECT switchboard_publish('%s', '{"n":%d}')`, room, n)
}

func count(t *testing.T, c *pgx.Conn, query string) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestOutboxCommitRollback: what a transaction publishes is forwarded
// once after its COMMIT, as the request the server API takes, and never
// after its ROLLBACK; two rows of one transaction keep their order; a
// direct message goes to the user's channel; the rows are deleted once
// published.
func TestOutboxCommitRollback(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s := newSink()
	o := startOutbox(t, fastOutbox(srv.URL), s, nil)
	c := backend(t, srv.URL)

	inTx(t, c, false, pub("orders", 1))
	inTx(t, c, true, pub("orders", 2))
	inTx(t, c, true, pub("orders", 3), `SELECT switchboard_publish('orders', '{"n":4}', 'order.paid')`)
	inTx(t, c, true, `SELECT switchboard_publish_user('alice', '"hi"')`)
	calls := s.waitN(t, 4)
	waitForwarded(t, o, 4)

	// The room's lane and the user's run concurrently: the room's calls
	// are in id order, and every row is published once.
	want := map[int64]string{
		2: `{"data": {"n": 2}, "room": "orders"}`,
		3: `{"data": {"n": 3}, "room": "orders"}`,
		4: `{"data": {"n": 4}, "room": "orders", "type": "order.paid"}`,
		5: `{"to": "alice", "data": "hi"}`, // id 1 was rolled back
	}
	epoch, last := "", int64(0)
	for _, call := range calls {
		e, id := keyID(t, call.key)
		if epoch != "" && e != epoch {
			t.Errorf("key %s: another epoch than %s", call.key, epoch)
		}
		epoch = e
		if want[id] != call.request {
			t.Errorf("row %d published as %s, want %s", id, call.request, want[id])
		}
		delete(want, id)
		if strings.Contains(call.request, "orders") {
			if id < last {
				t.Errorf("row %d published after row %d of its room", id, last)
			}
			last = id
		}
	}
	if len(want) > 0 {
		t.Errorf("not published: %v", want)
	}
	if n := count(t, c, `SELECT count(*) FROM switchboard_outbox`); n != 0 {
		t.Errorf("%d rows left in the outbox", n)
	}
	// Nothing more comes: a later commit is the next call.
	inTx(t, c, true, pub("orders", 5))
	calls = s.waitN(t, 5)
	if len(calls) != 5 || calls[4].request != `{"data": {"n": 5}, "room": "orders"}` || calls[4].key != sbpg.OutboxKey(epoch, 6) {
		t.Errorf("calls after the marker: %v", calls[4:])
	}
	if st := o.Stats(); st.State != sbpg.OutboxForwarding || st.DeadLettered != 0 || st.LastError != "" {
		t.Errorf("stats %+v", st)
	}
}

// TestOutboxLongAndShortTransactions: a transaction that took its id
// first and commits last is forwarded after the ones that committed
// before it, never skipped, and nothing is forwarded before its commit.
func TestOutboxLongAndShortTransactions(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s := newSink()
	startOutbox(t, fastOutbox(srv.URL), s, nil)
	long := backend(t, srv.URL)
	short := backend(t, srv.URL)
	ctx := context.Background()

	tx, err := long.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var longID int64
	if err := tx.QueryRow(ctx, `SELECT switchboard_publish('r', '{"n":"long"}')`).Scan(&longID); err != nil {
		t.Fatal(err)
	}
	const shorts = 20
	for i := range shorts {
		inTx(t, short, true, pub("r", i))
	}
	calls := s.waitN(t, shorts)
	if byData(calls)[`{"n":"long"}`] != 0 {
		t.Fatal("the open transaction's message was forwarded before its commit")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	calls = s.waitN(t, shorts+1)
	got := byData(calls)
	for i := range shorts {
		if got[fmt.Sprintf(`{"n":%d}`, i)] != 1 {
			t.Errorf("short %d forwarded %d times", i, got[fmt.Sprintf(`{"n":%d}`, i)])
		}
	}
	_, id := keyID(t, calls[shorts].key)
	if got[`{"n":"long"}`] != 1 || id != longID {
		t.Errorf("last call %v, want the long transaction's row %d", calls[shorts], longID)
	}
}

// TestOutboxTwoForwarders: two edges on one outbox: one forwards, the
// other stands by; every row is published once, each room in commit
// order, while transactions commit from several connections. When the
// forwarder closes, the other takes over, and nothing is lost.
func TestOutboxTwoForwarders(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s := newSink()
	a := startOutbox(t, fastOutbox(srv.URL), s, nil)
	waitState(t, a, sbpg.OutboxForwarding)
	b := startOutbox(t, fastOutbox(srv.URL), s, nil)
	waitState(t, b, sbpg.OutboxStandby)

	const rooms, per = 4, 60
	commitAll := func(from, to int) error {
		var wg sync.WaitGroup
		errs := make(chan error, rooms)
		for r := range rooms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := pgx.Connect(context.Background(), srv.URL)
				if err != nil {
					errs <- err
					return
				}
				defer c.Close(context.Background())
				for i := from; i < to; i++ {
					if _, err := c.Exec(context.Background(), fmt.Sprintf(`SELECT switchboard_publish('room%d', '{"n":%d}')`, r, i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs // nil when none
	}
	if err := commitAll(0, per/2); err != nil {
		t.Fatal(err)
	}
	calls := s.waitN(t, rooms*per/2)
	if st := b.Stats(); st.Forwarded != 0 || st.State != sbpg.OutboxStandby {
		t.Errorf("the standby forwarded: %+v", st)
	}
	checkRooms := func(calls []sinkCall, n int, once bool) {
		t.Helper()
		seen := map[string]int{}
		last := map[string]int64{}
		for _, c := range calls {
			seen[c.key]++
			var req struct{ Room string }
			_ = json.Unmarshal([]byte(c.request), &req)
			_, id := keyID(t, c.key)
			if seen[c.key] == 1 && id < last[req.Room] {
				t.Errorf("%s: id %d after %d", req.Room, id, last[req.Room])
			}
			last[req.Room] = max(last[req.Room], id)
		}
		if len(seen) != n {
			t.Errorf("%d keys published, want %d", len(seen), n)
		}
		for k, m := range seen {
			if once && m != 1 {
				t.Errorf("%s published %d times", k, m)
			}
		}
	}
	checkRooms(calls, rooms*per/2, true)

	// Failover: the forwarder stops while rows keep coming.
	done := make(chan error, 1)
	go func() { done <- commitAll(per/2, per) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	calls = s.wait(t, "every key", func(c []sinkCall) bool {
		keys := map[string]bool{}
		for _, x := range c {
			keys[x.key] = true
		}
		return len(keys) == rooms*per
	})
	// A row in flight when the forwarder closed may be published again
	// (with its key): order holds for each key's first publication.
	checkRooms(calls, rooms*per, false)
	if st := b.Stats(); st.State != sbpg.OutboxForwarding {
		t.Errorf("the standby did not take over: %+v", st)
	}
}

// terminateForwarder ends the connection of the edge that holds the
// outbox's lock, as a crash of that edge (or a network cut) would, and
// waits until its server process is gone (so is the lock). It may run in
// a publisher's goroutine: it returns its error.
func terminateForwarder(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 20000)) FROM pg_locks WHERE locktype = 'advisory' AND granted`).Scan(&n); err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("terminated %d forwarders, want 1", n)
	}
	return nil
}

// TestOutboxCrashAfterPublish: a forwarder that dies after publishing a
// row and before deleting it leaves the row; the next forwarder publishes
// it again with the same key (which the broker refuses as a duplicate
// within its window). The same edge, when it is the next forwarder,
// remembers the row and deletes it without publishing it again.
func TestOutboxCrashAfterPublish(t *testing.T) {
	t.Parallel()
	t.Run("another edge", func(t *testing.T) {
		t.Parallel()
		srv := pgtest.Start(t)
		s := newSink()
		var crash sync.Once
		errs := make(chan error, 1)
		s.hook = func(ctx context.Context, c sinkCall) error {
			crash.Do(func() {
				errs <- terminateForwarder(srv.URL)
				<-ctx.Done() // hung until its edge is gone
			})
			return nil
		}
		a := startOutbox(t, fastOutbox(srv.URL), s, nil)
		waitState(t, a, sbpg.OutboxForwarding)
		b := startOutbox(t, fastOutbox(srv.URL), s, nil)
		waitState(t, b, sbpg.OutboxStandby)
		c := backend(t, srv.URL)
		inTx(t, c, true, `SELECT switchboard_publish('r', '"crash"')`)
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		calls := s.waitN(t, 2)
		if calls[0] != calls[1] {
			t.Fatalf("the second publication %v differs from the first %v", calls[1], calls[0])
		}
		waitForwarded(t, b, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if st := a.Stats(); st.Forwarded != 0 {
			t.Errorf("the crashed forwarder counts %d forwarded", st.Forwarded)
		}
		if n := count(t, c, `SELECT count(*) FROM switchboard_outbox`); n != 0 {
			t.Errorf("%d rows left", n)
		}
	})
	t.Run("same edge", func(t *testing.T) {
		t.Parallel()
		srv := pgtest.Start(t)
		s := newSink()
		var crash sync.Once
		errs := make(chan error, 1)
		s.hook = func(ctx context.Context, c sinkCall) error {
			crash.Do(func() { errs <- terminateForwarder(srv.URL) }) // the delete that follows fails
			return nil
		}
		o := startOutbox(t, fastOutbox(srv.URL), s, nil)
		c := backend(t, srv.URL)
		inTx(t, c, true, pub("r", 1))
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		waitForwarded(t, o, 1)
		inTx(t, c, true, pub("r", 2))
		calls := s.waitN(t, 2)
		if got := byData(calls); got[`{"n":1}`] != 1 || got[`{"n":2}`] != 1 {
			t.Errorf("calls %v, want each row once", calls)
		}
	})
}

// TestOutboxMigrateConcurrently: edges starting together on a fresh
// database (with the log's migration alongside) install the outbox
// once; migrating again changes nothing.
func TestOutboxMigrateConcurrently(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	url := srv.CreateDatabase(t)
	const edges = 6
	errs := make(chan error, 2*edges)
	var wg sync.WaitGroup
	for i := range edges {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- sbpg.MigrateOutbox(context.Background(), sbpg.OutboxConfig{URL: url}, quiet)
		}()
		go func() {
			defer wg.Done()
			if i%2 == 1 {
				errs <- sbpg.MigrateOutbox(context.Background(), sbpg.OutboxConfig{URL: url, Schema: "app"}, quiet)
				return
			}
			b, err := sbpg.New(context.Background(), sbpg.Config{URL: url, TrimInterval: -1}, quiet)
			if err == nil {
				err = b.Close(context.Background())
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	c := backend(t, url)
	versions := func() string {
		rows, err := c.Query(context.Background(), `SELECT component || '=' || version || '@' || migrated_at FROM public.switchboard_schema_version ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, " ")
	}
	before := versions()
	if !strings.Contains(before, "public.switchboard_outbox=2@") || !strings.Contains(before, fmt.Sprintf("public.switchboard_log=%d@", sbpg.LogSchemaVersion)) {
		t.Errorf("versions %s", before)
	}
	if n := count(t, c, `SELECT count(*) FROM switchboard_outbox_epoch`); n != 1 {
		t.Errorf("%d epoch rows", n)
	}
	if n := count(t, c, `SELECT count(*) FROM app.switchboard_outbox_epoch`); n != 1 {
		t.Errorf("%d epoch rows in schema app", n)
	}
	if err := sbpg.MigrateOutbox(context.Background(), sbpg.OutboxConfig{URL: url}, quiet); err != nil {
		t.Fatal(err)
	}
	if after := versions(); after != before {
		t.Errorf("migrating again changed %s to %s", before, after)
	}
	var id int64
	if err := c.QueryRow(context.Background(), `SELECT app.switchboard_publish('r', '1')`).Scan(&id); err != nil || id != 1 {
		t.Errorf("app.switchboard_publish = %d, %v", id, err)
	}
}

// TestOutboxRecreated: an outbox dropped under a running forwarder is
// created again by it, under a new epoch: its ids start again at 1 and
// their keys differ from the old ones.
func TestOutboxRecreated(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s := newSink()
	o := startOutbox(t, fastOutbox(srv.URL), s, nil)
	c := backend(t, srv.URL)
	inTx(t, c, true, pub("r", 1))
	first := s.waitN(t, 1)[0]
	waitForwarded(t, o, 1)
	inTx(t, c, true, `DROP TABLE switchboard_outbox`)
	// The forwarder's next read (a poll) finds it gone and recreates it.
	deadline := time.Now().Add(30 * time.Second)
	for count(t, c, `SELECT count(*) FROM pg_tables WHERE tablename = 'switchboard_outbox'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the outbox was not recreated: %+v", o.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	inTx(t, c, true, pub("r", 2))
	second := s.waitN(t, 2)[1]
	e1, id1 := keyID(t, first.key)
	e2, id2 := keyID(t, second.key)
	if e1 == e2 || id1 != 1 || id2 != 1 {
		t.Errorf("keys %s then %s: want id 1 under two epochs", first.key, second.key)
	}
}

// TestOutboxDeadLetters: a row that can never be published moves to
// switchboard_outbox_failed with its error, logged once, and the rows
// after it in its room go on.
func TestOutboxDeadLetters(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s := newSink()
	var logs syncBuf
	o := startOutbox(t, fastOutbox(srv.URL), s, slog.New(slog.NewTextHandler(&logs, nil)))
	c := backend(t, srv.URL)
	inTx(t, c, true,
		`SELECT switchboard_publish('r', '1', 'refused')`,
		`INSERT INTO switchboard_outbox (request) VALUES ('{"room": "r", "data": 2, "type": "refused"}')`,
		pub("r", 3))
	calls := s.waitN(t, 1)
	if calls[0].request != `{"data": {"n": 3}, "room": "r"}` {
		t.Errorf("call %v", calls[0])
	}
	waitForwarded(t, o, 1)
	if st := o.Stats(); st.DeadLettered != 2 {
		t.Errorf("stats %+v, want 2 dead letters", st)
	}
	var epoch string
	if err := c.QueryRow(context.Background(), `SELECT epoch FROM switchboard_outbox_epoch`).Scan(&epoch); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(context.Background(), `SELECT epoch || ' ' || id || ' ' || error FROM switchboard_outbox_failed ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	failed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := epoch + " 1 switchboard/broker/postgres: outbox request refused: type refused"
	if len(failed) != 2 || failed[0] != want || !strings.HasPrefix(failed[1], epoch+" 2 ") {
		t.Errorf("dead letters %q, want 2, the first %q", failed, want)
	}
	if n := strings.Count(logs.String(), "can never be published"); n != 2 {
		t.Errorf("%d log lines about dead letters, want 2:\n%s", n, logs.String())
	}
}

// TestOutboxValidatesInSQL: switchboard_publish and
// switchboard_publish_user refuse, at the call, the names core refuses
// (and only those), and NULL data, with SQLSTATE 22023.
func TestOutboxValidatesInSQL(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	if err := sbpg.MigrateOutbox(context.Background(), sbpg.OutboxConfig{URL: srv.URL}, quiet); err != nil {
		t.Fatal(err)
	}
	c := backend(t, srv.URL)
	call := func(sql string, args ...any) error {
		ctx := context.Background()
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, sql, args...)
		return err
	}
	names := []string{"r", "orders", "a-b_c.d:e@f/g=h", "A1", strings.Repeat("x", 128), strings.Repeat("x", 129),
		"", "with space", "é", "semi;colon", "quote'", "new\nline", "tab\t", "*", "#hash"}
	types := []string{"message.custom", "a", "a1_.:-", strings.Repeat("t", 32), strings.Repeat("t", 33),
		"", "A", "1a", "_a", "a b", "a+b", "é"}
	sqlState := func(err error) string {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return pe.Code
		}
		return ""
	}
	for _, n := range names {
		for _, fn := range []struct {
			sql  string
			core func(string) error
		}{
			{`SELECT switchboard_publish($1, '1')`, core.ValidateRoom},
			{`SELECT switchboard_publish_user($1, '1')`, core.ValidateUser},
		} {
			err := call(fn.sql, n)
			if want := fn.core(n); (err == nil) != (want == nil) {
				t.Errorf("%s with %q: %v; core says %v", fn.sql, n, err, want)
			} else if err != nil && sqlState(err) != "22023" {
				t.Errorf("%s with %q: %v, want SQLSTATE 22023", fn.sql, n, err)
			}
		}
	}
	for _, typ := range types {
		err := call(`SELECT switchboard_publish('r', '1', $1)`, typ)
		if want := core.ValidateType(typ); (err == nil) != (want == nil) {
			t.Errorf("type %q: %v; core says %v", typ, err, want)
		}
	}
	for _, sql := range []string{`SELECT switchboard_publish('r', NULL)`, `SELECT switchboard_publish_user('u', NULL)`, `SELECT switchboard_publish(NULL, '1')`} {
		if err := call(sql); sqlState(err) != "22023" {
			t.Errorf("%s: %v, want SQLSTATE 22023", sql, err)
		}
	}
	err := call(`SELECT switchboard_publish('bad room', '1')`)
	if err == nil || !strings.Contains(err.Error(), `switchboard: 'bad room': want 1 to 128 letters, digits and _-.:@/=`) {
		t.Errorf("message: %v", err)
	}
	if err := call(`SELECT switchboard_publish(room => 'r', data => 'null', type => NULL)`); err != nil {
		t.Errorf("named arguments, JSON null data: %v", err)
	}
}

// TestOutboxPostgresRestart: the forwarder notices a restart of
// PostgreSQL (logged once), reconnects by itself and forwards what was
// committed before and after it.
func TestOutboxPostgresRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s := newSink()
	var logs syncBuf
	o := startOutbox(t, fastOutbox(srv.URL), s, slog.New(slog.NewTextHandler(&logs, nil)))
	c := backend(t, srv.URL)
	inTx(t, c, true, pub("r", 1))
	waitForwarded(t, o, 1)
	srv.Kill()
	waitState(t, o, sbpg.OutboxRetrying)
	srv.Start()
	c = backend(t, srv.URL)
	inTx(t, c, true, pub("r", 2))
	calls := s.waitN(t, 2)
	if got := byData(calls); got[`{"n":1}`] != 1 || got[`{"n":2}`] != 1 {
		t.Errorf("calls %v", calls)
	}
	waitState(t, o, sbpg.OutboxForwarding)
	if n := strings.Count(logs.String(), "outbox: cannot reach postgres"); n != 1 {
		t.Errorf("%d lines about the outage, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "outbox: postgres reachable again") {
		t.Errorf("no line about the recovery:\n%s", logs.String())
	}
}

// TestOutboxStart: an unreachable database is not an error at start (the
// outbox retries); a refusing one is.
func TestOutboxStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := startOutbox(t, sbpg.OutboxConfig{URL: "postgres://u@" + addr + "/db"}, newSink(), nil)
	if st := o.Stats(); st.State != sbpg.OutboxRetrying || !strings.Contains(st.LastError, "connect") {
		t.Errorf("stats %+v, want retrying", st)
	}
	srv := pgtest.Start(t)
	url := strings.Replace(srv.URL, "/postgres?", "/nope?", 1)
	if _, err := sbpg.NewOutbox(context.Background(), sbpg.OutboxConfig{URL: url}, newSink(), quiet); err == nil || !strings.Contains(err.Error(), `"nope" does not exist`) {
		t.Errorf("NewOutbox on a missing database = %v", err)
	}
	if _, err := sbpg.NewOutbox(context.Background(), sbpg.OutboxConfig{}, newSink(), quiet); !errors.Is(err, sbpg.ErrInvalidConfig) {
		t.Errorf("NewOutbox without URL = %v", err)
	}
	if err := (sbpg.OutboxConfig{URL: srv.URL, Schema: strings.Repeat("s", 45)}).Validate(); !errors.Is(err, sbpg.ErrInvalidConfig) {
		t.Errorf("a 45-byte schema: %v", err)
	}
}

// syncBuf is a log destination safe for concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOutboxFromDatabaseSQL runs Example_databaseSQL's payOrder against a
// real database: through database/sql, the order's update and its
// message commit together, and the message is forwarded as the request
// the server API takes.
func TestOutboxFromDatabaseSQL(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s := newSink()
	startOutbox(t, fastOutbox(srv.URL), s, nil)
	c := backend(t, srv.URL)
	inTx(t, c, true, `CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL)`, `INSERT INTO orders VALUES (42, 'new')`)
	db, err := sql.Open("pgx", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := payOrder(ctx, db, 42); err != nil {
		t.Fatal(err)
	}
	call := s.waitN(t, 1)[0]
	if want := `{"data": {"order": 42, "status": "paid"}, "room": "orders:42", "type": "order.paid"}`; call.request != want {
		t.Errorf("request %s, want %s", call.request, want)
	}
	if n := count(t, c, `SELECT count(*) FROM orders WHERE status = 'paid'`); n != 1 {
		t.Errorf("%d paid orders", n)
	}
}

// roomOf is the room of a publish request ("" for a direct message).
func roomOf(request string) string {
	var req struct{ Room string }
	_ = json.Unmarshal([]byte(request), &req)
	return req.Room
}

// errBrokerDown is a publication's retryable failure.
var errBrokerDown = errors.New("broker unavailable")

// failing is a publisher whose publications fail (retryably) while
// fail(request) says so. attempts records every call, ok every
// publication that succeeded.
type failing struct {
	attempts, ok *sink
	mu           sync.Mutex
	fail         func(request string) bool
}

func newFailing(fail func(request string) bool) *failing {
	return newFailingTo(fail, newSink())
}

// newFailingTo is newFailing recording its publications in ok, which
// several publishers may share.
func newFailingTo(fail func(request string) bool, ok *sink) *failing {
	f := &failing{attempts: newSink(), ok: ok, fail: fail}
	f.attempts.hook = func(ctx context.Context, c sinkCall) error {
		f.mu.Lock()
		fail := f.fail
		f.mu.Unlock()
		if fail(c.request) {
			return errBrokerDown
		}
		return f.ok.Publish(ctx, []byte(c.request), c.key)
	}
	return f
}

func (f *failing) Publish(ctx context.Context, request []byte, key string) error {
	return f.attempts.Publish(ctx, request, key)
}

func (f *failing) setFail(fail func(request string) bool) {
	f.mu.Lock()
	f.fail = fail
	f.mu.Unlock()
}

func inRoom(room string) func(string) bool {
	return func(request string) bool { return roomOf(request) == room }
}

func never(string) bool  { return false }
func always(string) bool { return true }

// checkOnce fails unless calls publish each key once, each room's in id
// order, and returns the keys per room.
func checkOnce(t *testing.T, calls []sinkCall) map[string][]int64 {
	t.Helper()
	seen := map[string]bool{}
	ids := map[string][]int64{}
	for _, c := range calls {
		if seen[c.key] {
			t.Errorf("%s published twice", c.key)
		}
		seen[c.key] = true
		_, id := keyID(t, c.key)
		room := roomOf(c.request)
		if prev := ids[room]; len(prev) > 0 && id < prev[len(prev)-1] {
			t.Errorf("room %q: row %d published after row %d", room, id, prev[len(prev)-1])
		}
		ids[room] = append(ids[room], id)
	}
	return ids
}

// stuckRow is a row of room "stuck" in the shape switchboard_publish
// writes or, odd, with a field the forwarder's filter does not know.
func stuckRow(i int, odd bool) string {
	if odd {
		return fmt.Sprintf(`INSERT INTO switchboard_outbox (request) VALUES ('{"room": "stuck", "data": {"n": %d}, "from": "x"}')`, i)
	}
	return pub("stuck", i)
}

// TestOutboxStuckRoom: a room whose publications keep failing does not
// hold up the other rooms, also when its rows fill several whole batches
// (in the functions' shape or not), and a commit to another room while
// the stuck room waits for its retry is forwarded at its notification
// (polling and retries are an hour apart here). The stuck room itself
// is retried only after its backoff.
func TestOutboxStuckRoom(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		stuck int  // rows of room "stuck" committed first
		odd   bool // those rows have a field the filter does not know
	}{
		{"a batch", 3, false},
		{"several batches", 10, false},
		{"several batches the filter does not know", 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := pgtest.Start(t)
			if err := sbpg.MigrateOutbox(context.Background(), sbpg.OutboxConfig{URL: srv.URL}, quiet); err != nil {
				t.Fatal(err)
			}
			c := backend(t, srv.URL)
			var stmts []string
			for i := range tc.stuck {
				stmts = append(stmts, stuckRow(i, tc.odd))
			}
			stmts = append(stmts, pub("ok", 0), stuckRow(tc.stuck, tc.odd), pub("ok", 1))
			inTx(t, c, true, stmts...)

			p := newFailing(inRoom("stuck"))
			cfg := sbpg.OutboxConfig{URL: srv.URL, BatchSize: 3, PollInterval: time.Hour, TakeoverInterval: 20 * time.Millisecond,
				RetryBackoff: time.Hour, MaxRetryBackoff: time.Hour}
			o := startOutbox(t, cfg, p, nil)
			p.ok.waitN(t, 2)
			waitForwarded(t, o, 2) // and now, most likely, waiting
			// The stuck room waits for its retry; the next commit to
			// another room is forwarded at its notification.
			inTx(t, c, true, stuckRow(tc.stuck+1, tc.odd), pub("ok", 2))
			inTx(t, c, true, pub("ok", 3))
			ok := p.ok.waitN(t, 4)
			if ids := checkOnce(t, ok); len(ids["ok"]) != 4 || len(ids) != 1 {
				t.Errorf("published %v, want the 4 rows of room ok", ok)
			}
			waitForwarded(t, o, 4)
			attempts := p.attempts.waitN(t, 5)
			if len(attempts) != 5 || roomOf(attempts[0].request) != "stuck" {
				t.Errorf("attempts %v, want one of room stuck (its first row) and the 4 of room ok", attempts)
			}
			if st := o.Stats(); st.Retries != 1 || st.LastError != errBrokerDown.Error() || st.State != sbpg.OutboxForwarding {
				t.Errorf("stats %+v, want 1 retry and the publication's error", st)
			}
			if n := count(t, c, `SELECT count(*) FROM switchboard_outbox`); n != tc.stuck+2 {
				t.Errorf("%d rows left, want the %d of room stuck", n, tc.stuck+2)
			}
		})
	}
}

// TestOutboxStuckRoomRecovers: while the publication of a room's first
// row keeps failing, none of the room's later rows is published (also
// the rows read past it in later batches, in the functions' shape or
// not), the other rooms' are; when it succeeds at last, every row is
// published once, each room in id order.
func TestOutboxStuckRoomRecovers(t *testing.T) {
	t.Parallel()
	for _, odd := range []bool{false, true} {
		t.Run(fmt.Sprintf("odd=%v", odd), func(t *testing.T) {
			t.Parallel()
			srv := pgtest.Start(t)
			p := newFailing(func(request string) bool {
				return roomOf(request) == "stuck" && strings.Contains(request, `"n": 0}`)
			})
			cfg := fastOutbox(srv.URL)
			cfg.BatchSize = 3
			o := startOutbox(t, cfg, p, nil)
			c := backend(t, srv.URL)
			var stmts []string
			n := 0
			for i := range 4 {
				for range 3 {
					stmts = append(stmts, stuckRow(n, odd && n%2 == 1))
					n++
				}
				stmts = append(stmts, pub("ok", i))
			}
			inTx(t, c, true, stmts...)
			p.ok.waitN(t, 4)
			p.attempts.wait(t, "retries of the stuck row", func(calls []sinkCall) bool {
				stuck := 0
				for _, c := range calls {
					if roomOf(c.request) == "stuck" {
						stuck++
					}
				}
				return stuck >= 3
			})
			// More rows of both rooms while its first row still fails.
			for range 3 {
				inTx(t, c, true, stuckRow(n, odd && n%2 == 1))
				n++
			}
			inTx(t, c, true, pub("ok", 4))
			for _, c := range p.ok.waitN(t, 5) {
				if roomOf(c.request) == "stuck" {
					t.Errorf("%s published while the room's first row fails", c.key)
				}
			}
			p.setFail(never)
			ok := p.ok.waitN(t, 5+n)
			ids := checkOnce(t, ok)
			if len(ids["ok"]) != 5 || len(ids["stuck"]) != n {
				t.Errorf("published %d rows of room ok and %d of room stuck, want 5 and %d", len(ids["ok"]), len(ids["stuck"]), n)
			}
			waitForwarded(t, o, uint64(5+n))
			if n := count(t, c, `SELECT count(*) FROM switchboard_outbox`); n != 0 {
				t.Errorf("%d rows left", n)
			}
		})
	}
}

// TestOutboxHandOver: an edge whose publications keep failing (its
// broker cut off, its database not) releases the outbox's lock, once it
// has failed for ten of its longest backoffs and a publication's
// timeout, and a healthy edge takes over and forwards every row once,
// each room in order. When every edge's publications fail, the lock goes
// around, and once they work again every row is forwarded once. Each
// edge logs its hand-over once.
func TestOutboxHandOver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		bFails bool // the second edge's publications fail too, at first
	}{
		{"one edge failing", false},
		{"every edge failing, then neither", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := pgtest.Start(t)
			cfg := fastOutbox(srv.URL)
			cfg.MaxRetryBackoff = 50 * time.Millisecond // hands over after 10*50ms+200ms
			cfg.PublishTimeout = 200 * time.Millisecond
			ok := newSink()
			pa := newFailingTo(always, ok)
			pb := newFailingTo(never, ok)
			if tc.bFails {
				pb.setFail(always)
			}
			var logsA, logsB syncBuf
			a := startOutbox(t, cfg, pa, slog.New(slog.NewTextHandler(&logsA, nil)))
			waitState(t, a, sbpg.OutboxForwarding)
			b := startOutbox(t, cfg, pb, slog.New(slog.NewTextHandler(&logsB, nil)))
			waitState(t, b, sbpg.OutboxStandby)

			c := backend(t, srv.URL)
			const rooms, per = 3, 5
			total := 0
			for i := range per {
				var stmts []string
				for r := range rooms {
					stmts = append(stmts, pub(fmt.Sprintf("r%d", r), i))
					total++
				}
				inTx(t, c, true, stmts...)
			}
			if tc.bFails {
				// The lock goes from a to b (whose first attempt shows it)
				// and back to a (whose attempts, which end before it lets
				// the lock go, resume).
				pb.attempts.waitN(t, 1)
				pa.attempts.mu.Lock()
				n := len(pa.attempts.calls)
				pa.attempts.mu.Unlock()
				pa.attempts.waitN(t, n+1)
				pa.setFail(never)
				pb.setFail(never)
			}
			calls := ok.waitN(t, total)
			if ids := checkOnce(t, calls); len(ids) != rooms {
				t.Errorf("published %v", calls)
			}
			deadline := time.Now().Add(30 * time.Second)
			for a.Stats().Forwarded+b.Stats().Forwarded < uint64(total) {
				if time.Now().After(deadline) {
					t.Fatalf("forwarded %+v and %+v, want %d in all", a.Stats(), b.Stats(), total)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if !tc.bFails {
				if st := a.Stats(); st.Forwarded != 0 || st.LastError != errBrokerDown.Error() {
					t.Errorf("the failing edge: %+v", st)
				}
				if st := b.Stats(); st.Forwarded != uint64(total) || st.State != sbpg.OutboxForwarding {
					t.Errorf("the edge that took over: %+v", st)
				}
			}
			if n := count(t, c, `SELECT count(*) FROM switchboard_outbox`); n != 0 {
				t.Errorf("%d rows left", n)
			}
			for name, logs := range map[string]*syncBuf{"a": &logsA, "b": &logsB} {
				want := 1
				if name == "b" && !tc.bFails {
					want = 0
				}
				if n := strings.Count(logs.String(), "releasing the outbox's lock"); n != want {
					t.Errorf("edge %s logged its hand-over %d times, want %d:\n%s", name, n, want, logs.String())
				}
			}
		})
	}
}
