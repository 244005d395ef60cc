package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/nats/natstest"
	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
)

// TestKeyedPublishesOnceThroughFaults: backends publish keyed messages
// through two edge processes on one Redis (or one JetStream), retrying on the other edge
// after any failure or timeout, as a careful backend does; meanwhile one
// edge is SIGKILLed (and started again) and the broker restarts (keeping its data), and every
// fourth message is also hedged (sent through both edges at once). Every
// key is in the log exactly once: a retry after a crash between append
// and reply, a lost reply or an append racing its retry on another node
// publishes nothing again (issue #14).
func TestKeyedPublishesOnceThroughFaults(t *testing.T) {
	t.Parallel()
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		rs := redistest.StartPersistent(t)
		keyedThroughFaults(t, "redis", rs.URL, func() {
			rs.Stop() // saves its data set, as a restart with persistence would
			rs.Restart()
		}, func() map[string]int { return redisKeys(t, rs.Addr) })
	})
	t.Run("kafka", func(t *testing.T) {
		// kfake keeps nothing across a restart, so no broker restart here;
		// and Kafka has no log-side check of keys: racing appends may both
		// be in the topic, so only deliveries are checked (the engine's
		// reader drops the repeat on every node).
		t.Parallel()
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "switchboard"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cluster.Close)
		keyedThroughFaults(t, "kafka", "kafka://"+strings.Join(cluster.ListenAddrs(), ","), nil, nil)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		pg := pgtest.Start(t)
		keyedThroughFaults(t, "postgres", pg.URL, func() {
			pg.Kill() // a crash: committed rows survive in the write-ahead log
			pg.Start()
		}, func() map[string]int { return postgresKeys(t, pg.URL) })
	})
	t.Run("nats", func(t *testing.T) {
		t.Parallel()
		ns := natstest.Start(t) // JetStream file storage: a restart keeps the stream
		keyedThroughFaults(t, "nats", ns.URL, func() {
			ns.Shutdown()
			ns.Restart()
		}, func() map[string]int { return natsKeys(t, ns.URL) })
	})
}

// keyedThroughFaults runs the scenario on broker at url; restart restarts
// the broker keeping its data, and keys counts each key in the log (each
// may be nil). A subscriber on the edge that is never killed must get
// every message exactly once, whatever the broker.
func keyedThroughFaults(t *testing.T, broker, url string, restart func(), keys func() map[string]int) {
	const key = "apikey-exactly-once-0123456789"
	args := []string{"--broker", broker, "--broker-url", url, "--api-keys", key, "--broker-wait"}

	var mu sync.Mutex
	edges := make([]string, 2)
	procs := make([]*exec.Cmd, 2)
	startEdgeProc := func(i int) {
		cmd, addr, _ := startBinary(t, args...)
		mu.Lock()
		edges[i], procs[i] = addr, cmd
		mu.Unlock()
	}
	startEdgeProc(0)
	startEdgeProc(1)
	sub, _ := connect(t, (&edge{addr: edges[1]}).url(q("user", "auditor", "rooms", "orders")))
	edgeAddr := func(i int) string {
		mu.Lock()
		defer mu.Unlock()
		return edges[i%2]
	}

	client := &http.Client{Timeout: 2 * time.Second}
	publish := func(addr string, body []byte) int {
		req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/publish", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return 0 // refused, reset or timed out: the outcome is unknown
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}

	const messages, workers = 400, 8
	var next, done atomic.Int64
	deadline := time.Now().Add(4 * waitFor)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= messages {
					return
				}
				body := fmt.Appendf(nil, `{"room":"orders","data":{"n":%d},"idempotency_key":"order-%d"}`, i, i)
				if i%4 == 0 {
					// A hedged request: the same key through both edges at
					// once, so the two appends race (below, the usual retry
					// loop goes on until one answer is 200).
					var hedge sync.WaitGroup
					hedge.Add(1)
					go func() { defer hedge.Done(); publish(edgeAddr(i+1), body) }()
					publish(edgeAddr(i), body)
					hedge.Wait()
				}
				for attempt := 0; ; attempt++ {
					// Each retry goes to the other edge.
					if publish(edgeAddr(i+attempt), body) == http.StatusOK {
						break
					}
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("order-%d never accepted", i)
						return
					}
					time.Sleep(20 * time.Millisecond) // a backend's retry pause, not a wait for a signal
				}
				done.Add(1)
			}
		}()
	}
	waitDone := func(n int64) {
		eventuallyWithin(t, 4*waitFor, fmt.Sprintf("%d publishes accepted", n), func() bool { return done.Load() >= n })
	}

	// Faults while publishes are in flight.
	waitDone(messages / 4)
	mu.Lock()
	victim := procs[0]
	mu.Unlock()
	if err := victim.Process.Kill(); err != nil { // SIGKILL, mid-flight
		t.Fatal(err)
	}
	_ = victim.Wait()
	startEdgeProc(0)

	if restart != nil {
		waitDone(messages / 2)
		restart()
	}

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// Delivered: every message once, then nothing more up to a marker.
	got := make(map[string]int)
	for len(got) < messages {
		env := sub.expect(core.TypeMessage)
		got[string(env.Data)]++
	}
	if publish(edgeAddr(1), []byte(`{"room":"orders","data":"marker"}`)) != http.StatusOK {
		t.Fatal("marker not published")
	}
	for env := sub.expect(core.TypeMessage); string(env.Data) != `"marker"`; env = sub.expect(core.TypeMessage) {
		got[string(env.Data)]++
	}
	for i := range messages {
		if n := got[fmt.Sprintf(`{"n":%d}`, i)]; n != 1 {
			t.Errorf("order-%d delivered %d times, want exactly once", i, n)
		}
	}
	if keys == nil {
		return
	}
	// The log, read directly: every key exactly once.
	seen := keys()
	for i := range messages {
		if n := seen[fmt.Sprintf("order-%d", i)]; n != 1 {
			t.Errorf("order-%d is in the log %d times, want exactly once", i, n)
		}
	}
}

// redisKeys counts the idempotency keys of the Redis stream's entries.
func redisKeys(t *testing.T, addr string) map[string]int {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	entries, err := rdb.XRange(context.Background(), "switchboard", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int)
	var codec redisstream.DefaultMarshallerUnmarshaller
	for _, e := range entries {
		msg, err := codec.Unmarshal(e.Values)
		if err != nil {
			t.Fatalf("entry %s: %v", e.ID, err)
		}
		if k := msg.Metadata.Get(engine.MetadataKey); k != "" {
			seen[k]++
		}
	}
	return seen
}

// postgresKeys counts the idempotency keys of the log table's rows
// (Watermill metadata is a JSON object).
func postgresKeys(t *testing.T, url string) map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT metadata->>$1, count(*) FROM switchboard_log WHERE metadata ? $1 GROUP BY 1`, engine.MetadataKey)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int)
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		seen[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}

// natsKeys counts the idempotency keys of the JetStream stream's
// messages (Watermill metadata travels as headers).
func natsKeys(t *testing.T, url string) map[string]int {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := js.Stream(ctx, "SWITCHBOARD")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int)
	for read := uint64(0); read < info.State.Msgs; {
		batch, err := cons.Fetch(int(min(info.State.Msgs-read, 500)), jetstream.FetchMaxWait(waitFor))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if k := m.Headers().Get(engine.MetadataKey); k != "" {
				seen[k]++
			}
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("read %d of %d messages of the stream", read, info.State.Msgs)
		}
		read += uint64(n)
	}
	return seen
}
