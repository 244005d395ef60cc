package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestRequests sends one envelope per case to a fresh session and checks
// the reply. Every error leaves the connection open.
func TestRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rooms []string // joined at connect
		frame string
		typ   string // reply type
		ref   string
		code  string  // error code when typ is error
		ack   ackData // expected ack data (ID checked for presence only)
	}{
		{"join", nil, `{"v":1,"type":"join","room":"r","ref":"j1"}`, core.TypeAck, "j1", "", ackData{Room: "r"}},
		{"join again is idempotent", []string{"r"}, `{"v":1,"type":"join","room":"r","ref":"j2"}`, core.TypeAck, "j2", "", ackData{Room: "r"}},
		{"join without ref", nil, `{"v":1,"type":"join","room":"r"}`, core.TypeAck, "", "", ackData{Room: "r"}},
		{"join without room", nil, `{"v":1,"type":"join","ref":"j3"}`, core.TypeError, "j3", core.CodeBadRequest, ackData{}},
		{"join invalid room", nil, `{"v":1,"type":"join","room":"no spaces","ref":"j4"}`, core.TypeError, "j4", core.CodeInvalidRoom, ackData{}},
		{"leave", []string{"r"}, `{"v":1,"type":"leave","room":"r","ref":"l1"}`, core.TypeAck, "l1", "", ackData{Room: "r"}},
		{"leave a room never joined", nil, `{"v":1,"type":"leave","room":"r","ref":"l2"}`, core.TypeAck, "l2", "", ackData{Room: "r"}},
		{"leave without room", nil, `{"v":1,"type":"leave","ref":"l3"}`, core.TypeError, "l3", core.CodeBadRequest, ackData{}},
		{"publish", []string{"r"}, `{"v":1,"type":"publish","room":"r","ref":"p0","data":1}`, core.TypeMessage, "", "", ackData{}},
		{"publish to a room not joined", []string{"other"}, `{"v":1,"type":"publish","room":"r","ref":"p1","data":1}`, core.TypeError, "p1", core.CodeNotJoined, ackData{}},
		{"publish without room", nil, `{"v":1,"type":"publish","ref":"p2","data":1}`, core.TypeError, "p2", core.CodeBadRequest, ackData{}},
		{"direct without to", nil, `{"v":1,"type":"direct","ref":"d1","data":1}`, core.TypeError, "d1", core.CodeBadRequest, ackData{}},
		{"direct invalid to", nil, `{"v":1,"type":"direct","to":"a b","ref":"d2","data":1}`, core.TypeError, "d2", core.CodeInvalidUser, ackData{}},
		{"ping", nil, `{"v":1,"type":"ping","ref":"x1"}`, core.TypePong, "x1", "", ackData{}},
		{"unknown type", nil, `{"v":1,"type":"teleport","ref":"u1"}`, core.TypeError, "u1", core.CodeUnknownType, ackData{}},
		{"server-only type", nil, `{"v":1,"type":"welcome","ref":"u2"}`, core.TypeError, "u2", core.CodeUnknownType, ackData{}},
		{"invalid JSON", nil, `{"v":1,"type":`, core.TypeError, "", core.CodeBadRequest, ackData{}},
		{"not an object", nil, `["ping"]`, core.TypeError, "", core.CodeBadRequest, ackData{}},
		{"unknown field keeps the ref", nil, `{"v":1,"type":"ping","ref":"b1","extra":true}`, core.TypeError, "b1", core.CodeBadRequest, ackData{}},
		{"wrong version keeps the ref", nil, `{"v":2,"type":"ping","ref":"b2"}`, core.TypeError, "b2", core.CodeBadRequest, ackData{}},
		{"overlong ref is not echoed", nil, `{"v":2,"type":"ping","ref":"` + strings.Repeat("x", core.MaxRefLen+1) + `"}`, core.TypeError, "", core.CodeBadRequest, ackData{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, core.Config{}, nil)
			c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "requester"}, Rooms: tt.rooms})
			c.send(tt.frame)
			switch tt.typ {
			case core.TypeAck:
				if got := c.expectAck(tt.ref); got != tt.ack {
					t.Errorf("ack data %+v, want %+v", got, tt.ack)
				}
			case core.TypeError:
				d := c.expectError(tt.code, tt.ref)
				if d.Message == "" {
					t.Error("error without a message")
				}
			case core.TypeMessage:
				// The ack and the sender's own copy may arrive in either
				// order: delivery from the broker is asynchronous.
				var gotAck, gotMsg bool
				for !gotAck || !gotMsg {
					env := c.next()
					switch {
					case env.Type == core.TypeAck && !gotAck:
						gotAck = true
						ack := mustUnmarshal[ackData](t, env.Data)
						if env.Ref != "p0" || ack.Room != "r" || ack.ID == "" {
							t.Errorf("publish ack %s", env.Encode())
						}
					case env.Type == core.TypeMessage && !gotMsg:
						gotMsg = true
						if env.Room != "r" || string(env.Data) != "1" {
							t.Errorf("message %s", env.Encode())
						}
					default:
						t.Fatalf("unexpected %s", env.Encode())
					}
				}
			default:
				if env := c.expect(tt.typ); env.Ref != tt.ref {
					t.Errorf("%s ref %q, want %q", tt.typ, env.Ref, tt.ref)
				}
			}
			c.expectQuiet() // still open, nothing else queued
			if c.isClosed() {
				t.Fatal("connection closed")
			}
		})
	}
}

func TestFrameWithSeveralEnvelopes(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "batcher"}})
	c.send("{\"v\":1,\"type\":\"join\",\"room\":\"r\",\"ref\":\"1\"}\n\n{\"v\":1,\"type\":\"nope\",\"ref\":\"2\"}\r\n{\"v\":1,\"type\":\"ping\",\"ref\":\"3\"}\n")
	c.expectAck("1")
	c.expectError(core.CodeUnknownType, "2")
	if env := c.expect(core.TypePong); env.Ref != "3" {
		t.Fatalf("pong ref %q", env.Ref)
	}
	if got := n.Stats().MessagesIn; got != 3 {
		t.Errorf("Stats().MessagesIn = %d, want 3", got)
	}
}

func TestTooManyRooms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		max      int
		join     int
		rejected bool
	}{
		{"at the limit", 2, 2, false},
		{"over the limit", 2, 3, true},
		{"disabled", -1, 150, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, core.Config{MaxRoomsPerConn: tt.max, RateLimit: -1}, nil)
			c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "joiner"}})
			for i := range tt.join {
				ref := fmt.Sprint(i)
				c.send(fmt.Sprintf(`{"v":1,"type":"join","room":"r%d","ref":%q}`, i, ref))
				if tt.rejected && i == tt.join-1 {
					c.expectError(core.CodeTooManyRooms, ref)
				} else {
					c.expectAck(ref)
				}
			}
			want := tt.join
			if tt.rejected {
				want--
			}
			if got := len(c.s.Rooms()); got != want {
				t.Errorf("%d rooms joined, want %d", got, want)
			}
			c.expectQuiet()
		})
	}
}

// slowSetup connects a receiver whose transport is stalled inside its
// first write, plus a healthy member of the same room.
func slowSetup(t *testing.T, policy core.SlowPolicy) (n *testNode, stalled, healthy *client) {
	n = newNode(t, core.Config{SendQueueSize: 4, SlowConsumer: policy}, nil)
	stalled = n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "stalled"}, Rooms: []string{"r"}})
	healthy = n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "healthy"}, Rooms: []string{"r"}})
	stalled.tr.Block()
	n.publish("r", data(0))
	<-stalled.tr.Blocked() // the writer holds message 0 and waits
	healthy.expectMessage("r", data(0))
	return n, stalled, healthy
}

func TestSlowConsumerClose(t *testing.T) {
	t.Parallel()
	n, stalled, healthy := slowSetup(t, core.SlowClose)
	// Messages 1-4 fill the queue of 4; message 5 overflows it. The healthy
	// member reads each one before the next is published, so only the
	// stalled one is slow.
	for i := 1; i <= 5; i++ {
		n.publish("r", data(i))
		healthy.expectMessage("r", data(i))
	}
	stalled.tr.Unblock()
	stalled.expectClosed(core.DisconnectSlow)
	if !core.DisconnectSlow.Reconnect {
		t.Error("4008 must tell clients to reconnect and resume")
	}
	frames, _ := stalled.tr.Envelopes()
	if len(frames) != 2 || string(frames[1].Data) != data(0) {
		t.Errorf("stalled client got %d envelopes (%v), want welcome and message 0 only: the queue is discarded", len(frames), frames)
	}

	n.publish("r", data(6))
	healthy.expectMessage("r", data(6))
	healthy.expectQuiet()
	if got := n.Stats().SlowClosed; got != 1 {
		t.Errorf("Stats().SlowClosed = %d, want 1", got)
	}
	if got := n.Hub().Members(core.RoomChannel("r")); got != 1 {
		t.Errorf("room has %d members after the slow one was closed, want 1", got)
	}
}

func TestSlowConsumerDropOldest(t *testing.T) {
	t.Parallel()
	n, stalled, healthy := slowSetup(t, core.SlowDropOldest)
	for i := 1; i <= 7; i++ {
		n.publish("r", data(i))
		healthy.expectMessage("r", data(i))
	}
	if got := stalled.s.Dropped(); got != 3 {
		t.Fatalf("Dropped() = %d, want 3 (messages 1-3)", got)
	}
	if got := n.Stats().Dropped; got != 3 {
		t.Errorf("Stats().Dropped = %d, want 3", got)
	}
	stalled.tr.Unblock()
	for _, i := range []int{0, 4, 5, 6, 7} {
		stalled.expectMessage("r", data(i))
	}
	stalled.expectQuiet()
	n.publish("r", data(8))
	stalled.expectMessage("r", data(8))
	if stalled.isClosed() {
		t.Fatal("drop-oldest closed the connection")
	}
	if got := stalled.s.Dropped(); got != 3 {
		t.Errorf("Dropped() = %d after recovering, want still 3", got)
	}
}

func TestWriteBatch(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{WriteBatch: 3}, nil)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "batched"}, Rooms: []string{"r"}})
	c.tr.Block()
	n.publish("r", data(0))
	<-c.tr.Blocked()
	for i := 1; i <= 7; i++ {
		n.publish("r", data(i))
	}
	c.tr.Unblock()
	for i := 0; i <= 7; i++ {
		c.expectMessage("r", data(i))
	}
	// welcome, message 0, then 7 queued messages in batches of at most 3.
	if got, want := c.tr.Writes(), 1+1+3; got != want {
		t.Errorf("%d writes, want %d", got, want)
	}
}

func TestSendAndProgrammaticMembership(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "prog"}})
	if c.s.ID() != c.welcome.Conn || c.s.User() != "prog" || c.s.Transport() != "test" {
		t.Fatalf("session id %q user %q transport %q, welcome %+v", c.s.ID(), c.s.User(), c.s.Transport(), c.welcome)
	}
	ctx := context.Background()
	if err := c.s.Join(ctx, "bad room"); core.ErrorCode(err) != core.CodeInvalidRoom {
		t.Fatalf("Join(bad room) = %v", err)
	}
	if err := c.s.Join(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	n.publish("r", data(1))
	c.expectMessage("r", data(1))
	if err := c.s.Send(&core.Envelope{Type: "note", Data: []byte(`"just you"`)}); err != nil {
		t.Fatal(err)
	}
	if env := c.expect("note"); string(env.Data) != `"just you"` {
		t.Fatalf("Send delivered %s", env.Encode())
	}
	if err := c.s.Leave(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	n.publish("r", data(2))
	c.expectQuiet()

	c.s.Close(core.DisconnectNormal)
	if err := c.s.Send(&core.Envelope{Type: "note"}); !errors.Is(err, core.ErrSessionClosed) {
		t.Errorf("Send after Close = %v, want ErrSessionClosed", err)
	}
	if err := c.s.Join(ctx, "r"); !errors.Is(err, core.ErrSessionClosed) {
		t.Errorf("Join after Close = %v, want ErrSessionClosed", err)
	}
	c.send(`{"v":1,"type":"ping"}`) // ignored, no panic
	c.s.Activity()
	if got := n.Hub().Channels(); got != 0 {
		t.Errorf("Channels() = %d after Close, want 0", got)
	}
}

func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d       core.Disconnect
		flushes bool
	}{
		{core.DisconnectNormal, true},
		{core.DisconnectShutdown, true},
		{core.DisconnectGoingAway, false},
		{core.DisconnectInternal, false},
		{core.DisconnectProtocolError, true},
		{core.Disconnect{Code: 1002, Reason: "websocket protocol error: unmasked frame"}, true},
		{core.DisconnectInvalidData, true},
		{core.DisconnectRateLimit, false},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				n := newNode(t, core.Config{}, nil)
				c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"r"}})
				c.tr.Block()
				n.publish("r", data(0))
				<-c.tr.Blocked()
				n.publish("r", data(1))
				n.publish("r", data(2))
				synctest.Wait() // both delivered to the session's queue
				closed := make(chan struct{})
				go func() {
					c.s.Close(tt.d)
					close(closed)
				}()
				synctest.Wait()
				// Close must not return while the writer still holds the
				// transport.
				select {
				case <-closed:
					t.Fatal("Close returned while the writer was blocked")
				default:
				}
				c.tr.Unblock()
				<-closed
				c.expectClosed(tt.d)
				want := 2 // welcome and message 0 (in flight)
				if tt.flushes {
					want = 4
				}
				if frames := c.tr.Frames(); len(frames) != want {
					t.Errorf("%d envelopes written, want %d", len(frames), want)
				}
			})
		})
	}
}

func TestWriteErrorEndsSession(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "gone"}, Rooms: []string{"r"}})
	c.tr.FailWrites(errors.New("broken pipe"))
	n.publish("r", data(1))
	c.expectClosed(core.DisconnectGoingAway)
	if got := n.Hub().Channels(); got != 0 {
		t.Errorf("Channels() = %d, want 0", got)
	}
}

func TestOversizeFrame(t *testing.T) {
	t.Parallel()
	const limit = 256
	n := newNode(t, core.Config{MaxMessageSize: limit}, nil)
	ping := `{"v":1,"type":"ping","ref":"fits"}`
	fits := ping + strings.Repeat(" ", limit-len(ping))
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "big"}})
	c.send(fits)
	if env := c.expect(core.TypePong); env.Ref != "fits" {
		t.Fatalf("pong %s", env.Encode())
	}
	c.send(fits + " ")
	c.expectClosed(core.DisconnectMessageTooLarge)
}

// TestRateLimit runs in a bubble: the clock only moves when the test
// sleeps, so the token bucket refills exactly as computed.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	ping := `{"v":1,"type":"ping"}`
	tests := []struct {
		name   string
		limit  float64
		burst  int
		steps  func(c *client) // what the client does
		closed bool
	}{
		{"burst allowed", 1, 3, func(c *client) {
			for range 3 {
				c.send(ping)
			}
		}, false},
		{"burst exceeded", 1, 3, func(c *client) {
			for range 4 {
				c.send(ping)
			}
		}, true},
		{"refill", 1, 3, func(c *client) {
			for range 3 {
				c.send(ping)
			}
			time.Sleep(2 * time.Second) // two tokens back
			c.send(ping)
			c.send(ping)
		}, false},
		{"refill is bounded by the burst", 1, 3, func(c *client) {
			time.Sleep(time.Hour)
			for range 4 {
				c.send(ping)
			}
		}, true},
		{"every envelope in a frame costs a token", 1, 3, func(c *client) {
			c.send(strings.Repeat(ping+"\n", 4))
		}, true},
		{"transport keep-alives count", 1, 3, func(c *client) {
			for range 4 {
				c.s.Activity()
			}
		}, true},
		{"disabled", -1, 3, func(c *client) {
			for range 1000 {
				c.send(ping)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				n := newNode(t, core.Config{RateLimit: tt.limit, RateBurst: tt.burst, SendQueueSize: 2000, HeartbeatInterval: -1}, nil)
				c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "flood"}})
				tt.steps(c)
				synctest.Wait()
				if tt.closed {
					c.expectClosed(core.DisconnectRateLimit)
					return
				}
				if c.isClosed() {
					d, _ := c.tr.Disconnect()
					t.Fatalf("closed with %v", d)
				}
			})
		})
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	const interval, timeout = 10 * time.Second, 25 * time.Second
	const eps = time.Millisecond
	tests := []struct {
		name      string
		interval  time.Duration
		transport coretest.TransportConfig
		noPinger  bool
		active    bool // the client sends a frame every interval
		// closedAt is when the session must be closed for silence; zero:
		// it must still be open after openFor.
		closedAt time.Duration
		openFor  time.Duration
		pings    int // pings sent by closedAt or openFor
	}{
		{name: "silent bidirectional session times out", interval: interval, closedAt: timeout, pings: 2},
		{name: "silent session without native ping times out", interval: interval, noPinger: true, closedAt: timeout, pings: 0},
		{name: "active session stays open", interval: interval, active: true, openFor: 10 * timeout, pings: 25},
		{name: "unidirectional session is not closed for silence", interval: interval, transport: coretest.TransportConfig{Name: "sse", Unidirectional: true}, openFor: 10 * timeout, pings: 25},
		{name: "disabled", interval: -1, openFor: time.Hour, pings: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				cfg := core.Config{HeartbeatInterval: tt.interval, HeartbeatTimeout: timeout}
				if tt.interval < 0 {
					cfg.HeartbeatTimeout = 0
				}
				n := newNode(t, cfg, nil)
				tr := coretest.NewTransport(tt.transport)
				n.track(tr)
				var ct core.Transport = tr
				if tt.noPinger {
					ct = tr.WithoutPinger()
				}
				start := time.Now()
				s, err := n.Accept(context.Background(), ct, core.ConnectRequest{Credentials: core.Credentials{User: "hb"}})
				if err != nil {
					t.Fatal(err)
				}
				c := &client{t: t, s: s, tr: tr}
				c.expect(core.TypeWelcome)

				end := tt.closedAt
				if end == 0 {
					end = tt.openFor
				}
				// Step one interval at a time, checking the ping count
				// just after each interval.
				step := interval
				for elapsed := step; elapsed < end; elapsed += step {
					time.Sleep(time.Until(start.Add(elapsed + eps)))
					synctest.Wait()
					if c.isClosed() {
						d, _ := tr.Disconnect()
						t.Fatalf("closed with %v after %v", d, time.Since(start))
					}
					if tt.active {
						c.send(`{"v":1,"type":"ping"}`)
					}
					if tt.interval > 0 && !tt.noPinger {
						if got, want := tr.Pings(), int(elapsed/interval); got != want {
							t.Fatalf("after %v: %d pings, want %d", elapsed+eps, got, want)
						}
					}
				}
				if tt.closedAt > 0 {
					time.Sleep(time.Until(start.Add(tt.closedAt - eps)))
					synctest.Wait()
					if c.isClosed() {
						t.Fatalf("closed before HeartbeatTimeout, at %v", time.Since(start))
					}
					time.Sleep(2 * eps)
					synctest.Wait()
					if !c.isClosed() {
						t.Fatalf("still open %v after connecting", time.Since(start))
					}
					c.expectClosed(core.DisconnectHeartbeat)
				} else {
					time.Sleep(time.Until(start.Add(tt.openFor + eps)))
					synctest.Wait()
					if c.isClosed() {
						t.Fatal("closed for silence")
					}
				}
				if got := tr.Pings(); got != tt.pings {
					t.Errorf("%d pings, want %d", got, tt.pings)
				}
			})
		})
	}
}

// TestQueueDepthAndLagMetrics: Metrics reports the envelopes waiting in
// send queues (total and longest) and how late the newest broker delivery
// was.
func TestQueueDepthAndLagMetrics(t *testing.T) {
	t.Parallel()
	n, stalled, healthy := slowSetup(t, core.SlowClose)
	for i := 1; i <= 2; i++ {
		n.publish("r", data(i))
		healthy.expectMessage("r", data(i))
	}
	// Message 3 was accepted 300 ms before it reaches the broker: the node
	// sees it that late.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", TS: time.Now().Add(-300 * time.Millisecond).UnixMilli(), Data: json.RawMessage(data(3))}
	if _, err := n.Publish(ctx, core.RoomChannel("r"), env); err != nil {
		t.Fatal(err)
	}
	healthy.expectMessage("r", data(3))
	m := n.Metrics()
	if m.Queued != 3 || m.MaxQueued != 3 {
		t.Errorf("Queued, MaxQueued = %d, %d; want 3, 3 (the stalled writer holds message 0, 1-3 wait)", m.Queued, m.MaxQueued)
	}
	if m.BrokerLag < 300*time.Millisecond || m.BrokerLag > 5*time.Second {
		t.Errorf("BrokerLag = %v, want about 300ms", m.BrokerLag)
	}
	stalled.tr.Unblock()
	for i := 0; i <= 3; i++ {
		stalled.expectMessage("r", data(i))
	}
	if m := n.Metrics(); m.Queued != 0 || m.MaxQueued != 0 {
		t.Errorf("after draining: Queued, MaxQueued = %d, %d; want 0, 0", m.Queued, m.MaxQueued)
	}
}
