package presence

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) get() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func users(t *testing.T, tr *Tracker, room string) string {
	t.Helper()
	conns, err := tr.Members(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	var u []string
	for _, c := range conns {
		u = append(u, c.User+"@"+c.Node)
	}
	return strings.Join(u, ",")
}

// TestTrackerTableAndDeadNodes: the table follows this node's sessions
// through the log; a foreign node's records are folded in; once that node
// is silent past the TTL it vanishes from presence and this node (the
// smallest live id) publishes the leave and disconnect events it never
// sent, with deterministic ids.
func TestTrackerTableAndDeadNodes(t *testing.T) {
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(node, Config{Interval: time.Hour, TTL: 2 * time.Hour, SnapshotEvery: -1, now: clk.get})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(context.Background()) })

	s, err := node.Accept(context.Background(), coretest.NewTransport(), core.ConnectRequest{Credentials: core.Credentials{User: "ann"}, Rooms: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	self := node.ID()
	eventually(t, "ann in r", func() bool { return users(t, tr, "r") == "ann@"+self })

	// A foreign node "AAA" (smaller id than ours? ours is random base32;
	// make it larger so we lead): lease plus a connect and a join.
	foreign := "ZZZZZZZZZZZZZZZZ"
	pub := func(r Record) {
		data, _ := json.Marshal(r)
		if _, err := node.Publish(context.Background(), Channel, &core.Envelope{V: 1, Type: EnvelopeType, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	pub(Record{Kind: "lease", Node: foreign})
	pub(Record{Kind: "event", Node: foreign, Event: &core.Event{Type: core.EventConnect, Node: foreign, Conn: foreign + "-1", User: "zed"}})
	pub(Record{Kind: "event", Node: foreign, Event: &core.Event{Type: core.EventJoin, Node: foreign, Conn: foreign + "-1", User: "zed", Room: "r"}})
	eventually(t, "zed in r", func() bool { return strings.Contains(users(t, tr, "r"), "zed@"+foreign) })

	s.Close(core.DisconnectNormal)
	eventually(t, "ann gone", func() bool { return users(t, tr, "r") == "zed@"+foreign })
	// Her disconnect follows her leave through the log: wait for it too,
	// or it could land after the head taken below and count as reaped.
	eventually(t, "ann disconnected", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.nodes[self].conns) == 0
	})

	clk.add(2*time.Hour + time.Second)
	if got := users(t, tr, "r"); got != "" {
		t.Fatalf("a silent node still listed: %s", got)
	}
	// Our own lease must have come back recently for us to lead.
	pub(Record{Kind: "lease", Node: self, TTLMillis: 10000})
	eventually(t, "our lease back", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.alive(tr.nodes[self], clk.get())
	})
	first, _ := node.Head(context.Background())
	tr.reap()
	res, err := node.History(context.Background(), core.HistoryRequest{Channels: []string{Channel}, Since: first, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, env := range res.Envelopes {
		var r Record
		_ = json.Unmarshal(env.Data, &r)
		if r.Synthetic || r.Kind == "gone" {
			ids = append(ids, r.Kind+":"+r.ID)
		}
	}
	want := "event:" + foreign + ":" + foreign + "-1:leave:r,event:" + foreign + ":" + foreign + "-1:disconnect,gone:"
	if strings.Join(ids, ",") != want {
		t.Fatalf("records after reaping\n got %s\nwant %s", strings.Join(ids, ","), want)
	}
	tr.reap() // once only
	res, _ = node.History(context.Background(), core.HistoryRequest{Channels: []string{Channel}, Since: first, Limit: 10})
	if n := len(res.Envelopes); n != 3 {
		t.Fatalf("reaped twice: %d records", n)
	}
}

// TestTrackerFencesItselfWhenDeclaredDead: if the cluster declares this
// node dead (its lease was late), it closes its connections with 1012 so
// the survivors' disconnect records become true and clients resume.
func TestTrackerFencesItselfWhenDeclaredDead(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(node, Config{Interval: time.Hour, SnapshotEvery: -1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(context.Background()) })
	tp := coretest.NewTransport()
	if _, err := node.Accept(context.Background(), tp, core.ConnectRequest{Credentials: core.Credentials{User: "ann"}}); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(Record{Kind: "gone", Node: node.ID()})
	if _, err := node.Publish(context.Background(), Channel, &core.Envelope{V: 1, Type: EnvelopeType, Data: data}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := tp.WaitClosed(ctx)
	if err != nil || d != core.DisconnectShutdown {
		t.Fatalf("closed with %v (%v), want 1012", d, err)
	}
}

// TestTrackerLocal: on a single in-memory node the table is kept in
// process and nothing is published to the broker.
func TestTrackerLocal(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(node, Config{Local: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(context.Background()) })
	head, _ := node.Head(context.Background())
	s, err := node.Accept(context.Background(), coretest.NewTransport(), core.ConnectRequest{Credentials: core.Credentials{User: "ann"}, Rooms: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := users(t, tr, "r"); got != "ann@"+node.ID() {
		t.Fatalf("members %q", got)
	}
	s.Close(core.DisconnectNormal)
	if got := users(t, tr, "r"); got != "" {
		t.Fatalf("members after close %q", got)
	}
	if now, _ := node.Head(context.Background()); now != head {
		t.Fatalf("the broker's head moved from %s to %s: something was published", head, now)
	}
}
