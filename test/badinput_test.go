package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

// Bad input (issue #5): hostile or broken frames and query strings sent
// over real connections to an in-process edge. Every row asserts the
// outcome docs/protocol.md documents (an error code with the ref echoed
// or not, a close code, or nothing at all), and after every row a
// bystander on the same edge must still publish and receive.

// bystander is a client that proves the edge still serves others: it
// publishes to its own room and must get both the ack and the message.
type bystander struct {
	c    *client
	n    int
	last string // id of the last message it received
}

func newBystander(t *testing.T, e *edge) *bystander {
	t.Helper()
	c, _ := connect(t, e.url(q("user", "bystander", "rooms", "watch")))
	return &bystander{c: c}
}

// check must run on the goroutine of the test that created the bystander
// (after t.Run returns, never inside a subtest).
func (b *bystander) check(t *testing.T, after string) {
	t.Helper()
	b.n++
	ref := "by-" + strconv.Itoa(b.n)
	b.c.send(fmt.Sprintf(`{"v":1,"type":"publish","room":"watch","data":%d,"ref":%q}`, b.n, ref))
	ack, msg := b.c.ackAnd(core.TypeMessage)
	if ack.Ref != ref || msg.Room != "watch" || string(msg.Data) != strconv.Itoa(b.n) {
		t.Fatalf("after %s: bystander got ack %s and message %s", after, ack.Encode(), msg.Encode())
	}
	b.last = msg.ID
}

// What a bad-input row must produce.
type outcome struct {
	errs  []replyWant // error envelopes, in order
	reply *replyWant  // a non-error reply (pong, ack) instead
	close int         // a close code instead of replies
}

type replyWant struct{ typ, code, ref string }

func errOut(code, ref string) outcome { return outcome{errs: []replyWant{{core.TypeError, code, ref}}} }
func closeOut(code int) outcome       { return outcome{close: code} }
func replyOut(typ, ref string) outcome {
	return outcome{reply: &replyWant{typ: typ, ref: ref}}
}

// silent: the frame produces no reply at all; the pong to the next ping
// must be the next envelope.
var silent = outcome{}

type badFrame struct {
	name   string
	frame  []byte
	binary bool
	want   outcome
}

func nested(depth int, inner string) string {
	return strings.Repeat("[", depth) + inner + strings.Repeat("]", depth)
}

func manyRooms(n int, sep string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString("r")
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

const badInputMaxSize = 1 << 20 // large enough for 100k nested arrays

func badFrames() []badFrame {
	s := func(name, frame string, want outcome) badFrame {
		return badFrame{name: name, frame: []byte(frame), want: want}
	}
	bad, room, unknown := core.CodeBadRequest, core.CodeInvalidRoom, core.CodeUnknownType
	var joins bytes.Buffer
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&joins, `{"v":1,"type":"join","room":"j%d"}`+"\n", i)
	}
	var pings bytes.Buffer
	for i := 0; i < 150; i++ { // over the default burst of 100
		pings.WriteString(`{"v":1,"type":"ping"}` + "\n")
	}
	rows := []badFrame{
		// Truncated JSON: not an object, so no ref can be echoed.
		s("truncated after a value", `{"v":1,"type":"ping","ref":"t1"`, errOut(bad, "")),
		s("truncated in a string", `{"v":1,"type":"pi`, errOut(bad, "")),
		s("truncated in a key", `{"v":1,"ty`, errOut(bad, "")),
		s("lone brace", `{`, errOut(bad, "")),
		s("lone quote", `"`, errOut(bad, "")),
		s("truncated escape", `{"v":1,"type":"ping","ref":"\u00`, errOut(bad, "")),
		// Nesting: encoding/json refuses more than 10,000 levels.
		s("100k nested arrays in data", `{"v":1,"type":"ping","ref":"n1","data":`+nested(100000, "")+`}`, errOut(bad, "")),
		s("100k nested objects in data", `{"v":1,"type":"ping","ref":"n2","data":`+strings.Repeat(`{"a":`, 100000)+"1"+strings.Repeat("}", 100000)+`}`, errOut(bad, "")),
		s("100k unbalanced brackets", `{"v":1,"type":"ping","ref":"n3","data":`+strings.Repeat("[", 100000)+`}`, errOut(bad, "")),
		s("5k nested arrays are valid data", `{"v":1,"type":"ping","ref":"n4","data":`+nested(5000, "1")+`}`, replyOut(core.TypePong, "n4")),
		// Numbers: v and ts are integers; data passes numbers through.
		s("v 1e999", `{"v":1e999,"type":"ping","ref":"h1"}`, errOut(bad, "h1")),
		s("v 2^64+1", `{"v":18446744073709551617,"type":"ping","ref":"h2"}`, errOut(bad, "h2")),
		s("v 2^32+1", `{"v":4294967297,"type":"ping","ref":"h3"}`, errOut(bad, "h3")),
		s("v 1.0", `{"v":1.0,"type":"ping","ref":"h4"}`, errOut(bad, "h4")),
		s("v -1", `{"v":-1,"type":"ping","ref":"h5"}`, errOut(bad, "h5")),
		s("ts 1e999", `{"v":1,"type":"ping","ts":1e999,"ref":"h6"}`, errOut(bad, "h6")),
		s("ts 2^64+1", `{"v":1,"type":"ping","ts":18446744073709551617,"ref":"h7"}`, errOut(bad, "h7")),
		s("ts -2^63-1", `{"v":1,"type":"ping","ts":-9223372036854775809,"ref":"h8"}`, errOut(bad, "h8")),
		s("ts 1.5", `{"v":1,"type":"ping","ts":1.5,"ref":"h9"}`, errOut(bad, "h9")),
		s("ts 2^63-1 is ignored", `{"v":1,"type":"ping","ts":9223372036854775807,"ref":"h10"}`, replyOut(core.TypePong, "h10")),
		s("data 1e999 passes", `{"v":1,"type":"ping","data":1e999,"ref":"h11"}`, replyOut(core.TypePong, "h11")),
		s("1000-digit number in data", `{"v":1,"type":"ping","data":`+strings.Repeat("9", 1000)+`,"ref":"h12"}`, replyOut(core.TypePong, "h12")),
		// Invalid UTF-8 in a text message fails the connection (RFC 6455
		// §8.1); in a binary one, which the wire does not check, the
		// envelope is refused before anything else (it would make
		// browsers fail the connection of every subscriber).
		s("invalid UTF-8 in data", "{\"v\":1,\"type\":\"ping\",\"data\":\"\xff\xfe\",\"ref\":\"u1\"}", closeOut(1007)),
		s("invalid UTF-8 in room", "{\"v\":1,\"type\":\"join\",\"room\":\"lob\xc3\",\"ref\":\"u2\"}", closeOut(1007)),
		s("overlong UTF-8", "{\"v\":1,\"type\":\"ping\",\"data\":\"\xc0\xaf\",\"ref\":\"u3\"}", closeOut(1007)),
		s("UTF-8 surrogate", "{\"v\":1,\"type\":\"ping\",\"data\":\"\xed\xa0\x80\",\"ref\":\"u4\"}", closeOut(1007)),
		s("invalid UTF-8 outside strings", "{\"v\":1,\"type\":\"ping\",\"ref\":\"u5\"}\xff", closeOut(1007)),
		{name: "invalid UTF-8 in data, binary", frame: []byte("{\"v\":1,\"type\":\"ping\",\"data\":\"\xff\xfe\",\"ref\":\"ub1\"}"), binary: true, want: errOut(bad, "ub1")},
		{name: "invalid UTF-8 in room, binary", frame: []byte("{\"v\":1,\"type\":\"join\",\"room\":\"lob\xc3\",\"ref\":\"ub2\"}"), binary: true, want: errOut(bad, "ub2")},
		{name: "overlong UTF-8, binary", frame: []byte("{\"v\":1,\"type\":\"ping\",\"data\":\"\xc0\xaf\",\"ref\":\"ub3\"}"), binary: true, want: errOut(bad, "ub3")},
		{name: "UTF-8 surrogate, binary", frame: []byte("{\"v\":1,\"type\":\"ping\",\"data\":\"\xed\xa0\x80\",\"ref\":\"ub4\"}"), binary: true, want: errOut(bad, "ub4")},
		{name: "invalid UTF-8 outside strings, binary", frame: []byte("{\"v\":1,\"type\":\"ping\",\"ref\":\"ub5\"}\xff"), binary: true, want: errOut(bad, "")},
		s("UTF-8 BOM", "\xef\xbb\xbf{\"v\":1,\"type\":\"ping\",\"ref\":\"u6\"}", errOut(bad, "")),
		s("escaped lone surrogate in data passes", `{"v":1,"type":"ping","data":"\ud800","ref":"u7"}`, replyOut(core.TypePong, "u7")),
		// Frames: binary is accepted like text; empty lines are ignored.
		{name: "binary frame with a ping", frame: []byte(`{"v":1,"type":"ping","ref":"b1"}`), binary: true, want: replyOut(core.TypePong, "b1")},
		{name: "binary frame of garbage", frame: []byte{0, 1, 2, 0xff, 0x80, '{'}, binary: true, want: errOut(bad, "")},
		{name: "empty binary frame", frame: nil, binary: true, want: silent},
		s("empty frame", "", silent),
		s("whitespace-only frame", " \t\r\n \n\r\n\t ", silent),
		s("NUL-only frame", "\x00", errOut(bad, "")),
		s("bad line between good ones", `{"v":1,"type":"ping","ref":"m1"}`+"\n}{\n"+`{"v":1,"type":"ping","ref":"m2"}`,
			outcome{errs: []replyWant{{core.TypePong, "", "m1"}, {core.TypeError, bad, ""}, {core.TypePong, "", "m2"}}}),
		s("two values on one line", `{"v":1,"type":"ping","ref":"m3"} {"v":1,"type":"ping"}`, errOut(bad, "")),
		// Not an object.
		s("array", `[{"v":1,"type":"ping","ref":"o1"}]`, errOut(bad, "")),
		s("null", `null`, errOut(bad, "")),
		s("string", `"ping"`, errOut(bad, "")),
		s("number", `1`, errOut(bad, "")),
		// Wrong field types.
		s(`v "1"`, `{"v":"1","type":"ping","ref":"w1"}`, errOut(bad, "w1")),
		s("v null", `{"v":null,"type":"ping","ref":"w2"}`, errOut(bad, "w2")),
		s("v missing", `{"type":"ping","ref":"w3"}`, errOut(bad, "w3")),
		s("room 5", `{"v":1,"type":"join","room":5,"ref":"w4"}`, errOut(bad, "w4")),
		s("room array", `{"v":1,"type":"join","room":["a"],"ref":"w5"}`, errOut(bad, "w5")),
		s("type true", `{"v":1,"type":true,"ref":"w6"}`, errOut(bad, "w6")),
		s("type object", `{"v":1,"type":{},"ref":"w7"}`, errOut(bad, "w7")),
		s("to number", `{"v":1,"type":"direct","to":7,"data":1,"ref":"w8"}`, errOut(bad, "w8")),
		s(`ts "1"`, `{"v":1,"type":"ping","ts":"1","ref":"w9"}`, errOut(bad, "w9")),
		s("id number", `{"v":1,"type":"ping","id":1,"ref":"w10"}`, errOut(bad, "w10")),
		s("from object", `{"v":1,"type":"ping","from":{"user":"x"},"ref":"w11"}`, errOut(bad, "w11")),
		s("ref number", `{"v":1,"type":"ping","ref":5}`, errOut(bad, "")),
		s("ref over 64 bytes", `{"v":1,"type":"ping","ref":"`+strings.Repeat("r", 65)+`"}`, errOut(bad, "")),
		s("type over 32 bytes", `{"v":1,"type":"`+strings.Repeat("t", 33)+`","ref":"w12"}`, errOut(bad, "w12")),
		s("type upper case", `{"v":1,"type":"PING","ref":"w13"}`, errOut(bad, "w13")),
		// Rooms.
		s("10,000 rooms in one join", `{"v":1,"type":"join","room":"`+manyRooms(10000, ",")+`","ref":"r1"}`, errOut(room, "r1")),
		s("NUL in room", `{"v":1,"type":"join","room":"a\u0000b","ref":"r2"}`, errOut(room, "r2")),
		s("raw NUL in room", "{\"v\":1,\"type\":\"join\",\"room\":\"a\x00b\",\"ref\":\"r3\"}", errOut(bad, "")),
		s("newline in room", `{"v":1,"type":"join","room":"a\nb","ref":"r4"}`, errOut(room, "r4")),
		s("raw tab in room", "{\"v\":1,\"type\":\"join\",\"room\":\"a\tb\",\"ref\":\"r5\"}", errOut(bad, "")),
		s("DEL in room", "{\"v\":1,\"type\":\"join\",\"room\":\"a\x7fb\",\"ref\":\"r6\"}", errOut(room, "r6")),
		s("ESC in room", `{"v":1,"type":"join","room":"a\u001b[31m","ref":"r7"}`, errOut(room, "r7")),
		s("bidi override in room", `{"v":1,"type":"join","room":"a\u202eb","ref":"r8"}`, errOut(room, "r8")),
		s("room of 129 bytes", `{"v":1,"type":"join","room":"`+strings.Repeat("a", 129)+`","ref":"r9"}`, errOut(room, "r9")),
		s("empty room on join", `{"v":1,"type":"join","room":"","ref":"r10"}`, errOut(bad, "r10")),
		s("NUL in to", `{"v":1,"type":"direct","to":"bob\u0000","data":1,"ref":"r11"}`, errOut(core.CodeInvalidUser, "r11")),
		// Unknown and duplicate fields.
		s("unknown field", `{"v":1,"type":"ping","ref":"k1","bogus":1}`, errOut(bad, "k1")),
		s("upper-case field", `{"v":1,"TYPE":"ping","ref":"k2"}`, errOut(bad, "k2")),
		s("escaped field name", `{"v":1,"\u0074ype":"ping","ref":"k3"}`, errOut(bad, "k3")),
		s("empty field name", `{"v":1,"type":"ping","":1,"ref":"k4"}`, errOut(bad, "k4")),
		s("duplicate type", `{"v":1,"type":"ping","type":"join","ref":"k5"}`, errOut(bad, "k5")),
		s("duplicate v", `{"v":1,"v":1,"type":"ping","ref":"k6"}`, errOut(bad, "k6")),
		s("duplicate data", `{"v":1,"type":"ping","data":1,"data":2,"ref":"k7"}`, errOut(bad, "k7")),
		s("duplicate room, second invalid", `{"v":1,"type":"join","room":"ok","room":"bad room","ref":"k8"}`, errOut(bad, "k8")),
		// Server-only types are reserved.
		s("welcome from client", `{"v":1,"type":"welcome","data":{"user":"admin"},"ref":"s1"}`, errOut(unknown, "s1")),
		s("message from client", `{"v":1,"type":"message","room":"watch","data":"forged","ref":"s2"}`, errOut(unknown, "s2")),
		s("ack from client", `{"v":1,"type":"ack","ref":"s3"}`, errOut(unknown, "s3")),
		s("error from client", `{"v":1,"type":"error","data":{"code":"internal"},"ref":"s4"}`, errOut(unknown, "s4")),
		s("pong from client", `{"v":1,"type":"pong","ref":"s5"}`, errOut(unknown, "s5")),
		s("gap from client", `{"v":1,"type":"gap","ref":"s6"}`, errOut(unknown, "s6")),
		// Limits end the connection.
		s("frame over --max-message-size", `{"v":1,"type":"ping","data":"`+strings.Repeat("x", badInputMaxSize)+`"}`, closeOut(4003)),
		s("10,000 joins in one frame", joins.String(), closeOut(4002)),
		s("150 pings in one frame", pings.String(), closeOut(4002)),
	}
	return rows
}

// TestBadInputWebSocket sends each bad frame on a fresh connection.
func TestBadInputWebSocket(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.Node.MaxMessageSize = badInputMaxSize })
	by := newBystander(t, e)
	for i, row := range badFrames() {
		t.Run(row.name, func(t *testing.T) {
			c, _ := connect(t, e.url(q("user", "bad-"+strconv.Itoa(i))))
			typ := websocket.TextMessage
			if row.binary {
				typ = websocket.BinaryMessage
			}
			// The server may close before it has read the whole frame.
			if err := c.conn.WriteMessage(typ, row.frame); err != nil && row.want.close == 0 {
				t.Fatalf("send: %v", err)
			}
			assertOutcome(t, c, row.want)
		})
		by.check(t, row.name)
	}

	// data may be any JSON value: relayed compacted, null as absent.
	t.Run("data of every JSON type", func(t *testing.T) {
		c, _ := connect(t, e.url(q("user", "types", "rooms", "types")))
		for i, tc := range []struct{ in, out string }{
			{`null`, ``}, {`true`, `true`}, {`false`, `false`}, {`0`, `0`}, {`-1.5e-300`, `-1.5e-300`},
			{`1e999`, `1e999`}, {`""`, `""`}, {`"\u0000\n\u2028"`, `"\u0000\n\u2028"`},
			{`[ ]`, `[]`}, {`{ }`, `{}`}, {"[1,\r\t {\"a\" : null}]", `[1,{"a":null}]`}, {`{"a":1,"a":2}`, `{"a":1,"a":2}`},
		} {
			ref := "d" + strconv.Itoa(i)
			c.send(`{"v":1,"type":"publish","room":"types","ref":"` + ref + `","data":` + tc.in + `}`)
			ack, msg := c.ackAnd(core.TypeMessage)
			if ack.Ref != ref || string(msg.Data) != tc.out {
				t.Errorf("data %s: ack %s, message %s, want data %s", tc.in, ack.Encode(), msg.Encode(), tc.out)
			}
		}
	})
	by.check(t, "data of every JSON type")
}

func assertOutcome(t *testing.T, c *client, want outcome) {
	t.Helper()
	if want.close != 0 {
		if code := c.closed(); code != want.close {
			t.Fatalf("close code %d, want %d", code, want.close)
		}
		return
	}
	for _, w := range want.errs {
		if w.typ == core.TypeError {
			if msg := c.expectError(w.code, w.ref); msg == "" {
				t.Error("error without a message")
			}
			continue
		}
		if env := c.expect(w.typ); env.Ref != w.ref {
			t.Fatalf("got %s, want ref %q", env.Encode(), w.ref)
		}
	}
	if want.reply != nil {
		if env := c.expect(want.reply.typ); env.Ref != want.reply.ref {
			t.Fatalf("got %s, want ref %q", env.Encode(), want.reply.ref)
		}
	}
	c.ping() // still open, and nothing else was sent
}

// TestBadInputWebSocketBurst: separate frames sent faster than the rate
// limit (default 50/s, burst 100) end the connection with 4002.
func TestBadInputWebSocketBurst(t *testing.T) {
	e := startEdge(t, nil)
	by := newBystander(t, e)
	c, _ := connect(t, e.url(q("user", "burst")))
	for i := 0; i < 1000; i++ {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"ping"}`)); err != nil {
			break // closed by the server
		}
	}
	if code := c.closed(); code != 4002 {
		t.Fatalf("close code %d, want 4002", code)
	}
	by.check(t, "a burst")
}

// TestBadInputWebSocketQuery: bad query strings on GET /ws.
func TestBadInputWebSocketQuery(t *testing.T) {
	e := startEdge(t, nil)
	by := newBystander(t, e)
	by.check(t, "start") // for an id of this broker's epoch
	epoch, _, _ := strings.Cut(by.last, "-")

	t.Run("control characters in rooms", func(t *testing.T) {
		bad := []string{"a\x00b", "a\nb", "c d", "\x1b[31m", "é", "a\u202eb", strings.Repeat("x", 129)}
		c, w := connect(t, e.url(q("user", "ctl", "rooms", "ok,"+strings.Join(bad, ","))))
		if len(w.Rooms) != 1 || w.Rooms[0] != "ok" {
			t.Fatalf("welcome rooms %q, want [ok]", w.Rooms)
		}
		for range bad {
			c.expectError(core.CodeInvalidRoom, "")
		}
		c.ping()
	})
	by.check(t, "control characters in rooms")

	t.Run("10,000 rooms", func(t *testing.T) {
		// protocol.md: a list longer than --max-rooms joins the first 100
		// and gets one too_many_rooms error. That holds for requests whose
		// line and headers fit the edge's 8 KiB request buffer (1,100 rooms
		// here, a 7 KB URL); a longer one is refused before the upgrade
		// with a plain HTTP 431, so no session is created either way.
		c, w := connect(t, e.url(q("user", "many", "rooms", manyRooms(1100, ","))))
		if len(w.Rooms) != 100 {
			t.Fatalf("joined %d rooms, want 100", len(w.Rooms))
		}
		c.expectError(core.CodeTooManyRooms, "")
		c.ping()
		_, err := tryDial(t, e.url(q("user", "many", "rooms", manyRooms(10000, ","))))
		if err == nil {
			t.Fatal("10,000 rooms: connected, want the handshake refused")
		}
		refusedTooLong(t, e, 0, err)
		// The bystander and c: the previous subtest's client has closed,
		// and its session ends just after the server reads that.
		eventually(t, "2 connections: the bystander and c", func() bool { return e.stats(t).Connections == 2 })
	})
	by.check(t, "10,000 rooms")

	for _, since := range []string{
		"garbage", "-", "--", epoch, epoch + "-", epoch + "-x", epoch + "--1", epoch + "-18446744073709551616",
		epoch + "-99999999999", "a\x00b-1", strings.Repeat("9", 3000), "\xff\xfe-1",
	} {
		name := fmt.Sprintf("since %.40q", since)
		t.Run(name, func(t *testing.T) {
			c, w := connect(t, e.url(q("user", "resumer", "rooms", "watch", "since", since)))
			if w.Recovered == nil || *w.Recovered {
				t.Fatalf("welcome %+v, want recovered:false", w)
			}
			c.ping()
		})
		by.check(t, name)
	}

	for _, user := range []string{"a\x00b", "a b", strings.Repeat("u", 129), "\xff", "é"} {
		name := fmt.Sprintf("user %.40q", user)
		t.Run(name, func(t *testing.T) {
			c := dial(t, e.url(q("user", user))).read()
			if code := c.closed(); code != 4001 {
				t.Fatalf("close code %d, want 4001", code)
			}
		})
		by.check(t, name)
	}
}

// sendRaw POSTs body to /send and returns the status and reply envelopes.
func sendRaw(t *testing.T, e *edge, query string, body []byte) (int, []*core.Envelope) {
	t.Helper()
	return e.post(t, query, string(body))
}

// TestBadInputSend: the same idea over POST /send, with its statuses.
func TestBadInputSend(t *testing.T) {
	e := startEdge(t, nil) // --max-message-size 64 KiB
	by := newBystander(t, e)
	type reply struct {
		code, ref string
	}
	rows := []struct {
		name, query, body string
		status            int
		replies           []reply
	}{
		{"truncated JSON", q("user", "s1", "rooms", "r"), `{"v":1,"type":"publish","room":"r","ref":"t`, 400, []reply{{core.CodeBadRequest, ""}}},
		{"deep nesting", q("user", "s1"), `{"v":1,"type":"ping","ref":"n","data":` + nested(20000, "") + `}`, 400, []reply{{core.CodeBadRequest, ""}}},
		{"v 1e999", q("user", "s1"), `{"v":1e999,"type":"ping","ref":"h"}`, 400, []reply{{core.CodeBadRequest, "h"}}},
		{"ts 2^64+1", q("user", "s1"), `{"v":1,"type":"ping","ts":18446744073709551617,"ref":"h"}`, 400, []reply{{core.CodeBadRequest, "h"}}},
		{"invalid UTF-8", q("user", "s1"), "{\"v\":1,\"type\":\"ping\",\"data\":\"\xff\",\"ref\":\"u\"}", 400, []reply{{core.CodeBadRequest, "u"}}},
		{"whitespace only", q("user", "s1"), " \r\n\t\n ", 400, []reply{{core.CodeBadRequest, ""}}},
		{"not an object", q("user", "s1"), `[1]`, 400, []reply{{core.CodeBadRequest, ""}}},
		{"room 5", q("user", "s1"), `{"v":1,"type":"publish","room":5,"data":1,"ref":"w"}`, 400, []reply{{core.CodeBadRequest, "w"}}},
		{"unknown field", q("user", "s1"), `{"v":1,"type":"ping","x":1,"ref":"k"}`, 400, []reply{{core.CodeBadRequest, "k"}}},
		{"duplicate field", q("user", "s1"), `{"v":1,"type":"ping","type":"ping","ref":"k"}`, 400, []reply{{core.CodeBadRequest, "k"}}},
		{"server-only type", q("user", "s1", "rooms", "watch"), `{"v":1,"type":"message","room":"watch","data":"forged","ref":"s"}`, 400, []reply{{core.CodeUnknownType, "s"}}},
		{"NUL in room", q("user", "s1", "rooms", "r"), `{"v":1,"type":"publish","room":"r\u0000","data":1,"ref":"r"}`, 400, []reply{{core.CodeInvalidRoom, "r"}}},
		{"NUL in ?rooms= is not joined", q("user", "s1", "rooms", "r\x00"), `{"v":1,"type":"publish","room":"r","data":1,"ref":"r"}`, 403, []reply{{core.CodeNotJoined, "r"}}},
		{"good then bad", q("user", "s1"), `{"v":1,"type":"ping","ref":"a"}` + "\n{\n", 400, []reply{{"", "a"}, {core.CodeBadRequest, ""}}},
		{"over --max-message-size", q("user", "s1"), `{"v":1,"type":"ping","data":"` + strings.Repeat("x", 64<<10) + `"}`, 413, []reply{{"too_large", ""}}},
		{"control characters in user", q("user", "a\x00b"), `{"v":1,"type":"ping"}`, 401, []reply{{core.CodeUnauthorized, ""}}},
		{"over the rate limit", q("user", "s2"), strings.Repeat(`{"v":1,"type":"ping"}`+"\n", 101), 429, []reply{{"rate_limited", ""}}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			status, out := sendRaw(t, e, row.query, []byte(row.body))
			if status != row.status || len(out) != len(row.replies) {
				t.Fatalf("got %d %v, want %d with %d replies", status, out, row.status, len(row.replies))
			}
			for i, want := range row.replies {
				if code := replyCode(out[i]); out[i].Ref != want.ref || code != want.code || (code == "") != (out[i].Type != core.TypeError) {
					t.Errorf("reply %d: %s, want code %q ref %q", i, out[i].Encode(), want.code, want.ref)
				}
			}
		})
		by.check(t, row.name)
	}
	// A URL too long for the request-header buffer: refused, nothing sent.
	status, _, err := tryHTTP(http.MethodPost, "http://"+e.addr+"/send?"+q("user", "s3", "rooms", manyRooms(10000, ",")), `{"v":1,"type":"ping"}`)
	refusedTooLong(t, e, status, err)
	by.check(t, "10,000 rooms")
}

func httpDo(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	status, raw, err := tryHTTP(method, u, body)
	if err != nil {
		t.Fatalf("%s %.80s: %v", method, u, err)
	}
	return status, raw
}

func tryHTTP(method, u, body string) (int, string, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the (long) URL
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), nil
}

// refusedTooLong checks that a request whose URL does not fit the
// server's 4 KiB request-header buffer is refused before any handler
// runs: HTTP 431, or a reset when the server closed while the client was
// still writing the request line. err is the client's error, if any.
func refusedTooLong(t *testing.T, e *edge, status int, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) && !strings.Contains(err.Error(), "HTTP 431") {
			t.Fatalf("got %v, want HTTP 431 or a reset", err)
		}
	} else if status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("got HTTP %d, want 431", status)
	}
}

// TestBadInputSSEQuery: bad rooms and since on GET /sse.
func TestBadInputSSEQuery(t *testing.T) {
	e := startEdge(t, nil)
	by := newBystander(t, e)
	by.check(t, "start")
	epoch, _, _ := strings.Cut(by.last, "-")

	t.Run("bad rooms", func(t *testing.T) {
		bad := []string{"a\x00b", "a\nb", "c d", "é", strings.Repeat("x", 129)}
		c := openSSE(t, e.sseURL(q("user", "sse1", "rooms", "ok,"+strings.Join(bad, ","))), nil)
		if w := c.welcome(); len(w.Rooms) != 1 || w.Rooms[0] != "ok" {
			t.Fatalf("welcome %+v, want rooms [ok]", w)
		}
		for range bad {
			if env := c.expect(core.TypeError); replyCode(env) != core.CodeInvalidRoom || env.Ref != "" {
				t.Fatalf("got %s, want invalid_room without ref", env.Encode())
			}
		}
	})
	by.check(t, "bad rooms")
	for _, since := range []string{"garbage", epoch + "-18446744073709551616", epoch + "-99999999999", "a\x00b", strings.Repeat("9", 2000)} {
		name := fmt.Sprintf("since %.40q", since)
		t.Run(name, func(t *testing.T) {
			c := openSSE(t, e.sseURL(q("user", "sse2", "since", since)), nil)
			if w := c.welcome(); w.Recovered == nil || *w.Recovered {
				t.Fatalf("welcome %+v, want recovered:false", w)
			}
		})
		by.check(t, name)
	}
	t.Run("Last-Event-ID garbage", func(t *testing.T) {
		c := openSSE(t, e.sseURL(q("user", "sse3")), http.Header{"Last-Event-Id": {strings.Repeat("garbage-", 250)}})
		if w := c.welcome(); w.Recovered == nil || *w.Recovered {
			t.Fatalf("welcome %+v, want recovered:false", w)
		}
	})
	by.check(t, "Last-Event-ID")
	t.Run("bad user", func(t *testing.T) {
		if status, body := httpDo(t, http.MethodGet, e.sseURL(q("user", "a\x00b")), ""); status != http.StatusUnauthorized {
			t.Fatalf("got %d %s, want 401", status, body)
		}
	})
	by.check(t, "bad user")
	t.Run("10,000 rooms", func(t *testing.T) {
		status, _, err := tryHTTP(http.MethodGet, e.sseURL(q("user", "sse4", "rooms", manyRooms(10000, ","))), "")
		refusedTooLong(t, e, status, err)
	})
	by.check(t, "10,000 rooms")
}

// TestBadInputPollQuery: bad wait, cursor and rooms on GET /poll.
func TestBadInputPollQuery(t *testing.T) {
	e := startEdge(t, nil)
	by := newBystander(t, e)
	by.check(t, "start")
	epoch, _, _ := strings.Cut(by.last, "-")

	for _, wait := range []string{"abc", "-1s", "-1", "1e9", "99999999999", "9999999999h", "1.5", " 1", "0x10", "\x00"} {
		name := fmt.Sprintf("wait %q", wait)
		t.Run(name, func(t *testing.T) {
			status, body := httpDo(t, http.MethodGet, "http://"+e.addr+"/poll?"+q("user", "p1", "wait", wait), "")
			var b struct{ Error struct{ Code string } }
			_ = json.Unmarshal([]byte(body), &b)
			if status != http.StatusBadRequest || b.Error.Code != core.CodeBadRequest {
				t.Fatalf("got %d %s, want 400 bad_request", status, body)
			}
		})
		by.check(t, name)
	}
	t.Run("huge wait is capped, not refused", func(t *testing.T) {
		// A message is already waiting after the cursor, so the poll
		// answers at once whatever its wait.
		cursor := by.last
		by.check(t, "a message to find")
		r := e.poll(t, q("user", "p5", "rooms", "watch", "cursor", cursor, "wait", "2562047h"))
		if r.status != http.StatusOK || len(r.messages) != 1 || r.messages[0].ID != by.last || !r.recovered {
			t.Fatalf("got %d %s, want the bystander's last message", r.status, r.body)
		}
	})
	by.check(t, "huge wait")
	for _, cursor := range []string{"garbage", "-", epoch + "-18446744073709551616", epoch + "-x", "a\x00b-1", strings.Repeat("z", 2000)} {
		name := fmt.Sprintf("cursor %.40q", cursor)
		t.Run(name, func(t *testing.T) {
			r := e.poll(t, q("user", "p2", "rooms", "watch", "wait", "0", "cursor", cursor))
			if r.status != http.StatusOK || r.recovered {
				t.Fatalf("got %d %s, want 200 with recovered:false", r.status, r.body)
			}
			if r.cursor == "" || r.cursor == cursor {
				t.Fatalf("cursor %q: want the broker's head to poll on from", r.cursor)
			}
		})
		by.check(t, name)
	}
	t.Run("bad rooms", func(t *testing.T) {
		r := e.poll(t, q("user", "p3", "rooms", "ok,a\x00b,c d", "wait", "0"))
		var b struct{ Errors []*core.Envelope }
		if err := json.Unmarshal([]byte(r.body), &b); err != nil || r.status != http.StatusOK {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if len(b.Errors) != 2 || replyCode(b.Errors[0]) != core.CodeInvalidRoom || replyCode(b.Errors[1]) != core.CodeInvalidRoom {
			t.Fatalf("errors %s, want two invalid_room", r.body)
		}
	})
	by.check(t, "bad rooms")
	t.Run("bad user", func(t *testing.T) {
		// An invalid development-mode ?user= is a credentials problem on
		// every transport: 4001 on WebSocket, 401 on /sse, /send, /poll,
		// with a one-line reason.
		status, body := httpDo(t, http.MethodGet, "http://"+e.addr+"/poll?"+q("user", "a\x00b", "wait", "0"), "")
		if status != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthorized","message":"invalid_user: `) {
			t.Fatalf("got %d %s, want 401 unauthorized invalid_user", status, body)
		}
	})
	by.check(t, "bad user")
	t.Run("10,000 rooms", func(t *testing.T) {
		status, _, err := tryHTTP(http.MethodGet, "http://"+e.addr+"/poll?"+q("user", "p4", "wait", "0", "rooms", manyRooms(10000, ",")), "")
		refusedTooLong(t, e, status, err)
	})
	by.check(t, "10,000 rooms")
}

// TestBadFrameConnectionsDoNotLeak opens many connections that each send
// one bad frame and are then closed (by the server for an oversize frame,
// by the client after its error reply otherwise), and checks that every
// session, goroutine and connection is released.
//
// Sizing: client and server share this process, so each open connection
// costs two descriptors; at most badLeakWorkers are open at once, far
// under the 20,000 open files .ci/run allows (checked below). 10,000
// connections take about 15 s under -race on 2 cores.
func TestBadFrameConnectionsDoNotLeak(t *testing.T) {
	const (
		total          = 10000
		badLeakWorkers = 32
	)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if need := uint64(4*badLeakWorkers + 256); lim.Cur < need {
		t.Fatalf("open-file limit %d, need at least %d (ulimit -n)", lim.Cur, need)
	}
	e := startEdge(t, func(c *config.Config) { c.Node.MaxMessageSize = 1024 })
	by := newBystander(t, e)
	by.check(t, "start")
	e.stats(t) // its keep-alive connection is part of the baseline
	baseline, _ := liveGoroutines()

	frames := []badLeakFrame{
		{frame: []byte(`{"v":1,"type":"ping","ref":"x"`)},                                                // truncated: error, then the client leaves
		{frame: []byte("{\"v\":1,\"type\":\"ping\",\"data\":\"\xff\",\"ref\":\"x\"}"), close: 1007},      // invalid UTF-8 text: 1007
		{frame: []byte(`{"v":1,"type":"welcome","ref":"x"}`)},                                            // server-only type: error
		{frame: []byte(`{"v":1,"type":"ping","data":"` + strings.Repeat("x", 1100) + `"}`), close: 4003}, // oversize: 4003
	}
	// Each connection is bounded by waitFor (a hang); the run as a whole
	// only by the test's own deadline, keeping a margin to report from,
	// since how long 10,000 connections take depends on the machine's load.
	var deadline time.Time // zero: no bound but each connection's
	if d, ok := t.Deadline(); ok {
		deadline = d.Add(-3 * waitFor)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, badLeakWorkers)
	start := time.Now()
	for w := 0; w < badLeakWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				if !deadline.IsZero() && time.Now().After(deadline) {
					errs <- fmt.Errorf("connection %d: the test's deadline is near (go test -timeout)", i)
					return
				}
				if err := oneBadConnection(e, i, frames[i%int64(len(frames))], deadline); err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d bad connections in %s", total, time.Since(start).Round(time.Millisecond))

	eventually(t, "every bad connection to leave the node", func() bool { return e.stats(t).Connections == 1 })
	var now int
	var stacks string
	defer func() {
		if t.Failed() {
			t.Logf("goroutines: baseline %d, now %d\n%s", baseline, now, stacks)
		}
	}()
	eventually(t, "goroutines to return to the baseline", func() bool {
		now, stacks = liveGoroutines()
		return now <= baseline+2
	})
	if s := e.stats(t); s.ConnectionsTotal < total+1 || s.Rooms != 1 {
		t.Fatalf("stats %+v: want %d connections seen and only the bystander's room", s, total+1)
	}
	t.Logf("goroutines: baseline %d, after %d", baseline, now)
	by.check(t, "10,000 bad connections")
}

// liveGoroutines counts goroutines, leaving out fasthttp's idle pooled
// workers: the server keeps up to its peak concurrency of them parked for
// reuse (reaped after 10 s idle), which is bounded and not a leak.
func liveGoroutines() (int, string) {
	buf := make([]byte, 8<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	n := 0
	var kept []string
	for _, g := range strings.Split(all, "\n\n") {
		first, rest, _ := strings.Cut(g, "\n")
		if strings.HasSuffix(first, "[chan receive]:") && strings.HasPrefix(rest, "github.com/valyala/fasthttp.(*workerPool).workerFunc(") {
			continue
		}
		n++
		kept = append(kept, g)
	}
	return n, strings.Join(kept, "\n\n")
}

// badLeakFrame is a bad frame and the close code it gets (0: an error
// reply, after which the client leaves).
type badLeakFrame struct {
	frame []byte
	close int
}

// oneBadConnection dials, reads the welcome, sends the frame and waits
// for the error reply or the close, each read bounded by waitFor and by
// deadline when it is not zero. It runs on a worker goroutine: it returns
// errors instead of failing the test.
func oneBadConnection(e *edge, i int64, bad badLeakFrame, deadline time.Time) error {
	d := websocket.Dialer{HandshakeTimeout: waitFor}
	conn, _, err := d.Dial(e.url(q("user", "leak-"+strconv.FormatInt(i, 10))), nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	if d := time.Now().Add(waitFor); deadline.IsZero() || d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	if _, m, err := conn.ReadMessage(); err != nil || !bytes.Contains(m, []byte(`"welcome"`)) {
		return fmt.Errorf("welcome: %q %v", m, err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, bad.frame); err != nil {
		return err
	}
	_, m, err := conn.ReadMessage()
	if bad.close != 0 {
		if !websocket.IsCloseError(err, bad.close) {
			return fmt.Errorf("got %q %v, want close %d", m, err, bad.close)
		}
		return nil
	}
	if err != nil || !bytes.Contains(m, []byte(`"type":"error"`)) {
		return fmt.Errorf("got %q %v, want an error envelope", m, err)
	}
	return nil // the deferred Close drops the socket without a close frame
}
