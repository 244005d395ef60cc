package adaptertest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// The suite's Authenticator, which every node it starts runs (the
// adapter hands it the credentials; core decides). Tokens:
//
//	invalid                    refused (core.ErrUnauthorized)
//	rooms:<user>:<room>        <user>, who may join and publish to <room> only
//	exp:<user>:<unix ms>       <user> until then; refused ("token
//	                           expired") once it has passed
//	ttl:<user>:<ms>            <user>, expiring <ms> after it is checked
//	meta:<user>:<plan>         <user> with metadata {"plan": <plan>}
//
// With neither token nor user the client is anonymous and may join
// rooms named room-* and publish nowhere (the anonymous rules). Anything
// else is development mode's: the claimed user.
const invalidToken = "invalid"

// anonymousRooms is what the anonymous rules let a client join: the
// suite's room names (suite.name("room")).
const anonymousRooms = "room-*"

var authn = core.AuthenticatorFunc(func(ctx context.Context, c core.Credentials) (core.Identity, error) {
	kind, rest, _ := strings.Cut(c.Token, ":")
	user, arg, _ := strings.Cut(rest, ":")
	switch {
	case c.Token == invalidToken:
		return core.Identity{}, fmt.Errorf("%w: token rejected by the suite", core.ErrUnauthorized)
	case kind == "rooms":
		return core.Identity{User: user, Permissions: &core.Permissions{Subscribe: []string{arg}, Publish: []string{arg}}}, nil
	case kind == "exp":
		ms, err := strconv.ParseInt(arg, 10, 64)
		if err != nil {
			return core.Identity{}, fmt.Errorf("%w: malformed token", core.ErrUnauthorized)
		}
		exp := time.UnixMilli(ms)
		if !time.Now().Before(exp) {
			return core.Identity{}, fmt.Errorf("%w: token expired", core.ErrUnauthorized)
		}
		return core.Identity{User: user, Expires: exp}, nil
	case kind == "ttl":
		ms, err := strconv.ParseInt(arg, 10, 64)
		if err != nil {
			return core.Identity{}, fmt.Errorf("%w: malformed token", core.ErrUnauthorized)
		}
		return core.Identity{User: user, Expires: time.Now().Add(time.Duration(ms) * time.Millisecond)}, nil
	case kind == "meta":
		return core.Identity{User: user, Meta: map[string]string{"plan": arg}}, nil
	case c.Token == "" && c.User == "":
		return core.Identity{Permissions: &core.Permissions{Subscribe: []string{anonymousRooms}, Publish: []string{}}}, nil
	}
	return core.Insecure.Authenticate(ctx, c)
})

func expToken(user string, at time.Time) string {
	return "exp:" + user + ":" + strconv.FormatInt(at.UnixMilli(), 10)
}

// expectError reads envelopes until an error matching ref ("" for one
// about the connection itself) and requires its code.
func expectError(t *testing.T, c Client, seen []*core.Envelope, ref, code, what string) {
	t.Helper()
	env := awaitAfter(t, c, seen, what, func(e *core.Envelope) bool {
		return e.Ref == ref && (e.Type == core.TypeError || e.Type == core.TypeAck && ref != "")
	})
	var ed errorData
	_ = json.Unmarshal(env.Data, &ed)
	if env.Type != core.TypeError || ed.Code != code {
		t.Fatalf("%s: %s %s, want error %s", what, env.Type, env.Data, code)
	}
}

// testAuthRooms: a token's rooms are all a connection gets, however the
// client asks: a room outside them is refused at connect, on join and on
// publish with forbidden, and the connection carries on with its own.
func testAuthRooms(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	user, allowed, other := s.name("user"), s.name("room"), s.name("room")
	// The claimed user is ignored: the token decides.
	c := e.connect(t, ConnectOpts{User: s.name("user"), Token: "rooms:" + user + ":" + allowed, Rooms: []string{allowed, other}})
	w := s.ready(t, c)
	if !s.h.Features.Connectionless && (w.User != user || strings.Join(w.Rooms, ",") != allowed) {
		t.Errorf("welcome user %q rooms %v, want %s in [%s] only", w.User, w.Rooms, user, allowed)
	}
	expectError(t, c, nil, "", core.CodeForbidden, "the refusal of a room outside the token's at connect")
	e.members(t, core.RoomChannel(other), 0)
	if !s.h.Features.FixedRooms {
		send(t, c, core.Envelope{Type: core.TypeJoin, Room: other, Ref: "j"})
		expectError(t, c, nil, "j", core.CodeForbidden, "join outside the token's rooms")
		e.members(t, core.RoomChannel(other), 0)
	}
	send(t, c, core.Envelope{Type: core.TypePublish, Room: other, Ref: "p1", Data: json.RawMessage(`1`)})
	expectError(t, c, nil, "p1", core.CodeForbidden, "publish outside the token's rooms")
	ack, seen := request(t, c, core.Envelope{Type: core.TypePublish, Room: allowed, Ref: "p2", Data: json.RawMessage(`2`)})
	msg := awaitAfter(t, c, seen, "the message in the token's room", func(env *core.Envelope) bool { return env.ID == ack.ID })
	if msg.From != user {
		t.Errorf("message from %q, want the token's user %q", msg.From, user)
	}
}

// testAuthExpired: a token past its expiry is refused like any invalid
// credentials, and a connection whose token expires is closed with 4001
// "token expired" (a connectionless client's next request is refused).
func testAuthExpired(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	if c, err := e.dial(t, ConnectOpts{Token: expToken(s.name("user"), time.Now().Add(-time.Minute))}); err == nil {
		t.Cleanup(func() { _ = c.Close() })
		s.closed(t, c, core.DisconnectUnauthorized.Code)
	}
	if s.h.Features.Connectionless {
		// Every request is checked again: once the token has expired the
		// next one is refused. Long enough for the first request on a
		// busy machine; the end is awaited, not timed.
		c := e.connect(t, ConnectOpts{Token: expToken(s.name("user"), time.Now().Add(5*time.Second))})
		s.ready(t, c)
		s.closed(t, c, core.DisconnectTokenExpired.Code)
		return
	}
	// The expiry counts from the check, however slowly the connection
	// opens: the close is awaited, not timed.
	before := time.Now()
	c := e.connect(t, ConnectOpts{Token: "ttl:" + s.name("user") + ":1500"})
	w := s.ready(t, c)
	if exp := time.Unix(w.Expires, 0); exp.Before(before.Truncate(time.Second)) || exp.After(time.Now().Add(2*time.Second)) {
		t.Errorf("welcome expires %s, want the token's, 1.5 s after it was checked (between %s and now + 2 s)", exp, before)
	}
	s.closed(t, c, core.DisconnectTokenExpired.Code)
	eventually(t, "the expired session gone", func() bool { return e.node.Stats().Connections == 0 })
}

// testAuthRefresh: new credentials for the same user before expiry move
// it (the ack carries the new one), another user's are forbidden. A
// client whose requests are stateless cannot refresh: it sends its token
// with each request (bad_request).
func testAuthRefresh(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	user := s.name("user")
	c := e.connect(t, ConnectOpts{Token: expToken(user, time.Now().Add(time.Hour))})
	s.ready(t, c)
	later := time.Now().Add(2 * time.Hour)
	refresh := func(ref, token string) {
		data, _ := json.Marshal(map[string]string{"token": token})
		send(t, c, core.Envelope{Type: core.TypeRefresh, Ref: ref, Data: data})
	}
	if s.h.Features.Unidirectional {
		refresh("r", expToken(user, later))
		expectError(t, c, nil, "r", core.CodeBadRequest, "refresh on a stateless request")
		return
	}
	refresh("other", expToken(s.name("user"), later))
	expectError(t, c, nil, "other", core.CodeForbidden, "refresh with another user's token")
	refresh("r", expToken(user, later))
	ack, _ := await(t, c, "the refresh's ack", isRef(core.TypeAck, "r"))
	var d struct {
		Expires int64 `json:"expires"`
	}
	if err := json.Unmarshal(ack.Data, &d); err != nil || d.Expires != later.Unix() {
		t.Fatalf("refresh ack %s, want expires %d", ack.Data, later.Unix())
	}
	roundTrip(t, c, "still-open")
}

// testAuthMetadata: the identity's metadata reaches the node's lifecycle
// events (what webhooks are sent) and every handler of the client's
// envelopes, on every transport.
func testAuthMetadata(t *testing.T, s *suite) {
	var mu sync.Mutex
	var connectMeta map[string]string
	cfg := core.Config{OnEvent: func(ev core.Event) {
		if ev.Type == core.EventConnect {
			mu.Lock()
			connectMeta = ev.Meta
			mu.Unlock()
		}
	}}
	e := s.start(t, cfg)
	seen := make(chan string, 1)
	e.node.Router().Use(func(next core.HandlerFunc) core.HandlerFunc {
		return func(ctx context.Context, sess *core.Session, env *core.Envelope) error {
			if env.Type == core.TypePublish {
				select {
				case seen <- sess.Meta()["plan"]:
				default:
				}
			}
			return next(ctx, sess, env)
		}
	})
	room := s.name("room")
	c := e.connect(t, ConnectOpts{Token: "meta:" + s.name("user") + ":pro", Rooms: []string{room}})
	s.ready(t, c)
	request(t, c, core.Envelope{Type: core.TypePublish, Room: room, Ref: "p", Data: json.RawMessage(`1`)})
	if plan := <-seen; plan != "pro" {
		t.Errorf("a handler saw metadata plan %q, want pro", plan)
	}
	if !s.h.Features.Connectionless {
		mu.Lock()
		defer mu.Unlock()
		if connectMeta["plan"] != "pro" {
			t.Errorf("connect event metadata %v, want plan pro", connectMeta)
		}
	}
}

// testAuthAnonymous: a client with no credentials gets the anonymous
// rules: it reads the rooms they allow, and nothing else, and publishes
// nowhere.
func testAuthAnonymous(t *testing.T, s *suite) {
	e := s.start(t, core.Config{})
	room, private := s.name("room"), "private-"+s.name("x")
	c := e.connect(t, ConnectOpts{Rooms: []string{room, private}})
	s.ready(t, c)
	expectError(t, c, nil, "", core.CodeForbidden, "the refusal of a room the anonymous rules do not allow")
	e.members(t, core.RoomChannel(room), 1)
	e.members(t, core.RoomChannel(private), 0)
	send(t, c, core.Envelope{Type: core.TypePublish, Room: room, Ref: "p", Data: json.RawMessage(`1`)})
	expectError(t, c, nil, "p", core.CodeForbidden, "an anonymous publish")
	id := e.serverPublish(t, core.RoomChannel(room), &core.Envelope{Type: core.TypeMessage, Room: room, Data: json.RawMessage(`2`)})
	await(t, c, "the room's message", func(env *core.Envelope) bool { return env.ID == id })
}
