package core_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/switchboard-dev/switchboard/core"
)

func TestRoomBroadcastReachesMembersOnly(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	alice := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "alice"}, Rooms: []string{"lobby"}})
	bob := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "bob"}, Rooms: []string{"lobby"}})
	carol := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "carol"}, Rooms: []string{"kitchen"}})
	dave := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "dave"}})

	alice.send(`{"v":1,"type":"publish","room":"lobby","ref":"p1","data":{"text":"hi"}}`)

	// The sender is a member too: it gets the message and the ack, in
	// either order.
	var ack ackData
	var own *core.Envelope
	for range 2 {
		switch env := alice.next(); env.Type {
		case core.TypeAck:
			if env.Ref != "p1" {
				t.Fatalf("ack ref %q, want p1", env.Ref)
			}
			ack = mustUnmarshal[ackData](t, env.Data)
		case core.TypeMessage:
			own = env
		default:
			t.Fatalf("alice got %s", env.Encode())
		}
	}
	if own == nil || ack.ID == "" || ack.Room != "lobby" || own.ID != ack.ID {
		t.Fatalf("ack %+v and own copy %v disagree", ack, own)
	}

	got := bob.expectMessage("lobby", `{"text":"hi"}`)
	if got.ID != ack.ID || got.From != "alice" || got.TS == 0 || got.Ref != "" {
		t.Errorf("bob got %s, want id %s from alice with a timestamp and no ref", got.Encode(), ack.ID)
	}
	for _, c := range []*client{alice, bob, carol, dave} {
		c.expectQuiet()
	}
}

func TestDirectReachesEveryConnectionOfTheUser(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	var uconns []*client
	for range 3 {
		uconns = append(uconns, n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}}))
	}
	other := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "other"}})
	sender := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "sender"}})
	if got := n.Hub().Members(core.UserChannel("u")); got != 3 {
		t.Fatalf("Members(user:u) = %d, want 3", got)
	}

	sender.send(`{"v":1,"type":"direct","to":"u","ref":"d1","data":"psst"}`)
	ack := sender.expectAck("d1")
	if ack.To != "u" || ack.ID == "" {
		t.Fatalf("direct ack %+v, want to=u and an id", ack)
	}
	for i, c := range uconns {
		env := c.expect(core.TypeDirect)
		if env.To != "u" || env.From != "sender" || string(env.Data) != `"psst"` || env.ID != ack.ID {
			t.Errorf("connection %d got %s", i, env.Encode())
		}
	}
	for _, c := range append(uconns, other, sender) {
		c.expectQuiet()
	}

	// A user with no connection here is not an error: another node may
	// have them, and history keeps it for their resume.
	sender.send(`{"v":1,"type":"direct","to":"nobody","ref":"d2","data":1}`)
	sender.expectAck("d2")
}

func TestLeaveAndDisconnectCleanUp(t *testing.T) {
	t.Parallel()
	// In a bubble, synctest.Test also fails if any goroutine the test
	// started (writers, broker consumers) outlives it.
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, core.Config{}, nil)
		a := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "a"}, Rooms: []string{"r1", "r2"}})
		b := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "b"}, Rooms: []string{"r1"}})
		a2 := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "a"}})
		hub := n.Hub()
		check := func(step string, r1, r2, userA, channels, rooms int) {
			t.Helper()
			got := []int{hub.Members(core.RoomChannel("r1")), hub.Members(core.RoomChannel("r2")),
				hub.Members(core.UserChannel("a")), hub.Channels(), hub.Rooms()}
			want := []int{r1, r2, userA, channels, rooms}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: [r1 r2 user:a channels rooms] = %v, want %v", step, got, want)
			}
		}
		check("connected", 2, 1, 2, 5, 2) // room:r1 room:r2 user:a user:b broadcast

		a.send(`{"v":1,"type":"leave","room":"r2","ref":"l"}`)
		a.expectAck("l")
		check("a left r2", 2, 0, 2, 4, 1)
		if a.s.InRoom("r2") || !a.s.InRoom("r1") {
			t.Fatalf("a rooms %v after leaving r2", a.s.Rooms())
		}

		a.s.Close(core.DisconnectNormal)
		a.expectClosed(core.DisconnectNormal)
		check("a closed", 1, 0, 1, 4, 1)

		b.s.Close(core.DisconnectGoingAway)
		b.expectClosed(core.DisconnectGoingAway)
		a2.s.Close(core.DisconnectNormal)
		check("all closed", 0, 0, 0, 0, 0)
		synctest.Wait() // a session is unregistered just after its Done
		if got := n.Stats().Connections; got != 0 {
			t.Fatalf("Stats().Connections = %d, want 0", got)
		}
		// Close is idempotent and the first reason wins.
		a2.s.Close(core.DisconnectInternal)
		if d, _ := a2.tr.Disconnect(); d != core.DisconnectNormal {
			t.Fatalf("second Close changed the disconnect to %v", d)
		}
	})
}

// TestHubConcurrentMembership joins and leaves rooms from many sessions at
// once (one reader goroutine per session, as adapters do) while the
// server publishes, for the race detector and the membership counts.
func TestHubConcurrentMembership(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{RateLimit: -1, SendQueueSize: 4096, SlowConsumer: core.SlowDropOldest}, nil)
	const sessions, rounds = 8, 25
	rooms := []string{"c1", "c2", "c3"}
	clients := make([]*client, sessions)
	for i := range clients {
		clients[i] = n.connect(core.ConnectRequest{Credentials: core.Credentials{User: fmt.Sprintf("u%d", i)}})
	}
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for _, c := range clients {
		wg.Go(func() {
			for r := range rounds {
				room := rooms[r%len(rooms)]
				if err := c.s.Join(context.Background(), room); err != nil {
					errs <- fmt.Errorf("%s join %s: %w", c.s.User(), room, err)
					return
				}
				if r%2 == 1 && r < rounds-len(rooms) {
					if err := c.s.Leave(context.Background(), room); err != nil {
						errs <- fmt.Errorf("%s leave %s: %w", c.s.User(), room, err)
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for r := range rounds {
			env := &core.Envelope{V: 1, Type: core.TypeMessage, Room: rooms[r%len(rooms)], Data: []byte(data(r))}
			if _, err := n.Publish(context.Background(), core.RoomChannel(env.Room), env); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Round r joins rooms[r%3] and leaves it again when r is odd, except
	// in the last three rounds: every session ends in all three rooms.
	for _, room := range rooms {
		if got := n.Hub().Members(core.RoomChannel(room)); got != sessions {
			t.Errorf("Members(%s) = %d, want %d", room, got, sessions)
		}
	}
	for _, c := range clients {
		c.s.Close(core.DisconnectNormal)
	}
	if got := n.Hub().Channels(); got != 0 {
		t.Errorf("Channels() = %d after every session closed, want 0", got)
	}
}

func TestHubBusiest(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	sizes := map[string]int{"a": 3, "b": 1, "c": 5, "e": 2, "d": 2} // d and e tie: by name
	i := 0
	for room, size := range sizes {
		for range size {
			i++
			n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u" + strconv.Itoa(i)}, Rooms: []string{room}})
		}
	}
	got := n.Hub().Busiest(3)
	want := []core.RoomSize{{Room: "c", Members: 5}, {Room: "a", Members: 3}, {Room: "d", Members: 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("Busiest(3) = %v, want %v (user channels are not rooms)", got, want)
	}
	if got := n.Hub().Busiest(0); got != nil {
		t.Fatalf("Busiest(0) = %v", got)
	}
}
