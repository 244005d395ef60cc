package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-dev/switchboard/adapters/cors"
	"github.com/switchboard-dev/switchboard/adapters/httpsend"
	"github.com/switchboard-dev/switchboard/adapters/longpoll"
	"github.com/switchboard-dev/switchboard/adapters/sse"
	wsadapter "github.com/switchboard-dev/switchboard/adapters/websocket"
	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	kafkabroker "github.com/switchboard-dev/switchboard/broker/kafka"
	"github.com/switchboard-dev/switchboard/broker/memory"
	natsbroker "github.com/switchboard-dev/switchboard/broker/nats"
	pgbroker "github.com/switchboard-dev/switchboard/broker/postgres"
	redisbroker "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/api"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/dashboard"
	"github.com/switchboard-dev/switchboard/edge/metrics"
	"github.com/switchboard-dev/switchboard/edge/presence"
	"github.com/switchboard-dev/switchboard/edge/webclient"
	"github.com/switchboard-dev/switchboard/edge/webhook"
)

// Server is one edge node.
type Server struct {
	cfg    config.Config
	log    *slog.Logger
	recent *dashboard.Recent // the recent warnings and errors, for the dashboard
	ready  atomic.Bool

	// What New's steps build, in order; Shutdown (or a failed New)
	// releases what exists, newest first (release).
	broker  core.Broker
	hooks   *webhooks      // nil without webhooks
	auth    *Authenticator // the authentication chain
	mets    *metrics.Metrics
	node    *core.Node
	tracker *presence.Tracker
	outbox  *pgbroker.Outbox // nil without --outbox-url
	app     *fiber.App
	admin   *fiber.App           // --admin-addr: /stats and /metrics; nil without
	dash    *dashboard.Dashboard // nil when not served

	shutdownOnce sync.Once
	shutdownErr  error

	lnMu      sync.Mutex
	stopped   bool           // Shutdown has begun: Serve and ServeAdmin refuse
	listeners []net.Listener // given to Serve and ServeAdmin; closed by Shutdown
}

// New builds the node and routes, step by step; a step that fails
// releases what the ones before it built. Register custom types on
// Node().Router() before Serve. An unreachable broker is an error
// matching ErrBrokerUnavailable; an authentication setting that cannot
// work, config.Restate's.
func New(cfg config.Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	// The dashboard lists recent warnings and errors: remember them as
	// they are logged.
	recent := dashboard.NewRecent(logger.Handler())
	s := &Server{cfg: cfg, log: slog.New(recent), recent: recent}
	for _, step := range []func() error{
		s.openBroker, // the log: memory, redis, kafka, nats or postgres
		s.openAuth,   // webhooks, then the authentication chain
		s.startNode,  // core, on the broker, with the chain and metrics
		s.startPresence,
		s.startOutbox,     // switchboard_publish, forwarded through the node (--outbox-url)
		s.mountTransports, // the Fiber app: /ws, /sse, /poll, /send, /client.js, the API, health
		s.mountAdmin,      // /stats, /metrics and the dashboard, where the configuration allows
	} {
		if err := step(); err != nil {
			_ = s.release(context.Background())
			if isBrokerDown(err) {
				return nil, brokerDown{err}
			}
			return nil, err
		}
	}
	return s, nil
}

// release frees what New built, newest first: the dashboard, the
// outbox's forwarder, then the node (which ends its sessions, says
// presence's goodbye and closes the broker) or, without one, the broker;
// then the authentication chain and the webhooks. It reports the node's
// shutdown error.
func (s *Server) release(ctx context.Context) error {
	var err error
	if s.dash != nil {
		err = s.dash.Close(ctx)
	}
	err = errors.Join(err, s.stopOutbox(ctx))
	switch {
	case s.node != nil:
		err = errors.Join(err, s.node.Shutdown(ctx))
	case s.broker != nil:
		_ = s.broker.Close(ctx)
	}
	if s.auth != nil {
		_ = s.auth.Close()
	}
	_ = s.hooks.close()
	return err
}

// Each step sets what it built only when it succeeded: release must not
// see a typed nil in an interface.

func (s *Server) openBroker() error {
	b, err := openBroker(s.cfg, s.log)
	if err != nil {
		return err
	}
	s.broker = b
	return nil
}

func (s *Server) openAuth() error {
	hooks, err := newWebhooks(s.cfg, s.log)
	if err != nil {
		return err
	}
	s.hooks = hooks
	a, err := newAuthenticator(s.cfg, s.hooks, s.log)
	if err != nil {
		return err
	}
	s.auth = a
	return nil
}

func (s *Server) startNode() error {
	s.mets = metrics.New()
	node, err := newNode(s.cfg, s.broker, s.auth.Authenticator, s.mets, s.log)
	if err != nil {
		return err
	}
	s.node = node
	s.node.OnEvent(s.hooks.onEvent)
	s.hooks.register(s.node)
	return nil
}

// startPresence: with the in-memory broker there is one node and nobody
// can read its log, so presence stays in process (no per-connection
// broker traffic).
func (s *Server) startPresence() error {
	pc := s.cfg.Presence
	pc.Local, pc.Logger = s.cfg.Broker.Name == "memory", s.log
	t, err := presence.New(s.node, pc)
	if err != nil {
		return err
	}
	s.tracker = t
	return nil
}

// startOutbox installs switchboard_publish in the outbox's database and
// forwards what backends commit there, each row published through the
// node as the server API publishes the same request. An unreachable
// database does not stop the edge (the forwarder retries and says so);
// one that refuses the edge's user or the migration does.
func (s *Server) startOutbox() error {
	if s.cfg.Outbox.URL == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), brokerStartTimeout)
	defer cancel()
	o, err := pgbroker.NewOutbox(ctx, s.cfg.Outbox, outboxPublisher{node: s.node, maxBody: apiMaxBody(s.cfg)}, s.log)
	if err != nil {
		return err
	}
	s.outbox = o
	return nil
}

// stopOutbox stops forwarding, so that another edge takes over at once.
// Idempotent.
func (s *Server) stopOutbox(ctx context.Context) error {
	if s.outbox == nil {
		return nil
	}
	return s.outbox.Close(ctx)
}

// outboxPublisher publishes an outbox row's request as POST
// /api/v1/publish publishes the same body: api.Publish validates it and
// builds the envelope, and the row's key is the idempotency key.
type outboxPublisher struct {
	node    *core.Node
	maxBody int // the server API's bound on a body
}

var _ pgbroker.OutboxPublisher = outboxPublisher{}

func (p outboxPublisher) Publish(ctx context.Context, request []byte, key string) error {
	if len(request) > p.maxBody {
		return fmt.Errorf("%w: request over %d bytes (the server API's bound)", pgbroker.ErrOutboxRefused, p.maxBody)
	}
	req, err := api.DecodePublishRequest(request)
	if err != nil {
		return fmt.Errorf("%w: %v", pgbroker.ErrOutboxRefused, err)
	}
	req.IdempotencyKey = key
	res, status := api.Publish(ctx, p.node, req)
	switch {
	case status == fiber.StatusOK:
		return nil
	case res.Error == nil:
		return fmt.Errorf("publish answered %d", status)
	case status == fiber.StatusBadRequest || status == fiber.StatusUnprocessableEntity:
		return fmt.Errorf("%w: %s: %s", pgbroker.ErrOutboxRefused, res.Error.Code, res.Error.Message)
	}
	return fmt.Errorf("%s: %s", res.Error.Code, res.Error.Message) // retried with the key
}

// apiMaxBody bounds a body of the server API, and an outbox request.
func apiMaxBody(cfg config.Config) int {
	return max(cfg.Node.MaxMessageSize, api.DefaultMaxBody)
}

// health is /healthz's answer: the process is alive; it also says what
// the outbox's forwarder is doing (forwarding, standby, retrying).
func (s *Server) health(c *fiber.Ctx) error {
	out := fiber.Map{"status": "ok"}
	if s.outbox != nil {
		out["outbox"] = s.outbox.Stats().State
	}
	return c.JSON(out)
}

func (s *Server) mountTransports() error {
	cfg, node, b, logger := s.cfg, s.node, s.broker, s.log
	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		AppName:               "switchboard",
		ReadTimeout:           15 * time.Second, // upgraded connections clear it
		IdleTimeout:           60 * time.Second,
		// Releases fasthttp's 4 KiB per-connection read buffer before an
		// upgrade, so it is not pinned under every WebSocket (23.1 → 19.2
		// KB RSS per idle connection, see docs/performance.md).
		ReduceMemoryUsage: true,
		// Request line and headers up to 8 KiB (fasthttp's default is 4):
		// a 100-room ?rooms= list plus a JWT must fit; larger requests get
		// 431 before any handler runs.
		ReadBufferSize: maxHeaderBytes,
		ErrorHandler:   errorHandler,
		// c.IP() (per-IP limits, logs) believes ProxyHeader only from
		// TrustedProxies.
		ProxyHeader:             cfg.ProxyHeader,
		EnableTrustedProxyCheck: len(cfg.TrustedProxies) > 0,
		TrustedProxies:          cfg.TrustedProxies,
	})
	if cfg.Serves("websocket") {
		// After the handshake an idle WebSocket holds no goroutine: the
		// adapter's poller watches its socket (plain TCP on Linux).
		wsadapter.DetachConnections(s.app)
		wc := cfg.WebSocket
		wc.Origins, wc.WriteTimeout = cfg.AllowedOrigins, cfg.WriteTimeout
		s.app.Get("/ws", wsadapter.New(node, wc))
	}
	// Browsers on other origins may use the HTTP transports when their
	// Origin is allowed (CORS, preflight included); forged origins get
	// 403 before any handler runs. WebSocket upgrades are checked by the
	// adapter against the same list.
	origins := cors.New(cors.Config{Origins: cfg.AllowedOrigins, Log: func(origin, remote string) {
		logger.Warn("origin refused", "origin", origin, "remote", remote)
	}})
	for _, p := range []string{"/sse", "/poll", "/send"} {
		s.app.Use(p, origins)
	}
	if cfg.Serves("sse") {
		// SSE streams need fiber's WriteTimeout to stay 0 (the default): a
		// server-wide write deadline would cut every stream. The adapter
		// sets its own per-write deadlines.
		s.app.Get("/sse", sse.New(node, sse.Config{
			WriteTimeout: cfg.WriteTimeout,
		}))
	}
	if cfg.Serves("longpoll") {
		s.app.Get("/poll", longpoll.New(node, longpoll.Config{
			CompressionLevel:     cfg.WebSocket.CompressionLevel,
			CompressionThreshold: cfg.WebSocket.CompressionThreshold,
		}))
	}
	s.app.Post("/send", httpsend.New(node))
	webclient.Register(s.app)
	if len(cfg.APIKeys) > 0 {
		api.Register(s.app, api.Config{Node: node, Keys: cfg.APIKeys, Presence: presenceAPI{s.tracker},
			MaxBody: apiMaxBody(cfg), Logger: logger})
	}
	s.app.Get("/healthz", s.health)
	s.app.Get("/readyz", func(c *fiber.Ctx) error {
		if !s.ready.Load() || node.ShuttingDown() {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "not ready"})
		}
		if err := b.Healthy(); err != nil {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "not ready", "broker": err.Error()})
		}
		return c.JSON(fiber.Map{"status": "ready"})
	})
	return nil
}

func (s *Server) mountAdmin() error {
	cfg, node, b, logger, tracker, hooks, mets, outbox := s.cfg, s.node, s.broker, s.log, s.tracker, s.hooks, s.mets, s.outbox
	stats := func(c *fiber.Ctx) error {
		out := struct {
			core.Stats
			Node     string                   `json:"node"`
			Presence map[string]uint64        `json:"presence"`
			Webhooks map[string]webhook.Stats `json:"webhooks,omitempty"`
			Outbox   *pgbroker.OutboxStats    `json:"outbox,omitempty"`
		}{Stats: node.Stats(), Node: node.ID(), Presence: map[string]uint64{"events_dropped": tracker.Dropped()}}
		if outbox != nil {
			st := outbox.Stats()
			out.Outbox = &st
		}
		if hooks != nil {
			out.Webhooks = map[string]webhook.Stats{}
			for _, r := range []string{webhook.RouteConnect, webhook.RouteMessage, webhook.RouteDisconnect} {
				out.Webhooks[r] = hooks.h.Stats(r)
			}
		}
		return c.JSON(out)
	}
	eng, _ := b.(*engine.Broker) // redis, kafka, nats: the log engine's own figures
	mets.Attach(node, func(ch chan<- prometheus.Metric) { extraMetrics(ch, tracker, hooks, eng, outbox) })
	prom := adaptor.HTTPHandler(promhttp.HandlerFor(mets.Registry, promhttp.HandlerOpts{}))
	// /stats and /metrics live on the admin listener when there is one
	// (--admin-addr), so they are not exposed publicly. On the public
	// listener, production mode keeps them from strangers: they need the
	// admin token, and without one they are not served there.
	admin := s.app
	switch {
	case cfg.AdminAddr != "":
		s.admin = fiber.New(fiber.Config{DisableStartupMessage: true, AppName: "switchboard-admin", ErrorHandler: errorHandler})
		admin = s.admin
		admin.Get("/healthz", s.health)
		admin.Get("/stats", stats)
		admin.Get("/metrics", prom)
	case !cfg.Production():
		admin.Get("/stats", stats)
		admin.Get("/metrics", prom)
	case cfg.AdminToken != "":
		guard := dashboard.RequireToken(cfg.AdminToken, "stats", logger)
		admin.Get("/stats", guard, stats)
		admin.Get("/metrics", guard, prom)
	default:
		logger.Info("/stats and /metrics not served on the public listener: production mode; set --admin-addr (a private listener) or --admin-token")
	}
	switch {
	case !cfg.Dashboard:
	case cfg.AdminAddr == "" && cfg.AdminToken == "":
		// It shows room names and log messages: never on a public
		// listener without a token, whatever the mode.
		logger.Info("dashboard not served: set --admin-addr (a private listener) or --admin-token")
	default:
		d, err := dashboard.New(dashboard.Config{Node: node, Health: b.Healthy, Token: cfg.AdminToken, Logger: logger}, s.recent)
		if err != nil {
			return fmt.Errorf("dashboard: %w", err)
		}
		d.Register(admin)
		s.dash = d
	}
	return nil
}

// ErrBrokerUnavailable is matched (errors.Is) by New's error when the
// broker could not be reached: the one failure worth retrying.
var ErrBrokerUnavailable = errors.New("switchboard/edge/server: broker unavailable")

// brokerDown keeps the driver's message and adds ErrBrokerUnavailable.
type brokerDown struct{ error }

func (e brokerDown) Unwrap() error        { return e.error }
func (e brokerDown) Is(target error) bool { return target == ErrBrokerUnavailable }

func isBrokerDown(err error) bool {
	return errors.Is(err, broker.ErrUnavailable)
}

// newNode builds the core node from the edge configuration.
func newNode(cfg config.Config, b core.Broker, authn core.Authenticator, mets *metrics.Metrics, logger *slog.Logger) (*core.Node, error) {
	nc := cfg.Node
	nc.OnDeliveryLatency, nc.OnPublish = mets.OnDeliveryLatency, mets.OnPublish
	nc.Tracer, nc.Authenticator = cfg.Tracer, authn
	return core.NewNode(nc, b, logger)
}

// maxHeaderBytes bounds a request's line and headers.
const maxHeaderBytes = 8 << 10

// brokerStartTimeout bounds connecting to the broker at start.
const brokerStartTimeout = 10 * time.Second

// engineConfig is the log engine's part of the configuration, the same
// for every broker on it.
func engineConfig(cfg config.Config) engine.Config {
	c := cfg.Broker.Engine
	if (cfg.Broker.Name == "kafka" || cfg.Broker.Name == "nats" || cfg.Broker.Name == "postgres") && cfg.Broker.RetentionAge > 0 && c.IndexAge > 0 {
		// The index never answers for what the log has dropped by age.
		c.IndexAge = min(c.IndexAge, cfg.Broker.RetentionAge)
	}
	return c
}

func openBroker(cfg config.Config, logger *slog.Logger) (core.Broker, error) {
	b := cfg.Broker
	switch b.Name {
	case "memory":
		mc := b.Memory
		mc.DedupWindow = b.Engine.DedupWindow
		return memory.New(mc, logger)
	case "redis":
		redisbroker.SetClientLogger(logger)
		ctx, cancel := context.WithTimeout(context.Background(), brokerStartTimeout)
		defer cancel()
		return redisbroker.New(ctx, redisbroker.Config{URL: b.URL, MaxLen: b.RetentionMessages, Engine: engineConfig(cfg)}, logger)
	case "kafka":
		brokers, err := kafkabroker.ParseURL(b.URL)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), brokerStartTimeout)
		defer cancel()
		return kafkabroker.New(ctx, kafkabroker.Config{Brokers: brokers, Retention: b.RetentionAge, Engine: engineConfig(cfg)}, logger)
	case "nats":
		ctx, cancel := context.WithTimeout(context.Background(), brokerStartTimeout)
		defer cancel()
		return natsbroker.New(ctx, natsbroker.Config{URL: b.URL, MaxMsgs: b.RetentionMessages, MaxAge: b.RetentionAge, Engine: engineConfig(cfg)}, logger)
	case "postgres":
		ctx, cancel := context.WithTimeout(context.Background(), brokerStartTimeout)
		defer cancel()
		return pgbroker.New(ctx, pgbroker.Config{URL: b.URL, MaxMsgs: b.RetentionMessages, MaxAge: b.RetentionAge, Engine: engineConfig(cfg)}, logger)
	}
	return nil, fmt.Errorf("unknown broker %q (available: memory, redis, kafka, nats, postgres)", b.Name)
}

func errorHandler(c *fiber.Ctx, err error) error {
	code := fiber.StatusInternalServerError
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code = fe.Code
	}
	return c.Status(code).JSON(fiber.Map{"error": fiber.Map{"code": "http_" + fmt.Sprint(code), "message": err.Error()}})
}

// Config returns the configuration the server was built with.
func (s *Server) Config() config.Config { return s.cfg }

// Node returns the server's core node.
func (s *Server) Node() *core.Node { return s.node }

// App returns the Fiber app, to add routes before Serve.
func (s *Server) App() *fiber.App { return s.app }

// Serve accepts connections on ln until Shutdown. It returns nil after a
// clean shutdown, also when Shutdown came first or while Serve was
// starting: Shutdown closes ln. With TLS configured (--tls-cert) it speaks
// HTTPS and WSS on ln.
func (s *Server) Serve(ln net.Listener) error {
	ln, ok := s.track(ln, true)
	if !ok {
		return nil
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "broker", s.cfg.Broker.Name, "tls", s.cfg.TLS != nil)
	return s.app.Listener(ln)
}

// ServeAdmin serves /stats, /metrics and /healthz on ln (--admin-addr)
// until Shutdown, and returns like Serve. Without an admin address it
// returns at once: those routes are on the main listener.
func (s *Server) ServeAdmin(ln net.Listener) error {
	if s.admin == nil {
		return nil
	}
	ln, ok := s.track(ln, false)
	if !ok {
		return nil
	}
	s.log.Info("admin listening", "addr", ln.Addr().String())
	return s.admin.Listener(ln)
}

// track remembers ln for Shutdown to close, since Fiber's shutdown closes
// only the listeners it has begun serving: one still on its way in would
// be served forever. public marks the node ready. After Shutdown has
// begun it closes ln and reports false.
func (s *Server) track(ln net.Listener, public bool) (net.Listener, bool) {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.stopped {
		_ = ln.Close()
		return nil, false
	}
	if public {
		s.ready.Store(true)
	}
	ln = &closeOnce{Listener: ln}
	s.listeners = append(s.listeners, ln)
	return ln, true
}

// stop marks the server not ready and stopped: a Serve or ServeAdmin
// from now on closes its listener and returns.
func (s *Server) stop() {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	s.stopped = true
	s.ready.Store(false)
}

// closeListeners closes every listener given to Serve and ServeAdmin
// before stop.
func (s *Server) closeListeners() {
	s.lnMu.Lock()
	lns := s.listeners
	s.lnMu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
}

// closeOnce closes its listener once; later calls report nil. Fiber's
// shutdown stops at a listener's Close error (before waiting for its
// connections), so closing ours first must not make its close fail.
type closeOnce struct {
	net.Listener
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.Listener.Close() })
	return c.err
}

// Shutdown stops the node in order: mark not ready; stop the HTTP server
// accepting; close every session with 1012 "service restart" after
// flushing its queue (Fiber's own shutdown ignores upgraded connections);
// close the broker. It is bounded by ctx and idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.stop()
		// Another edge forwards the outbox while this one drains.
		outboxErr := s.stopOutbox(ctx)
		// Deliver what the broker already accepted before anything ends
		// a session: stopping the HTTP server ends SSE streams (their
		// requests' contexts close) before the node's own drain runs.
		s.node.DrainDeliveries(ctx)
		// Stop accepting first (Fiber returns without waiting for upgraded
		// connections), then end every session, then the broker. Closing
		// the listeners ourselves also stops a Serve that Fiber has not
		// yet seen.
		s.closeListeners()
		appErr := s.app.ShutdownWithContext(ctx)
		if s.admin != nil {
			appErr = errors.Join(appErr, s.admin.ShutdownWithContext(ctx))
		}
		nodeErr := s.release(ctx)
		s.shutdownErr = errors.Join(appErr, outboxErr, nodeErr)
		s.log.Info("shutdown complete", "err", s.shutdownErr)
	})
	return s.shutdownErr
}

// presenceAPI answers the server API's presence route from the tracker.
type presenceAPI struct{ t *presence.Tracker }

func (p presenceAPI) Members(ctx context.Context, room string) ([]api.Member, error) {
	conns, err := p.t.Members(ctx, room)
	if err != nil {
		return nil, err
	}
	out := make([]api.Member, len(conns))
	for i, c := range conns {
		out[i] = api.Member{User: c.User, Conn: c.Conn, Node: c.Node, Meta: c.Meta}
	}
	return out, nil
}

var (
	descPresenceDropped = prometheus.NewDesc("switchboard_presence_events_dropped_total", "Lifecycle events dropped because the presence queue was full.", nil, nil)
	descWebhookCalls    = prometheus.NewDesc("switchboard_webhook_calls_total", "Webhook calls by route and outcome (ok, failed, refused).", []string{"route", "outcome"}, nil)
	descWebhookRetries  = prometheus.NewDesc("switchboard_webhook_retries_total", "Webhook attempts beyond the first, by route.", []string{"route"}, nil)
	descWebhookDropped  = prometheus.NewDesc("switchboard_webhook_dropped_total", "Disconnect events dropped by the webhook queue or breaker.", []string{"route"}, nil)
	descWebhookBreaker  = prometheus.NewDesc("switchboard_webhook_breaker_open", "1 while a route's circuit breaker is open (0.5 half-open).", []string{"route"}, nil)
	descHistory         = prometheus.NewDesc("switchboard_history_total", "History reads (resumes, the history API) by where they were answered: the resume index alone, or the broker's log for a position older than it.", []string{"source"}, nil)
	descHistoryEntries  = prometheus.NewDesc("switchboard_history_log_entries_read_total", "Log entries History read from the broker (positions older than the resume index).", nil, nil)
	descIndexEntries    = prometheus.NewDesc("switchboard_resume_index_entries", "Messages in this node's resume index.", nil, nil)
	descOutboxForwarded = prometheus.NewDesc("switchboard_outbox_forwarded_total", "Outbox rows (switchboard_publish) this edge published and deleted.", nil, nil)
	descOutboxDead      = prometheus.NewDesc("switchboard_outbox_dead_letters_total", "Outbox rows this edge moved to switchboard_outbox_failed because they can never be published.", nil, nil)
	descOutboxRetries   = prometheus.NewDesc("switchboard_outbox_retries_total", "Outbox batches whose publication failed and was retried.", nil, nil)
	descOutboxState     = prometheus.NewDesc("switchboard_outbox_state", "1 for the outbox forwarder's current state (starting, standby, forwarding, retrying, closed), 0 for the others.", []string{"state"}, nil)
	descIndexBytes      = prometheus.NewDesc("switchboard_resume_index_bytes", "Estimated bytes of this node's resume index (bounded by --resume-index-bytes).", nil, nil)
)

// extraMetrics adds the counters kept outside core. eng is nil on the
// memory broker, outbox without --outbox-url.
func extraMetrics(ch chan<- prometheus.Metric, t *presence.Tracker, hooks *webhooks, eng *engine.Broker, outbox *pgbroker.Outbox) {
	ch <- prometheus.MustNewConstMetric(descPresenceDropped, prometheus.CounterValue, float64(t.Dropped()))
	if outbox != nil {
		st := outbox.Stats()
		ch <- prometheus.MustNewConstMetric(descOutboxForwarded, prometheus.CounterValue, float64(st.Forwarded))
		ch <- prometheus.MustNewConstMetric(descOutboxDead, prometheus.CounterValue, float64(st.DeadLettered))
		ch <- prometheus.MustNewConstMetric(descOutboxRetries, prometheus.CounterValue, float64(st.Retries))
		for _, state := range []string{pgbroker.OutboxStarting, pgbroker.OutboxStandby, pgbroker.OutboxForwarding, pgbroker.OutboxRetrying, pgbroker.OutboxClosed} {
			v := 0.0
			if st.State == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descOutboxState, prometheus.GaugeValue, v, state)
		}
	}
	if eng != nil {
		st := eng.Stats()
		ch <- prometheus.MustNewConstMetric(descHistory, prometheus.CounterValue, float64(st.HistoryFromIndex), "index")
		ch <- prometheus.MustNewConstMetric(descHistory, prometheus.CounterValue, float64(st.HistoryFromLog), "log")
		ch <- prometheus.MustNewConstMetric(descHistoryEntries, prometheus.CounterValue, float64(st.LogRecordsRead))
		ch <- prometheus.MustNewConstMetric(descIndexEntries, prometheus.GaugeValue, float64(st.IndexEntries))
		ch <- prometheus.MustNewConstMetric(descIndexBytes, prometheus.GaugeValue, float64(st.IndexBytes))
	}
	if hooks == nil {
		return
	}
	for _, r := range []string{webhook.RouteConnect, webhook.RouteMessage, webhook.RouteDisconnect} {
		st := hooks.h.Stats(r)
		ok := st.Calls - min(st.Calls, st.Failures)
		ch <- prometheus.MustNewConstMetric(descWebhookCalls, prometheus.CounterValue, float64(ok), r, "ok")
		ch <- prometheus.MustNewConstMetric(descWebhookCalls, prometheus.CounterValue, float64(st.Failures), r, "failed")
		ch <- prometheus.MustNewConstMetric(descWebhookCalls, prometheus.CounterValue, float64(st.Refused), r, "refused")
		ch <- prometheus.MustNewConstMetric(descWebhookRetries, prometheus.CounterValue, float64(st.Retries), r)
		ch <- prometheus.MustNewConstMetric(descWebhookDropped, prometheus.CounterValue, float64(st.Dropped), r)
		open := 0.0
		switch st.Breaker {
		case "open":
			open = 1
		case "half-open":
			open = 0.5
		}
		ch <- prometheus.MustNewConstMetric(descWebhookBreaker, prometheus.GaugeValue, open, r)
	}
}
