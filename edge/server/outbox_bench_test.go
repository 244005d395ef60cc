package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
)

// BenchmarkOutboxCommitToDeliver measures COMMIT → deliver for
// switchboard_publish: a backend's transaction calls it and commits; an
// edge (in this process, with its WebSocket transport) forwards the row
// and a WebSocket subscriber reads the message. The latency runs from
// just before COMMIT is sent to the subscriber's read. Each op is one
// transaction; "serial" waits for each delivery before the next commit,
// "500ps" and "2000ps" commit 500 or 2,000 times a second (from one
// connection, as fast as it can when it cannot keep up) without waiting.
// Reports p50, p99 and max in ms; run it with -benchtime 1000x (see
// docs/brokers.md).
func BenchmarkOutboxCommitToDeliver(b *testing.B) {
	pg := pgtest.Start(b)
	rs := redistest.Start(b)
	for _, broker := range []struct {
		name string
		args func(db string) []string
	}{
		{"postgres", func(db string) []string { return []string{"--broker", "postgres", "--broker-url", db} }},
		{"redis", func(db string) []string {
			return []string{"--broker", "redis", "--broker-url", rs.URL, "--outbox-url", db}
		}},
	} {
		for _, mode := range []struct {
			name  string
			every time.Duration // 0: serial
		}{{"serial", 0}, {"500ps", 2 * time.Millisecond}, {"2000ps", 500 * time.Microsecond}} {
			b.Run(broker.name+"/"+mode.name, func(b *testing.B) {
				db := pg.CreateDatabase(b)
				room := strings.ReplaceAll(b.Name(), "/", ".")
				addr := benchEdge(b, broker.args(db))
				sub := benchSubscriber(b, addr, room)
				c, err := pgx.Connect(context.Background(), db)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close(context.Background())
				var sent []time.Time
				var tick *time.Ticker
				if mode.every > 0 {
					tick = time.NewTicker(mode.every)
					defer tick.Stop()
				}
				for b.Loop() {
					if tick != nil {
						<-tick.C
					}
					i := len(sent)
					sent = append(sent, benchCommit(b, c, room, i))
					if tick == nil {
						sub.wait(b, i)
					}
				}
				for i := range sent {
					sub.wait(b, i)
				}
				lat := make([]time.Duration, len(sent))
				for i, t0 := range sent {
					lat[i] = sub.at(i).Sub(t0)
				}
				slices.Sort(lat)
				ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
				b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
				b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
				b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
			})
		}
	}
}

// benchCommit runs one transaction that publishes {"n": i} to room and
// returns when COMMIT was sent.
func benchCommit(b *testing.B, c *pgx.Conn, room string, i int) time.Time {
	ctx := context.Background()
	tx, err := c.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT switchboard_publish($1, $2)`, room, fmt.Sprintf(`{"n":%d}`, i)); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	return t0
}

// benchEdge serves an edge with args on 127.0.0.1 until the benchmark
// ends, and returns its address.
func benchEdge(b *testing.B, args []string) string {
	cfg, err := config.Load(append([]string{"--log-level", "error", "--rate-limit", "-1"}, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return ln.Addr().String()
}

// benchSub is a WebSocket subscriber that records when each message
// {"n": i} arrived.
type benchSub struct {
	mu      sync.Mutex
	got     map[int]time.Time
	changed chan struct{}
}

func benchSubscriber(b *testing.B, addr, room string) *benchSub {
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?user=bench&rooms="+room, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, welcome, err := conn.ReadMessage(); err != nil || !strings.Contains(string(welcome), `"welcome"`) {
		b.Fatalf("no welcome: %s, %v", welcome, err)
	}
	s := &benchSub{got: map[int]time.Time{}, changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, data, err := conn.ReadMessage()
			now := time.Now()
			if err != nil {
				return
			}
			for line := range strings.SplitSeq(string(data), "\n") {
				env, err := core.UnmarshalEnvelope([]byte(line))
				if err != nil || env.Type != core.TypeMessage {
					continue
				}
				var d struct{ N int }
				if json.Unmarshal(env.Data, &d) != nil {
					continue
				}
				s.mu.Lock()
				if _, ok := s.got[d.N]; !ok {
					s.got[d.N] = now
				}
				close(s.changed)
				s.changed = make(chan struct{})
				s.mu.Unlock()
			}
		}
	}()
	b.Cleanup(func() {
		_ = conn.Close()
		<-done
	})
	return s
}

// wait waits until message i has arrived.
func (s *benchSub) wait(b *testing.B, i int) {
	deadline := time.NewTimer(hang)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		_, ok := s.got[i]
		changed := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			b.Fatalf("message %d not delivered within %s", i, hang)
		}
	}
}

func (s *benchSub) at(i int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[i]
}
