package dashboard

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/sse"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/webclient"
)

// Channel is the broker channel every node publishes its samples on.
const Channel = "dashboard"

// room is the dashboard node's room the pages subscribe to.
const room = "nodes"

// Config configures the dashboard.
type Config struct {
	// Node is the edge's node: samples are read from it and published
	// through its broker, so every node's page shows every node.
	Node *core.Node

	// Health reports the broker's state (nil: healthy). Optional.
	Health func() error

	// Token, when set, is required as "Authorization: Bearer <token>" or
	// as the password of HTTP Basic authentication (any user name), which
	// a browser asks for and then sends with the page's event stream.
	// Optional. Default: "" (no authentication: only on a private
	// admin listener).
	Token string

	// Interval between samples.
	// Optional. Default: 1s
	Interval time.Duration

	// Keep is how many samples per node a page gets when it opens, to draw
	// the last minutes at once.
	// Optional. Default: 300
	Keep int

	// Logger receives the dashboard's own warnings.
	// Optional. Default: slog.Default()
	Logger *slog.Logger
}

// Dashboard samples the node, shares samples through the broker, keeps the
// recent ones and serves the page. Its event stream is a Switchboard room
// served by the SSE adapter on a small node of its own.
type Dashboard struct {
	cfg    Config
	errs   *Recent
	view   *core.Node // the pages' node: room "nodes"
	cancel context.CancelFunc
	done   chan struct{}

	closed      atomic.Bool
	wantedUntil atomic.Int64 // unix ns: publish samples until then
	kick        chan struct{}

	mu      sync.Mutex
	samples map[string][]json.RawMessage // by node id, oldest first
	seen    map[string]time.Time         // by node id: the last sample's arrival
}

// New starts sampling. Close stops it.
func New(cfg Config, errs *Recent) (*Dashboard, error) {
	if cfg.Node == nil {
		return nil, errors.New("switchboard/edge/dashboard: Config.Node is nil")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 300
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if errs == nil {
		errs = NewRecent(nil)
	}
	mb, err := memory.New(memory.Config{HistorySize: 16}, cfg.Logger)
	if err != nil {
		return nil, err
	}
	view, err := core.NewNode(core.Config{RateLimit: -1, Authenticator: viewer}, mb, cfg.Logger.With("component", "dashboard"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dashboard{cfg: cfg, errs: errs, view: view, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1),
		samples: map[string][]json.RawMessage{}, seen: map[string]time.Time{}}
	if err := cfg.Node.Consume(Channel, d.received); err != nil {
		cancel()
		_ = view.Shutdown(context.Background())
		return nil, err
	}
	go d.run(ctx)
	return d, nil
}

// Samples are published only while someone watches: the node serving a
// page announces it on Channel ("want") every wantEvery, and every node
// publishes samples until wantTTL after the last announcement. With no
// viewer, the dashboard puts nothing in the broker's log.
const (
	wantEvery = 3 * time.Second
	wantTTL   = 10 * time.Second
	// nodeTTL forgets a node with no sample for this long; maxNodes
	// bounds how many are kept.
	nodeTTL  = 30 * time.Second
	maxNodes = 256
)

// message is what travels on Channel: a sample, or a want.
type message struct {
	Kind string `json:"kind"` // "sample" or "want"
	Sample
}

// received keeps a valid sample from any node and passes it to the
// pages; a want (re)starts this node's sampling.
func (d *Dashboard) received(del core.Delivery) {
	if d.closed.Load() {
		return
	}
	var m message
	if json.Unmarshal(del.Envelope.Data, &m) != nil || !validNode(m.Node) {
		return
	}
	now := time.Now()
	switch m.Kind {
	case "want":
		d.wantedUntil.Store(now.Add(wantTTL).UnixNano())
		return
	case "sample":
	default:
		return
	}
	// Re-encoded from the typed sample: only known fields, strings as
	// strings and numbers as numbers reach the page.
	data, err := json.Marshal(m.Sample)
	if err != nil {
		return
	}
	d.mu.Lock()
	for node, seen := range d.seen {
		if now.Sub(seen) > nodeTTL {
			delete(d.seen, node)
			delete(d.samples, node)
		}
	}
	if _, known := d.seen[m.Node]; !known && len(d.seen) >= maxNodes {
		d.mu.Unlock()
		return
	}
	d.seen[m.Node] = now
	s := append(d.samples[m.Node], data)
	if len(s) > d.cfg.Keep {
		s = s[len(s)-d.cfg.Keep:]
	}
	d.samples[m.Node] = s
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = d.view.Publish(ctx, core.RoomChannel(room), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: room, Data: data})
}

// validNode accepts node ids as core makes them (base32hex, upper case).
func validNode(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// watched reports whether a page is open on this node.
func (d *Dashboard) watched() bool {
	for _, n := range d.view.Metrics().ConnectionsByTransport {
		if n > 0 {
			return true
		}
	}
	return false
}

// wake asks the loop to announce a want now (a page is being opened).
func (d *Dashboard) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Dashboard) run(ctx context.Context) {
	defer close(d.done)
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	start := time.Now()
	var lastWant time.Time
	publish := func(m message) {
		data, err := json.Marshal(m)
		if err != nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, d.cfg.Interval)
		defer cancel()
		env := &core.Envelope{V: core.Version, Type: core.TypeMessage, TS: time.Now().UnixMilli(), Data: data}
		if _, err := d.cfg.Node.Publish(pctx, Channel, env); err != nil && ctx.Err() == nil {
			d.cfg.Logger.Debug("dashboard: not published", "kind", m.Kind, "err", err)
		}
	}
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
			kicked = true
		}
		if now := time.Now(); kicked || (now.Sub(lastWant) >= wantEvery && d.watched()) {
			lastWant = now
			publish(message{Kind: "want", Sample: Sample{Node: d.cfg.Node.ID()}})
		}
		if time.Now().UnixNano() < d.wantedUntil.Load() {
			publish(message{Kind: "sample", Sample: d.sample(start)})
		}
	}
}

// Sample is one node's state at one moment. Counters are totals since the
// node started; the page turns them into rates.
type Sample struct {
	Node        string            `json:"node"`
	At          int64             `json:"at"` // unix ms
	Uptime      float64           `json:"uptime_s"`
	Connections map[string]int    `json:"connections"`
	In          uint64            `json:"in"`
	Out         uint64            `json:"out"`
	Deliveries  uint64            `json:"deliveries"`
	Errors      uint64            `json:"errors"`
	Slow        map[string]uint64 `json:"slow"`
	Refused     uint64            `json:"refused"`
	Rooms       int               `json:"rooms"`
	Busiest     []core.RoomSize   `json:"busiest"`
	Queued      int               `json:"queued"`
	MaxQueued   int               `json:"max_queued"`
	Goroutines  int               `json:"goroutines"`
	HeapBytes   uint64            `json:"heap_bytes"`
	Broker      BrokerState       `json:"broker"`
	Recent      []Entry           `json:"recent"`
}

// BrokerState is the broker's health and lag as this node sees them.
type BrokerState struct {
	OK    bool    `json:"ok"`
	Error string  `json:"error,omitempty"`
	Lag   float64 `json:"lag_s"`
}

func (d *Dashboard) sample(start time.Time) Sample {
	n := d.cfg.Node
	st, mt := n.Stats(), n.Metrics()
	s := Sample{
		Node: n.ID(), At: time.Now().UnixMilli(), Uptime: time.Since(start).Seconds(),
		Connections: mt.ConnectionsByTransport,
		In:          st.MessagesIn, Out: st.MessagesOut, Deliveries: st.Published, Errors: st.Errors,
		Slow:    map[string]uint64{"closed": st.SlowClosed, "dropped": st.Dropped, "conflated": st.Conflated},
		Refused: st.Refused, Rooms: st.Rooms, Busiest: n.Hub().Busiest(5),
		Queued: mt.Queued, MaxQueued: mt.MaxQueued, Goroutines: st.Goroutines, HeapBytes: st.HeapBytes,
		Broker: BrokerState{OK: true, Lag: mt.BrokerLag.Seconds()},
		Recent: d.errs.Last(10), // messages only: the broker log keeps no user ids or addresses
	}
	for _, t := range []string{"websocket", "sse", "longpoll"} {
		if _, ok := s.Connections[t]; !ok {
			s.Connections[t] = 0
		}
	}
	if d.cfg.Health != nil {
		if err := d.cfg.Health(); err != nil {
			s.Broker.OK, s.Broker.Error = false, err.Error()
		}
	}
	return s
}

//go:embed page.html
var page []byte

// Register serves the dashboard on app under /dashboard: the page, its
// recent samples, the browser client and the event stream.
func (d *Dashboard) Register(app *fiber.App) {
	auth := func(c *fiber.Ctx) error { return c.Next() }
	if d.cfg.Token != "" {
		auth = RequireToken(d.cfg.Token, "dashboard", d.cfg.Logger)
	}
	g := app.Group("/dashboard", auth)
	g.Get("/", func(c *fiber.Ctx) error {
		d.wake() // start the samples now rather than at the next tick
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.Send(page)
	})
	g.Get("/samples", func(c *fiber.Ctx) error {
		d.wake()
		d.mu.Lock()
		out := make(map[string][]json.RawMessage, len(d.samples))
		for k, v := range d.samples {
			out[k] = append([]json.RawMessage(nil), v...)
		}
		d.mu.Unlock()
		return c.JSON(out)
	})
	g.Get("/client.js", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
		return c.Send(webclient.Module())
	})
	g.Get("/sse", sse.New(d.view))
}

// viewer admits every page (RequireToken already checked the token) to the one
// room, read-only.
var viewer = core.AuthenticatorFunc(func(context.Context, core.Credentials) (core.Identity, error) {
	return core.Identity{User: "dashboard", Permissions: &core.Permissions{Subscribe: []string{room}}}, nil
})

// Close stops sampling and ends the pages' streams.
func (d *Dashboard) Close(ctx context.Context) error {
	d.closed.Store(true)
	d.cancel()
	<-d.done
	return d.view.Shutdown(ctx)
}
