package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
	"github.com/switchboard-dev/switchboard/examples/custom-adapter/ndjson"
)

// TestMain checks for leaked goroutines, except fasthttp's process-wide
// ones (its date updater, and a worker pool's cleaner, which sleeps out
// its interval after the server stopped), as edge/server's tests do.
func TestMain(m *testing.M) {
	coretest.VerifyNone(m, "fasthttp.updateServerDate", "fasthttp.(*workerPool).Start.func2")
}

// waitFor bounds every wait for the server: generous, so that a loaded
// machine passes; only a failing test waits this long.
const waitFor = 60 * time.Second

// secret is the HS256 secret the example runs with.
const secret = "0123456789abcdef0123456789abcdef"

// startJWT runs the example in-process as its docs say, with JWT on:
//
//	SWITCHBOARD_JWT_LEEWAY=0s custom-adapter --jwt-secret … --addr … --tcp-addr … [extra…]
//
// on loopback ports of its choosing (no leeway, so that a token's exp is
// the session's expiry to the second). It returns the NDJSON address;
// the example is stopped, as by a signal, when t ends, and must exit 0.
func startJWT(t *testing.T, extra ...string) string {
	t.Helper()
	args := append([]string{"--jwt-secret", secret, "--addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0"}, extra...)
	env := map[string]string{"SWITCHBOARD_JWT_LEEWAY": "0s"}
	ctx, cancel := context.WithCancel(context.Background())
	log := &syncBuffer{}
	ready := make(chan net.Addr, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, log, func(_, tcp net.Addr) { ready <- tcp })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("exit status %d after the signal, want 0; log:\n%s", code, log)
			}
		case <-time.After(waitFor):
			t.Errorf("still running %v after the signal; log:\n%s", waitFor, log)
		}
	})
	select {
	case addr := <-ready:
		return addr.String()
	case code := <-exit:
		exit <- code // for the cleanup
		t.Fatalf("run(%q) exited with %d before serving; log:\n%s", args, code, log)
	case <-time.After(waitFor):
		t.Fatalf("run(%q) not serving after %v; log:\n%s", args, waitFor, log)
	}
	return ""
}

// token mints an HS256 JWT for user with the edge's claims: "sub", "exp",
// and "rooms" when rooms is not nil ({"subscribe": […], "publish": […]}).
func token(t *testing.T, user string, exp time.Time, rooms map[string][]string) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": user, "exp": exp.Unix()}
	if rooms != nil {
		claims["rooms"] = rooms
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestForbiddenRoom: with JWT on, a token whose rooms claim allows only
// room a gets forbidden for b however it asks (in the hello, by a join
// line, by a publish line) and works in a.
func TestForbiddenRoom(t *testing.T) {
	addr := startJWT(t)
	onlyA := map[string][]string{"subscribe": {"a"}, "publish": {"a"}}
	c := dial(t, addr, ndjson.Hello{Token: token(t, "ada", time.Now().Add(time.Hour), onlyA), Rooms: []string{"a", "b"}})

	w := c.expect(core.TypeWelcome, "")
	var welcome struct {
		User  string
		Rooms []string
	}
	_ = json.Unmarshal(w.Data, &welcome)
	if welcome.User != "ada" || !slices.Equal(welcome.Rooms, []string{"a"}) {
		t.Fatalf("welcome %s, want user ada (the token's sub) in rooms [a] only", w.Data)
	}
	c.expectError("", core.CodeForbidden) // b in the hello

	c.send(`{"v":1,"type":"join","room":"b","ref":"j"}`)
	c.expectError("j", core.CodeForbidden)
	c.send(`{"v":1,"type":"publish","room":"b","ref":"p","data":"x"}`)
	c.expectError("p", core.CodeForbidden)

	c.send(`{"v":1,"type":"publish","room":"a","ref":"q","data":"hi"}`)
	got := []*core.Envelope{c.next(), c.next()} // the ack, and the message to the room's members
	slices.SortFunc(got, func(x, y *core.Envelope) int { return strings.Compare(x.Type, y.Type) })
	if got[0].Type != core.TypeAck || got[0].Ref != "q" || got[1].Type != core.TypeMessage || got[1].Room != "a" || got[1].From != "ada" {
		t.Fatalf("after publishing to a, got %s and %s, want its ack and the message", got[0].Encode(), got[1].Encode())
	}
}

// TestRefusedCredentials: with JWT on, the node refuses, with a 4001
// close line and no welcome, an expired token, a token signed with
// another secret, and a hello that only claims a user (development
// mode's trust is off).
func TestRefusedCredentials(t *testing.T) {
	addr := startJWT(t)
	other, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ada"}).SignedString([]byte("another secret, long enough....."))
	if err != nil {
		t.Fatal(err)
	}
	for name, hello := range map[string]ndjson.Hello{
		"expired":      {Token: token(t, "ada", time.Now().Add(-time.Hour), nil), Rooms: []string{"a"}},
		"wrong secret": {Token: other},
		"no token":     {User: "ada"},
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr, hello)
			if code, reason := c.closed(); code != int(core.DisconnectUnauthorized.Code) {
				t.Fatalf("closed with %d %q, want 4001", code, reason)
			}
		})
	}
}

// TestTokenExpiresAndRefresh: a refresh line with a later token for the
// same user moves the connection's expiry (the ack says to when), a
// token for another user is forbidden, and a connection whose token runs
// out is closed with 4001 "token expired".
func TestTokenExpiresAndRefresh(t *testing.T) {
	addr := startJWT(t)
	c := dial(t, addr, ndjson.Hello{Token: token(t, "ada", time.Now().Add(time.Hour), nil)})
	c.expect(core.TypeWelcome, "")
	later := time.Now().Add(2 * time.Hour)
	c.send(`{"v":1,"type":"refresh","ref":"r","data":{"token":"` + token(t, "ada", later, nil) + `"}}`)
	var ack struct{ Expires int64 }
	_ = json.Unmarshal(c.expect(core.TypeAck, "r").Data, &ack)
	if ack.Expires != later.Unix() {
		t.Fatalf("refresh ack expires %d, want the new token's exp %d", ack.Expires, later.Unix())
	}
	c.send(`{"v":1,"type":"refresh","ref":"s","data":{"token":"` + token(t, "bob", later, nil) + `"}}`)
	c.expectError("s", core.CodeForbidden)

	// A token that runs out in a second or two: the node ends the
	// connection then (or refuses it, if this machine was slower).
	d := dial(t, addr, ndjson.Hello{Token: token(t, "ada", time.Now().Add(2*time.Second), nil)})
	welcomed := false
	for env := d.next(); env.Type != "close"; env = d.next() {
		welcomed = welcomed || env.Type == core.TypeWelcome
	}
	code, reason := d.closeLine()
	if code != int(core.DisconnectTokenExpired.Code) || welcomed && reason != core.DisconnectTokenExpired.Reason {
		t.Fatalf("closed with %d %q (welcomed: %v), want 4001 %q", code, reason, welcomed, core.DisconnectTokenExpired.Reason)
	}
}

// TestAnonymousRules: the edge's anonymous rules apply to NDJSON
// connections too: without a token a client may join what
// --anon-subscribe allows, and nothing else, and publish nowhere.
func TestAnonymousRules(t *testing.T) {
	addr := startJWT(t, "--anon-subscribe", "news")
	c := dial(t, addr, ndjson.Hello{Rooms: []string{"news"}})
	var welcome struct{ Rooms []string }
	_ = json.Unmarshal(c.expect(core.TypeWelcome, "").Data, &welcome)
	if !slices.Equal(welcome.Rooms, []string{"news"}) {
		t.Fatalf("anonymous welcome rooms %v, want [news]", welcome.Rooms)
	}
	c.send(`{"v":1,"type":"join","room":"a","ref":"j"}`)
	c.expectError("j", core.CodeForbidden)
	c.send(`{"v":1,"type":"publish","room":"news","ref":"p","data":"x"}`)
	c.expectError("p", core.CodeForbidden)
}

// TestTCPAddrFlag: --tcp-addr is the edge command's flag like any other:
// read from SWITCHBOARD_TCP_ADDR, listed by --help, a missing value is a
// bad setting (exit status 2) naming it.
func TestTCPAddrFlag(t *testing.T) {
	var out, errOut syncBuffer
	if code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, &errOut, nil); code != 0 ||
		!strings.Contains(out.String(), "--tcp-addr (SWITCHBOARD_TCP_ADDR)") {
		t.Fatalf("--help: exit %d, output lacks --tcp-addr:\n%s", code, &out)
	}
	if code := run(context.Background(), []string{"--tcp-addr"}, func(string) string { return "" }, io.Discard, &errOut, nil); code != 2 ||
		!strings.Contains(errOut.String(), "tcp-addr") {
		t.Fatalf("--tcp-addr without a value: exit %d, stderr %q; want 2 naming the flag", code, &errOut)
	}
	// From the environment: a port of the system's choosing, not the
	// default's.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	exit := make(chan int, 1)
	env := map[string]string{"SWITCHBOARD_TCP_ADDR": "127.0.0.1:0", "SWITCHBOARD_ADDR": "127.0.0.1:0"}
	go func() {
		exit <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard, func(_, tcp net.Addr) { ready <- tcp })
	}()
	select {
	case got := <-ready:
		if got.String() == defaultTCPAddr {
			t.Errorf("NDJSON on %s, the default, despite SWITCHBOARD_TCP_ADDR=127.0.0.1:0", got)
		}
	case code := <-exit:
		t.Fatalf("exited with %d before serving", code)
	case <-time.After(waitFor):
		t.Fatalf("not serving after %v", waitFor)
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Errorf("exit status %d after the signal, want 0", code)
	}
}

// conn is an NDJSON client read from the test goroutine only.
type conn struct {
	t     *testing.T
	c     net.Conn
	sc    *bufio.Scanner
	close *core.Envelope // the close line, once read
}

// dial connects to addr and sends hello; the connection is closed when t ends.
func dial(t *testing.T, addr string, hello ndjson.Hello) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitFor))
	line, _ := json.Marshal(hello)
	cc := &conn{t: t, c: c, sc: bufio.NewScanner(c)}
	cc.send(string(line))
	return cc
}

func (c *conn) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, line+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next envelope, the close line included, answering the
// server's keep-alives (blank lines) on the way.
func (c *conn) next() *core.Envelope {
	c.t.Helper()
	for c.sc.Scan() {
		if len(c.sc.Bytes()) == 0 {
			c.send("")
			continue
		}
		env := new(core.Envelope)
		if err := json.Unmarshal(c.sc.Bytes(), env); err != nil {
			c.t.Fatalf("not an envelope: %q: %v", c.sc.Bytes(), err)
		}
		if env.Type == "close" {
			c.close = env
		}
		return env
	}
	c.t.Fatalf("connection ended without a close line: %v", c.sc.Err())
	return nil
}

// expect reads the next envelope and fails unless it has type typ and ref.
func (c *conn) expect(typ, ref string) *core.Envelope {
	c.t.Helper()
	env := c.next()
	if env.Type != typ || env.Ref != ref {
		c.t.Fatalf("got %s, want a %s with ref %q", env.Encode(), typ, ref)
	}
	return env
}

// expectError reads the next envelope and fails unless it is an error
// with ref and code.
func (c *conn) expectError(ref, code string) {
	c.t.Helper()
	env := c.expect(core.TypeError, ref)
	var e struct{ Code string }
	_ = json.Unmarshal(env.Data, &e)
	if e.Code != code {
		c.t.Fatalf("got %s, want code %s", env.Encode(), code)
	}
}

// closed reads until the close line, failing on anything else (a
// welcome): it returns the close code and reason.
func (c *conn) closed() (code int, reason string) {
	c.t.Helper()
	if env := c.next(); env.Type != "close" {
		c.t.Fatalf("got %s, want the close line", env.Encode())
	}
	return c.closeLine()
}

// closeLine decodes the close line read, then checks that the server
// hung up after it.
func (c *conn) closeLine() (code int, reason string) {
	c.t.Helper()
	var d struct {
		Code   int
		Reason string
	}
	_ = json.Unmarshal(c.close.Data, &d)
	if c.sc.Scan() {
		c.t.Fatalf("line after the close line: %q", c.sc.Bytes())
	}
	return d.Code, d.Reason
}

// syncBuffer is the example's stderr (its log), written from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
