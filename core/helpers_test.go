package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// waitTimeout bounds every wait for something core is expected to do. In
// a synctest bubble it is fake time and costs nothing.
const waitTimeout = 5 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// testNode is a core.Node whose cleanup shuts it down and then checks
// that every transport it handed out was closed exactly once and never
// misused. Its helpers fail the test that created it: use it from that
// test only, not from its subtests.
type testNode struct {
	*core.Node
	t      *testing.T
	broker core.Broker

	mu         sync.Mutex
	transports []*coretest.Transport
}

func newMemory(t *testing.T, cfg memory.Config) *memory.Broker {
	t.Helper()
	b, err := memory.New(cfg, quiet)
	if err != nil {
		t.Fatalf("memory.New: %v", err)
	}
	return b
}

// newNode starts a node on b (a fresh memory broker when nil).
func newNode(t *testing.T, cfg core.Config, b core.Broker) *testNode {
	t.Helper()
	if b == nil {
		b = newMemory(t, memory.Config{})
	}
	n, err := core.NewNode(cfg, b, quiet)
	if err != nil {
		t.Fatalf("NewNode: %v", err)
	}
	tn := &testNode{Node: n, t: t, broker: b}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = n.Shutdown(ctx) // idempotent; tests that shut down check the result themselves
		tn.mu.Lock()
		defer tn.mu.Unlock()
		for i, tr := range tn.transports {
			if err := tr.Err(); err != nil {
				t.Errorf("transport %d broke the Transport contract: %v", i, err)
			}
			if _, closed := tr.Disconnect(); !closed {
				t.Errorf("transport %d still open after Shutdown", i)
			}
		}
	})
	return tn
}

// identities is an Authenticator for tests: a token it knows gets that
// Identity; anything else is Insecure's (the claimed user).
type identities map[string]core.Identity

func (m identities) Authenticate(ctx context.Context, c core.Credentials) (core.Identity, error) {
	if id, ok := m[c.Token]; ok && c.Token != "" {
		return id, nil
	}
	return core.Insecure.Authenticate(ctx, c)
}

// principal authenticates c on n, for a stateless request.
func (n *testNode) principal(c core.Credentials) core.Principal {
	n.t.Helper()
	p, err := n.Authenticate(context.Background(), c)
	if err != nil {
		n.t.Fatalf("Authenticate(%+v): %v", c, err)
	}
	return p
}

func (n *testNode) track(tr *coretest.Transport) {
	n.mu.Lock()
	n.transports = append(n.transports, tr)
	n.mu.Unlock()
}

// publish sends a room message from the server side (as a backend would)
// and returns its id once the broker has delivered it to the hub (the
// memory broker delivers asynchronously), so tests can reason about what
// was live before a connect.
func (n *testNode) publish(room, data string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: room, From: "server", Data: json.RawMessage(data)}
	id, err := n.Publish(ctx, core.RoomChannel(room), env)
	if err != nil {
		n.t.Fatalf("Publish(%s): %v", room, err)
	}
	if err := waitDelivered(ctx, n.broker); err != nil {
		n.t.Fatalf("Sync after Publish(%s): %v", room, err)
	}
	return id
}

// publishNoWait publishes without waiting for delivery.
func (n *testNode) publishNoWait(room, data string) string {
	n.t.Helper()
	env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: room, From: "server", Data: json.RawMessage(data)}
	id, err := n.Publish(context.Background(), core.RoomChannel(room), env)
	if err != nil {
		n.t.Fatalf("Publish(%s): %v", room, err)
	}
	return id
}

// waitDelivered waits until b (or the broker a hookBroker wraps) has
// delivered everything published so far, when it can tell.
func waitDelivered(ctx context.Context, b core.Broker) error {
	if h, ok := b.(*hookBroker); ok {
		b = h.Broker
	}
	if s, ok := b.(interface{ Sync(context.Context) error }); ok {
		return s.Sync(ctx)
	}
	return nil
}

// client is one accepted session and its recording transport.
type client struct {
	t       *testing.T
	s       *core.Session
	tr      *coretest.Transport
	welcome welcomeData
	pings   atomic.Int64 // refs for barrier pings
}

type welcomeData struct {
	Conn      string   `json:"conn"`
	User      string   `json:"user"`
	Rooms     []string `json:"rooms"`
	Recovered *bool    `json:"recovered"`
	Expires   int64    `json:"expires"`
}

type errorData struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type ackData struct {
	Room string `json:"room"`
	To   string `json:"to"`
	ID   string `json:"id"`
}

// accept runs Node.Accept on a new recording transport.
func (n *testNode) accept(req core.ConnectRequest, cfg ...coretest.TransportConfig) (*coretest.Transport, *core.Session, error) {
	tr := coretest.NewTransport(cfg...)
	n.track(tr)
	s, err := n.Accept(context.Background(), tr, req)
	return tr, s, err
}

// connect accepts a session and reads its welcome.
func (n *testNode) connect(req core.ConnectRequest, cfg ...coretest.TransportConfig) *client {
	n.t.Helper()
	tr, s, err := n.accept(req, cfg...)
	if err != nil {
		n.t.Fatalf("Accept(%+v): %v", req, err)
	}
	c := &client{t: n.t, s: s, tr: tr}
	env := c.expect(core.TypeWelcome)
	if err := json.Unmarshal(env.Data, &c.welcome); err != nil {
		n.t.Fatalf("welcome data %s: %v", env.Data, err)
	}
	return c
}

func (c *client) send(frame string) { c.s.HandleFrame([]byte(frame)) }

// next returns the next envelope written to the client.
func (c *client) next() *core.Envelope {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	env, err := c.tr.Next(ctx)
	if err != nil {
		d, _ := c.tr.Disconnect()
		c.t.Fatalf("waiting for an envelope for %s: %v (disconnect %v)", c.s.User(), err, d)
	}
	return env
}

func (c *client) expect(typ string) *core.Envelope {
	c.t.Helper()
	env := c.next()
	if env.Type != typ {
		c.t.Fatalf("%s got %s, want type %q", c.s.User(), env.Encode(), typ)
	}
	return env
}

// expectError reads an error envelope and checks its code and ref.
func (c *client) expectError(code, ref string) errorData {
	c.t.Helper()
	env := c.expect(core.TypeError)
	var d errorData
	if err := json.Unmarshal(env.Data, &d); err != nil {
		c.t.Fatalf("error data %s: %v", env.Data, err)
	}
	if d.Code != code || env.Ref != ref {
		c.t.Fatalf("got error %s, want code %q ref %q", env.Encode(), code, ref)
	}
	return d
}

func (c *client) expectAck(ref string) ackData {
	c.t.Helper()
	env := c.expect(core.TypeAck)
	if env.Ref != ref {
		c.t.Fatalf("got ack %s, want ref %q", env.Encode(), ref)
	}
	var d ackData
	if err := json.Unmarshal(env.Data, &d); err != nil {
		c.t.Fatalf("ack data %s: %v", env.Data, err)
	}
	return d
}

// expectMessage reads a room message and checks its room and data.
func (c *client) expectMessage(room, data string) *core.Envelope {
	c.t.Helper()
	env := c.expect(core.TypeMessage)
	if env.Room != room || string(env.Data) != data || env.ID == "" {
		c.t.Fatalf("got %s, want a message in %q with data %s", env.Encode(), room, data)
	}
	return env
}

// expectQuiet proves nothing else was queued for the client: it sends a
// ping and requires the pong to be the very next envelope. Fan-out
// enqueues synchronously, so anything published before this call would
// come first.
func (c *client) expectQuiet() {
	c.t.Helper()
	ref := "quiet-" + strconv.FormatInt(c.pings.Add(1), 10)
	c.send(fmt.Sprintf(`{"v":1,"type":"ping","ref":%q}`, ref))
	env := c.next()
	if env.Type != core.TypePong || env.Ref != ref {
		c.t.Fatalf("%s: unexpected envelope %s (waiting for pong %s)", c.s.User(), env.Encode(), ref)
	}
}

// expectClosed waits for the transport to be closed and the session to be
// done, and returns the Disconnect.
func (c *client) expectClosed(want core.Disconnect) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	d, err := c.tr.WaitClosed(ctx)
	if err != nil {
		c.t.Fatalf("%s: transport not closed: %v", c.s.User(), err)
	}
	if d != want {
		c.t.Fatalf("%s: closed with %+v, want %+v", c.s.User(), d, want)
	}
	select {
	case <-c.s.Done():
	case <-ctx.Done():
		c.t.Fatalf("%s: session not done after the transport closed", c.s.User())
	}
	if err := c.s.Context().Err(); err == nil {
		c.t.Errorf("%s: session context not cancelled after Done", c.s.User())
	}
}

// isClosed reports whether the transport has been closed, without waiting.
func (c *client) isClosed() bool {
	_, closed := c.tr.Disconnect()
	return closed
}

func data(n int) string { return `{"n":` + strconv.Itoa(n) + `}` }

// hookBroker wraps a broker with per-test behaviour. Nil hooks pass
// through.
type hookBroker struct {
	core.Broker
	publish func(ctx context.Context, p core.Publication) (core.Published, error)
	history func(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error)
}

var _ core.Broker = (*hookBroker)(nil)

func (b *hookBroker) Publish(ctx context.Context, p core.Publication) (core.Published, error) {
	if b.publish != nil {
		return b.publish(ctx, p)
	}
	return b.Broker.Publish(ctx, p)
}

// publishTo publishes env on channel through b, without a key.
func publishTo(b core.Broker, ctx context.Context, channel string, env *core.Envelope) (string, error) {
	res, err := b.Publish(ctx, core.Publication{Channel: channel, Envelope: env})
	return res.ID, err
}

func (b *hookBroker) History(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
	if b.history != nil {
		return b.history(ctx, req)
	}
	return b.Broker.History(ctx, req)
}

// HistoryPage goes through the history hook too, when there is one: the
// page is cut from what it returns.
func (b *hookBroker) HistoryPage(ctx context.Context, req core.HistoryRequest) (core.HistoryPage, error) {
	if b.history == nil {
		return b.Broker.HistoryPage(ctx, req)
	}
	res, err := b.history(ctx, req)
	if err != nil {
		return core.HistoryPage{}, err
	}
	p := core.HistoryPage{Envelopes: res.Envelopes, Recovered: res.Recovered, Next: req.Since}
	if req.Limit > 0 && len(p.Envelopes) > req.Limit {
		p.Envelopes, p.More = p.Envelopes[:req.Limit], true
	}
	if k := len(p.Envelopes); k > 0 {
		p.Next = p.Envelopes[k-1].ID
	}
	return p, nil
}

// nopBroker accepts everything and delivers nothing: for tests of
// configuration and routing that need no messages. Its one id is not a
// position: it names no head, compares no ids, and has no delivery to
// wait for.
type nopBroker struct{}

var _ core.Broker = nopBroker{}

func (nopBroker) Start(context.Context, func(core.Delivery)) error { return nil }
func (nopBroker) Publish(_ context.Context, p core.Publication) (core.Published, error) {
	p.Envelope.ID = "nop"
	return core.Published{ID: "nop"}, nil
}
func (nopBroker) History(context.Context, core.HistoryRequest) (core.HistoryResult, error) {
	return core.HistoryResult{}, nil
}
func (nopBroker) HistoryPage(_ context.Context, req core.HistoryRequest) (core.HistoryPage, error) {
	return core.HistoryPage{Next: req.Since}, nil
}
func (nopBroker) Head(context.Context) (string, error)        { return "", nil }
func (nopBroker) After(string, string) (after, ok bool)       { return false, false }
func (nopBroker) WaitDelivered(context.Context, string) error { return nil }
func (nopBroker) Healthy() error                              { return nil }
func (nopBroker) Close(context.Context) error                 { return nil }

var errBrokerDown = errors.New("test broker: down")

func mustUnmarshal[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return v
}
