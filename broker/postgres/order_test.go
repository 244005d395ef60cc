package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
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

// rawAppend appends envs to the log through its append function inside
// tx, the path the driver's Append takes, and returns their positions.
// The head row stays locked until tx ends.
func rawAppend(ctx context.Context, tx pgx.Tx, table string, envs ...*core.Envelope) ([]int64, error) {
	var uuids, md []string
	var payloads [][]byte
	var keys []*string
	var digests []string
	for _, env := range envs {
		m := broker.NewMessage(core.RoomChannel(env.Room), env)
		b, err := json.Marshal(m.Metadata)
		if err != nil {
			return nil, err
		}
		uuids, payloads, md = append(uuids, m.UUID), append(payloads, m.Payload), append(md, string(b))
		keys, digests = append(keys, nil), append(digests, "")
	}
	rows, err := tx.Query(ctx, `SELECT pos FROM `+table+`_append($1, $2, $3::text[]::jsonb[], $4, $5, $6)`,
		uuids, payloads, md, keys, digests, time.Minute)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// posOf is the position in an id.
func posOf(t *testing.T, id string) uint64 {
	t.Helper()
	_, pos, ok := engine.ParseID(id)
	if !ok {
		t.Fatalf("id %q does not parse", id)
	}
	return pos.Lo
}

func connect(t *testing.T, url string) *pgx.Conn {
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

// TestNaiveSequenceSkips is the hazard the driver is built against, on
// the same server: a sequence hands out values at insert, so a reader
// of "id > last" sees 2 commit before 1 and passes 1 for good.
func TestNaiveSequenceSkips(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	slow, fast, reader := connect(t, srv.URL), connect(t, srv.URL), connect(t, srv.URL)
	if _, err := reader.Exec(ctx, `CREATE TABLE naive (id bigserial PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	tx, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO naive DEFAULT VALUES`); err != nil { // id 1, not committed
		t.Fatal(err)
	}
	if _, err := fast.Exec(ctx, `INSERT INTO naive DEFAULT VALUES`); err != nil { // id 2, committed
		t.Fatal(err)
	}
	read := func(after int64) []int64 {
		rows, _ := reader.Query(ctx, `SELECT id FROM naive WHERE id > $1 ORDER BY id`, after)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	first := read(0)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	then := read(first[len(first)-1])
	if !slices.Equal(first, []int64{2}) || len(then) != 0 {
		t.Fatalf("naive reader read %v then %v; the hazard is that it reads [2] then [] and never 1", first, then)
	}
}

// TestAppendWaitsForOpenAppend: while one append's transaction is open
// (it sleeps before committing, as a slow one would), another append
// (the engine's) waits for its lock instead of taking a later position
// that a reader could see first; nothing beyond the log's head is
// visible meanwhile. Once the first commits, the second gets the next
// position, and the reader delivers both in order.
func TestAppendWaitsForOpenAppend(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	table := tableFor(t)
	b := newBroker(t, sbpg.Config{URL: srv.URL + "&application_name=sb_waits", Table: table})
	rec := brokertest.Listen(t, b)
	head := posOf(t, publish(t, b, "r", 0).ID)

	slow, observer := connect(t, srv.URL), connect(t, srv.URL)
	tx, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	first := msg("r", 1)
	pos, err := rawAppend(ctx, tx, table, first)
	if err != nil || len(pos) != 1 || uint64(pos[0]) != head+1 {
		t.Fatalf("raw append = %v, %v; want [%d]", pos, err, head+1)
	}

	second := msg("r", 2)
	published := make(chan error, 1)
	go func() {
		_, err := b.Publish(ctx, core.Publication{Channel: core.RoomChannel("r"), Envelope: second})
		published <- err
	}()
	// The engine's append waits for the open one's lock: PostgreSQL
	// shows its backend waiting (state, not an event: poll it).
	for {
		var waiting int
		if err := observer.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sb_waits' AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		select {
		case err := <-published:
			t.Fatalf("Publish returned (%v) while another append's transaction held the head", err)
		case <-ctx.Done():
			t.Fatal("the engine's append never waited for the open append's lock")
		case <-time.After(10 * time.Millisecond):
		}
	}
	var visible uint64
	if err := observer.QueryRow(ctx, `SELECT coalesce(max(pos), 0) FROM `+table).Scan(&visible); err != nil {
		t.Fatal(err)
	}
	if visible != head {
		t.Fatalf("position %d is visible while the append of %d is open: want nothing after %d", visible, head+1, head)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_sleep(0.05)`); err != nil { // a slow transaction's tail
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if got := posOf(t, second.ID); got != head+2 {
		t.Fatalf("the waiting append got position %d, want %d (right after the open one)", got, head+2)
	}
	got := rec.WaitFor(t, second.ID, waitTime)
	var data []string
	for _, e := range got[1:] {
		data = append(data, string(e.Data))
	}
	if want := []string{string(first.Data), string(second.Data)}; !slices.Equal(data, want) {
		t.Fatalf("delivered %v after the first, want %v", data, want)
	}
}

// TestReaderNeverSkips: appends from the engine and from transactions
// that take the same path but stay open a while (some roll back), all
// concurrent: a naive reader of "pos > last" polling the table never
// finds a hole, and the engine's reader delivers every committed
// message, at consecutive positions, and nothing rolled back.
func TestReaderNeverSkips(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	table := tableFor(t)
	cfg := sbpg.Config{URL: srv.URL, Table: table, PollInterval: 20 * time.Millisecond}
	a, other := newBroker(t, cfg), newBroker(t, cfg)
	rec := brokertest.Listen(t, a)
	brokertest.Listen(t, other)
	base := posOf(t, publish(t, a, "r", 0).ID)

	// The naive reader: whatever it sees must be the next positions.
	stop := make(chan struct{})
	naive := make(chan error, 1)
	go func() {
		c, err := pgx.Connect(ctx, srv.URL)
		if err != nil {
			naive <- err
			return
		}
		defer c.Close(context.Background())
		last := int64(base)
		for polls := 0; ; polls++ {
			rows, _ := c.Query(ctx, `SELECT pos FROM `+table+` WHERE pos > $1 ORDER BY pos`, last)
			seen, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				naive <- err
				return
			}
			for _, p := range seen {
				if p != last+1 {
					naive <- fmt.Errorf("poll %d: saw position %d right after %d: %d would have been skipped", polls, p, last, last+1)
					return
				}
				last = p
			}
			select {
			case <-stop:
				if len(seen) == 0 {
					naive <- nil
					return
				}
			default:
			}
		}
	}()

	var mu sync.Mutex
	committed := map[string]bool{} // Data of every message that must be delivered
	rolledBack := map[string]bool{}
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	const appenders, txs = 4, 12
	for w := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, srv.URL)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range txs {
				var envs []*core.Envelope
				for k := range 1 + rnd.IntN(3) {
					envs = append(envs, msg("r", 1000*(w+1)+10*i+k))
				}
				commit := rnd.IntN(5) != 0
				err := func() error {
					tx, err := c.Begin(ctx)
					if err != nil {
						return err
					}
					defer tx.Rollback(ctx)
					if _, err := rawAppend(ctx, tx, table, envs...); err != nil {
						return err
					}
					sleep := []float64{0, 0, 0.002, 0.01, 0.04}[rnd.IntN(5)]
					if _, err := tx.Exec(ctx, `SELECT pg_sleep($1)`, sleep); err != nil {
						return err
					}
					if !commit {
						return tx.Rollback(ctx)
					}
					return tx.Commit(ctx)
				}()
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, e := range envs {
					if commit {
						committed[string(e.Data)] = true
					} else {
						rolledBack[string(e.Data)] = true
					}
				}
				mu.Unlock()
			}
		}()
	}
	for n, node := range []*engine.Broker{a, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				env := msg("r", 100*(n+1)+i)
				if _, err := node.Publish(ctx, core.Publication{Channel: core.RoomChannel("r"), Envelope: env}); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				committed[string(env.Data)] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	close(stop)
	if err := <-naive; err != nil {
		t.Fatalf("naive reader: %v", err)
	}

	marker := publish(t, a, "r", -1)
	got := rec.WaitFor(t, marker.ID, waitTime)[1:] // after the first publication
	got = got[:len(got)-1]                         // before the marker
	if len(got) != len(committed) {
		t.Errorf("delivered %d messages, %d were committed", len(got), len(committed))
	}
	for i, e := range got {
		if p := posOf(t, e.ID); p != base+1+uint64(i) {
			t.Fatalf("delivery %d at position %d, want %d: positions must be consecutive", i, p, base+1+uint64(i))
		}
		switch d := string(e.Data); {
		case rolledBack[d]:
			t.Fatalf("delivered %s, which was rolled back", d)
		case !committed[d]:
			t.Fatalf("delivered %s twice or unknown", d)
		default:
			delete(committed, d)
		}
	}
	if len(committed) > 0 {
		var missed []string
		for d := range committed {
			missed = append(missed, d)
		}
		t.Fatalf("never delivered: %s", strings.Join(missed, " "))
	}
	if len(rolledBack) == 0 {
		t.Log("no transaction rolled back in this run")
	}
}
