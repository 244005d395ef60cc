package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
)

// TestTransactionalPublishThroughFaults: backends publish with
// switchboard_publish inside their own transactions, which also insert
// the order they announce; every fifth transaction rolls back. Two edge
// processes forward the outbox; meanwhile the forwarding edge is
// SIGKILLed (and started again) and PostgreSQL is restarted (a crash:
// pg.Kill). A subscriber on the other edge receives every committed
// order exactly once and nothing that rolled back, whether the broker is
// PostgreSQL itself (the outbox in the log's database, by default) or
// Redis (--outbox-url).
func TestTransactionalPublishThroughFaults(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		pg := pgtest.Start(t)
		outboxThroughFaults(t, pg, "--broker", "postgres", "--broker-url", pg.URL)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		pg := pgtest.Start(t)
		rs := redistest.Start(t)
		outboxThroughFaults(t, pg, "--broker", "redis", "--broker-url", rs.URL, "--outbox-url", pg.URL)
	})
}

// outboxState reads the outbox's state from an edge's /stats.
func outboxState(t *testing.T, addr string) string {
	t.Helper()
	var s struct{ Outbox struct{ State string } }
	getJSON(t, "http://"+addr+"/stats", &s)
	return s.Outbox.State
}

func waitOutboxState(t *testing.T, addr, want string) {
	t.Helper()
	eventually(t, "outbox "+want+" on "+addr, func() bool { return outboxState(t, addr) == want })
}

func outboxThroughFaults(t *testing.T, pg *pgtest.Server, edgeArgs ...string) {
	args := append([]string{"--broker-wait", "--rate-limit", "-1"}, edgeArgs...)
	victim, addr0, _ := startBinary(t, args...)
	waitOutboxState(t, addr0, "forwarding")
	_, addr1, logs1 := startBinary(t, args...)
	waitOutboxState(t, addr1, "standby")
	sub, _ := connect(t, (&edge{addr: addr1}).url(q("user", "auditor", "rooms", "orders")))

	ctx, cancel := context.WithTimeout(context.Background(), 6*waitFor)
	defer cancel()
	setup, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec(ctx, `CREATE TABLE orders (n int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	setup.Close(ctx)

	// Each order is one transaction: its row and its message. A commit
	// whose outcome is unknown (the connection failed) is retried; the
	// primary key says whether the first attempt had committed.
	const orders, workers = 500, 4
	var next, done atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *pgx.Conn
			defer func() {
				if c != nil {
					c.Close(context.Background())
				}
			}()
			for {
				i := int(next.Add(1)) - 1
				if i >= orders {
					return
				}
				for {
					if ctx.Err() != nil {
						errs <- fmt.Errorf("order %d never committed", i)
						return
					}
					if c == nil || c.IsClosed() {
						conn, err := pgx.Connect(ctx, pg.URL)
						if err != nil {
							time.Sleep(20 * time.Millisecond) // a backend's retry pause, not a wait for a signal
							continue
						}
						c = conn
					}
					if i%5 == 4 {
						_ = order(ctx, c, i, false) // rolled back, whatever happens
						break
					}
					err := order(ctx, c, i, true)
					var pe *pgconn.PgError
					if err == nil || errors.As(err, &pe) && pe.Code == "23505" { // committed, now or before
						break
					}
					if errors.As(err, &pe) {
						errs <- fmt.Errorf("order %d: %w", i, err)
						return
					}
					c.Close(context.Background())
					c = nil
					time.Sleep(20 * time.Millisecond)
				}
				done.Add(1)
			}
		}()
	}
	waitDone := func(n int64) {
		eventuallyWithin(t, 6*waitFor, fmt.Sprintf("%d orders", n), func() bool { return done.Load() >= n })
	}

	// The forwarding edge dies mid-stream: the other takes over.
	waitDone(orders / 4)
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	t.Logf("SIGKILLed the forwarding edge after %d orders", done.Load())
	startBinary(t, args...)
	// PostgreSQL crashes and comes back: committed transactions survive.
	waitDone(orders / 2)
	pg.Kill()
	t.Logf("killed postgres after %d orders", done.Load())
	pg.Start()
	t.Logf("postgres back after %d orders", done.Load())

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// Everything committed is delivered before the marker, committed last.
	c, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, `SELECT switchboard_publish('orders', '"marker"')`); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for env := sub.expect(core.TypeMessage); string(env.Data) != `"marker"`; env = sub.expect(core.TypeMessage) {
		got[string(env.Data)]++
	}
	rows, err := c.Query(ctx, `SELECT n FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if want := orders - orders/5; len(committed) != want {
		t.Errorf("%d orders committed, want %d", len(committed), want)
	}
	for _, n := range committed {
		data := fmt.Sprintf(`{"n":%d}`, n)
		if got[data] != 1 {
			t.Errorf("order %d delivered %d times, want exactly once", n, got[data])
		}
		delete(got, data)
	}
	for data, k := range got {
		t.Errorf("%s delivered %d times, and never committed", data, k)
	}
	// The marker's row goes once its publication is confirmed, which may
	// be after its delivery.
	var left, dead int
	eventually(t, "an empty outbox", func() bool {
		if err := c.QueryRow(ctx, `SELECT (SELECT count(*) FROM switchboard_outbox), (SELECT count(*) FROM switchboard_outbox_failed)`).Scan(&left, &dead); err != nil {
			t.Fatal(err)
		}
		return left == 0
	})
	if dead != 0 {
		t.Errorf("%d dead letters", dead)
	}
	// The surviving edge saw the restart (at its next statement: at once
	// when it forwards, within the takeover interval when it stands by)
	// and said so once.
	eventually(t, "the outage logged", func() bool { return len(logs1.lines("outbox: cannot reach postgres; retrying")) > 0 })
	if n := len(logs1.lines("outbox: cannot reach postgres; retrying")); n != 1 {
		t.Errorf("the surviving edge logged the outage %d times, want once:\n%s", n, logs1)
	}
}

// order runs one order's transaction: its row, and its message with
// switchboard_publish; then COMMIT (or ROLLBACK, for an order whose
// message must never be delivered).
func order(ctx context.Context, c *pgx.Conn, n int, commit bool) error {
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `INSERT INTO orders (n) VALUES ($1)`, n); err != nil {
		return err
	}
	data, _ := json.Marshal(map[string]int{"n": n})
	if _, err := tx.Exec(ctx, `SELECT switchboard_publish('orders', $1)`, data); err != nil {
		return err
	}
	if !commit {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}
