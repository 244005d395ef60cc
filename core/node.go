package core

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Node is one edge node's engine: the hub, the router, the sessions and
// the broker they publish through. Transports hand it connections with
// Accept.
type Node struct {
	cfg    Config
	broker Broker
	// replyPolicy applies to replies (acks, errors), which are not in the
	// log: the default policy unless that needs the log (then close).
	replyPolicy SlowPolicy
	details     bool // the Authenticator reads request details
	hub         *Hub
	writers     *writers // the writer pool of TryWriter transports
	router      *Router
	log         *slog.Logger
	prefix      string
	nextID      atomic.Uint64
	start       time.Time

	mu        sync.Mutex
	sessions  map[*Session]struct{}
	perIP     map[string]int // open sessions by client IP, when MaxConnectionsPerIP is set
	consumers sync.Map       // channel → func(Delivery): channels the node itself consumes (Consume)
	byID      map[string]*Session
	closing   bool
	idle      chan struct{} // closed when closing and no sessions remain

	shutdownOnce sync.Once
	shutdownErr  error
	done         chan struct{}

	stats   nodeStats
	metrics nodeMetrics

	// Hooks added by Config and by OnEvent / BeforeBrokerClose:
	// copy-on-write under hooksMu, read without a lock.
	hooksMu    sync.Mutex
	eventHooks atomic.Pointer[[]func(Event)]
	closeHooks atomic.Pointer[[]func(context.Context)]
}

type nodeStats struct {
	connsTotal atomic.Uint64
	in         atomic.Uint64 // inbound envelopes
	published  atomic.Uint64 // publications delivered by the broker
	errors     atomic.Uint64 // error replies sent
	dropped    atomic.Uint64 // envelopes dropped by drop-oldest (and conflate on overflow)
	slowClosed atomic.Uint64 // sessions closed with 4008
	refused    atomic.Uint64 // connections refused at a cap (1013)
	conflated  atomic.Uint64 // queued messages replaced by a newer one (conflate)
	gaps       atomic.Uint64 // channels paused by the resume policy
	gapsLost   atomic.Uint64 // replays the log could not complete (client told recovered:false)
}

// ConnectRequest is what an adapter learned about a new connection.
type ConnectRequest struct {
	// Credentials are what the client presented. Accept authenticates
	// them with Config.Authenticator and applies the whole Identity:
	// user (anonymous, with a generated id, when empty), permissions,
	// expiry, metadata, and rooms the server assigns.
	Credentials Credentials
	// Principal, when it came from Node.Authenticate, is used instead of
	// authenticating Credentials again: for a transport that must answer
	// refused credentials before it can carry a Disconnect (an HTTP
	// status before an SSE stream or a poll answer starts).
	// Optional.
	Principal Principal
	// Rooms are joined before the welcome is sent (those the client asked
	// for; the Identity's are added).
	Rooms []string
	// Since is the id of the last message the client received; the
	// messages after it in Rooms and the user's direct channel are
	// replayed after the welcome.
	Since string
	// ReplayPage, when positive, makes the replay after Since one page:
	// at most ReplayPage messages, the oldest first (Broker.HistoryPage).
	// Being further behind is not a gap: when more messages follow the
	// page (Session.Replay().More) the session gets no live message,
	// which would leave out those in between, and the client connects
	// again from Replay().Next. It suits transports whose every request
	// is a session of its own (long-poll). Zero: the session replays
	// page after page of HistoryLimit messages as its queue drains, then
	// goes live (WebSocket, SSE); however far behind the client is,
	// recovered is false only when the log lost some of it.
	// Optional. Default: 0
	ReplayPage int
	// RemoteAddr is for logs.
	RemoteAddr string
	// ClientIP is the client's address for per-IP limits (the adapter
	// decides whether to trust a proxy header); empty: the host part of
	// RemoteAddr.
	ClientIP string
}

// NewNode validates cfg (applying defaults) and starts delivery from b.
func NewNode(cfg Config, b Broker, logger *slog.Logger) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: broker is nil", ErrInvalidConfig)
	}
	if logger == nil {
		logger = slog.Default()
	}
	var rnd [5]byte
	_, _ = rand.Read(rnd[:])
	n := &Node{
		cfg:      cfg,
		broker:   b,
		hub:      newHub(),
		writers:  newWriters(),
		router:   newRouter(),
		log:      slog.New(connHandler{logger.Handler()}),
		prefix:   base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(rnd[:]),
		start:    time.Now(),
		sessions: make(map[*Session]struct{}),
		perIP:    make(map[string]int),
		byID:     make(map[string]*Session),
		idle:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	n.details = ReadsRequestDetails(cfg.Authenticator)
	n.replyPolicy = cfg.SlowConsumer
	if n.replyPolicy == SlowResume || n.replyPolicy == SlowConflate {
		n.replyPolicy = SlowClose
	}
	if cfg.OnEvent != nil {
		n.OnEvent(cfg.OnEvent)
	}
	if cfg.BeforeBrokerClose != nil {
		n.BeforeBrokerClose(cfg.BeforeBrokerClose)
	}
	n.registerBuiltins()
	if err := b.Start(context.Background(), n.deliver); err != nil {
		return nil, fmt.Errorf("switchboard/core: start broker: %w", err)
	}
	return n, nil
}

// Config returns the node's effective configuration (defaults applied).
func (n *Node) Config() Config { return n.cfg }

// Router returns the node's router, to register custom types.
func (n *Node) Router() *Router { return n.router }

// Hub returns the node's hub.
func (n *Node) Hub() *Hub { return n.hub }

// RequestDetails reports whether adapters must collect a request's
// headers and query parameters (Credentials.Header, Query) for the
// node's Authenticator: whether it reads them (DetailsReader).
func (n *Node) RequestDetails() bool { return n.details }

// Logger returns the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// Done is closed when Shutdown has finished.
func (n *Node) Done() <-chan struct{} { return n.done }

// deliver is the broker's callback: encode once, fan out to local members.
func (n *Node) deliver(d Delivery) {
	if d.Gap {
		n.gapAll()
		return
	}
	if d.Channel == ControlChannel {
		n.onControl(d.Envelope)
		return
	}
	if fn, ok := n.consumers.Load(d.Channel); ok {
		fn.(func(Delivery))(d)
		return
	}
	if !connectionChannel(d.Channel) {
		return // a server channel this node does not consume (a peer's dashboard samples)
	}
	var end func(error)
	if t := n.cfg.Tracer; t != nil && d.Envelope.Trace != nil {
		_, end = t.Start(context.Background(), "switchboard.deliver", d.Envelope.Trace, "switchboard.channel", d.Channel, "switchboard.id", d.Envelope.ID, "switchboard.node", n.prefix)
	}
	frame := d.Envelope.Encode()
	n.stats.published.Add(1)
	n.observeDelivery(d.Envelope)
	n.hub.broadcast(d.Channel, frame, d.Envelope.ID, n.policyFor(d.Channel))
	if end != nil {
		end(nil)
	}
}

// gapAll tells every open session that the log lost what it may have
// missed: a "gap" envelope (recovered:false), queued before what is
// delivered next. A session that cannot take it is closed as a slow
// consumer; its resume then finds the gap itself.
func (n *Node) gapAll() {
	n.mu.Lock()
	sessions := make([]*Session, 0, len(n.sessions))
	for s := range n.sessions {
		sessions = append(sessions, s)
	}
	n.mu.Unlock()
	n.log.Warn("the broker's log lost records this node may not have delivered; telling every session (gap, recovered:false)", "sessions", len(sessions))
	frame := gapEnvelope().Encode()
	for _, s := range sessions {
		s.enqueue(frame, "", "", SlowClose)
	}
}

// gapEnvelope is the "gap" envelope: messages were lost before what
// follows.
func gapEnvelope() *Envelope {
	return &Envelope{V: Version, Type: TypeGap, Data: json.RawMessage(`{"recovered":false}`)}
}

// Accept authenticates a new connection and registers it: it joins the
// user's direct channel and the rooms (req.Rooms and the Identity's),
// replays what the client missed since req.Since, and queues the welcome
// envelope first. The caller then feeds inbound frames to the session
// and waits for Done before releasing the connection.
//
// On error the session does not exist and t is closed with the matching
// Disconnect (Refuse's for refused credentials, 1012 while shutting
// down, 1013 when the history of a resume cannot be read); the error is
// a *RefusedError, or wraps ErrShuttingDown, ErrHistoryUnavailable, or
// ErrSessionClosed when Shutdown closed the session during Accept.
func (n *Node) Accept(ctx context.Context, t Transport, req ConnectRequest) (*Session, error) {
	p := req.Principal
	if !p.ok {
		var err error
		if p, err = n.Authenticate(ctx, req.Credentials); err != nil {
			n.log.Warn(t.Name()+" refused", "remote", req.RemoteAddr, "err", err)
			_ = t.Close(Refuse(err).Disconnect)
			return nil, err
		}
	}
	ident := p.Identity()
	user := ident.User
	id := n.prefix + "-" + strconv.FormatUint(n.nextID.Add(1), 36)
	if user == "" {
		user = "anon-" + id
	}
	req.Rooms = append(req.Rooms[:len(req.Rooms):len(req.Rooms)], ident.Rooms...)
	sctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		node: n, t: t, id: id, user: user, remote: req.RemoteAddr,
		start: time.Now().UnixNano(), ctx: sctx, cancel: cancel,
		max:        n.cfg.SendQueueSize,
		recovering: true, done: make(chan struct{}),
		tokens: float64(n.cfg.RateBurst),
		perms:  ident.Permissions,
		meta:   ident.Meta,
	}
	s.ctx = context.WithValue(sctx, sessionKey{}, s) // log lines written with it name the connection
	s.out = n.metrics.outbound.get(t.Name())
	if e, ok := t.(Ephemeral); !ok || !e.Ephemeral() {
		s.eventful = true
	}
	s.refill = s.start
	s.touch()
	if p, ok := t.(Pinger); ok {
		s.pinger = p
	}
	if tw, ok := t.(TryWriter); ok {
		s.tw = tw
	}

	if req.ClientIP == "" {
		req.ClientIP = req.RemoteAddr
		if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
			req.ClientIP = host
		}
	}
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		cancel()
		_ = t.Close(DisconnectShutdown)
		return nil, ErrShuttingDown
	}
	if max := n.cfg.MaxConnections; max > 0 && len(n.sessions) >= max {
		n.mu.Unlock()
		return n.refuse(t, cancel, req, fmt.Sprintf("node at its cap of %d connections", max))
	}
	if max := n.cfg.MaxConnectionsPerIP; max > 0 {
		if n.perIP[req.ClientIP] >= max {
			n.mu.Unlock()
			return n.refuse(t, cancel, req, fmt.Sprintf("client IP at its cap of %d connections", max))
		}
		n.perIP[req.ClientIP]++
		s.ip = req.ClientIP
	}
	s.announcing.Lock()
	n.sessions[s] = struct{}{}
	n.byID[s.id] = s
	n.mu.Unlock()
	n.emit(s, EventConnect, "", nil)
	s.announcing.Unlock() // detach waits for it: connect is always reported first

	// Joining fails only when the session was closed meanwhile (Shutdown
	// got here first): the writer its closing started finishes it.
	err := n.hub.add(UserChannel(s.user), s)
	if err == nil {
		err = n.hub.add(BroadcastChannel, s)
	}
	if err != nil {
		n.log.Error("connect failed", append(s.logAttrs(), "err", err)...)
		<-s.done
		return nil, fmt.Errorf("switchboard/core: join user and broadcast channels: %w", err)
	}

	bctx, bcancel := context.WithTimeout(ctx, n.cfg.BrokerTimeout)
	defer bcancel()
	var replies []*Envelope
	rooms := uniq(req.Rooms)
	if max := n.cfg.MaxRoomsPerConn; max > 0 && len(rooms) > max {
		// One error for the excess, not one per name: a hostile rooms list
		// must not turn into thousands of replies.
		replies = append(replies, errorEnvelope("", Errorf(CodeTooManyRooms, "%d rooms requested, at most %d per connection; joined the first %d", len(rooms), max, max)))
		rooms = rooms[:max]
	}
	for _, room := range rooms {
		if err := s.join(room); err != nil {
			replies = append(replies, errorEnvelope("", err))
		}
	}
	n.stats.errors.Add(uint64(len(replies)))
	channels := []string{UserChannel(s.user), BroadcastChannel}
	for _, room := range s.Rooms() { // each joined room once, however often it was asked for
		channels = append(channels, RoomChannel(room))
	}

	welcome := struct {
		Conn      string   `json:"conn"`
		User      string   `json:"user"`
		Rooms     []string `json:"rooms"` // [] when none, never null (docs/protocol.md)
		Recovered *bool    `json:"recovered,omitempty"`
		Expires   int64    `json:"expires,omitempty"` // unix seconds: refresh the token before
	}{Conn: s.id, User: s.user, Rooms: s.Rooms()}
	if welcome.Rooms == nil {
		welcome.Rooms = []string{}
	}
	if !ident.Expires.IsZero() {
		welcome.Expires = ident.Expires.Unix()
	}

	rep := noReplay
	var history []*Envelope
	var floor string
	if req.Since != "" {
		var err error
		if rep, history, floor, err = n.resume(bctx, s, channels, req); err != nil {
			s.Close(DisconnectTryAgain)
			<-s.done
			return nil, err
		}
		welcome.Recovered = &rep.Recovered
	}
	data, _ := json.Marshal(welcome)
	s.finishRecovery(&Envelope{V: Version, Type: TypeWelcome, Data: data}, replies, history, rep, floor, req.ReplayPage <= 0)

	n.stats.connsTotal.Add(1)
	s.mu.Lock()
	if s.closing == nil {
		if n.cfg.HeartbeatInterval > 0 {
			s.hb = time.AfterFunc(n.cfg.HeartbeatInterval, s.heartbeat)
		}
		s.expireAtLocked(ident.Expires)
	}
	s.mu.Unlock()
	n.log.Log(context.Background(), s.lifecycleLevel(), "connect", append(s.logAttrs(), "rooms", len(welcome.Rooms), "resume", req.Since != "")...)
	return s, nil
}

// finishRecovery queues welcome, replies and history, then the live
// frames that arrived meanwhile minus those the history covered: those it
// contains and, when the broker orders its ids, those positioned at or
// before the end of the replay (rep.Next). After a page with more to
// follow (rep.More) nothing live is queued now: a streaming session
// (stream) reads the next pages as its queue drains, as the resume
// policy does (catchUp), then goes live; any other gets nothing live
// again (its client asks for the next page).
func (s *Session) finishRecovery(welcome *Envelope, replies, history []*Envelope, rep Replay, floor string, stream bool) {
	last := rep.Next
	b := s.node.broker
	seen := make(map[string]struct{}, len(history))
	s.mu.Lock()
	if rep == noReplay {
		s.replay = &noReplay // most connections: no allocation
	} else {
		s.replay = &rep
	}
	if s.closing != nil {
		s.mu.Unlock()
		return
	}
	s.paged = rep.More && !stream
	if rep.More && stream {
		s.pause = &pause{since: rep.Next}
	}
	s.pushLocked(item{frame: welcome.Encode()})
	for _, r := range replies {
		s.pushLocked(item{frame: r.Encode()})
	}
	for _, h := range history {
		seen[h.ID] = struct{}{}
		s.pushLocked(item{frame: h.Encode(), id: h.ID, ch: channelOf(h), replay: true})
	}
	for _, p := range s.pending {
		if _, dup := seen[p.id]; p.id != "" && (dup || rep.More) {
			continue // covered by the replay, or by the pages to come
		}
		if p.id != "" && last != "" {
			if after, ok := b.After(p.id, last); ok && !after {
				continue
			}
		}
		s.pushLocked(p)
	}
	s.pending = nil
	s.recovering = false
	s.floor = floor
	spawn := s.wakeLocked()
	s.mu.Unlock()
	if spawn {
		go s.writeLoop()
	}
}

// leaveAll forgets every joined room and returns them.
func (s *Session) leaveAll() []string {
	s.roomsMu.Lock()
	rooms := s.rooms.list()
	s.rooms.reset()
	s.roomsMu.Unlock()
	return rooms
}

// detach removes an ended session from the hub and the node.
func (n *Node) detach(s *Session, d Disconnect) {
	// Wait until Accept has reported the connect event.
	s.announcing.Lock()
	//lint:ignore SA2001 the empty section is the wait
	s.announcing.Unlock()
	for _, room := range s.leaveAll() {
		n.hub.remove(RoomChannel(room), s)
		n.emit(s, EventLeave, room, nil)
	}
	n.hub.remove(UserChannel(s.user), s)
	n.hub.remove(BroadcastChannel, s)
	n.log.Log(context.Background(), s.lifecycleLevel(), "disconnect", append(s.logAttrs(), "code", d.Code, "reason", d.Reason,
		"duration", time.Duration(time.Now().UnixNano()-s.start).Round(time.Millisecond).String())...)
	n.emit(s, EventDisconnect, "", &d)
	if s.eventful {
		n.metrics.disconnects.add(d.Code)
	}
}

// lifecycleLevel is the level of a session's connect and disconnect
// lines: Debug for Ephemeral transports, Info otherwise.
func (s *Session) lifecycleLevel() slog.Level {
	if e, ok := s.t.(Ephemeral); ok && e.Ephemeral() {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// refuse turns a connection away at a cap: 1013, a warning and a count.
func (n *Node) refuse(t Transport, cancel context.CancelFunc, req ConnectRequest, why string) (*Session, error) {
	cancel()
	n.stats.refused.Add(1)
	n.log.Warn("connection refused", "remote", req.RemoteAddr, "ip", req.ClientIP, "why", why)
	_ = t.Close(DisconnectTryAgain)
	return nil, fmt.Errorf("%w: %s", ErrTooManyConnections, why)
}

// unregister forgets an ended session, signalling a waiting Shutdown when
// it was the last.
func (n *Node) unregister(s *Session) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.sessions, s)
	delete(n.byID, s.id)
	if s.ip != "" {
		if n.perIP[s.ip]--; n.perIP[s.ip] <= 0 {
			delete(n.perIP, s.ip)
		}
	}
	if n.closing && len(n.sessions) == 0 {
		select {
		case <-n.idle:
		default:
			close(n.idle)
		}
	}
}

// Shutdown stops accepting connections, closes every session with 1012
// "service restart" (flushing queued messages), waits for them to end or
// ctx to expire, aborts those still flushing at the deadline (transports
// implementing Aborter), then closes the broker if it is a Closer. It is
// idempotent; later calls return the first call's result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		n.mu.Lock()
		n.closing = true
		sessions := make([]*Session, 0, len(n.sessions))
		for s := range n.sessions {
			sessions = append(sessions, s)
		}
		if len(n.sessions) == 0 {
			close(n.idle)
		}
		n.mu.Unlock()
		n.log.Info("shutting down", "sessions", len(sessions))
		n.DrainDeliveries(ctx)
		for _, s := range sessions {
			s.closeAsync(DisconnectShutdown)
		}
		var errs []error
		select {
		case <-n.idle:
		case <-ctx.Done():
			// Sessions still flushing to stalled clients: tear them down.
			open, aborted := n.abortAll()
			n.log.Warn("shutdown deadline reached: aborting sessions still flushing", "open", open, "aborted", aborted)
			if aborted < open { // some transports cannot be interrupted
				select {
				case <-n.idle:
				default:
					errs = append(errs, fmt.Errorf("switchboard/core: sessions still open at deadline: %w", ctx.Err()))
				}
			} else {
				select {
				case <-n.idle:
				case <-time.After(abortGrace):
					errs = append(errs, fmt.Errorf("switchboard/core: sessions still open after abort: %w", ctx.Err()))
				}
			}
		}
		if hooks := n.closeHooks.Load(); hooks != nil {
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.BrokerTimeout)
			for _, fn := range *hooks {
				fn(bctx)
			}
			cancel()
		}
		cctx := ctx
		if ctx.Err() != nil { // the deadline went on sessions; the broker still gets a bounded close
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), abortGrace)
			defer cancel()
		}
		if err := n.broker.Close(cctx); err != nil {
			errs = append(errs, fmt.Errorf("switchboard/core: close broker: %w", err))
		}
		n.writers.close() // every session has ended: none is queued
		n.shutdownErr = errors.Join(errs...)
		close(n.done)
	})
	return n.shutdownErr
}

// DrainDeliveries waits until the broker has delivered to this node
// everything published so far (up to the broker's Head), so that a
// message whose publisher was already told it was accepted reaches this
// node's members before a shutdown's 1012 instead of only through their
// resume elsewhere. Shutdown calls it; a server whose transports end
// sessions themselves when it stops accepting (SSE streams) calls it
// before that. It is bounded by BrokerTimeout and by half of the time ctx
// has left, and skipped while the broker reports itself unhealthy.
func (n *Node) DrainDeliveries(ctx context.Context) {
	if n.broker.Healthy() != nil {
		return // nothing will arrive: keep the time for flushing
	}
	limit := n.cfg.BrokerTimeout
	if dl, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(dl)/2)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	head, err := n.broker.Head(ctx)
	if err == nil && head != "" {
		err = n.broker.WaitDelivered(ctx, head)
	}
	if err != nil {
		n.log.Warn("shutdown: could not wait for in-flight deliveries; sessions close without them (clients resume elsewhere)", "err", err)
	}
}

// abortGrace bounds how long Shutdown waits for aborted sessions to end.
const abortGrace = 2 * time.Second

// allSessions returns every registered session,
// copied under the node's lock so callers can lock each session freely.
func (n *Node) allSessions() []*Session {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Session, 0, len(n.sessions))
	for s := range n.sessions {
		out = append(out, s)
	}
	return out
}

// abortAll ends every session still registered, tearing down those whose
// transport is an Aborter. It returns how many were open and aborted.
func (n *Node) abortAll() (open, aborted int) {
	sessions := n.allSessions()
	for _, s := range sessions {
		s.closeAsync(DisconnectShutdown) // no-op if already closing
		if a, ok := s.t.(Aborter); ok {
			a.Abort()
			aborted++
		}
	}
	return len(sessions), aborted
}

// ShuttingDown reports whether Shutdown has begun.
func (n *Node) ShuttingDown() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closing
}

// Stats is a snapshot of the node's counters.
type Stats struct {
	Connections      int     `json:"connections"`
	ConnectionsTotal uint64  `json:"connections_total"`
	Rooms            int     `json:"rooms"`
	MessagesIn       uint64  `json:"messages_in"`
	MessagesOut      uint64  `json:"messages_out"`
	Published        uint64  `json:"published"`
	Errors           uint64  `json:"errors"`
	Dropped          uint64  `json:"dropped"`
	SlowClosed       uint64  `json:"slow_closed"`
	Refused          uint64  `json:"refused"` // connections turned away at MaxConnections / MaxConnectionsPerIP
	Conflated        uint64  `json:"conflated"`
	ResumeGaps       uint64  `json:"resume_gaps"`
	ResumeGapsLost   uint64  `json:"resume_gaps_lost"`
	Goroutines       int     `json:"goroutines"`
	HeapBytes        uint64  `json:"heap_bytes"`
	SysBytes         uint64  `json:"sys_bytes"`
	UptimeSeconds    float64 `json:"uptime_seconds"`
}

// Stats returns current counters. It reads runtime memory statistics,
// which briefly stops the world: poll it, don't spin on it.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	conns := len(n.sessions)
	n.mu.Unlock()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Stats{
		Connections:      conns,
		ConnectionsTotal: n.stats.connsTotal.Load(),
		Rooms:            n.hub.Rooms(),
		MessagesIn:       n.stats.in.Load(),
		MessagesOut:      n.metrics.outbound.sum(),
		Published:        n.stats.published.Load(),
		Errors:           n.stats.errors.Load(),
		Dropped:          n.stats.dropped.Load(),
		SlowClosed:       n.stats.slowClosed.Load(),
		Refused:          n.stats.refused.Load(),
		Conflated:        n.stats.conflated.Load(),
		ResumeGaps:       n.stats.gaps.Load(),
		ResumeGapsLost:   n.stats.gapsLost.Load(),
		Goroutines:       runtime.NumGoroutine(),
		HeapBytes:        ms.HeapAlloc,
		SysBytes:         ms.Sys,
		UptimeSeconds:    time.Since(n.start).Seconds(),
	}
}

// uniq returns list without repeats, in first-seen order.
func uniq(list []string) []string {
	seen := make(map[string]struct{}, len(list))
	out := list[:0:0]
	for _, v := range list {
		if _, dup := seen[v]; !dup {
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	return out
}

func errorEnvelope(ref string, err error) *Envelope {
	code, msg := CodeInternal, "internal error"
	var pe *Error
	if errors.As(err, &pe) {
		code, msg = pe.Code, pe.Message
	}
	data, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, msg})
	return &Envelope{V: Version, Type: TypeError, Ref: ref, Data: data}
}
