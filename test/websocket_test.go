package test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

func TestWelcomeAndRoomBroadcast(t *testing.T) {
	e := startEdge(t, nil)
	alice, w := connect(t, e.url(q("user", "alice", "rooms", "lobby")))
	if w.User != "alice" || len(w.Rooms) != 1 || w.Rooms[0] != "lobby" || w.Conn == "" || w.Recovered != nil {
		t.Fatalf("welcome = %+v", w)
	}
	bob, _ := connect(t, e.url(q("user", "bob", "rooms", "lobby")))
	carol, _ := connect(t, e.url(q("user", "carol", "rooms", "elsewhere")))

	alice.send(`{"v":1,"type":"publish","room":"lobby","data":"hi","ref":"p1"}`)
	ack, own := alice.ackAnd(core.TypeMessage)
	var ad struct{ Room, ID string }
	_ = json.Unmarshal(ack.Data, &ad)
	if ack.Ref != "p1" || ad.Room != "lobby" || ad.ID == "" {
		t.Fatalf("ack = %s", ack.Encode())
	}
	for _, m := range []*core.Envelope{own, bob.expect(core.TypeMessage)} {
		if m.Room != "lobby" || m.From != "alice" || m.ID != ad.ID || m.TS == 0 || dataString(t, m) != "hi" {
			t.Fatalf("message = %s", m.Encode())
		}
	}
	// Carol is not in lobby: the next thing she receives is her own
	// publication, which the broker ordered after alice's.
	carol.send(`{"v":1,"type":"publish","room":"elsewhere","data":"marker"}`)
	if _, m := carol.ackAnd(core.TypeMessage); dataString(t, m) != "marker" {
		t.Fatalf("carol got %s", m.Encode())
	}
}

func TestFromIsSetByServer(t *testing.T) {
	e := startEdge(t, nil)
	a, _ := connect(t, e.url(q("user", "alice", "rooms", "r")))
	a.send(`{"v":1,"type":"publish","room":"r","from":"mallory","data":1}`)
	if _, m := a.ackAnd(core.TypeMessage); m.From != "alice" {
		t.Fatalf("from = %q, want the authenticated user", m.From)
	}
}

func TestDirectReachesEveryTab(t *testing.T) {
	e := startEdge(t, nil)
	var tabs []*client
	for i := 0; i < 3; i++ {
		c, _ := connect(t, e.url(q("user", "dana")))
		tabs = append(tabs, c)
	}
	other, _ := connect(t, e.url(q("user", "erin")))
	sender, _ := connect(t, e.url(q("user", "sam")))
	sender.send(`{"v":1,"type":"direct","to":"dana","data":{"text":"psst"},"ref":"d1"}`)
	ack := sender.expect(core.TypeAck)
	if ack.Ref != "d1" {
		t.Fatalf("ack = %s", ack.Encode())
	}
	for i, c := range tabs {
		m := c.expect(core.TypeDirect)
		if m.To != "dana" || m.From != "sam" || string(m.Data) != `{"text":"psst"}` || m.ID == "" {
			t.Fatalf("tab %d got %s", i, m.Encode())
		}
	}
	// Each tab got it exactly once, and erin not at all: a second direct
	// to erin is the next envelope each of them sees.
	sender.send(`{"v":1,"type":"direct","to":"erin","data":"only you"}`)
	sender.expect(core.TypeAck)
	if m := other.expect(core.TypeDirect); dataString(t, m) != "only you" {
		t.Fatalf("erin got %s", m.Encode())
	}
	for _, c := range tabs {
		c.ping()
	}
}

func TestJoinLeaveAcks(t *testing.T) {
	e := startEdge(t, nil)
	c, _ := connect(t, e.url(q("user", "u1")))
	c.send(`{"v":1,"type":"join","room":"news","ref":"j1"}`)
	if ack := c.expect(core.TypeAck); ack.Ref != "j1" || !strings.Contains(string(ack.Data), `"news"`) {
		t.Fatalf("join ack = %s", ack.Encode())
	}
	c.send(`{"v":1,"type":"publish","room":"news","data":"x","ref":"p"}`)
	c.ackAnd(core.TypeMessage)
	c.send(`{"v":1,"type":"leave","room":"news","ref":"l1"}`)
	if ack := c.expect(core.TypeAck); ack.Ref != "l1" {
		t.Fatalf("leave ack = %s", ack.Encode())
	}
	c.send(`{"v":1,"type":"publish","room":"news","data":"x","ref":"p2"}`)
	c.expectError(core.CodeNotJoined, "p2")
	eventually(t, "room cleanup", func() bool { return e.stats(t).Rooms == 0 })
}

func TestResumeWithSince(t *testing.T) {
	e := startEdge(t, nil)
	pub, _ := connect(t, e.url(q("user", "pub", "rooms", "feed")))
	sub, _ := connect(t, e.url(q("user", "sub", "rooms", "feed")))

	publish := func(data string) {
		pub.send(fmt.Sprintf(`{"v":1,"type":"publish","room":"feed","data":%q}`, data))
		pub.ackAnd(core.TypeMessage)
	}
	publish("m1")
	publish("m2")
	last := sub.expect(core.TypeMessage)
	if dataString(t, last) != "m1" {
		t.Fatalf("got %s", last.Encode())
	}
	last = sub.expect(core.TypeMessage)
	_ = sub.conn.Close()
	<-sub.done

	publish("m3")
	publish("m4")
	// A direct message while away is part of the resume too.
	pub.send(`{"v":1,"type":"direct","to":"sub","data":"d1"}`)
	pub.expect(core.TypeAck)

	back, w := connect(t, e.url(q("user", "sub", "rooms", "feed,feed", "since", last.ID))) // listed twice: replayed once
	if w.Recovered == nil || !*w.Recovered {
		t.Fatalf("welcome = %+v, want recovered:true", w)
	}
	for _, want := range []string{"m3", "m4", "d1"} {
		if got := dataString(t, back.next()); got != want {
			t.Fatalf("resumed %q, want %q", got, want)
		}
	}
	publish("m5") // live, with no duplicate or gap at the seam
	if got := dataString(t, back.expect(core.TypeMessage)); got != "m5" {
		t.Fatalf("live %q, want m5", got)
	}

	// A position the server cannot vouch for: recovered:false.
	_, w = connect(t, e.url(q("user", "sub", "rooms", "feed", "since", "nope-1")))
	if w.Recovered == nil || *w.Recovered {
		t.Fatalf("welcome = %+v, want recovered:false", w)
	}
}

func TestBadInputKeepsConnection(t *testing.T) {
	e := startEdge(t, nil)
	c, _ := connect(t, e.url(q("user", "u")))
	other, _ := connect(t, e.url(q("user", "v")))
	cases := []struct {
		frame, code, ref string
	}{
		{`{not json`, core.CodeBadRequest, ""},
		{`{"v":1,"type":"publish","room":"r","ref":"x1","bogus":1}`, core.CodeBadRequest, "x1"},
		{`{"v":2,"type":"ping","ref":"x2"}`, core.CodeBadRequest, "x2"},
		{`{"v":1,"type":"dance","ref":"x3"}`, core.CodeUnknownType, "x3"},
		{`{"v":1,"type":"join","room":"bad room!","ref":"x4"}`, core.CodeInvalidRoom, "x4"},
		{`{"v":1,"type":"publish","room":"never-joined","data":1,"ref":"x5"}`, core.CodeNotJoined, "x5"},
		{`{"v":1,"type":"direct","data":1,"ref":"x6"}`, core.CodeBadRequest, "x6"},
		{`[1,2]`, core.CodeBadRequest, ""},
	}
	for _, tc := range cases {
		c.send(tc.frame)
		msg := c.expectError(tc.code, tc.ref)
		if msg == "" {
			t.Errorf("%s: empty error message", tc.frame)
		}
	}
	c.ping()
	other.ping()
	if s := e.stats(t); s.Errors < uint64(len(cases)) || s.Connections != 2 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestBatchedFrameIn(t *testing.T) {
	e := startEdge(t, nil)
	c, _ := connect(t, e.url(q("user", "u")))
	c.send(`{"v":1,"type":"join","room":"a","ref":"1"}` + "\n" + `{"v":1,"type":"ping","ref":"2"}`)
	if a := c.expect(core.TypeAck); a.Ref != "1" {
		t.Fatal(a.Encode())
	}
	if p := c.expect(core.TypePong); p.Ref != "2" {
		t.Fatal(p.Encode())
	}
}

func TestLimitsClose(t *testing.T) {
	t.Run("oversize 4003", func(t *testing.T) {
		e := startEdge(t, func(c *config.Config) { c.Node.MaxMessageSize = 1024 })
		c, _ := connect(t, e.url(q("user", "big")))
		other, _ := connect(t, e.url(q("user", "ok")))
		c.send(`{"v":1,"type":"ping","data":"` + strings.Repeat("x", 2000) + `"}`)
		if code := c.closed(); code != 4003 {
			t.Fatalf("close code %d, want 4003", code)
		}
		other.ping()
	})
	t.Run("flood 4002", func(t *testing.T) {
		// A refill too slow to matter during the test: the flood trips
		// the limit however slowly a loaded machine sends it.
		e := startEdge(t, func(c *config.Config) { c.Node.RateLimit, c.Node.RateBurst = 1e-6, 20 })
		c, _ := connect(t, e.url(q("user", "flood")))
		other, _ := connect(t, e.url(q("user", "ok")))
		for i := 0; i < 200; i++ {
			if err := c.conn.WriteMessage(1, []byte(`{"v":1,"type":"ping"}`)); err != nil {
				break // the server may already have closed
			}
		}
		if code := c.closed(); code != 4002 {
			t.Fatalf("close code %d, want 4002", code)
		}
		other.ping()
	})
}

func token(t *testing.T, secret, sub string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: sub, ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	const secret = "0123456789abcdef-test-secret"
	e := startEdge(t, func(c *config.Config) { c.Auth.Secret = []byte(secret) })
	hour := time.Now().Add(time.Hour)
	cases := []struct {
		name  string
		query string
		opts  []dialOpt
		code  int
		user  string
	}{
		{"valid token", q("token", token(t, secret, "alice", hour)), nil, 0, "alice"},
		{"bearer header", "", []dialOpt{withHeader("Authorization", "Bearer "+token(t, secret, "bob", hour))}, 0, "bob"},
		{"claimed user is ignored", q("token", token(t, secret, "carol", hour), "user", "admin"), nil, 0, "carol"},
		{"missing", q("user", "alice"), nil, 4001, ""},
		{"wrong secret", q("token", token(t, "another-secret-0123456789", "alice", hour)), nil, 4001, ""},
		{"expired", q("token", token(t, secret, "alice", time.Now().Add(-time.Hour))), nil, 4001, ""},
		{"garbage", q("token", "not.a.jwt"), nil, 4001, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, e.url(tc.query), tc.opts...).read()
			if tc.code != 0 {
				if code := c.closed(); code != tc.code {
					t.Fatalf("close code %d, want %d", code, tc.code)
				}
				return
			}
			var w welcome
			_ = json.Unmarshal(c.expect(core.TypeWelcome).Data, &w)
			if w.User != tc.user {
				t.Fatalf("user %q, want %q", w.User, tc.user)
			}
		})
	}
	if strings.Contains(e.logs.String(), token(t, secret, "alice", hour)[:40]) {
		t.Fatal("a token appeared in the logs")
	}
}

// TestHeartbeat: the edge's heartbeat settings reach the WebSocket
// transport, so a client that ignores the server's pings (and sends
// nothing) is dropped with 4009 and its session cleaned up. That a client
// answering pings outlives the timeout is timing, tested with a fake clock
// in core (TestHeartbeat, "active session stays open") and over the wire
// by the adapter suite (adaptertest HeartbeatKeepsAlive): here it would
// race the machine's load.
func TestHeartbeat(t *testing.T) {
	e := startEdge(t, func(c *config.Config) {
		c.Node.HeartbeatInterval, c.Node.HeartbeatTimeout = 200*time.Millisecond, time.Second
	})
	silent := dial(t, e.url(q("user", "silent", "rooms", "hb")))
	silent.conn.SetPingHandler(func(string) error { return nil })
	silent.read()
	if code := silent.closed(); code != 4009 {
		t.Fatalf("close code %d, want 4009", code)
	}
	eventually(t, "silent session cleaned up", func() bool {
		s := e.stats(t)
		return s.Connections == 0 && s.Rooms == 0
	})
	if e.srv.Node().Hub().Members(core.RoomChannel("hb")) != 0 {
		t.Fatal("silent client still in the room")
	}
}

func TestStalledReaderDoesNotSlowOthers(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.WriteTimeout = time.Second })
	// The stalled client never reads and has a tiny receive window.
	stalled := dial(t, e.url(q("user", "stalled", "rooms", "busy")), withRcvBuf(4096))
	if _, _, err := stalled.conn.ReadMessage(); err != nil { // the welcome: it has joined
		t.Fatal(err)
	}
	reader, _ := connect(t, e.url(q("user", "reader", "rooms", "busy")))

	// A backend publishes 2000 x 8 KB (more than the kernel's socket
	// buffers and the 256-message queue hold) in windows of 100; the reader
	// must get every window, in order, while the stalled client's queue
	// overflows.
	node := e.srv.Node()
	payload := strings.Repeat("x", 8<<10)
	for w := 0; w < 20; w++ {
		for i := w * 100; i < (w+1)*100; i++ {
			env := &core.Envelope{V: 1, Type: core.TypeMessage, Room: "busy", From: "backend",
				Data: []byte(fmt.Sprintf(`"%d %s"`, i, payload))}
			ctx, cancel := contextWithTimeout(waitFor)
			if _, err := node.Publish(ctx, core.RoomChannel("busy"), env); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			cancel()
		}
		for i := w * 100; i < (w+1)*100; i++ {
			var seq int
			fmt.Sscanf(dataString(t, reader.expect(core.TypeMessage)), "%d", &seq)
			if seq != i {
				t.Fatalf("reader got message %d, want %d", seq, i)
			}
		}
	}
	// The stalled client is dropped: by the slow-consumer policy (4008)
	// when its queue overflows first, or by the write deadline when a
	// busy machine publishes slower than the deadline runs out. Either
	// way only the reader is left.
	eventually(t, "stalled client dropped", func() bool {
		return e.stats(t).Connections == 1
	})
	reader.ping()
}

func TestShutdownDrainsWith1012(t *testing.T) {
	e := startEdge(t, nil)
	a, _ := connect(t, e.url(q("user", "a", "rooms", "r")))
	b, _ := connect(t, e.url(q("user", "b", "rooms", "r")))
	a.send(`{"v":1,"type":"publish","room":"r","data":"last words"}`)
	a.ackAnd(core.TypeMessage)
	ctx, cancel := contextWithTimeout(waitFor)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if m := b.expect(core.TypeMessage); dataString(t, m) != "last words" {
		t.Fatalf("b got %s", m.Encode())
	}
	for _, c := range []*client{a, b} {
		if code := c.closed(); code != 1012 {
			t.Fatalf("close code %d, want 1012", code)
		}
	}
	if err := e.srv.Shutdown(ctx); err != nil { // idempotent
		t.Fatalf("second shutdown: %v", err)
	}
	if _, err := tryDial(t, e.url(q("user", "late"))); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
}

func TestHTTPEndpoints(t *testing.T) {
	e := startEdge(t, nil)
	var h map[string]string
	if code := getJSON(t, "http://"+e.addr+"/healthz", &h); code != 200 || h["status"] != "ok" {
		t.Fatalf("healthz %d %v", code, h)
	}
	if code := getJSON(t, "http://"+e.addr+"/readyz", &h); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	c, _ := connect(t, e.url(q("user", "s", "rooms", "a,b")))
	c.send(`{"v":1,"type":"publish","room":"a","data":1}`)
	c.ackAnd(core.TypeMessage)
	// messages_out counts after the write returns, which may be after the
	// client has read the frame.
	eventually(t, "messages_out to count welcome, ack and message", func() bool { return e.stats(t).MessagesOut >= 3 })
	s := e.stats(t)
	if s.Connections != 1 || s.Rooms != 2 || s.MessagesIn != 1 || s.MessagesOut < 3 || s.Published != 1 || s.Goroutines == 0 || s.HeapBytes == 0 || s.UptimeSeconds <= 0 {
		t.Fatalf("stats = %+v", s)
	}
	// A plain GET on /ws is told to upgrade.
	var body map[string]map[string]string
	if code := getJSON(t, "http://"+e.addr+"/ws", &body); code != 426 || body["error"]["code"] != "upgrade_required" {
		t.Fatalf("GET /ws = %d %v", code, body)
	}
}

func TestConnectDisconnectLogged(t *testing.T) {
	e := startEdge(t, nil)
	c, _ := connect(t, e.url(q("user", "logme")))
	_ = c.conn.Close()
	eventually(t, "disconnect log", func() bool { return len(e.logs.lines("disconnect")) == 1 })
	for _, msg := range []string{"connect", "disconnect"} {
		l := e.logs.lines(msg)[0]
		if l["user"] != "logme" || l["transport"] != "websocket" || !strings.HasPrefix(l["remote"].(string), "127.0.0.1:") {
			t.Fatalf("%s log = %v", msg, l)
		}
	}
	if d, _ := e.logs.lines("disconnect")[0]["duration"].(string); d == "" {
		t.Fatal("disconnect log has no duration")
	}
	if code := e.logs.lines("disconnect")[0]["code"]; code != float64(1001) {
		t.Fatalf("dropped socket logged code %v, want 1001", code)
	}
	// A clean close by the client is logged with the client's code.
	c2, _ := connect(t, e.url(q("user", "polite")))
	_ = c2.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second))
	eventually(t, "second disconnect log", func() bool { return len(e.logs.lines("disconnect")) == 2 })
	if l := e.logs.lines("disconnect")[1]; l["user"] != "polite" || l["code"] != float64(1000) {
		t.Fatalf("clean close logged as %v", l)
	}
}

func TestOriginAllowlist(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.AllowedOrigins = []string{"https://app.example"} })
	if _, err := tryDial(t, e.url(q("user", "x")), withHeader("Origin", "https://evil.example")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("forged origin: err = %v, want HTTP 403", err)
	}
	connect(t, e.url(q("user", "x")), withHeader("Origin", "https://app.example"))
	connect(t, e.url(q("user", "y"))) // no Origin: not a browser
}

func TestBadRoomsAtConnect(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.Node.MaxRoomsPerConn = 3 })
	c, w := connect(t, e.url(q("user", "u", "rooms", "good,bad room,good,also-good")))
	if len(w.Rooms) != 2 {
		t.Fatalf("welcome rooms = %v, want the two valid ones", w.Rooms)
	}
	c.expectError(core.CodeInvalidRoom, "")
	c.ping()

	// A hostile list: one too_many_rooms error, not one reply per name.
	c, w = connect(t, e.url(q("user", "v", "rooms", strings.Repeat("x,", 500)+"a,b,c,d")))
	if len(w.Rooms) != 3 {
		t.Fatalf("welcome rooms = %v, want the first three valid ones", w.Rooms)
	}
	c.expectError(core.CodeTooManyRooms, "")
	c.ping()
}

// TestResumePolicyStalledReader: a WebSocket client stops reading while 8
// MB are published to a room under the resume policy. Its queue overflows,
// the room is paused, and once the client reads again it gets every
// message, in order, exactly once, replayed from the log.
func TestResumePolicyStalledReader(t *testing.T) {
	e := startEdge(t, func(c *config.Config) {
		c.Node.SendQueueSize = 16
		c.Node.RoomPolicies = []core.RoomPolicy{{Pattern: "log:*", Policy: core.SlowResume}}
		c.Broker.Memory.HistorySize = 2000
		c.Node.HistoryLimit = 2000
	})
	// Not reading yet. The receive buffer is bounded (256 KiB) so the server's
	// writes stall, yet large enough that the window is usable once the
	// client reads (a tiny SO_RCVBUF clamps the window for the connection's
	// life and the catch-up would crawl on zero-window probes).
	slow := dial(t, e.url(q("user", "slow", "rooms", "log:a")), withRcvBuf(256<<10))
	// Read the welcome by hand (no reader goroutine yet): once it is here
	// the session has joined the room, so every publication below is its.
	if _, m, err := slow.conn.ReadMessage(); err != nil || !strings.Contains(string(m), `"welcome"`) {
		t.Fatalf("welcome: %s %v", m, err)
	}
	node := e.srv.Node()
	const n = 1000
	payload := strings.Repeat("x", 8<<10)
	for i := 0; i < n; i++ {
		env := &core.Envelope{V: 1, Type: core.TypeMessage, Room: "log:a", From: "backend",
			Data: []byte(fmt.Sprintf(`"%d %s"`, i, payload))}
		ctx, cancel := contextWithTimeout(waitFor)
		if _, err := node.Publish(ctx, core.RoomChannel("log:a"), env); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		cancel()
	}
	if s := e.stats(t); s.ResumeGaps == 0 {
		t.Fatalf("stats %+v: the stalled reader's room was never paused (publish more?)", s)
	}
	slow.read()
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs)
		}
	}()
	for i := 0; i < n; i++ {
		env := slow.expect(core.TypeMessage)
		var seq int
		fmt.Sscanf(dataString(t, env), "%d", &seq)
		if seq != i {
			t.Fatalf("got message %d, want %d", seq, i)
		}
	}
	slow.ping()
	if s := e.stats(t); s.SlowClosed != 0 || s.ResumeGapsLost != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v: nothing should be lost or closed", s)
	}
}
