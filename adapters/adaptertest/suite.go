package adaptertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// Bounds of the suite. Generous: they matter only when something is
// broken, and CI machines are slow under -race.
const (
	// waitFor bounds every wait for an envelope, a close or a cleanup.
	waitFor = 10 * time.Second
	// The silent-client subtest's node settings: short, so a silent
	// client is dropped quickly.
	heartbeatInterval = 100 * time.Millisecond
	heartbeatTimeout  = 400 * time.Millisecond
	// The keep-alive subtest's: a timeout long compared with any stall of
	// a loaded machine, so only a keep-alive that never reaches core (not
	// a slow client) ends the healthy connection, and pings frequent
	// enough that many span it.
	keepAliveInterval = 200 * time.Millisecond
	keepAliveTimeout  = 3 * time.Second
)

type suite struct {
	h   Harness
	run string
	seq atomic.Uint64
}

func newSuite(h Harness) *suite {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return &suite{h: h, run: hex.EncodeToString(rnd[:])}
}

// name returns a room or user name unique to this run and call.
func (s *suite) name(kind string) string {
	return fmt.Sprintf("%s-%s-%d", kind, s.run, s.seq.Add(1))
}

// env is one subtest's node and adapter.
type env struct {
	s    *suite
	node *core.Node
	dial Dialer
}

// start builds a node with cfg on a memory broker and mounts the adapter.
func (s *suite) start(t *testing.T, cfg core.Config) *env {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatalf("memory broker: %v", err)
	}
	cfg.Authenticator = authn
	node, err := core.NewNode(cfg, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("core.NewNode: %v", err)
	}
	dial := s.h.Start(t, Server{Node: node})
	if dial == nil {
		t.Fatal("adaptertest: Harness.Start returned a nil Dialer")
	}
	// Registered after Start, so it runs before the harness's cleanups.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	return &env{s: s, node: node, dial: dial}
}

// connect dials and fails the test if that fails. The client is closed
// when the test ends.
func (e *env) connect(t *testing.T, o ConnectOpts) Client {
	t.Helper()
	c, err := e.dial(t, o)
	if err != nil {
		t.Fatalf("dial %+v: %v", o, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type welcomeData struct {
	Conn      string   `json:"conn"`
	User      string   `json:"user"`
	Rooms     []string `json:"rooms"`
	Recovered *bool    `json:"recovered"`
	Expires   int64    `json:"expires"`
}

type ackData struct {
	Room string `json:"room"`
	To   string `json:"to"`
	ID   string `json:"id"`
}

type errorData struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// welcome reads the first envelope and requires a welcome.
func welcome(t *testing.T, c Client) welcomeData {
	t.Helper()
	env := next(t, c)
	if env.Type != core.TypeWelcome {
		t.Fatalf("first envelope is %s, want welcome: %+v", env.Type, env)
	}
	var w welcomeData
	if err := json.Unmarshal(env.Data, &w); err != nil {
		t.Fatalf("welcome data %s: %v", env.Data, err)
	}
	return w
}

// ready waits until c is connected and returns the welcome; a
// connectionless client is ready once dialled (it holds its position)
// and gets no welcome.
func (s *suite) ready(t *testing.T, c Client) welcomeData {
	t.Helper()
	if s.h.Features.Connectionless {
		return welcomeData{}
	}
	return welcome(t, c)
}

// members checks that channel has want local members. A connectionless
// client is a member only while a request waits, so a positive count is
// awaited rather than read once.
func (e *env) members(t *testing.T, channel string, want int) {
	t.Helper()
	hub := e.node.Hub()
	if e.s.h.Features.Connectionless && want > 0 {
		eventually(t, fmt.Sprintf("%d member(s) in %s", want, channel), func() bool { return hub.Members(channel) == want })
		return
	}
	if n := hub.Members(channel); n != want {
		t.Fatalf("%s has %d members, want %d", channel, n, want)
	}
}

// connections checks the node's open sessions, like members.
func (e *env) connections(t *testing.T, want int) {
	t.Helper()
	if e.s.h.Features.Connectionless && want > 0 {
		eventually(t, fmt.Sprintf("%d connection(s)", want), func() bool { return e.node.Stats().Connections == want })
		return
	}
	if n := e.node.Stats().Connections; n != want {
		t.Fatalf("%d connections, want %d", n, want)
	}
}

// serverPublish publishes env on channel through the node, as a backend
// would, and returns its id.
func (e *env) serverPublish(t *testing.T, channel string, env *core.Envelope) string {
	t.Helper()
	env.V, env.From = core.Version, "adaptertest"
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	id, err := e.node.Publish(ctx, channel, env)
	if err != nil {
		t.Fatalf("publish on %s: %v", channel, err)
	}
	return id
}

func next(t *testing.T, c Client) *core.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	env, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for an envelope: %v", err)
	}
	return env
}

// await reads envelopes until match returns true and returns that one and
// those read before it.
func await(t *testing.T, c Client, what string, match func(*core.Envelope) bool) (*core.Envelope, []*core.Envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var before []*core.Envelope
	for {
		env, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s (after %d other envelopes %s): %v", what, len(before), summary(before), err)
		}
		if match(env) {
			return env, before
		}
		before = append(before, env)
	}
}

// awaitAfter returns the first of seen (envelopes already read) that
// matches, or else the next one read from c that does.
func awaitAfter(t *testing.T, c Client, seen []*core.Envelope, what string, match func(*core.Envelope) bool) *core.Envelope {
	t.Helper()
	if i := slices.IndexFunc(seen, match); i >= 0 {
		return seen[i]
	}
	env, _ := await(t, c, what, match)
	return env
}

func summary(envs []*core.Envelope) string {
	parts := make([]string, len(envs))
	for i, e := range envs {
		parts[i] = e.Type + ":" + e.Ref + e.ID
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func isRef(typ, ref string) func(*core.Envelope) bool {
	return func(e *core.Envelope) bool { return e.Type == typ && e.Ref == ref }
}

// send encodes env and sends it.
func send(t *testing.T, c Client, env core.Envelope) {
	t.Helper()
	env.V = core.Version
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(b); err != nil {
		t.Fatalf("send %s: %v", b, err)
	}
}

// request sends env (whose Ref must be set) and returns its ack, failing
// on an error reply. Envelopes read while waiting are returned too.
func request(t *testing.T, c Client, env core.Envelope) (ackData, []*core.Envelope) {
	t.Helper()
	send(t, c, env)
	reply, before := await(t, c, env.Type+" reply "+env.Ref, func(e *core.Envelope) bool {
		return e.Ref == env.Ref && (e.Type == core.TypeAck || e.Type == core.TypeError)
	})
	if reply.Type == core.TypeError {
		t.Fatalf("%s %s: error reply %s", env.Type, env.Ref, reply.Data)
	}
	var a ackData
	if err := json.Unmarshal(reply.Data, &a); err != nil {
		t.Fatalf("ack data %s: %v", reply.Data, err)
	}
	return a, before
}

// roundTrip proves the connection is open: a ping gets its pong.
func roundTrip(t *testing.T, c Client, ref string) {
	t.Helper()
	send(t, c, core.Envelope{Type: core.TypePing, Ref: ref})
	await(t, c, "pong "+ref, isRef(core.TypePong, ref))
}

// eventually polls cond, a condition with no signal of its own, until it
// holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitFor, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closed waits for the server to end c and checks the code when the
// transport carries codes.
// untilClosed hands each envelope c receives to each until the server
// closes c, failing the test if that takes longer than waitFor.
func untilClosed(t *testing.T, c Client, each func(*core.Envelope)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		env, err := c.Next(ctx)
		if errors.Is(err, ErrClosed) {
			return
		}
		if err != nil {
			t.Fatalf("waiting for the close: %v", err)
		}
		each(env)
	}
}

func (s *suite) closed(t *testing.T, c Client, want uint16) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	code, err := c.Closed(ctx)
	if err != nil {
		t.Fatalf("waiting for the server to close with %d: %v", want, err)
	}
	if s.h.Features.CloseCodes && code != int(want) {
		t.Fatalf("closed with %d, want %d", code, want)
	}
}

func testWelcome(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	user, r1, r2 := s.name("user"), s.name("room"), s.name("room")
	c := e.connect(t, ConnectOpts{User: user, Rooms: []string{r1, r2, r1}})
	want := []string{r1, r2}
	slices.Sort(want)
	if !s.h.Features.Connectionless {
		w := welcome(t, c)
		if w.Conn == "" {
			t.Error("welcome has no conn id")
		}
		if w.User != user {
			t.Errorf("welcome user %q, want %q", w.User, user)
		}
		slices.Sort(w.Rooms)
		if !slices.Equal(w.Rooms, want) {
			t.Errorf("welcome rooms %v, want %v", w.Rooms, want)
		}
		if w.Recovered != nil {
			t.Errorf("welcome without since has recovered=%v", *w.Recovered)
		}
	}
	for _, r := range want {
		e.members(t, core.RoomChannel(r), 1)
	}
	e.members(t, core.UserChannel(user), 1)
	// The connection is in its rooms under its user: a message to each
	// room, then a direct message, reach it, and nothing comes before them.
	for _, r := range want {
		id := e.serverPublish(t, core.RoomChannel(r), &core.Envelope{Type: core.TypeMessage, Room: r, Data: json.RawMessage(`"room"`)})
		if env := next(t, c); env.Type != core.TypeMessage || env.ID != id || env.Room != r {
			t.Errorf("got %+v, want the message %s to room %s", env, id, r)
		}
	}
	id := e.serverPublish(t, core.UserChannel(user), &core.Envelope{Type: core.TypeDirect, To: user, Data: json.RawMessage(`"direct"`)})
	if env := next(t, c); env.Type != core.TypeDirect || env.ID != id || env.To != user {
		t.Errorf("got %+v, want the direct message %s to %s", env, id, user)
	}
}

func testWelcomeAnonymous(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	if s.h.Features.Connectionless {
		// No welcome carries the generated ids; anonymous clients are
		// served all the same: a room message reaches both.
		room := s.name("room")
		a := e.connect(t, ConnectOpts{Rooms: []string{room}})
		b := e.connect(t, ConnectOpts{Rooms: []string{room}})
		e.members(t, core.RoomChannel(room), 2)
		id := e.serverPublish(t, core.RoomChannel(room), &core.Envelope{Type: core.TypeMessage, Room: room, Data: json.RawMessage(`1`)})
		for i, c := range []Client{a, b} {
			if env := next(t, c); env.ID != id {
				t.Errorf("anonymous client %d got %+v, want the room message %s", i+1, env, id)
			}
		}
		return
	}
	a := welcome(t, e.connect(t, ConnectOpts{}))
	b := welcome(t, e.connect(t, ConnectOpts{}))
	if a.User == "" || b.User == "" || a.User == b.User {
		t.Errorf("anonymous users %q and %q: want two distinct generated ids", a.User, b.User)
	}
	if a.Conn == b.Conn {
		t.Errorf("two connections share conn id %q", a.Conn)
	}
}

func testJoinLeave(t *testing.T, s *suite) {
	if s.h.Features.FixedRooms {
		testFixedRooms(t, s)
		return
	}
	e := s.start(t, core.Config{})
	room := s.name("room")
	c := e.connect(t, ConnectOpts{User: s.name("user")})
	welcome(t, c)
	ack, _ := request(t, c, core.Envelope{Type: core.TypeJoin, Room: room, Ref: "j1"})
	if ack.Room != room {
		t.Errorf("join ack room %q, want %q", ack.Room, room)
	}
	if n := e.node.Hub().Members(core.RoomChannel(room)); n != 1 {
		t.Errorf("after the join ack the room has %d members, want 1", n)
	}
	ack, _ = request(t, c, core.Envelope{Type: core.TypeLeave, Room: room, Ref: "l1"})
	if ack.Room != room {
		t.Errorf("leave ack room %q, want %q", ack.Room, room)
	}
	if n := e.node.Hub().Members(core.RoomChannel(room)); n != 0 {
		t.Errorf("after the leave ack the room has %d members, want 0", n)
	}
	// Publishing to a room left is refused, with the request's ref.
	send(t, c, core.Envelope{Type: core.TypePublish, Room: room, Ref: "p1", Data: json.RawMessage(`1`)})
	reply, _ := await(t, c, "reply p1", func(e *core.Envelope) bool { return e.Ref == "p1" })
	var ed errorData
	_ = json.Unmarshal(reply.Data, &ed)
	if reply.Type != core.TypeError || ed.Code != core.CodeNotJoined {
		t.Errorf("publish after leave: %s %s, want error %s", reply.Type, reply.Data, core.CodeNotJoined)
	}
}

// testFixedRooms is JoinLeave for transports whose rooms are fixed when
// they connect: join and leave are refused with reconnect_required and
// change nothing; the rooms the connection opened with still work.
func testFixedRooms(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	room, other := s.name("room"), s.name("room")
	c := e.connect(t, ConnectOpts{User: s.name("user"), Rooms: []string{room}})
	s.ready(t, c)
	e.members(t, core.RoomChannel(room), 1)
	for _, req := range []core.Envelope{
		{Type: core.TypeJoin, Room: other, Ref: "j1"},
		{Type: core.TypeLeave, Room: room, Ref: "l1"},
	} {
		send(t, c, req)
		reply, _ := await(t, c, "reply "+req.Ref, func(e *core.Envelope) bool { return e.Ref == req.Ref })
		var ed errorData
		_ = json.Unmarshal(reply.Data, &ed)
		if reply.Type != core.TypeError || ed.Code != core.CodeReconnectRequired {
			t.Errorf("%s %s: %s %s, want error %s", req.Type, req.Room, reply.Type, reply.Data, core.CodeReconnectRequired)
		}
	}
	e.members(t, core.RoomChannel(other), 0)
	e.members(t, core.RoomChannel(room), 1)
	ack, seen := request(t, c, core.Envelope{Type: core.TypePublish, Room: room, Ref: "p1", Data: json.RawMessage(`1`)})
	awaitAfter(t, c, seen, "the message in the room still joined", func(env *core.Envelope) bool { return env.ID == ack.ID })
	send(t, c, core.Envelope{Type: core.TypePublish, Room: other, Ref: "p2", Data: json.RawMessage(`2`)})
	reply, _ := await(t, c, "reply p2", func(e *core.Envelope) bool { return e.Ref == "p2" })
	var ed errorData
	_ = json.Unmarshal(reply.Data, &ed)
	if reply.Type != core.TypeError || ed.Code != core.CodeNotJoined {
		t.Errorf("publish to a room never joined: %s %s, want error %s", reply.Type, reply.Data, core.CodeNotJoined)
	}
}

func testPublishRoomOnly(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	room, other := s.name("room"), s.name("room")
	ua := s.name("user")
	a := e.connect(t, ConnectOpts{User: ua, Rooms: []string{room}})
	b := e.connect(t, ConnectOpts{User: s.name("user"), Rooms: []string{room}})
	c := e.connect(t, ConnectOpts{User: s.name("user"), Rooms: []string{other}})
	for _, cl := range []Client{a, b, c} {
		s.ready(t, cl)
	}
	ack, before := request(t, a, core.Envelope{Type: core.TypePublish, Room: room, Ref: "p1", Data: json.RawMessage(`{"n":1}`)})
	if ack.ID == "" || ack.Room != room {
		t.Fatalf("publish ack %+v: want the room and the message id", ack)
	}
	isMessage := func(e *core.Envelope) bool { return e.Type == core.TypeMessage }
	check := func(who string, cl Client, seen []*core.Envelope) {
		t.Helper()
		msg := awaitAfter(t, cl, seen, who+": the room message", isMessage)
		if msg.ID != ack.ID || msg.Room != room || msg.From != ua || string(msg.Data) != `{"n":1}` {
			t.Errorf("%s got %+v (data %s), want id %s room %s from %s data {\"n\":1}", who, msg, msg.Data, ack.ID, room, ua)
		}
	}
	check("publisher", a, before)
	check("member", b, nil)
	// c must not get it: publish in c's room and require that to be the
	// next message c sees.
	ack2, seen := request(t, c, core.Envelope{Type: core.TypePublish, Room: other, Ref: "p2", Data: json.RawMessage(`2`)})
	msg := awaitAfter(t, c, seen, "a message", isMessage)
	if msg.ID != ack2.ID || msg.Room != other {
		t.Errorf("non-member got %+v, want only its own room's message %s", msg, ack2.ID)
	}
}

func testDirect(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	to, from := s.name("user"), s.name("user")
	r1 := e.connect(t, ConnectOpts{User: to})
	r2 := e.connect(t, ConnectOpts{User: to})
	other := e.connect(t, ConnectOpts{User: s.name("user")})
	sender := e.connect(t, ConnectOpts{User: from})
	for _, cl := range []Client{r1, r2, other, sender} {
		s.ready(t, cl)
	}
	ack, _ := request(t, sender, core.Envelope{Type: core.TypeDirect, To: to, Ref: "d1", Data: json.RawMessage(`"hi"`)})
	if ack.ID == "" || ack.To != to {
		t.Fatalf("direct ack %+v: want to=%s and the message id", ack, to)
	}
	for i, cl := range []Client{r1, r2} {
		msg := next(t, cl)
		if msg.Type != core.TypeDirect || msg.ID != ack.ID || msg.From != from || msg.To != to || string(msg.Data) != `"hi"` {
			t.Errorf("connection %d of %s got %+v (data %s), want the direct message %s from %s", i+1, to, msg, msg.Data, ack.ID, from)
		}
	}
	// The bystander gets nothing: its next envelope is the pong.
	send(t, other, core.Envelope{Type: core.TypePing, Ref: "x"})
	if env := next(t, other); env.Type != core.TypePong {
		t.Errorf("bystander got %+v, want only its pong", env)
	}
}

func testResume(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	room, user := s.name("room"), s.name("user")
	pub := e.connect(t, ConnectOpts{User: s.name("user"), Rooms: []string{room}})
	s.ready(t, pub)
	var ids []string
	for i := range 4 {
		ack, _ := request(t, pub, core.Envelope{Type: core.TypePublish, Room: room, Ref: fmt.Sprint("p", i), Data: json.RawMessage(fmt.Sprint(i))})
		ids = append(ids, ack.ID)
	}
	// A direct message is missed too, and replayed with the room's.
	dack, _ := request(t, pub, core.Envelope{Type: core.TypeDirect, To: user, Ref: "d", Data: json.RawMessage(`"dm"`)})
	c := e.connect(t, ConnectOpts{User: user, Rooms: []string{room}, Since: ids[0]})
	if !s.h.Features.Connectionless { // else recovered:false is an error from Next
		w := welcome(t, c)
		if w.Recovered == nil || !*w.Recovered {
			t.Fatalf("welcome after since=%s: recovered=%v, want true", ids[0], w.Recovered)
		}
	}
	want := append(slices.Clone(ids[1:]), dack.ID)
	var got []string
	for range want {
		got = append(got, next(t, c).ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("replayed %v, want exactly %v", got, want)
	}
	// Live delivery continues after the replay, without duplicates.
	live, _ := request(t, pub, core.Envelope{Type: core.TypePublish, Room: room, Ref: "live", Data: json.RawMessage(`"live"`)})
	if env := next(t, c); env.ID != live.ID {
		t.Fatalf("after the replay got %+v, want the live message %s", env, live.ID)
	}
}

func testBadEnvelope(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	c := e.connect(t, ConnectOpts{User: s.name("user")})
	s.ready(t, c)
	cases := []struct{ ref, frame, code string }{
		{"b1", `{"v":1,"type":"join","ref":"b1","bogus":true}`, core.CodeBadRequest},
		{"b2", `{"v":2,"type":"ping","ref":"b2"}`, core.CodeBadRequest},
		{"b3", `{"v":1,"type":"no-such-type","ref":"b3"}`, core.CodeUnknownType},
		{"b4", `{"v":1,"type":"join","ref":"b4"}`, core.CodeBadRequest},
		{"", `this is not json`, core.CodeBadRequest},
	}
	for _, tc := range cases {
		if err := c.Send([]byte(tc.frame)); err != nil {
			t.Fatalf("send %s: %v", tc.frame, err)
		}
		env := next(t, c)
		var ed errorData
		_ = json.Unmarshal(env.Data, &ed)
		if env.Type != core.TypeError || env.Ref != tc.ref || ed.Code != tc.code || ed.Message == "" {
			t.Errorf("%s: got %s ref %q %s, want error ref %q code %s with a message", tc.frame, env.Type, env.Ref, env.Data, tc.ref, tc.code)
		}
	}
	roundTrip(t, c, "still-open")
}

func testUnauthorized(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	c, err := e.dial(t, ConnectOpts{User: s.name("user"), Token: invalidToken})
	if err != nil {
		return // refused before a connection existed (HTTP 401): fine
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if env, err := c.Next(ctx); err == nil {
		t.Errorf("rejected credentials got an envelope: %+v", env)
	} else if !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting for the close: %v", err)
	}
	s.closed(t, c, core.DisconnectUnauthorized.Code)
	if n := e.node.Stats().ConnectionsTotal; n != 0 {
		t.Errorf("a rejected connection was accepted (%d connections total)", n)
	}
}

func heartbeatConfig() core.Config {
	return core.Config{HeartbeatInterval: heartbeatInterval, HeartbeatTimeout: heartbeatTimeout}
}

// outlive waits until c's session has outlived one full heartbeat
// timeout, failing if the server closes it first. Where the transport has
// server pings the measure is the server's heartbeat: core pings on each
// tick, each tick at least an interval after the one before, and a tick
// finding the client silent for the timeout closes instead of pinging. So
// more pings than fit in one timeout prove that ticks after the timeout
// found the client alive, however slowly the machine runs. Without server
// pings, time since the session was seen ready is the measure.
func (s *suite) outlive(t *testing.T, c Client, ready time.Time, interval, timeout time.Duration) {
	t.Helper()
	if !s.h.Features.ServerPings {
		ctx, cancel := context.WithDeadline(context.Background(), ready.Add(timeout+2*interval))
		defer cancel()
		if code, err := c.Closed(ctx); err == nil {
			t.Fatalf("closed by the server (code %d) within the heartbeat timeout", code)
		}
		return
	}
	want := int(timeout/interval) + 2
	deadline := time.Now().Add(waitFor + timeout)
	for c.Pings() < want {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d server pings (more than one heartbeat timeout's worth); got %d", want, c.Pings())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond) // polls the count
		code, err := c.Closed(ctx)
		cancel()
		if err == nil {
			t.Fatalf("closed by the server (code %d) after %d server pings; want it open past %d", code, c.Pings(), want)
		}
	}
}

func testHeartbeatKeepsAlive(t *testing.T, s *suite) {
	e := s.start(t, core.Config{HeartbeatInterval: keepAliveInterval, HeartbeatTimeout: keepAliveTimeout})
	c := e.connect(t, ConnectOpts{User: s.name("user")})
	s.ready(t, c)
	// A healthy client sends nothing but its answers to the keep-alives
	// (or its own), which must reach core as activity: else a
	// bidirectional session ends with 4009 one timeout after it opened.
	s.outlive(t, c, time.Now(), keepAliveInterval, keepAliveTimeout)
	roundTrip(t, c, "alive")
	e.connections(t, 1)
}

func testHeartbeatSilent(t *testing.T, s *suite) {
	e := s.start(t, heartbeatConfig())
	c := e.connect(t, ConnectOpts{User: s.name("user"), Silent: true})
	if s.h.Features.Unidirectional {
		// Silence is normal on a unidirectional transport: still open
		// after a heartbeat timeout.
		s.ready(t, c)
		s.outlive(t, c, time.Now(), heartbeatInterval, heartbeatTimeout)
		roundTrip(t, c, "alive")
		return
	}
	// The welcome is not required: the 4009 close drops whatever is still
	// queued, and on a slow machine that may include the welcome.
	untilClosed(t, c, func(env *core.Envelope) {
		if env.Type != core.TypeWelcome {
			t.Fatalf("a silent client got %+v, want at most the welcome before the close", env)
		}
	})
	s.closed(t, c, core.DisconnectHeartbeat.Code)
	eventually(t, "the silent session to be removed", func() bool { return e.node.Stats().Connections == 0 })
}

func testCleanup(t *testing.T, s *suite) {
	cfg := core.Config{}
	if s.h.Features.Unidirectional {
		// The server cannot read a unidirectional connection, so only a
		// write notices the client has gone: the heartbeat's, here.
		cfg = heartbeatConfig()
	}
	e := s.start(t, cfg)
	room, user := s.name("room"), s.name("user")
	c := e.connect(t, ConnectOpts{User: user, Rooms: []string{room}})
	s.ready(t, c)
	hub := e.node.Hub()
	e.members(t, core.RoomChannel(room), 1)
	e.connections(t, 1)
	if err := c.Close(); err != nil {
		t.Fatalf("client close: %v", err)
	}
	eventually(t, "the room, the user channel and the node to forget the connection", func() bool {
		return hub.Members(core.RoomChannel(room)) == 0 && hub.Members(core.UserChannel(user)) == 0 &&
			e.node.Stats().Connections == 0
	})
}

func testShutdown(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	room := s.name("room")
	c := e.connect(t, ConnectOpts{User: s.name("user"), Rooms: []string{room}})
	s.ready(t, c)
	// A message queued before the shutdown is flushed before the close.
	ack, before := request(t, c, core.Envelope{Type: core.TypePublish, Room: room, Ref: "p", Data: json.RawMessage(`1`)})
	sawMessage := slices.ContainsFunc(before, func(env *core.Envelope) bool { return env.ID == ack.ID })
	if s.h.Features.Connectionless && !sawMessage {
		// Between requests nothing is queued: a request refused by the
		// shutdown (503, retry another node with the same cursor) loses
		// nothing, but this node will not deliver it. So the message is
		// received first, and the shutdown must end the request that then
		// waits.
		awaitAfter(t, c, nil, "the message "+ack.ID, func(env *core.Envelope) bool { return env.ID == ack.ID })
		sawMessage = true
	}
	if s.h.Features.Connectionless {
		e.members(t, core.RoomChannel(room), 1)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		done <- e.node.Shutdown(ctx)
	}()
	untilClosed(t, c, func(env *core.Envelope) {
		if env.ID == ack.ID {
			sawMessage = true
		}
	})
	if !sawMessage {
		t.Errorf("message %s not delivered before the shutdown close", ack.ID)
	}
	s.closed(t, c, core.DisconnectShutdown.Code)
	if err := <-done; err != nil {
		t.Errorf("node shutdown: %v", err)
	}
	if n := e.node.Stats().Connections; n != 0 {
		t.Errorf("%d connections after shutdown, want 0", n)
	}
}
