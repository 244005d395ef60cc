package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/engine"
	sbpg "github.com/switchboard-dev/switchboard/broker/postgres"
	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
	"github.com/switchboard-dev/switchboard/core"
)

var quiet = slog.New(slog.DiscardHandler)

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// tableFor is a log table unique to t: two brokers made in one subtest
// share it (two nodes on one log), subtests never do.
func tableFor(t testing.TB) string {
	sum := sha256.Sum256([]byte(t.Name()))
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 24 {
		name = name[len(name)-24:]
	}
	return "t" + hex.EncodeToString(sum[:4]) + "_" + strings.Trim(name, "_")
}

// fast makes a node notice an outage and its end quickly.
var fast = engine.Config{ReconnectBackoff: 10 * time.Millisecond, MaxReconnectBackoff: 200 * time.Millisecond}

func TestConformance(t *testing.T) {
	srv := pgtest.Start(t)
	tests := []struct {
		name string
		cfg  sbpg.Config
		// crash: the Outage subtest's server stops as in a crash
		// (immediate shutdown) rather than cleanly; it keeps every
		// committed record either way.
		crash bool
	}{
		{"default", sbpg.Config{}, false},
		{"crash, one record per read", sbpg.Config{PollInterval: 50 * time.Millisecond, Engine: engine.Config{ReadCount: 1}}, true},
		// History from the log itself: no index at all.
		{"no index", sbpg.Config{Engine: engine.Config{IndexBytes: -1}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// One table holds every channel, in one order, for every node;
			// retention (MaxMsgs) is log-wide, so per-channel HistorySize
			// does not apply: the suite's volumes stay far below it.
			f := brokertest.Features{HistorySize: 0, GlobalOrder: true, SharedLog: true,
				Outage: func(t *testing.T) brokertest.Backend {
					own := pgtest.Start(t)
					stop := own.Stop
					if tt.crash {
						stop = own.Kill
					}
					return brokertest.Backend{
						NewBroker: func(t *testing.T) core.Broker {
							cfg := tt.cfg
							cfg.URL, cfg.Table = own.URL, tableFor(t)
							cfg.Engine.ReconnectBackoff, cfg.Engine.MaxReconnectBackoff = fast.ReconnectBackoff, fast.MaxReconnectBackoff
							return newBroker(t, cfg)
						},
						Stop:      stop,
						Start:     own.Start,
						KeepsData: true,
					}
				},
			}
			brokertest.Run(t, f, func(t *testing.T) core.Broker {
				cfg := tt.cfg
				cfg.URL, cfg.Table = srv.URL, tableFor(t)
				return newBroker(t, cfg)
			})
		})
	}
}

func newBroker(t testing.TB, cfg sbpg.Config) *engine.Broker {
	t.Helper()
	b, err := sbpg.New(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// waitTime bounds a test's wait for one delivery.
const waitTime = 20 * time.Second

func msg(room string, i int) *core.Envelope {
	return &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: room, From: "t",
		Data: json.RawMessage(`{"i":` + strconv.Itoa(i) + `}`)}
}

func publish(t *testing.T, b core.Broker, room string, i int) *core.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	env := msg(room, i)
	if _, err := b.Publish(ctx, core.Publication{Channel: core.RoomChannel(room), Envelope: env}); err != nil {
		t.Fatalf("Publish %d: %v", i, err)
	}
	return env
}

func history(t *testing.T, b core.Broker, since string, limit int, room string) core.HistoryResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := b.History(ctx, core.HistoryRequest{Channels: []string{core.RoomChannel(room)}, Since: since, Limit: limit})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	return res
}

func ids(envs []*core.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

func sameIDs(a, b []*core.Envelope) bool {
	return strings.Join(ids(a), ",") == strings.Join(ids(b), ",")
}

// execSQL runs statements on the server as its superuser.
func execSQL(t *testing.T, url, stmt string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	url := "postgres://u@127.0.0.1:5432/db"
	tests := []struct {
		name  string
		cfg   sbpg.Config
		field string // "" when valid
	}{
		{"url only", sbpg.Config{URL: url}, ""},
		{"key=value", sbpg.Config{URL: "host=127.0.0.1 user=u dbname=db"}, ""},
		{"unbounded", sbpg.Config{URL: url, MaxMsgs: -1, MaxAge: -1, TrimInterval: -1}, ""},
		{"no url", sbpg.Config{}, "URL"},
		{"bad url", sbpg.Config{URL: "postgres://u:secret@[::1"}, "URL"},
		{"upper-case table", sbpg.Config{URL: url, Table: "Log"}, "Table"},
		{"long table", sbpg.Config{URL: url, Table: strings.Repeat("t", 41)}, "Table"},
		{"quoted schema", sbpg.Config{URL: url, Schema: `a"b`}, "Schema"},
		{"negative poll", sbpg.Config{URL: url, PollInterval: -1}, "PollInterval"},
		{"negative pool", sbpg.Config{URL: url, PoolSize: -1}, "PoolSize"},
		{"negative read count", sbpg.Config{URL: url, Engine: engine.Config{ReadCount: -1}}, "ReadCount"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		var ce *core.ConfigError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
		case tt.field != "" && (!errors.As(err, &ce) || ce.Field != tt.field):
			t.Errorf("%s: Validate() = %v, want a *core.ConfigError for %s", tt.name, err, tt.field)
		case tt.field != "" && tt.field != "ReadCount" && !errors.Is(err, sbpg.ErrInvalidConfig):
			t.Errorf("%s: %v does not wrap ErrInvalidConfig", tt.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", tt.name, err)
		}
	}
	if _, err := sbpg.New(context.Background(), sbpg.Config{}, quiet); !errors.Is(err, sbpg.ErrInvalidConfig) {
		t.Errorf("New without URL = %v, want ErrInvalidConfig", err)
	}
	d := sbpg.Config{URL: url, MaxMsgs: 50, MaxAge: time.Minute}.WithDefaults()
	if d.Table != sbpg.DefaultTable || d.Schema != sbpg.DefaultSchema || d.Engine.IndexEntries != 50 || d.Engine.IndexAge != time.Minute {
		t.Errorf("WithDefaults = %+v: want the default table and schema, and the index bounded by the retention", d)
	}
}

// TestUnreachableAtStart: New fails promptly with one clear line wrapping
// ErrUnavailable.
func TestUnreachableAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	began := time.Now()
	b, err := sbpg.New(context.Background(), sbpg.Config{URL: "postgres://u:secret@" + addr + "/db"}, quiet)
	if err == nil {
		b.Close(context.Background())
		t.Fatal("New succeeded against a closed port")
	}
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("error %v does not wrap ErrUnavailable", err)
	}
	msg := err.Error()
	for _, want := range []string{"switchboard/broker/postgres: cannot reach postgres at " + addr, "connection refused", "check --broker-url"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, "secret") {
		t.Errorf("error spans lines or shows the password: %q", msg)
	}
	if d := time.Since(began); d > sbpg.DefaultDialTimeout {
		t.Errorf("New took %s to give up on a refused connection", d)
	}
}

// TestRefusedAtStart: a database that refuses the connection (here: it
// does not exist) is a configuration to fix, not an outage: New's error
// says so and does not wrap ErrUnavailable.
func TestRefusedAtStart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	url := strings.Replace(srv.URL, "/postgres?", "/nope?", 1)
	b, err := sbpg.New(context.Background(), sbpg.Config{URL: url}, quiet)
	if err == nil {
		b.Close(context.Background())
		t.Fatal("New succeeded on a database that does not exist")
	}
	if errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "refused the connection") || !strings.Contains(err.Error(), `"nope" does not exist`) {
		t.Errorf("New = %v; want a refusal naming the database, not ErrUnavailable", err)
	}
}

// TestRecreatedLog: the log's tables dropped under two running nodes
// come back under a new epoch: resumes from older ids are recovered
// false, the readers tell their sessions once and order the old ids
// before the new.
func TestRecreatedLog(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	cfg := sbpg.Config{URL: srv.URL, PollInterval: 50 * time.Millisecond, Engine: fast}
	a, b := newBroker(t, cfg), newBroker(t, cfg)
	recA, recB := brokertest.Listen(t, a), brokertest.Listen(t, b)
	e0 := publish(t, a, "r", 0)
	e1 := publish(t, a, "r", 1)
	// Both readers have the old log's records before it is dropped (a
	// Publish does not wait for its own node's reader): what a reader
	// had not read when the log went is lost with it, with a gap.
	recA.WaitFor(t, e1.ID, waitTime)
	recB.WaitFor(t, e1.ID, waitTime)
	old := a.Epoch()

	execSQL(t, srv.URL, `DROP TABLE switchboard_log, switchboard_log_head, switchboard_log_keys`)
	e2 := publish(t, b, "r", 2) // creates the log anew
	if strings.HasPrefix(e2.ID, old+"-") {
		t.Fatalf("after the drop the id %s still has epoch %s", e2.ID, old)
	}
	for _, r := range []*brokertest.Recorder{recA, recB} {
		if got := r.WaitFor(t, e2.ID, waitTime); !sameIDs(got, []*core.Envelope{e0, e1, e2}) {
			t.Errorf("delivered %v", ids(got))
		}
	}
	if res := history(t, a, e1.ID, 10, "r"); res.Recovered || !sameIDs(res.Envelopes, []*core.Envelope{e2}) {
		t.Errorf("resume across the drop: recovered %v %v, want false and [%s]", res.Recovered, ids(res.Envelopes), e2.ID)
	}
	brokertest.CheckRecreated(t, a, e1.ID, e2.ID, recA.Gaps())
	brokertest.CheckRecreated(t, b, e1.ID, e2.ID, recB.Gaps())
	e3 := publish(t, a, "r", 3)
	if res := history(t, b, e2.ID, 10, "r"); !res.Recovered || !sameIDs(res.Envelopes, []*core.Envelope{e3}) {
		t.Errorf("resume within the new epoch: recovered %v %v", res.Recovered, ids(res.Envelopes))
	}
}

// TestTrimmedWhileAway: records appended and trimmed away before a node
// read them leave it nothing to read; its reader moves to the head at
// once (its live clients are told, with a gap, and waiters for those
// positions released) instead of waiting for the next append.
func TestTrimmedWhileAway(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	b := newBroker(t, sbpg.Config{URL: srv.URL, PollInterval: 50 * time.Millisecond, Engine: fast})
	rec := brokertest.Listen(t, b)
	e0 := publish(t, b, "r", 0)
	rec.WaitFor(t, e0.ID, waitTime)
	// Three appends that retention took before this node read them: the
	// head moved on, no row is left, and no notification comes (the
	// fallback poll finds it).
	execSQL(t, srv.URL, `UPDATE switchboard_log_head SET pos = pos + 3`)
	epoch, pos, _ := engine.ParseID(e0.ID)
	head := engine.FormatID(epoch, engine.Pos{Lo: pos.Lo + 3})
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := b.WaitDelivered(ctx, head); err != nil {
		t.Fatalf("WaitDelivered(%s) = %v: the reader did not pass the positions trimmed away", head, err)
	}
	if n := rec.Gaps(); n != 1 {
		t.Errorf("%d gaps delivered, want 1", n)
	}
	if res := history(t, b, e0.ID, 10, "r"); res.Recovered || len(res.Envelopes) != 0 {
		t.Errorf("resume from before the trimmed positions: recovered %v %v, want false and nothing", res.Recovered, ids(res.Envelopes))
	}
	e1 := publish(t, b, "r", 1)
	if got := rec.WaitFor(t, e1.ID, waitTime); !sameIDs(got, []*core.Envelope{e0, e1}) {
		t.Errorf("delivered %v", ids(got))
	}
}

// TestHistoryAfterTrim: with a count bound, what trimming deleted is
// unrecoverable (the newest retained records still come), and a recent
// position is recovered exactly, from the log as from the index.
func TestHistoryAfterTrim(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	for _, tt := range []struct {
		name string
		idx  engine.Config
	}{{"index", engine.Config{}}, {"no index", engine.Config{IndexBytes: -1}}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sbpg.Config{URL: srv.URL, Table: tableFor(t), MaxMsgs: 10, TrimInterval: -1, Engine: tt.idx}
			b := newBroker(t, cfg)
			brokertest.Listen(t, b)
			var all []*core.Envelope
			for i := range 30 {
				all = append(all, publish(t, b, "r", i))
			}
			execSQL(t, srv.URL, `SELECT `+cfg.Table+`_trim(10, NULL)`)
			res := history(t, b, all[0].ID, 100, "r")
			if res.Recovered || !sameIDs(res.Envelopes, all[20:]) {
				t.Errorf("since the first of 30 with 10 kept: recovered %v %v, want false and the newest 10", res.Recovered, ids(res.Envelopes))
			}
			res = history(t, b, all[25].ID, 100, "r")
			if !res.Recovered || !sameIDs(res.Envelopes, all[26:]) {
				t.Errorf("since a recent id: recovered %v %v, want true %v", res.Recovered, ids(res.Envelopes), ids(all[26:]))
			}
		})
	}
}

// TestTrimmerRuns: the node trims by itself every TrimInterval.
func TestTrimmerRuns(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	b := newBroker(t, sbpg.Config{URL: srv.URL, MaxMsgs: 3, TrimInterval: 10 * time.Millisecond})
	brokertest.Listen(t, b)
	for i := range 10 {
		publish(t, b, "r", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM switchboard_log`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 3 {
			return
		}
		// Trimming leaves no signal but the table: poll it.
		time.Sleep(10 * time.Millisecond)
	}
}
