package core_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// eventLog records lifecycle events as "type:user:room".
type eventLog struct {
	mu  sync.Mutex
	evs []core.Event
}

func (l *eventLog) add(e core.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b []string
	for _, e := range l.evs {
		s := e.Type + ":" + e.User
		if e.Room != "" {
			s += ":" + e.Room
		}
		if e.Code != 0 {
			s += ":" + e.Reason
		}
		b = append(b, s)
	}
	return strings.Join(b, ",")
}

// TestLifecycleEvents: a session reports connect, its joins and leaves,
// a leave for every room still joined when it ends, then disconnect, with
// the node id, connection id and identity metadata; long-poll requests
// and stateless requests report nothing.
func TestLifecycleEvents(t *testing.T) {
	t.Parallel()
	log := &eventLog{}
	auth := identities{"pro": {User: "u", Meta: map[string]string{"plan": "pro"}}}
	n := newNode(t, core.Config{OnEvent: log.add, Authenticator: auth}, nil)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{Token: "pro"}, Rooms: []string{"a"}})
	c.send(`{"v":1,"type":"join","room":"b","ref":"1"}`)
	c.expectAck("1")
	c.send(`{"v":1,"type":"leave","room":"a","ref":"2"}`)
	c.expectAck("2")
	c.send(`{"v":1,"type":"join","room":"c","ref":"3"}`)
	c.expectAck("3")
	c.s.Close(core.DisconnectNormal)

	// Not reported: an ephemeral transport's session, a stateless request.
	s, err := n.Accept(context.Background(), ephemeral{coretest.NewTransport()}, core.ConnectRequest{Credentials: core.Credentials{User: "poll"}, Rooms: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(core.DisconnectNormal)
	n.HandleStateless(context.Background(), core.StatelessRequest{Principal: n.principal(core.Credentials{User: "send"})}, &core.Envelope{V: 1, Type: core.TypePing})

	want := "connect:u,join:u:a,join:u:b,leave:u:a,join:u:c,leave:u:b,leave:u:c,disconnect:u:normal closure"
	got := log.String()
	// The two rooms left at disconnect come in map order.
	got = strings.Replace(got, "leave:u:c,leave:u:b", "leave:u:b,leave:u:c", 1)
	if got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, e := range log.evs {
		if e.Node != n.ID() || e.Conn != c.s.ID() || e.Meta["plan"] != "pro" || e.Transport == "" || e.Time.IsZero() {
			t.Fatalf("event %+v: node/conn/meta/transport/time not filled (node %s conn %s)", e, n.ID(), c.s.ID())
		}
	}
}

// TestHooksAddedLater: receivers added with Node.OnEvent and
// Node.BeforeBrokerClose after the node exists get what Config's do, in
// the order added, so a component built on the node (presence) needs no
// two-step start.
func TestHooksAddedLater(t *testing.T) {
	t.Parallel()
	var order []string
	var mu sync.Mutex
	note := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	n := newNode(t, core.Config{
		OnEvent:           func(e core.Event) { note("config:" + e.Type) },
		BeforeBrokerClose: func(context.Context) { note("config:close") },
	}, nil)
	n.OnEvent(func(e core.Event) { note("added:" + e.Type) })
	n.BeforeBrokerClose(func(ctx context.Context) {
		if _, ok := ctx.Deadline(); !ok {
			note("added:close without a deadline")
			return
		}
		note("added:close")
	})
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}})
	c.s.Close(core.DisconnectNormal)
	<-c.s.Done()
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "config:connect added:connect config:disconnect added:disconnect config:close added:close"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("hooks ran %q, want %q", got, want)
	}
}
