package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestCoreImportsOnlyStdlib enforces the dependency rule: core is the
// stable centre every adapter and broker depends on.
func TestCoreImportsOnlyStdlib(t *testing.T) {
	t.Parallel()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("core imports %q; core may import only the standard library", imp)
		}
	}
}

func TestNewNodeValidatesConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   core.Config
		field string
	}{
		{"timeout not above interval", core.Config{HeartbeatInterval: 10 * time.Second, HeartbeatTimeout: 10 * time.Second}, "HeartbeatTimeout"},
		{"negative queue", core.Config{SendQueueSize: -1}, "SendQueueSize"},
		{"negative batch", core.Config{WriteBatch: -1}, "WriteBatch"},
		{"tiny max message", core.Config{MaxMessageSize: 100}, "MaxMessageSize"},
		{"negative burst", core.Config{RateBurst: -1}, "RateBurst"},
		{"negative history limit", core.Config{HistoryLimit: -1}, "HistoryLimit"},
		{"unknown slow policy", core.Config{SlowConsumer: 7}, "SlowConsumer"},
		{"negative broker timeout", core.Config{BrokerTimeout: -1}, "BrokerTimeout"},
		{"negative auth timeout", core.Config{AuthTimeout: -1}, "AuthTimeout"},
		{"negative heartbeat timeout", core.Config{HeartbeatInterval: -1, HeartbeatTimeout: -1}, "HeartbeatTimeout"},
		{"negative connection cap", core.Config{MaxConnectionsPerIP: -1}, "MaxConnectionsPerIP"},
		{"bad room pattern", core.Config{RoomPolicies: []core.RoomPolicy{{Pattern: "["}}}, "RoomPolicies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := core.NewNode(tt.cfg, nopBroker{}, quiet)
			var ce *core.ConfigError
			if !errors.Is(err, core.ErrInvalidConfig) || !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("NewNode(%+v) = %v, %v; want a ConfigError on %s", tt.cfg, n, err, tt.field)
			}
		})
	}
	t.Run("nil broker", func(t *testing.T) {
		t.Parallel()
		if _, err := core.NewNode(core.Config{}, nil, quiet); !errors.Is(err, core.ErrInvalidConfig) {
			t.Fatalf("NewNode(nil broker) = %v, want ErrInvalidConfig", err)
		}
	})
	t.Run("broker start fails", func(t *testing.T) {
		t.Parallel()
		if _, err := core.NewNode(core.Config{}, failingStart{}, quiet); !errors.Is(err, errBrokerDown) {
			t.Fatalf("NewNode = %v, want the broker's error", err)
		}
	})
}

type failingStart struct{ nopBroker }

func (failingStart) Start(context.Context, func(core.Delivery)) error { return errBrokerDown }

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nopBroker{})
	want := core.Config{
		HeartbeatInterval: 25 * time.Second,
		HeartbeatTimeout:  62500 * time.Millisecond,
		SendQueueSize:     256,
		SlowConsumer:      core.SlowClose,
		WriteBatch:        64,
		MaxMessageSize:    65536,
		RateLimit:         50,
		RateBurst:         100,
		MaxRoomsPerConn:   100,
		HistoryLimit:      1000,
		BrokerTimeout:     5 * time.Second,
		Authenticator:     core.Insecure,
		AuthTimeout:       10 * time.Second,
	}
	if got := n.Config(); !reflect.DeepEqual(got, want) {
		t.Errorf("Config() =\n %+v\nwant\n %+v", got, want)
	}
	// Negative disables, and is kept.
	n2 := newNode(t, core.Config{HeartbeatInterval: -1, RateLimit: -1, MaxRoomsPerConn: -1}, nopBroker{})
	if got := n2.Config(); got.HeartbeatInterval != -1 || got.HeartbeatTimeout != 0 || got.RateLimit != -1 || got.MaxRoomsPerConn != -1 {
		t.Errorf("negative values not kept: %+v", got)
	}
}

func TestParseSlowPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    core.SlowPolicy
		wantErr bool
	}{
		{"", core.SlowClose, false},
		{"close", core.SlowClose, false},
		{"drop-oldest", core.SlowDropOldest, false},
		{"drop", 0, true},
		{"Close", 0, true},
	}
	for _, tt := range tests {
		got, err := core.ParseSlowPolicy(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSlowPolicy(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, core.ErrInvalidConfig) {
			t.Errorf("ParseSlowPolicy(%q) error %v does not wrap ErrInvalidConfig", tt.in, err)
		}
		if err == nil && tt.in != "" && got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
}

func TestDisconnectCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d         core.Disconnect
		code      uint16
		reconnect bool
	}{
		{core.DisconnectNormal, 1000, false},
		{core.DisconnectGoingAway, 1001, true},
		{core.DisconnectInternal, 1011, true},
		{core.DisconnectShutdown, 1012, true},
		{core.DisconnectUnauthorized, 4001, false},
		{core.DisconnectRateLimit, 4002, true},
		{core.DisconnectMessageTooLarge, 4003, true},
		{core.DisconnectSlow, 4008, true},
		{core.DisconnectHeartbeat, 4009, true},
	}
	for _, tt := range tests {
		if tt.d.Code != tt.code || tt.d.Reconnect != tt.reconnect || tt.d.Reason == "" {
			t.Errorf("%v: code %d reconnect %v, want %d %v and a reason", tt.d, tt.d.Code, tt.d.Reconnect, tt.code, tt.reconnect)
		}
		if !strings.HasPrefix(tt.d.String(), fmt.Sprint(tt.code)+" ") {
			t.Errorf("String() = %q", tt.d.String())
		}
	}
}

func TestAccept(t *testing.T) {
	t.Parallel()
	t.Run("welcome", func(t *testing.T) {
		t.Parallel()
		n := newNode(t, core.Config{}, nil)
		c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "ada"}, Rooms: []string{"b", "a"}, RemoteAddr: "10.0.0.1:5"})
		slices.Sort(c.welcome.Rooms)
		if c.welcome.User != "ada" || c.welcome.Conn == "" || !reflect.DeepEqual(c.welcome.Rooms, []string{"a", "b"}) || c.welcome.Recovered != nil {
			t.Fatalf("welcome %+v", c.welcome)
		}
		if c.s.RemoteAddr() != "10.0.0.1:5" {
			t.Errorf("RemoteAddr() = %q", c.s.RemoteAddr())
		}
		c.expectQuiet()
	})
	t.Run("rooms is an empty list, not null, when none was joined", func(t *testing.T) {
		t.Parallel()
		n := newNode(t, core.Config{}, nil)
		for _, rooms := range [][]string{nil, {"not ok"}} {
			tr, s, err := n.accept(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: rooms})
			if err != nil {
				t.Fatalf("Accept(rooms %q): %v", rooms, err)
			}
			c := &client{t: t, s: s, tr: tr}
			env := c.expect(core.TypeWelcome)
			var data map[string]json.RawMessage
			if err := json.Unmarshal(env.Data, &data); err != nil {
				t.Fatalf("welcome data %s: %v", env.Data, err)
			}
			if got := string(data["rooms"]); got != "[]" {
				t.Errorf("rooms %q: welcome data %s, want \"rooms\":[]", rooms, env.Data)
			}
		}
	})
	t.Run("anonymous users get distinct ids", func(t *testing.T) {
		t.Parallel()
		n := newNode(t, core.Config{}, nil)
		a := n.connect(core.ConnectRequest{})
		b := n.connect(core.ConnectRequest{})
		if !strings.HasPrefix(a.welcome.User, "anon-") || a.welcome.User == b.welcome.User || a.welcome.Conn == b.welcome.Conn {
			t.Fatalf("anonymous welcomes %+v and %+v", a.welcome, b.welcome)
		}
	})
	t.Run("invalid rooms are reported after the welcome", func(t *testing.T) {
		t.Parallel()
		n := newNode(t, core.Config{}, nil)
		c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"ok", "not ok"}})
		if !reflect.DeepEqual(c.welcome.Rooms, []string{"ok"}) {
			t.Fatalf("welcome rooms %v", c.welcome.Rooms)
		}
		c.expectError(core.CodeInvalidRoom, "")
		c.expectQuiet()
	})
	t.Run("invalid user", func(t *testing.T) {
		t.Parallel()
		n := newNode(t, core.Config{}, nil)
		tr, s, err := n.accept(core.ConnectRequest{Credentials: core.Credentials{User: "bad user"}})
		if s != nil || core.ErrorCode(err) != core.CodeInvalidUser {
			t.Fatalf("Accept = %v, %v; want an invalid_user error", s, err)
		}
		if d, _ := tr.Disconnect(); d != core.DisconnectUnauthorized {
			t.Fatalf("transport closed with %v, want 4001", d)
		}
	})
}

// TestResume covers since=: the welcome says whether everything missed
// could be recovered, then the missed messages follow in order.
func TestResume(t *testing.T) {
	t.Parallel()
	other := newMemory(t, memory.Config{})
	t.Cleanup(func() { _ = other.Close(context.Background()) })
	foreignID, err := publishTo(other, context.Background(), core.RoomChannel("r"), &core.Envelope{V: 1, Type: core.TypeMessage, Room: "r"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		since     func(ids []string) string // ids of messages 0..4
		recovered *bool
		replay    []int    // messages replayed after the welcome
		rooms     []string // default: r
	}{
		{"since a seen id", func(ids []string) string { return ids[1] }, ptr(true), []int{2, 3, 4}, nil},
		{"since the newest id", func(ids []string) string { return ids[4] }, ptr(true), nil, nil},
		{"since an id of another epoch", func([]string) string { return foreignID }, ptr(false), nil, nil},
		{"garbage since", func([]string) string { return "not-an-id" }, ptr(false), nil, nil},
		{"no since", func([]string) string { return "" }, nil, nil, nil},
		{"room asked for twice is replayed once", func(ids []string) string { return ids[2] }, ptr(true), []int{3, 4}, []string{"r", "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, core.Config{}, nil)
			var ids []string
			for i := range 5 {
				ids = append(ids, n.publish("r", data(i)))
				n.publish("elsewhere", data(100+i)) // not the client's room
			}
			rooms := tt.rooms
			if rooms == nil {
				rooms = []string{"r"}
			}
			c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "resumer"}, Rooms: rooms, Since: tt.since(ids)})
			if !reflect.DeepEqual(c.welcome.Recovered, tt.recovered) {
				t.Fatalf("welcome recovered = %v, want %v", fmtPtr(c.welcome.Recovered), fmtPtr(tt.recovered))
			}
			for _, i := range tt.replay {
				if env := c.expectMessage("r", data(i)); env.ID != ids[i] {
					t.Errorf("replayed message %d has id %s, want %s", i, env.ID, ids[i])
				}
			}
			c.expectQuiet()
		})
	}
}

func ptr[T any](v T) *T { return &v }

func fmtPtr(b *bool) string {
	if b == nil {
		return "absent"
	}
	return fmt.Sprint(*b)
}

// TestResumeMergesLiveMessages: since= covers the user's direct channel
// too, in id order, and messages published while the history is being
// fetched are delivered exactly once, after the history.
func TestResumeMergesLiveMessages(t *testing.T) {
	t.Parallel()
	b := &hookBroker{Broker: newMemory(t, memory.Config{})}
	n := newNode(t, core.Config{}, b)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "x"}, Rooms: []string{"r"}})
	id0 := n.publish("r", data(0))
	c.expectMessage("r", data(0))
	c.s.Close(core.DisconnectGoingAway)

	n.publish("r", data(1))
	direct := &core.Envelope{V: 1, Type: core.TypeDirect, To: "x", From: "s", Data: []byte(`"dm"`)}
	if _, err := n.Publish(context.Background(), core.UserChannel("x"), direct); err != nil {
		t.Fatal(err)
	}
	n.publish("r", data(2))
	b.history = func(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
		want := []string{core.UserChannel("x"), core.BroadcastChannel, core.RoomChannel("r")}
		if !reflect.DeepEqual(req.Channels, want) || req.Since != id0 || req.Limit != n.Config().HistoryLimit {
			return core.HistoryResult{}, fmt.Errorf("history request %+v, want channels %v since %s", req, want, id0)
		}
		n.publish("r", data(3)) // live and in the history: must not be duplicated
		res, err := b.Broker.History(ctx, req)
		n.publish("r", data(4)) // live only: must follow the history
		return res, err
	}

	c = n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "x"}, Rooms: []string{"r"}, Since: id0})
	if c.welcome.Recovered == nil || !*c.welcome.Recovered {
		t.Fatalf("welcome recovered = %s, want true", fmtPtr(c.welcome.Recovered))
	}
	c.expectMessage("r", data(1))
	if env := c.expect(core.TypeDirect); string(env.Data) != `"dm"` || env.From != "s" {
		t.Fatalf("replayed direct %s", env.Encode())
	}
	for i := 2; i <= 4; i++ {
		c.expectMessage("r", data(i))
	}
	c.expectQuiet()
}

func TestResumeBeyondHistoryLimit(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{HistoryLimit: 2}, nil)
	id0 := n.publish("r", data(0))
	for i := 1; i <= 7; i++ {
		n.publish("r", data(i))
	}
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "late"}, Rooms: []string{"r"}, Since: id0})
	if c.welcome.Recovered == nil || !*c.welcome.Recovered {
		t.Fatalf("welcome recovered = %s, want true: the log holds everything", fmtPtr(c.welcome.Recovered))
	}
	// Page after page of HistoryLimit, in order, then live traffic.
	for i := 1; i <= 7; i++ {
		c.expectMessage("r", data(i))
	}
	n.publish("r", data(8))
	c.expectMessage("r", data(8))
	c.expectQuiet()
}

// TestResumeWhenHistoryFails: a resume whose history cannot be read is
// sent back (1013, ErrHistoryUnavailable) rather than going live with a
// gap; the same position resumes fully once the history is readable.
func TestResumeWhenHistoryFails(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	failing.Store(true)
	b := &hookBroker{Broker: newMemory(t, memory.Config{})}
	b.history = func(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
		if failing.Load() {
			return core.HistoryResult{}, errBrokerDown
		}
		return b.Broker.History(ctx, req)
	}
	n := newNode(t, core.Config{}, b)
	id := n.publish("r", data(0))
	n.publish("r", data(1))
	tr, s, err := n.accept(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"r"}, Since: id})
	if !errors.Is(err, core.ErrHistoryUnavailable) || s != nil {
		t.Fatalf("Accept with the history failing = %v, %v; want ErrHistoryUnavailable and no session", s, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if d, err := tr.WaitClosed(ctx); err != nil || d != core.DisconnectTryAgain {
		t.Fatalf("transport closed with %+v (%v), want %+v", d, err, core.DisconnectTryAgain)
	}
	if m := n.Metrics(); m.ResumesRetry != 1 || m.ResumesLost != 0 {
		t.Fatalf("metrics %+v: want one deferred resume and none lost", m)
	}

	failing.Store(false)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"r"}, Since: id})
	if c.welcome.Recovered == nil || !*c.welcome.Recovered {
		t.Fatalf("welcome recovered = %s, want true", fmtPtr(c.welcome.Recovered))
	}
	c.expectMessage("r", data(1))
	n.publish("r", data(2)) // live delivery follows
	c.expectMessage("r", data(2))
}

func TestPublishWhenBrokerFails(t *testing.T) {
	t.Parallel()
	b := &hookBroker{Broker: newMemory(t, memory.Config{}), publish: func(context.Context, core.Publication) (core.Published, error) {
		return core.Published{}, errBrokerDown
	}}
	n := newNode(t, core.Config{}, b)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"r"}})
	c.send(`{"v":1,"type":"publish","room":"r","ref":"p","data":1}`)
	c.expectError(core.CodeBrokerDown, "p")
	c.send(`{"v":1,"type":"direct","to":"v","ref":"d","data":1}`)
	c.expectError(core.CodeBrokerDown, "d")
	_, err := n.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: 1, Type: core.TypeMessage, Room: "r"})
	if core.ErrorCode(err) != core.CodeBrokerDown {
		t.Fatalf("Node.Publish = %v, want an unavailable *Error", err)
	}
	if errors.Is(err, errBrokerDown) {
		t.Error("the broker's internal error leaks to clients")
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, core.Config{}, nil)
		stalled := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "stalled"}, Rooms: []string{"r"}})
		idle := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "idle"}})
		stalled.tr.Block()
		for i := range 3 {
			n.publish("r", data(i))
		}
		synctest.Wait() // message 0 is in flight, 1 and 2 are queued

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		result := make(chan error, 1)
		go func() { result <- n.Shutdown(ctx) }()
		synctest.Wait() // Shutdown has closed every session and waits for them

		if !n.ShuttingDown() {
			t.Fatal("ShuttingDown() = false")
		}
		idle.expectClosed(core.DisconnectShutdown)
		select {
		case err := <-result:
			t.Fatalf("Shutdown returned %v while a session was still flushing", err)
		default:
		}
		if stalled.isClosed() {
			t.Fatal("stalled session closed before its queue was flushed")
		}
		tr, s, err := n.accept(core.ConnectRequest{Credentials: core.Credentials{User: "late"}})
		if s != nil || !errors.Is(err, core.ErrShuttingDown) {
			t.Fatalf("Accept after Shutdown = %v, %v; want ErrShuttingDown", s, err)
		}
		if d, _ := tr.Disconnect(); d != core.DisconnectShutdown {
			t.Fatalf("refused transport closed with %v, want 1012", d)
		}

		stalled.tr.Unblock()
		if err := <-result; err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
		for i := range 3 {
			stalled.expectMessage("r", data(i))
		}
		stalled.expectClosed(core.DisconnectShutdown)
		select {
		case <-n.Done():
		default:
			t.Fatal("Done() not closed after Shutdown returned")
		}
		if err := n.Shutdown(context.Background()); err != nil {
			t.Fatalf("second Shutdown = %v", err)
		}
		if got := n.Hub().Channels(); got != 0 {
			t.Errorf("Channels() = %d after Shutdown", got)
		}
	})
}

func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, core.Config{}, nil)
		c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "stuck"}, Rooms: []string{"r"}})
		c.tr.Block()
		n.publish("r", data(0))
		<-c.tr.Blocked() // delivered, and the writer is stuck on it
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		err := n.Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("Shutdown waited %v, want the 3s deadline", waited)
		}
		if again := n.Shutdown(context.Background()); again == nil || again.Error() != err.Error() {
			t.Errorf("second Shutdown = %v, want the first result %v", again, err)
		}
		c.tr.Unblock() // the writer finishes on its own
		c.expectClosed(core.DisconnectShutdown)
	})
}

// TestShutdownDuringAccept: Shutdown closes a session whose Accept is
// still waiting for the broker (its resume's History). Accept must
// neither close the transport a second time nor finish the session twice
// (a double close of its done channel panicked), whether the broker then
// fails or succeeds.
func TestShutdownDuringAccept(t *testing.T) {
	t.Parallel()
	for _, historyErr := range []error{errBrokerDown, nil} {
		t.Run(fmt.Sprint("history returns ", historyErr), func(t *testing.T) {
			t.Parallel()
			entered, release := make(chan struct{}), make(chan struct{})
			b := &hookBroker{Broker: newMemory(t, memory.Config{})}
			b.history = func(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
				close(entered)
				<-release
				if historyErr != nil {
					return core.HistoryResult{}, historyErr
				}
				return b.Broker.History(ctx, req)
			}
			n := newNode(t, core.Config{}, b)
			tr := coretest.NewTransport()
			n.track(tr)
			type result struct {
				s   *core.Session
				err error
			}
			accepted := make(chan result, 1)
			go func() {
				s, err := n.Accept(context.Background(), tr, core.ConnectRequest{Credentials: core.Credentials{User: "late"}, Since: "resume"})
				accepted <- result{s, err}
			}()
			<-entered
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			shutdown := make(chan error, 1)
			go func() { shutdown <- n.Shutdown(ctx) }()
			if d, err := tr.WaitClosed(ctx); err != nil || d != core.DisconnectShutdown {
				t.Fatalf("half-accepted session: closed %v, %v; want 1012", d, err)
			}
			close(release)

			r := <-accepted
			switch {
			case historyErr == nil && r.err != nil:
				t.Errorf("Accept = %v, %v; want the session", r.s, r.err)
			case historyErr != nil && (!errors.Is(r.err, core.ErrHistoryUnavailable) || r.s != nil):
				t.Errorf("Accept = %v, %v; want ErrHistoryUnavailable (the client resumes later)", r.s, r.err)
			}
			if r.s != nil {
				select {
				case <-r.s.Done():
				case <-ctx.Done():
					t.Fatal("session returned by Accept never ends")
				}
			}
			if err := <-shutdown; err != nil {
				t.Fatalf("Shutdown = %v", err)
			}
			if err := tr.Err(); err != nil {
				t.Fatalf("transport: %v", err)
			}
			if got := n.Hub().Channels(); got != 0 {
				t.Errorf("Channels() = %d after Shutdown", got)
			}
		})
	}
}

func TestRouterCustomType(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	n.Router().Handle("chat.typing", func(ctx context.Context, s *core.Session, env *core.Envelope) error {
		if !s.InRoom(env.Room) {
			return core.Errorf(core.CodeForbidden, "not in %s", env.Room)
		}
		// Tell the room, excluding no one: a custom type can publish.
		_, err := n.Publish(ctx, core.RoomChannel(env.Room), &core.Envelope{V: 1, Type: "chat.typing", Room: env.Room, From: s.User()})
		return err
	})
	n.Router().Handle("crash", func(context.Context, *core.Session, *core.Envelope) error {
		return errors.New("database on fire")
	})
	a := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "a"}, Rooms: []string{"r"}})
	b := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "b"}, Rooms: []string{"r"}})

	a.send(`{"v":1,"type":"chat.typing","room":"r","ref":"t1"}`)
	if env := b.expect("chat.typing"); env.From != "a" || env.Room != "r" {
		t.Fatalf("b got %s", env.Encode())
	}
	b.send(`{"v":1,"type":"chat.typing","room":"elsewhere","ref":"t2"}`)
	b.expectError(core.CodeForbidden, "t2")
	b.send(`{"v":1,"type":"crash","ref":"c1"}`)
	if d := b.expectError(core.CodeInternal, "c1"); strings.Contains(d.Message, "fire") {
		t.Errorf("internal error leaks details to the client: %q", d.Message)
	}
	b.expectQuiet()
	if got := n.Stats().Errors; got != 2 {
		t.Errorf("Stats().Errors = %d, want 2", got)
	}
}

func TestRouterHandleRejects(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nopBroker{})
	h := func(context.Context, *core.Session, *core.Envelope) error { return nil }
	for _, typ := range []string{core.TypeJoin, core.TypePublish, core.TypeWelcome, core.TypeAck, "", "Upper", "9lives"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle(%q) did not panic", typ)
				}
			}()
			n.Router().Handle(typ, h)
		}()
	}
}

func TestRouterMiddleware(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	var trace []string // written by the session's reader, which is this goroutine
	mark := func(name string) core.Middleware {
		return func(next core.HandlerFunc) core.HandlerFunc {
			return func(ctx context.Context, s *core.Session, env *core.Envelope) error {
				trace = append(trace, name+">"+env.Type)
				err := next(ctx, s, env)
				trace = append(trace, name+"<"+env.Type)
				return err
			}
		}
	}
	deny := func(next core.HandlerFunc) core.HandlerFunc {
		return func(ctx context.Context, s *core.Session, env *core.Envelope) error {
			if env.Type == core.TypeJoin && strings.HasPrefix(env.Room, "admin") {
				return core.Errorf(core.CodeForbidden, "admins only")
			}
			return next(ctx, s, env)
		}
	}
	n.Router().Use(mark("outer"), mark("inner"))
	n.Router().Use(deny)
	// Registered after Use: still wrapped.
	n.Router().Handle("custom", func(context.Context, *core.Session, *core.Envelope) error {
		trace = append(trace, "handler")
		return nil
	})

	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}})
	c.send(`{"v":1,"type":"custom"}`)
	c.send(`{"v":1,"type":"join","room":"admin-room","ref":"j"}`)
	c.expectError(core.CodeForbidden, "j")
	c.send(`{"v":1,"type":"unknown-thing","ref":"u"}`) // no handler: middleware is not run
	c.expectError(core.CodeUnknownType, "u")
	want := []string{"outer>custom", "inner>custom", "handler", "inner<custom", "outer<custom", "outer>join", "inner>join", "inner<join", "outer<join"}
	if !reflect.DeepEqual(trace, want) {
		t.Errorf("middleware trace\n got %v\nwant %v", trace, want)
	}
	if c.s.InRoom("admin-room") {
		t.Error("middleware denial did not stop the join")
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	n := newNode(t, core.Config{}, nil)
	a := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "a"}, Rooms: []string{"r", "s"}})
	b := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "b"}, Rooms: []string{"r"}})
	a.send(`{"v":1,"type":"publish","room":"r","ref":"1","data":1}`)
	a.send(`{"v":1,"type":"bogus"}`)
	b.expectMessage("r", "1")
	b.expectQuiet() // 1 ping in, 1 pong out
	st := n.Stats()
	want := core.Stats{Connections: 2, ConnectionsTotal: 2, Rooms: 2, MessagesIn: 3, Published: 1, Errors: 1}
	got := core.Stats{Connections: st.Connections, ConnectionsTotal: st.ConnectionsTotal, Rooms: st.Rooms,
		MessagesIn: st.MessagesIn, Published: st.Published, Errors: st.Errors}
	if got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if st.Goroutines == 0 || st.HeapBytes == 0 || st.UptimeSeconds < 0 {
		t.Errorf("runtime stats missing: %+v", st)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Fatal(err)
	}
}

// TestOverflowDuringResumeEndsSession: live messages that overflow the
// pending buffer while history is fetched must end the session with 4008,
// not leave it half-closed (no writer, Done never closed).
func TestOverflowDuringResumeEndsSession(t *testing.T) {
	t.Parallel()
	b := &hookBroker{Broker: newMemory(t, memory.Config{})}
	n := newNode(t, core.Config{SendQueueSize: 2, HistoryLimit: 2}, b)
	id0 := n.publish("r", data(0))
	b.history = func(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
		for i := 1; i <= 10; i++ { // more than SendQueueSize+HistoryLimit arrive live
			n.publish("r", data(i))
		}
		return b.Broker.History(ctx, req)
	}
	tr, s, err := n.accept(core.ConnectRequest{Credentials: core.Credentials{User: "x"}, Rooms: []string{"r"}, Since: id0})
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	c := &client{t: t, s: s, tr: tr}
	c.expectClosed(core.DisconnectSlow)
	if got := n.Hub().Members(core.RoomChannel("r")); got != 0 {
		t.Fatalf("room still has %d members", got)
	}
}

// abortable is a recording transport that can be torn down from any
// goroutine, like a socket.
type abortable struct{ *coretest.Transport }

func (a abortable) Abort() {
	a.FailWrites(errors.New("aborted"))
	a.Unblock()
}

// TestShutdownAbortsStalledSessions: at the deadline, sessions still
// flushing to a stalled client are aborted, so Shutdown returns at the
// deadline with every session ended.
func TestShutdownAbortsStalledSessions(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, core.Config{}, nil)
		tr := abortable{coretest.NewTransport()}
		n.track(tr.Transport)
		s, err := n.Accept(context.Background(), tr, core.ConnectRequest{Credentials: core.Credentials{User: "stuck"}, Rooms: []string{"r"}})
		if err != nil {
			t.Fatal(err)
		}
		c := &client{t: t, s: s, tr: tr.Transport}
		c.expect(core.TypeWelcome)
		tr.Block()
		n.publish("r", data(0))
		<-tr.Blocked()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		if err := n.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown = %v, want nil after aborting", err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("Shutdown took %v, want the 3s deadline", waited)
		}
		select {
		case <-s.Done():
		default:
			t.Fatal("session not done after Shutdown returned")
		}
	})
}

// lagBroker delays deliveries while hold is set, like a node whose
// subscription lags behind the log.
type lagBroker struct {
	*memory.Broker
	mu   sync.Mutex
	hold bool
	held []core.Delivery
	fn   func(core.Delivery)
}

func (l *lagBroker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	l.fn = deliver
	return l.Broker.Start(ctx, func(d core.Delivery) {
		l.mu.Lock()
		if l.hold {
			l.held = append(l.held, d)
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		deliver(d)
	})
}

// HistoryPage releases the held deliveries first: they land in the
// resuming session's pending buffer, the window the resume seam must
// handle.
func (l *lagBroker) HistoryPage(ctx context.Context, req core.HistoryRequest) (core.HistoryPage, error) {
	l.release()
	return l.Broker.HistoryPage(ctx, req)
}

func (l *lagBroker) release() {
	l.mu.Lock()
	held := l.held
	l.held, l.hold = nil, false
	l.mu.Unlock()
	for _, d := range held {
		l.fn(d)
	}
}

// TestResumeDropsLateLiveMessages: a message the client saw before
// reconnecting (id <= since) that reaches this node only while the resume
// is under way is not delivered again: the broker's ids are ordered
// (Broker.After compares them). (A message arriving after the resume has finished is
// a multi-node concern, not covered here.)
func TestResumeDropsLateLiveMessages(t *testing.T) {
	t.Parallel()
	b := &lagBroker{Broker: newMemory(t, memory.Config{})}
	n := newNode(t, core.Config{}, b)
	b.mu.Lock()
	b.hold = true
	b.mu.Unlock()
	seen := n.publishNoWait("r", data(1)) // the client saw it elsewhere
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "x"}, Rooms: []string{"r"}, Since: seen})
	if c.welcome.Recovered == nil || !*c.welcome.Recovered {
		t.Fatalf("welcome recovered = %s, want true", fmtPtr(c.welcome.Recovered))
	}
	n.publish("r", data(2))
	c.expectMessage("r", data(2))
	c.expectQuiet()
}

// stuckSync is a lagBroker whose WaitDelivered gives up while deliveries
// are held, like a node whose reader is behind past the deadline.
type stuckSync struct{ *lagBroker }

func (s stuckSync) HistoryPage(ctx context.Context, req core.HistoryRequest) (core.HistoryPage, error) {
	return s.lagBroker.Broker.HistoryPage(ctx, req) // do not release
}

func (s stuckSync) WaitDelivered(ctx context.Context, id string) error {
	s.mu.Lock()
	held := s.hold
	s.mu.Unlock()
	if held {
		return context.DeadlineExceeded // what the deadline would bring, without waiting for it
	}
	return nil
}

// TestResumeFloorDropsLateDeliveries: when this node's delivery has not
// caught up with the replay in time, the session resumes with a floor, and
// the late deliveries at or before it are dropped instead of duplicated.
func TestResumeFloorDropsLateDeliveries(t *testing.T) {
	t.Parallel()
	lb := &lagBroker{Broker: newMemory(t, memory.Config{})}
	b := stuckSync{lb}
	n := newNode(t, core.Config{}, b)
	id1 := n.publish("r", data(1))
	lb.mu.Lock()
	lb.hold = true
	lb.mu.Unlock()
	n.publishNoWait("r", data(2))
	n.publishNoWait("r", data(3))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := waitDelivered(ctx, lb.Broker); err != nil { // 2 and 3 are held, not on their way
		t.Fatal(err)
	}
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "x"}, Rooms: []string{"r"}, Since: id1})
	c.expectMessage("r", data(2)) // replayed
	c.expectMessage("r", data(3))
	lb.release() // 2 and 3 now arrive live: below the floor
	n.publish("r", data(4))
	c.expectMessage("r", data(4))
	c.expectQuiet()
}

// TestPublishUnconfirmed: a message the broker appended but could not
// confirm in time is reported as publish_unconfirmed (do not resend), not
// broker_unavailable (retry), which would publish it twice.
func TestPublishUnconfirmed(t *testing.T) {
	t.Parallel()
	b := &hookBroker{Broker: newMemory(t, memory.Config{}), publish: func(context.Context, core.Publication) (core.Published, error) {
		return core.Published{}, fmt.Errorf("driver: %w", errors.Join(core.ErrUnconfirmed, context.DeadlineExceeded))
	}}
	n := newNode(t, core.Config{}, b)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"r"}})
	c.send(`{"v":1,"type":"publish","room":"r","data":1,"ref":"p"}`)
	c.expectError(core.CodeUnconfirmed, "p")
	c.expectQuiet()
}

// heldBroker holds the node's deliveries until WaitDelivered is called,
// as a remote broker's reader lags: only a node that waits for delivery
// gets them.
type heldBroker struct {
	*memory.Broker
	mu      sync.Mutex
	deliver func(core.Delivery)
	held    []core.Delivery
}

func (b *heldBroker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	b.deliver = deliver
	return b.Broker.Start(ctx, func(d core.Delivery) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.held = append(b.held, d)
	})
}

// WaitDelivered releases the held deliveries up to id (memory ids end in
// a sequence number), as a lagging reader catching up to that position.
func (b *heldBroker) WaitDelivered(ctx context.Context, id string) error {
	if err := b.Broker.WaitDelivered(ctx, id); err != nil {
		return err
	}
	seq := func(id string) int {
		n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
		return n
	}
	b.mu.Lock()
	var release []core.Delivery
	for len(b.held) > 0 && seq(b.held[0].Envelope.ID) <= seq(id) {
		release, b.held = append(release, b.held[0]), b.held[1:]
	}
	b.mu.Unlock()
	for _, d := range release {
		b.deliver(d)
	}
	return nil
}

// TestShutdownDeliversWhatWasAccepted: a message the broker accepted
// before the shutdown reaches the members before their 1012, even when
// the node's delivery lags the broker.
func TestShutdownDeliversWhatWasAccepted(t *testing.T) {
	t.Parallel()
	hb := &heldBroker{Broker: newMemory(t, memory.Config{})}
	n := newNode(t, core.Config{}, hb)
	c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"r"}})
	n.publishNoWait("r", data(1))
	n.publishNoWait("r", data(2)) // the head: a drain to an older position would miss it
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.expectMessage("r", data(1))
	c.expectMessage("r", data(2))
	c.expectClosed(core.DisconnectShutdown)
}

// gapBroker lets a test deliver as the broker's reader would, gaps
// included.
type gapBroker struct {
	*memory.Broker
	deliver func(core.Delivery)
}

func (b *gapBroker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	b.deliver = deliver
	return b.Broker.Start(ctx, deliver)
}

// TestGapReachesLiveSessions: when the broker's log lost records the
// node may not have delivered (a lost log, a trim during an outage),
// every open session gets a gap envelope (recovered:false), before what
// the broker delivers next.
func TestGapReachesLiveSessions(t *testing.T) {
	t.Parallel()
	gb := &gapBroker{Broker: newMemory(t, memory.Config{})}
	n := newNode(t, core.Config{}, gb)
	a := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "a"}, Rooms: []string{"r"}})
	b := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "b"}})
	gb.deliver(core.Delivery{Gap: true})
	id := n.publish("r", `1`)
	for name, c := range map[string]*client{"in the room": a, "elsewhere": b} {
		env := c.expect(core.TypeGap)
		if string(env.Data) != `{"recovered":false}` {
			t.Errorf("%s: gap data %s", name, env.Data)
		}
	}
	if env := a.expect(core.TypeMessage); env.ID != id {
		t.Errorf("after the gap: %s, want the message %s", env.ID, id)
	}
}

// detailsAuth reads request details.
type detailsAuth struct{ core.Authenticator }

func (detailsAuth) ReadsRequestDetails() bool { return true }

// TestRequestDetails: adapters collect headers and query parameters only
// for an Authenticator that reads them.
func TestRequestDetails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		authn core.Authenticator
		want  bool
	}{{nil, false}, {core.Insecure, false}, {detailsAuth{core.Insecure}, true}} {
		n, err := core.NewNode(core.Config{Authenticator: tc.authn}, nopBroker{}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.RequestDetails(); got != tc.want {
			t.Errorf("RequestDetails with %T = %v, want %v", tc.authn, got, tc.want)
		}
		_ = n.Shutdown(context.Background())
	}
}
