package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
)

// TestOutboxPublishesAsTheAPI: with --outbox-url, the edge installs
// switchboard_publish and forwards each row through the server API's
// publish: what the API would publish is published (and deleted from
// the outbox); what it would refuse moves to the dead letters with the
// API's own message. /healthz and /stats say what the forwarder does.
func TestOutboxPublishesAsTheAPI(t *testing.T) {
	pg := pgtest.Start(t)
	srv := newServer(t, "--outbox-url", pg.URL)
	defer shutdown(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, stmt := range []string{
		`SELECT switchboard_publish('r', '{"n": 1}')`,
		`SELECT switchboard_publish('r', '1', 'welcome')`,
		`INSERT INTO switchboard_outbox (request) VALUES ('{"room": "r", "data": 1, "extra": 1}')`,
		`INSERT INTO switchboard_outbox (request) VALUES ('{"room": "r", "to": "u", "data": 1}')`,
		`INSERT INTO switchboard_outbox (request) VALUES (jsonb_build_object('room', 'r', 'data', repeat('x', 1100000)))`,
		`SELECT switchboard_publish_user('u', '"hi"')`,
	} {
		if _, err := c.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	var stats struct {
		Outbox struct {
			State        string
			Forwarded    uint64
			DeadLettered uint64 `json:"dead_lettered"`
		}
	}
	for stats.Outbox.Forwarded+stats.Outbox.DeadLettered < 6 {
		if ctx.Err() != nil {
			t.Fatalf("stats %+v: not every row was forwarded", stats)
		}
		time.Sleep(10 * time.Millisecond) // the counters have no signal
		get(t, srv, "/stats", &stats)
	}
	if stats.Outbox.State != "forwarding" || stats.Outbox.Forwarded != 2 || stats.Outbox.DeadLettered != 4 {
		t.Errorf("stats %+v, want 2 forwarded and 4 dead letters", stats)
	}
	rows, err := c.Query(ctx, `SELECT error FROM switchboard_outbox_failed ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	failed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`bad_request: type "welcome" is a built-in type; use "message" or a custom type`,
		`malformed JSON body: json: unknown field "extra"`,
		`bad_request: give exactly one target: "room", "to" or "broadcast": true`,
		`request over 1048576 bytes (the server API's bound)`,
	}
	if len(failed) != len(want) {
		t.Fatalf("dead letters %q, want %d", failed, len(want))
	}
	for i, w := range want {
		if failed[i] != "switchboard/broker/postgres: outbox request refused: "+w {
			t.Errorf("dead letter %d: %q, want the refusal %q", i, failed[i], w)
		}
	}
	var health map[string]string
	get(t, srv, "/healthz", &health)
	if health["status"] != "ok" || health["outbox"] != "forwarding" {
		t.Errorf("/healthz %v", health)
	}
	resp, err := srv.App().Test(httptest.NewRequest("GET", "/metrics", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range []string{
		"switchboard_outbox_forwarded_total 2",
		"switchboard_outbox_dead_letters_total 4",
		"switchboard_outbox_retries_total 0",
		`switchboard_outbox_state{state="forwarding"} 1`,
		`switchboard_outbox_state{state="standby"} 0`,
	} {
		if !strings.Contains(string(body), "\n"+line+"\n") {
			t.Errorf("/metrics has no line %q", line)
		}
	}
}

// TestOutboxRefusedAtStart: a database that refuses the edge stops New
// with an error naming --outbox-url, which is not the broker being
// unavailable (no --broker-wait retry), and releases what New built.
func TestOutboxRefusedAtStart(t *testing.T) {
	pg := pgtest.Start(t)
	url := strings.Replace(pg.URL, "/postgres?", "/nope?", 1)
	cfg, err := config.Load([]string{"--outbox-url", url}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		shutdown(t, srv)
		t.Fatal("New succeeded")
	}
	if !strings.Contains(err.Error(), "check --outbox-url") || !strings.Contains(err.Error(), `"nope" does not exist`) || errors.Is(err, server.ErrBrokerUnavailable) {
		t.Errorf("New: %v", err)
	}
}

func get(t *testing.T, srv *server.Server, path string, v any) {
	t.Helper()
	resp, err := srv.App().Test(httptest.NewRequest("GET", path, nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
