package core_test

import (
	"encoding/json"
	"testing"
	"testing/synctest"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// stalled connects a client to room and stalls its transport on the first
// message, so everything published after that meets a full queue.
func stalled(t *testing.T, n *testNode, room string) *client {
	t.Helper()
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "slow"}, Rooms: []string{room}})
	c.tr.Block()
	n.publish(room, data(0))
	<-c.tr.Blocked()
	return c
}

// TestSlowPolicies runs one deliberately stalled reader per policy. The
// queue holds 4; 20 messages follow the one stuck in the transport.
func TestSlowPolicies(t *testing.T) {
	t.Parallel()
	rules := []core.RoomPolicy{
		{Pattern: "ticker:*", Policy: core.SlowConflate},
		{Pattern: "lossy:*", Policy: core.SlowDropOldest},
		{Pattern: "log:*", Policy: core.SlowResume},
	}
	t.Run("conflate keeps the newest per room", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := newNode(t, core.Config{SendQueueSize: 4, RoomPolicies: rules}, nil)
			c := stalled(t, n, "ticker:x")
			for i := 1; i <= 20; i++ {
				n.publish("ticker:x", data(i))
			}
			c.tr.Unblock()
			c.expectMessage("ticker:x", data(0))
			c.expectMessage("ticker:x", data(20))
			c.expectQuiet()
			if s := n.Stats(); s.Conflated != 19 || s.SlowClosed != 0 {
				t.Fatalf("stats %+v, want 19 conflated", s)
			}
		})
	})
	t.Run("drop-oldest by room pattern", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := newNode(t, core.Config{SendQueueSize: 4, RoomPolicies: rules}, nil)
			c := stalled(t, n, "lossy:x")
			for i := 1; i <= 20; i++ {
				n.publish("lossy:x", data(i))
			}
			c.tr.Unblock()
			c.expectMessage("lossy:x", data(0))
			for i := 17; i <= 20; i++ { // the newest four survive
				c.expectMessage("lossy:x", data(i))
			}
			c.expectQuiet()
			if s := n.Stats(); s.Dropped != 16 {
				t.Fatalf("stats %+v, want 16 dropped", s)
			}
		})
	})
	t.Run("close is the default", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := newNode(t, core.Config{SendQueueSize: 4, RoomPolicies: rules}, nil)
			c := stalled(t, n, "plain")
			for i := 1; i <= 5; i++ {
				n.publish("plain", data(i))
			}
			c.tr.Unblock()
			c.expectClosed(core.DisconnectSlow)
			if s := n.Stats(); s.SlowClosed != 1 {
				t.Fatalf("stats %+v, want 1 slow close", s)
			}
		})
	})
	t.Run("resume replays from the log, nothing lost", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := newNode(t, core.Config{SendQueueSize: 4, RoomPolicies: rules}, nil)
			c := stalled(t, n, "log:x")
			other := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "fast"}, Rooms: []string{"log:x"}})
			for i := 1; i <= 20; i++ {
				n.publish("log:x", data(i))
			}
			c.tr.Unblock()
			for i := 0; i <= 20; i++ {
				c.expectMessage("log:x", data(i))
			}
			c.expectQuiet()
			for i := 1; i <= 20; i++ {
				other.expectMessage("log:x", data(i))
			}
			// The fast client has a 4-message queue too and may be paused
			// for a moment as well, so at least one pause, nothing lost.
			if s := n.Stats(); s.ResumeGaps < 1 || s.ResumeGapsLost != 0 || s.SlowClosed != 0 || s.Dropped != 0 {
				t.Fatalf("stats %+v, want a resume gap and nothing lost", s)
			}
			// Live delivery continues after the replay.
			n.publish("log:x", data(21))
			c.expectMessage("log:x", data(21))
		})
	})
	t.Run("resume far past HistoryLimit pages, nothing lost", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			// 40 missed, pages of 3: the replay takes many pages and
			// live traffic goes on meanwhile; no gap, nothing twice.
			n := newNode(t, core.Config{SendQueueSize: 4, HistoryLimit: 3, RoomPolicies: rules}, nil)
			c := stalled(t, n, "log:x")
			for i := 1; i <= 40; i++ {
				n.publish("log:x", data(i))
			}
			c.tr.Unblock()
			for i := 0; i <= 30; i++ {
				c.expectMessage("log:x", data(i))
			}
			for i := 41; i <= 45; i++ {
				n.publish("log:x", data(i))
			}
			for i := 31; i <= 45; i++ {
				c.expectMessage("log:x", data(i))
			}
			c.expectQuiet()
			if s := n.Stats(); s.ResumeGapsLost != 0 || s.SlowClosed != 0 {
				t.Fatalf("stats %+v, want nothing lost", s)
			}
		})
	})
	t.Run("resume beyond retention says recovered false", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := newNode(t, core.Config{SendQueueSize: 4, RoomPolicies: rules}, newMemory(t, memory.Config{HistorySize: 5}))
			c := stalled(t, n, "log:x")
			for i := 1; i <= 20; i++ {
				n.publish("log:x", data(i))
			}
			c.tr.Unblock()
			for i := 0; i <= 4; i++ { // in flight and queued
				c.expectMessage("log:x", data(i))
			}
			// The gap where it is: before what the log still holds.
			env := c.expect(core.TypeGap)
			var d struct{ Recovered *bool }
			if err := json.Unmarshal(env.Data, &d); err != nil || d.Recovered == nil || *d.Recovered {
				t.Fatalf("gap envelope %s", env.Encode())
			}
			for i := 16; i <= 20; i++ {
				c.expectMessage("log:x", data(i))
			}
			c.expectQuiet()
			if s := n.Stats(); s.ResumeGapsLost != 1 {
				t.Fatalf("stats %+v, want one lost gap", s)
			}
		})
	})
}

func TestRoomPolicyValidation(t *testing.T) {
	t.Parallel()
	for _, rp := range []core.RoomPolicy{{Pattern: "[", Policy: core.SlowClose}, {Pattern: "", Policy: core.SlowClose}, {Pattern: "a*", Policy: core.SlowPolicy(9)}} {
		if _, err := core.NewNode(core.Config{RoomPolicies: []core.RoomPolicy{rp}}, nopBroker{}, quiet); err == nil {
			t.Errorf("rule %+v accepted", rp)
		}
	}
	for _, name := range []string{"close", "drop-oldest", "conflate", "resume"} {
		p, err := core.ParseSlowPolicy(name)
		if err != nil || p.String() != name {
			t.Errorf("ParseSlowPolicy(%q) = %v, %v", name, p, err)
		}
	}
}

// TestSlowPoliciesKeepIDsIncreasing: whatever the policies do, a client
// receives broker messages in increasing id order (so its last id is a
// sound since), and one room's policy never drops another room's message.
func TestSlowPoliciesKeepIDsIncreasing(t *testing.T) {
	t.Parallel()
	rules := []core.RoomPolicy{
		{Pattern: "ticker:*", Policy: core.SlowConflate},
		{Pattern: "lossy:*", Policy: core.SlowDropOldest},
		{Pattern: "log:*", Policy: core.SlowResume},
	}
	t.Run("conflate moves the newest to the tail", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := newNode(t, core.Config{SendQueueSize: 8, RoomPolicies: rules}, nil)
			c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"ticker:x", "chat"}})
			c.tr.Block()
			n.publish("chat", data(0))
			<-c.tr.Blocked()
			n.publish("ticker:x", data(1))
			n.publish("chat", data(2))
			n.publish("ticker:x", data(3))
			n.publish("chat", data(4))
			c.tr.Unblock()
			c.expectMessage("chat", data(0))
			c.expectMessage("chat", data(2))
			c.expectMessage("ticker:x", data(3))
			c.expectMessage("chat", data(4))
			c.expectQuiet()
		})
	})
	t.Run("drop-oldest drops only its own room", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := newNode(t, core.Config{SendQueueSize: 4, RoomPolicies: rules}, nil)
			c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"lossy:x", "log:y"}})
			c.tr.Block()
			n.publish("lossy:x", data(0))
			<-c.tr.Blocked()
			n.publish("log:y", data(1))
			for i := 2; i <= 10; i++ {
				n.publish("lossy:x", data(i))
			}
			c.tr.Unblock()
			c.expectMessage("lossy:x", data(0))
			c.expectMessage("log:y", data(1)) // not evicted by lossy's overflow
			for i := 8; i <= 10; i++ {
				c.expectMessage("lossy:x", data(i))
			}
			c.expectQuiet()
		})
	})
	t.Run("resume pauses every room, so the replay stays in order", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := newNode(t, core.Config{SendQueueSize: 4, RoomPolicies: rules}, nil)
			c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"log:a", "chat"}})
			c.tr.Block()
			n.publish("log:a", data(0))
			<-c.tr.Blocked()
			for i := 1; i <= 12; i++ {
				room := "log:a"
				if i%2 == 0 {
					room = "chat"
				}
				n.publish(room, data(i))
			}
			c.tr.Unblock()
			for i := 0; i <= 12; i++ {
				room := "log:a"
				if i%2 == 0 && i > 0 {
					room = "chat"
				}
				c.expectMessage(room, data(i))
			}
			c.expectQuiet()
		})
	})
}
