package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchboard-dev/switchboard/broker/nats/natstest"
	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

// seqOf reads the sequence number a test publisher put in data.
func seqOf(t *testing.T, env *core.Envelope) int {
	t.Helper()
	var d struct{ Seq int }
	if err := json.Unmarshal(env.Data, &d); err != nil {
		t.Fatalf("data of %s: %v", env.Encode(), err)
	}
	return d.Seq
}

// TestMultiNodeFailoverRedis: two edge processes on one redis-server act as
// one service. A subscriber on node A and one on node B see a publisher on
// B. Node A is SIGKILLed mid-stream; its subscriber reconnects to B with
// its last id and ends up with every message exactly once, in order.
func TestMultiNodeFailoverRedis(t *testing.T) {
	rs := redistest.Start(t)
	failover(t, "--broker", "redis", "--broker-url", rs.URL)
}

// TestMultiNodeFailoverKafka: the same scenario against Kafka, spoken by
// kfake in this process (real wire protocol).
func TestMultiNodeFailoverKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "switchboard"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	failover(t, "--broker", "kafka", "--broker-url", "kafka://"+strings.Join(cluster.ListenAddrs(), ","))
}

// TestMultiNodeFailoverNATS: the same scenario against an embedded
// nats-server with JetStream.
func TestMultiNodeFailoverNATS(t *testing.T) {
	ns := natstest.Start(t)
	failover(t, "--broker", "nats", "--broker-url", ns.URL)
}

// TestMultiNodeFailoverPostgres: the same scenario against a PostgreSQL
// server (Debian's) started by the test.
func TestMultiNodeFailoverPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	failover(t, "--broker", "postgres", "--broker-url", pg.URL)
}

// failover runs two edge binaries with the broker args, SIGKILLs one while
// a publisher on the other is sending, and checks that the dead node's
// subscriber, resumed on the survivor, got every message exactly once.
func failover(t *testing.T, brokerArgs ...string) {
	args := append([]string{"--rate-limit", "-1"}, brokerArgs...)
	cmdA, addrA, logsA := startBinary(t, args...)
	_, addrB, _ := startBinary(t, args...)
	a, b := &edge{addr: addrA}, &edge{addr: addrB}

	// How many messages the publisher sends depends on how long the kill
	// and the resume take, so every client that is not read in step is
	// drained without bound: none of them may become a slow consumer
	// (4008) on a loaded machine.
	subA, _ := connect(t, a.url(q("user", "sa", "rooms", "seq")))
	subB, _ := connect(t, b.url(q("user", "sb", "rooms", "seq")))
	tailB := tailOf(subB)
	// The publisher must be in the room; its own copies are discarded.
	pub, _ := connect(t, b.url(q("user", "pub", "rooms", "seq")))
	go func() {
		for range pub.envs {
		}
	}()

	// The publisher sends without pause from before the kill until 200
	// messages after the resumed subscriber's welcome, so the resume
	// overlaps live publishing; it then reports how many it sent.
	resumed := make(chan struct{})
	stop := make(chan struct{})
	type result struct {
		n   int
		err error
	}
	pubDone := make(chan result, 1)
	go func() { // errors go back to the test goroutine
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		signal := (<-chan struct{})(resumed)
		until := -1
		for i := 0; until < 0 || i < until; i++ {
			select {
			case <-stop:
				pubDone <- result{i, nil}
				return
			case <-signal:
				until, signal = i+200, nil
			case <-tick.C:
			}
			msg := fmt.Sprintf(`{"v":1,"type":"publish","room":"seq","data":{"seq":%d}}`, i)
			if err := pub.conn.WriteMessage(1, []byte(msg)); err != nil {
				pubDone <- result{i, fmt.Errorf("publish %d: %w", i, err)}
				return
			}
		}
		pubDone <- result{until, nil}
	}()
	defer close(stop)

	// Node A's subscriber reads a while, then A dies.
	var got []int
	var lastID string
	for len(got) < 100 {
		env := subA.expect(core.TypeMessage)
		got = append(got, seqOf(t, env))
		lastID = env.ID
	}
	if err := cmdA.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for { // drain what A managed to send before dying
		select {
		case env, ok := <-subA.envs:
			if !ok {
				goto reconnect
			}
			if env.Type == core.TypeMessage {
				got = append(got, seqOf(t, env))
				lastID = env.ID
			}
		case <-time.After(waitFor):
			t.Fatalf("node A's connection did not end after SIGKILL; logs:\n%s", logsA)
		}
	}
reconnect:
	back, w := connect(t, b.url(q("user", "sa", "rooms", "seq", "since", lastID)))
	if w.Recovered == nil || !*w.Recovered {
		t.Fatalf("welcome on node B = %+v, want recovered:true", w)
	}
	tailBack := tailOf(back)
	close(resumed)
	res := <-pubDone
	if res.err != nil {
		t.Fatal(res.err)
	}
	total := res.n
	missing := total - len(got)
	for _, env := range tailBack.first(t, missing) {
		if env.Type != core.TypeMessage {
			t.Fatalf("resumed subscriber got %s, want messages", env.Encode())
		}
		got = append(got, seqOf(t, env))
	}
	// Nothing follows them but the pong to a ping: no duplicate.
	back.send(`{"v":1,"type":"ping","ref":"end"}`)
	if p := tailBack.first(t, missing+1)[missing]; p.Type != core.TypePong || p.Ref != "end" {
		t.Fatalf("after the last message on node B, got %s, want the pong", p.Encode())
	}
	for i, s := range got {
		if s != i {
			t.Fatalf("subscriber A got %v... at index %d: %d, want %d (lost or duplicated)", got[max(0, i-3):i+1], i, s, i)
		}
	}
	for i, env := range tailB.first(t, total) {
		if env.Type != core.TypeMessage {
			t.Fatalf("subscriber B got %s, want messages", env.Encode())
		}
		if s := seqOf(t, env); s != i {
			t.Fatalf("subscriber B got %d, want %d", s, i)
		}
	}
}

// tail reads a client's envelopes on its own goroutine into a list
// without bound, so the server never takes the client for a slow
// consumer however long the test spends elsewhere.
type tail struct {
	c    *client
	mu   sync.Mutex
	envs []*core.Envelope
	done bool          // the connection ended
	more chan struct{} // capacity 1: envs grew or the connection ended
}

func tailOf(c *client) *tail {
	tl := &tail{c: c, more: make(chan struct{}, 1)}
	go func() {
		for env := range c.envs {
			tl.mu.Lock()
			tl.envs = append(tl.envs, env)
			tl.mu.Unlock()
			tl.wake()
		}
		tl.mu.Lock()
		tl.done = true
		tl.mu.Unlock()
		tl.wake()
	}()
	return tl
}

func (tl *tail) wake() {
	select {
	case tl.more <- struct{}{}:
	default:
	}
}

// first returns the first n envelopes once they have arrived, failing
// the test when the connection ends first or nothing arrives for waitFor.
func (tl *tail) first(t *testing.T, n int) []*core.Envelope {
	t.Helper()
	for {
		tl.mu.Lock()
		have, done := len(tl.envs), tl.done
		if have >= n {
			out := tl.envs[:n:n]
			tl.mu.Unlock()
			return out
		}
		tl.mu.Unlock()
		if done {
			<-tl.c.done
			t.Fatalf("connection ended after %d of %d envelopes: %v", have, n, tl.c.err)
		}
		select {
		case <-tl.more:
		case <-time.After(waitFor):
			t.Fatalf("%d of %d envelopes, then none for %s", have, n, waitFor)
		}
	}
}

// TestRedisOutage: while Redis is down, connected clients stay connected,
// publishes get broker_unavailable, /readyz says not ready; after Redis
// returns, the node is ready again and messages flow. This Redis keeps no
// data across a restart: the log is new, and a connected client is told
// (gap) before what the new log delivers.
func TestRedisOutage(t *testing.T) {
	rs := redistest.Start(t)
	e := startEdge(t, func(c *config.Config) { c.Broker.Name, c.Broker.URL = "redis", rs.URL })
	c, _ := connect(t, e.url(q("user", "u", "rooms", "r")))
	c.send(`{"v":1,"type":"publish","room":"r","data":"before"}`)
	c.ackAnd(core.TypeMessage)

	rs.Stop()
	eventually(t, "/readyz to report the outage", func() bool {
		return getJSON(t, "http://"+e.addr+"/readyz", nil) == 503
	})
	c.send(`{"v":1,"type":"publish","room":"r","data":"during","ref":"p"}`)
	c.expectError(core.CodeBrokerDown, "p")
	c.ping() // still connected

	rs.Restart()
	eventually(t, "/readyz to recover", func() bool {
		return getJSON(t, "http://"+e.addr+"/readyz", nil) == 200
	})
	c.send(`{"v":1,"type":"publish","room":"r","data":"after"}`)
	var gap, ack, msg *core.Envelope
	for ack == nil || msg == nil {
		switch env := c.next(); {
		case env.Type == core.TypeGap && gap == nil && msg == nil:
			gap = env
		case env.Type == core.TypeAck && ack == nil:
			ack = env
		case env.Type == core.TypeMessage && msg == nil:
			msg = env
		default:
			t.Fatalf("unexpected %s while waiting for the gap, the ack and the message", env.Encode())
		}
	}
	if gap == nil || dataString(t, msg) != "after" {
		t.Fatalf("gap %v, message %s: want the gap of the lost log, then after", gap, msg.Encode())
	}
}

// TestBrokerWait: with --broker-wait an edge whose Redis is down at start
// stays up, live but not ready, and becomes ready and serves once Redis
// comes up.
func TestBrokerWait(t *testing.T) {
	rs := redistest.Start(t)
	rs.Stop()
	_, addr, logs := startBinaryUnready(t, "--broker", "redis", "--broker-url", rs.URL, "--broker-wait")
	e := &edge{addr: addr}
	if code := getJSON(t, "http://"+addr+"/healthz", nil); code != 200 {
		t.Fatalf("/healthz %d while waiting for the broker", code)
	}
	if code := getJSON(t, "http://"+addr+"/readyz", nil); code != 503 {
		t.Fatalf("/readyz %d while waiting for the broker, want 503", code)
	}
	rs.Restart()
	// The stand-in server hands the listener over meanwhile: a request may
	// fail in between, which is not an answer.
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	}()
	eventually(t, "ready once Redis is up", func() bool { return statusOf("http://"+addr+"/readyz") == 200 })
	c, _ := connect(t, e.url(q("user", "u", "rooms", "r")))
	c.send(`{"v":1,"type":"publish","room":"r","data":"hello"}`)
	c.ackAnd(core.TypeMessage)
	if len(logs.lines("broker unreachable; not ready, retrying (--broker-wait)")) != 1 {
		t.Fatalf("no waiting log; logs:\n%s", logs)
	}
}

// statusOf returns the HTTP status of a GET, or 0 if the request failed.
func statusOf(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
