package webhook

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// Route names, sent in the X-Switchboard-Route header and the body's
// "route" field.
const (
	RouteConnect    = "connect"
	RouteMessage    = "message"
	RouteDisconnect = "disconnect"
)

// Headers sent with every call besides SignatureHeader.
const (
	RouteHeader    = "X-Switchboard-Route"    // connect, message or disconnect
	DeliveryHeader = "X-Switchboard-Delivery" // the body's "id": the same on every attempt
	AttemptHeader  = "X-Switchboard-Attempt"  // 1 for the first attempt
)

// Errors a call can end with, matched with errors.Is.
var (
	// ErrOpen: the route's circuit breaker is open; no request was made.
	ErrOpen = errors.New("switchboard/webhook: circuit open")
	// ErrBusy: MaxInFlight calls of this route are already running.
	ErrBusy = errors.New("switchboard/webhook: too many calls in flight")
	// ErrBadResponse: the backend answered 2xx with a body that does not
	// follow docs/webhooks.md.
	ErrBadResponse = errors.New("switchboard/webhook: bad response")
	// ErrClosed: Close has been called.
	ErrClosed = errors.New("switchboard/webhook: closed")
	// ErrRejected is wrapped by the *core.Rejection of a connection the
	// connect route refused.
	ErrRejected = errors.New("switchboard/webhook: rejected by the connect webhook")
)

// StatusError is a call answered with a status other than 2xx.
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	return "switchboard/webhook: backend answered HTTP " + strconv.Itoa(e.Code)
}

// maxBody bounds a response body read from the backend.
const maxBody = 1 << 20

// Config configures the routes. Zero values take the documented
// defaults; where noted, negative disables.
type Config struct {
	// ConnectURL, MessageURL and DisconnectURL are the routes' endpoints
	// (http or https); an empty URL leaves its route off.
	ConnectURL, MessageURL, DisconnectURL string
	// MessageTypes are the custom envelope types sent to MessageURL.
	// Required with MessageURL; each must pass CheckMessageType.
	MessageTypes []string
	// Secret signs every call (HMAC-SHA256). Required, at least 16 bytes.
	Secret []byte
	// Tracer, when set, makes each attempt a span and sends its trace
	// context (traceparent) to the backend. Optional. Default: nil.
	Tracer core.Tracer
	// Timeout bounds each attempt. For connect it bounds the whole call,
	// retries included, since the client waits. Optional. Default: 5s.
	Timeout time.Duration
	// ConnectRetries is how many times a failed connect attempt is
	// retried within Timeout. Negative: none. Optional. Default: 1.
	ConnectRetries int
	// MessageRetries is how many times a failed message attempt is
	// retried. Messages are not idempotent, so the default is none.
	// Optional. Default: 0.
	MessageRetries int
	// DisconnectRetries is how many times a failed disconnect attempt is
	// retried, with backoff. Negative: none. Optional. Default: 5.
	DisconnectRetries int
	// BackoffBase and BackoffMax shape the delay before retry n (from 1):
	// base·2^(n-1), capped at max, of which a random half is jitter.
	// Optional. Default: 200ms and 5s.
	BackoffBase, BackoffMax time.Duration
	// BreakerThreshold consecutive failed attempts open a route's
	// breaker. Negative: no breaker. Optional. Default: 5.
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker refuses calls before a
	// single trial call. Optional. Default: 10s.
	BreakerCooldown time.Duration
	// MaxInFlight bounds concurrent connect calls and concurrent message
	// calls (each); beyond it a call fails at once with ErrBusy.
	// Negative: unbounded. Optional. Default: 1024.
	MaxInFlight int
	// QueueSize bounds the disconnect queue; a full queue drops the
	// event. Optional. Default: 10000.
	QueueSize int
	// Workers deliver disconnects. Optional. Default: 8.
	Workers int
	// DrainTimeout bounds how long Close keeps delivering queued
	// disconnects. Optional. Default: 5s.
	DrainTimeout time.Duration
	// Client makes the calls. Optional. Default: a client that never
	// follows redirects, with its own connection pool.
	Client *http.Client

	// Now and Backoff replace the clock (breakers, signatures) and the
	// retry delay in tests. Optional.
	Now     func() time.Time
	Backoff func(retry int) time.Duration
}

func (c *Config) setDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	defDur(&c.Timeout, 5*time.Second)
	def(&c.ConnectRetries, 1)
	def(&c.DisconnectRetries, 5)
	defDur(&c.BackoffBase, 200*time.Millisecond)
	defDur(&c.BackoffMax, 5*time.Second)
	def(&c.BreakerThreshold, 5)
	defDur(&c.BreakerCooldown, 10*time.Second)
	def(&c.MaxInFlight, 1024)
	def(&c.QueueSize, 10000)
	def(&c.Workers, 8)
	defDur(&c.DrainTimeout, 5*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		c.Client = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
}

// ErrInvalidConfig is wrapped by the error of a Config that New refuses
// (a *core.ConfigError naming the field).
var ErrInvalidConfig = errors.New("switchboard/edge/webhook: invalid config")

// ErrNoRoute is New's error for a Config without any route URL (Enabled
// false): there would be nothing to call.
var ErrNoRoute = fmt.Errorf("%w: no route has a URL; set ConnectURL, MessageURL or DisconnectURL", ErrInvalidConfig)

// MaxTimeout bounds Timeout: a client waits on connect and message calls.
const MaxTimeout = time.Minute

// WithDefaults returns c with every zero field set to its default, as New
// applies them.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// Enabled reports whether any route has a URL: without one, New refuses
// the Config and there is nothing to call.
func (c Config) Enabled() bool {
	return c.ConnectURL != "" || c.MessageURL != "" || c.DisconnectURL != ""
}

// Validate reports the first field New refuses, as a *core.ConfigError
// wrapping ErrInvalidConfig. Call it after defaults are applied. A Config
// without any route URL is valid, and off: New refuses it (ErrNoRoute).
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return core.Invalid(ErrInvalidConfig, field, format, args...)
	}
	for _, u := range []struct{ field, url, path string }{
		{"ConnectURL", c.ConnectURL, "connect"}, {"MessageURL", c.MessageURL, "message"}, {"DisconnectURL", c.DisconnectURL, "disconnect"},
	} {
		if u.url != "" && CheckURL(u.url) != nil {
			return bad(u.field, "%q; use an http:// or https:// URL such as https://api.example.com/switchboard/%s", u.url, u.path)
		}
	}
	for _, t := range c.MessageTypes {
		if err := CheckMessageType(t); err != nil {
			return bad("MessageTypes", "%v", err)
		}
	}
	switch {
	case c.MessageURL != "" && len(c.MessageTypes) == 0:
		return bad("MessageTypes", "empty; list the custom envelope types to send to the message URL, e.g. echo,shout")
	case c.MessageURL == "" && len(c.MessageTypes) > 0:
		return bad("MessageURL", "empty; set it to the URL that handles the message types")
	case c.Enabled() && len(c.Secret) == 0:
		return bad("Secret", "required with a webhook URL; use a long random secret the backend also knows")
	case len(c.Secret) > 0 && len(c.Secret) < 16:
		return bad("Secret", "%d bytes is shorter than 16; use a long random secret", len(c.Secret))
	case c.Timeout < 0:
		return bad("Timeout", "%s must be positive, e.g. 5s", c.Timeout)
	case c.Timeout > MaxTimeout:
		return bad("Timeout", "%s is too long: a client waits on connect and message calls; use at most %s", c.Timeout, MaxTimeout)
	case c.BackoffBase < 0 || c.BackoffMax < 0:
		return bad("BackoffBase", "backoff must not be negative")
	case c.BreakerCooldown < 0:
		return bad("BreakerCooldown", "must not be negative")
	case c.DrainTimeout < 0:
		return bad("DrainTimeout", "must not be negative")
	case c.MessageRetries < 0:
		return bad("MessageRetries", "must not be negative")
	case c.QueueSize < 0:
		return bad("QueueSize", "must not be negative")
	case c.Workers < 0:
		return bad("Workers", "must not be negative")
	}
	return nil
}

// CheckURL reports whether raw is an absolute http or https URL.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an absolute http:// or https:// URL")
	}
	return nil
}

// CheckMessageType reports whether typ may be routed to the message
// webhook: a valid envelope type (core.ValidateType) that is not built in.
func CheckMessageType(typ string) error {
	if err := core.ValidateType(typ); err != nil {
		var pe *core.Error
		if errors.As(err, &pe) {
			return fmt.Errorf("type %q: %s", typ, pe.Message)
		}
		return err
	}
	if core.Reserved(typ) {
		return fmt.Errorf("type %q is built in; route a custom type such as %q", typ, "app."+typ)
	}
	return nil
}

// Hooks calls the configured routes. Build it with New; a nil *Hooks is
// valid and calls nothing.
type Hooks struct {
	cfg    Config
	log    *slog.Logger
	nodeID atomic.Pointer[string]

	connect, message, disconnect *route

	// disconnect delivery
	mu       sync.RWMutex // guards closed against OnEvent's sends
	closed   bool
	queue    chan pending
	started  sync.Map // conn id → connect time, for durations
	draining chan struct{}
	ctx      context.Context // ends at the drain deadline
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
	dropping atomic.Bool // a queue-full episode is under way
}

// route is one endpoint with its breaker, limits and counters.
type route struct {
	name    string
	url     string
	retries int
	br      *breaker
	sem     chan struct{} // nil: unbounded

	calls, failures, retried, refused, dropped atomic.Uint64
}

// New validates cfg, applies defaults and starts the disconnect workers
// (when that route is configured).
func New(cfg Config, logger *slog.Logger) (*Hooks, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, ErrNoRoute
	}
	if logger == nil {
		logger = slog.Default()
	}
	h := &Hooks{cfg: cfg, log: logger.With("component", "webhook")}
	empty := ""
	h.nodeID.Store(&empty)
	mk := func(name, u string, retries int, sync bool) *route {
		if u == "" {
			return nil
		}
		r := &route{name: name, url: u, retries: max(retries, 0)}
		if cfg.BreakerThreshold > 0 {
			r.br = &breaker{threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, now: cfg.Now,
				onChange: func(open bool) {
					if open {
						h.log.Warn("webhook circuit open: failing fast", "route", name, "cooldown", cfg.BreakerCooldown)
					} else {
						h.log.Info("webhook circuit closed: backend answering again", "route", name)
					}
				}}
		}
		if sync && cfg.MaxInFlight > 0 {
			r.sem = make(chan struct{}, cfg.MaxInFlight)
		}
		return r
	}
	h.connect = mk(RouteConnect, cfg.ConnectURL, cfg.ConnectRetries, true)
	h.message = mk(RouteMessage, cfg.MessageURL, cfg.MessageRetries, true)
	h.disconnect = mk(RouteDisconnect, cfg.DisconnectURL, cfg.DisconnectRetries, false)
	h.draining = make(chan struct{})
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if h.disconnect != nil {
		h.queue = make(chan pending, cfg.QueueSize)
		h.wg.Add(cfg.Workers)
		for range cfg.Workers {
			go h.worker()
		}
	}
	return h, nil
}

// Close stops taking disconnects, delivers the queued ones for at most
// DrainTimeout (then abandons the rest, logging how many), and waits for
// the workers. Later connect and message calls fail with ErrClosed.
// Idempotent.
func (h *Hooks) Close() error {
	if h == nil {
		return nil
	}
	h.once.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		close(h.draining)
		t := time.AfterFunc(h.cfg.DrainTimeout, h.cancel)
		h.wg.Wait()
		t.Stop()
		h.cancel()
		if tr, ok := h.cfg.Client.Transport.(interface{ CloseIdleConnections() }); ok {
			tr.CloseIdleConnections()
		}
		if r := h.disconnect; r != nil && r.dropped.Load() > 0 {
			h.log.Warn("webhook disconnects dropped", "route", r.name, "dropped", r.dropped.Load())
		}
	})
	return nil
}

// Stats counts a route's calls since New.
type Stats struct {
	Calls    uint64 `json:"calls"`    // calls started (not attempts)
	Failures uint64 `json:"failures"` // calls that ended without a usable answer
	Retries  uint64 `json:"retries"`  // attempts beyond the first
	Refused  uint64 `json:"refused"`  // calls refused at once: breaker open, busy, closed
	Dropped  uint64 `json:"dropped"`  // disconnect: events dropped (queue full, breaker open, shutdown)
	Breaker  string `json:"breaker"`  // closed, open or half-open
}

// Stats returns the counters of route (RouteConnect, RouteMessage or
// RouteDisconnect); zero for a route that is off.
func (h *Hooks) Stats(name string) Stats {
	var r *route
	if h != nil {
		r = map[string]*route{RouteConnect: h.connect, RouteMessage: h.message, RouteDisconnect: h.disconnect}[name]
	}
	if r == nil {
		return Stats{Breaker: stateClosed.String()}
	}
	return Stats{Calls: r.calls.Load(), Failures: r.failures.Load(), Retries: r.retried.Load(),
		Refused: r.refused.Load(), Dropped: r.dropped.Load(), Breaker: r.br.current().String()}
}

// SetNodeID sets the node id sent in every call (core.Node.ID).
func (h *Hooks) SetNodeID(id string) {
	if h != nil {
		h.nodeID.Store(&id)
	}
}

func (h *Hooks) node() string { return *h.nodeID.Load() }

// newID returns a random delivery id.
func newID() string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// backoff is the delay before retry n (from 1): exponential, capped, with
// the upper half jittered so concurrent retries spread out.
func (h *Hooks) backoff(n int) time.Duration {
	if h.cfg.Backoff != nil {
		return h.cfg.Backoff(n)
	}
	d := h.cfg.BackoffBase
	for i := 1; i < n && d < h.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, h.cfg.BackoffMax)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// call POSTs body to r and returns the 2xx response body. perAttempt
// bounds each attempt; the call as a whole ends with ctx. Failed attempts
// are retried up to r.retries times while retryable and while ctx has
// time left for the backoff.
func (h *Hooks) call(ctx context.Context, r *route, id string, body []byte, perAttempt time.Duration) ([]byte, error) {
	r.calls.Add(1)
	if r.sem != nil {
		select {
		case r.sem <- struct{}{}:
			defer func() { <-r.sem }()
		default:
			r.refused.Add(1)
			return nil, ErrBusy
		}
	}
	var err error
	for attempt := 1; ; attempt++ {
		var resp []byte
		resp, err = h.attempt(ctx, r, id, attempt, body, perAttempt)
		if err == nil {
			return resp, nil
		}
		if errors.Is(err, ErrOpen) {
			r.refused.Add(1)
			return nil, err
		}
		if attempt > r.retries || !retryable(err) || ctx.Err() != nil {
			break
		}
		wait := h.backoff(attempt)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			break // no time left for another attempt
		}
		if !sleep(ctx, wait) {
			break
		}
		r.retried.Add(1)
	}
	r.failures.Add(1)
	return nil, err
}

// attempt makes one request, accounted with the breaker.
func (h *Hooks) attempt(ctx context.Context, r *route, id string, n int, body []byte, timeout time.Duration) ([]byte, error) {
	tk, ok := r.br.allow()
	if !ok {
		return nil, ErrOpen
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := h.post(actx, r, id, n, body)
	switch {
	case err == nil, errors.Is(err, ErrBadResponse):
		r.br.done(tk, succeeded) // it answered: the breaker is about availability
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		r.br.done(tk, abandoned) // the caller went away: says nothing of the backend
	default:
		r.br.done(tk, failed)
	}
	return resp, err
}

func (h *Hooks) post(ctx context.Context, r *route, id string, n int, body []byte) (out []byte, err error) {
	var carrier map[string]string
	if t := h.cfg.Tracer; t != nil {
		var end func(error)
		ctx, end = t.Start(ctx, "switchboard.webhook", nil, "switchboard.route", r.name, "switchboard.delivery", id, "switchboard.attempt", strconv.Itoa(n))
		defer func() { end(err) }()
		carrier = make(map[string]string, 2)
		t.Inject(ctx, carrier)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range carrier {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "switchboard-webhook/1")
	req.Header.Set(RouteHeader, r.name)
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(AttemptHeader, strconv.Itoa(n))
	req.Header.Set(SignatureHeader, Sign(h.cfg.Secret, h.cfg.Now(), body))
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &StatusError{Code: resp.StatusCode}
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrBadResponse, maxBody)
	}
	return b, nil
}

// retryable: no answer (network, timeout), or an answer saying "later".
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code >= 500 || se.Code == http.StatusTooManyRequests || se.Code == http.StatusRequestTimeout
	}
	return !errors.Is(err, ErrBadResponse) && !errors.Is(err, ErrOpen) && !errors.Is(err, ErrBusy)
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
