package test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/presence"
)

// presenceUsers asks e's API who is in room, as "user@node" sorted.
func presenceUsers(t *testing.T, e *edge, room string) []string {
	t.Helper()
	status, res := apiCall(t, e, "GET", "/api/v1/rooms/"+room+"/presence", apiKey, "")
	if status != 200 {
		t.Fatalf("presence: %d %v", status, res)
	}
	conns, _ := res["connections"].([]any)
	var out []string
	for _, c := range conns {
		m := c.(map[string]any)
		out = append(out, m["user"].(string))
	}
	sort.Strings(out)
	return out
}

// lifecycleConsumer reads the lifecycle records from the Redis stream the
// way a backend would: a Watermill redisstream subscriber in a consumer
// group, acking each message (at least once).
func lifecycleConsumer(t *testing.T, url string) <-chan presence.Record {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opts)
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client: rdb, Unmarshaller: redisstream.DefaultMarshallerUnmarshaller{},
		ConsumerGroup: "backend", Consumer: "test", OldestId: "0",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, "switchboard")
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan presence.Record, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range msgs {
			d, err := broker.ParseMessage(msg)
			msg.Ack()
			if err != nil || d.Channel != presence.Channel {
				continue
			}
			var r presence.Record
			// Leases are left out: they come every interval for as long
			// as the test runs, and must not crowd out what it waits for.
			if json.Unmarshal(d.Envelope.Data, &r) == nil && r.Kind != "lease" {
				select {
				case out <- r:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); _ = sub.Close(); <-done; _ = rdb.Close() })
	return out
}

// TestPresenceAcrossNodes: presence lists the users of a room on every
// node, follows leaves, and forgets a SIGKILLed node's users once its
// lease expires, while a survivor publishes the leave and disconnect
// events the dead node never sent, which a backend's consumer group
// receives.
//
// Only the kill may end a lease, however loaded the machine: node B's
// lease lasts waitFor (a renewal that late is a hang), and node A's
// outlasts the test, so neither declares the other dead while both run.
// Detection then takes up to B's TTL, so that wait is bounded by the
// TTL plus waitFor rather than by a deadline the lease could race.
func TestPresenceAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	events := lifecycleConsumer(t, rs.URL)
	const interval = 500 * time.Millisecond
	const ttlB = waitFor
	a := startEdge(t, func(c *config.Config) {
		c.Broker.Name, c.Broker.URL, c.APIKeys = "redis", rs.URL, []string{apiKey}
		c.Presence.Interval, c.Presence.TTL = interval, time.Hour
	})
	cmdB, addrB, _ := startBinary(t, "--broker", "redis", "--broker-url", rs.URL,
		"--presence-interval", interval.String(), "--presence-ttl", ttlB.String())
	b := &edge{addr: addrB}

	alice, _ := connect(t, a.url(q("user", "alice", "rooms", "lobby")))
	_, wb := connect(t, b.url(q("user", "bob", "rooms", "lobby,ops")))
	connect(t, b.url(q("user", "carol", "rooms", "ops")))
	eventually(t, "presence of both nodes", func() bool {
		return strings.Join(presenceUsers(t, a, "lobby"), ",") == "alice,bob" && strings.Join(presenceUsers(t, a, "ops"), ",") == "bob,carol"
	})

	alice.send(`{"v":1,"type":"leave","room":"lobby","ref":"l"}`)
	alice.expect(core.TypeAck)
	eventually(t, "alice's leave, with node B's users still present", func() bool {
		return strings.Join(presenceUsers(t, a, "lobby"), ",") == "bob" && strings.Join(presenceUsers(t, a, "ops"), ",") == "bob,carol"
	})

	if err := cmdB.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, ttlB+waitFor, "the dead node's users to vanish", func() bool {
		return len(presenceUsers(t, a, "lobby")) == 0 && len(presenceUsers(t, a, "ops")) == 0
	})

	// The consumer group sees bob's synthetic leave(lobby), leave(ops)
	// and disconnect, with deterministic ids, and the node's "gone".
	want := map[string]bool{
		wb.Conn[:strings.Index(wb.Conn, "-")] + ":" + wb.Conn + ":leave:lobby": false,
		wb.Conn[:strings.Index(wb.Conn, "-")] + ":" + wb.Conn + ":leave:ops":   false,
		wb.Conn[:strings.Index(wb.Conn, "-")] + ":" + wb.Conn + ":disconnect":  false,
	}
	gone := false
	deadline := time.After(waitFor)
	for missing := len(want); missing > 0 || !gone; {
		select {
		case r := <-events:
			if _, ok := want[r.ID]; ok && r.Synthetic && !want[r.ID] {
				want[r.ID] = true
				missing--
				if r.Event.User != "bob" {
					t.Fatalf("synthetic event for %s: %+v", r.Event.User, r.Event)
				}
			}
			if r.Kind == "gone" && r.Node == wb.Conn[:strings.Index(wb.Conn, "-")] {
				gone = true
			}
		case <-deadline:
			t.Fatalf("lifecycle records not seen: %v gone=%v", want, gone)
		}
	}
}

// TestPresenceRoomEvents: with --presence-events, members of a room hear
// who joins and leaves it.
func TestPresenceRoomEvents(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.Presence.RoomEvents = true })
	alice, _ := connect(t, e.url(q("user", "alice", "rooms", "r")))
	expectPresence := func(event, user string) {
		t.Helper()
		for {
			env := alice.next()
			if env.Type != presence.TypePresence {
				continue // alice's own join may come first
			}
			var d struct{ Event, User string }
			_ = json.Unmarshal(env.Data, &d)
			if d.User == "alice" {
				continue
			}
			if d.Event != event || d.User != user || env.Room != "r" || env.ID == "" {
				t.Fatalf("presence %s, want %s %s", env.Encode(), event, user)
			}
			return
		}
	}
	bob, _ := connect(t, e.url(q("user", "bob", "rooms", "r")))
	expectPresence("join", "bob")
	bob.send(`{"v":1,"type":"leave","room":"r","ref":"l"}`)
	expectPresence("leave", "bob")
}
