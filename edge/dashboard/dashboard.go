package dashboard

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
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

	mu      sync.Mutex
	samples map[string][]json.RawMessage // by node id, oldest first
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
	view, err := core.NewNode(core.Config{RateLimit: -1}, mb, cfg.Logger.With("component", "dashboard"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dashboard{cfg: cfg, errs: errs, view: view, cancel: cancel, done: make(chan struct{}), samples: map[string][]json.RawMessage{}}
	if err := cfg.Node.Consume(ctx, Channel, d.received); err != nil {
		cancel()
		_ = view.Shutdown(context.Background())
		return nil, err
	}
	go d.run(ctx)
	return d, nil
}

// received keeps a sample from any node and passes it to the pages.
func (d *Dashboard) received(del core.Delivery) {
	var head struct {
		Node string `json:"node"`
	}
	data := del.Envelope.Data
	if json.Unmarshal(data, &head) != nil || head.Node == "" {
		return
	}
	d.mu.Lock()
	s := append(d.samples[head.Node], data)
	if len(s) > d.cfg.Keep {
		s = s[len(s)-d.cfg.Keep:]
	}
	d.samples[head.Node] = s
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = d.view.Publish(ctx, core.RoomChannel(room), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: room, Data: data})
}

func (d *Dashboard) run(ctx context.Context) {
	defer close(d.done)
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	start := time.Now()
	for {
		data, err := json.Marshal(d.sample(start))
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, d.cfg.Interval)
			env := &core.Envelope{V: core.Version, Type: core.TypeMessage, TS: time.Now().UnixMilli(), Data: data}
			if _, err := d.cfg.Node.Publish(pctx, Channel, env); err != nil && ctx.Err() == nil {
				d.cfg.Logger.Debug("dashboard sample not published", "err", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
		Recent: d.errs.Last(10),
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
	g := app.Group("/dashboard", d.auth)
	g.Get("/", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.Send(page)
	})
	g.Get("/samples", func(c *fiber.Ctx) error {
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
	g.Get("/sse", sse.New(d.view, sse.Config{Authenticator: viewer}))
}

// viewer admits every page (d.auth already checked the token) to the one
// room, read-only.
var viewer = core.AuthenticatorFunc(func(context.Context, core.Credentials) (core.Identity, error) {
	return core.Identity{User: "dashboard", Permissions: &core.Permissions{Subscribe: []string{room}}}, nil
})

// auth checks the admin token, when there is one.
func (d *Dashboard) auth(c *fiber.Ctx) error {
	if d.cfg.Token == "" {
		return c.Next()
	}
	if given, ok := credential(c.Get(fiber.HeaderAuthorization)); ok && equal(given, d.cfg.Token) {
		return c.Next()
	}
	d.cfg.Logger.Warn("dashboard: missing or wrong admin token", "remote", c.IP())
	c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="switchboard dashboard", charset="UTF-8"`)
	return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{
		"error": fiber.Map{"code": core.CodeUnauthorized, "message": "the dashboard needs the admin token (--admin-token): as a Bearer token, or as the password of Basic authentication"},
	})
}

// credential reads a Bearer token or a Basic password.
func credential(h string) (string, bool) {
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return tok, true
	}
	if b64, ok := strings.CutPrefix(h, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return "", false
		}
		_, pass, ok := strings.Cut(string(raw), ":")
		return pass, ok
	}
	return "", false
}

// equal compares in constant time (over hashes, so lengths leak nothing).
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// Close stops sampling and ends the pages' streams.
func (d *Dashboard) Close(ctx context.Context) error {
	d.cancel()
	<-d.done
	return d.view.Shutdown(ctx)
}
