// Package presence owns cluster-wide presence and the durable lifecycle
// event log. Every node publishes its sessions' lifecycle events (connect,
// join, leave, disconnect) and a lease heartbeat on one broker channel,
// and every node reads that channel to keep the whole cluster's presence
// table. When a node stops heartbeating for TTL (it crashed), the
// surviving node with the smallest id publishes the leave and disconnect
// events its connections never said, with deterministic ids, so backends
// consuming the log see every connection end exactly once per id
// (at least once overall). A node that starts asks the others for
// snapshots, and every node re-publishes one periodically, which heals any
// drift (a dropped event).
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// Channel is the broker channel carrying lifecycle records. Backends
// consume it (see docs/events.md).
const Channel = "events"

// EnvelopeType is the type of every envelope on Channel.
const EnvelopeType = "lifecycle"

// Defaults.
const (
	DefaultInterval      = 5 * time.Second
	DefaultQueueSize     = 10000
	DefaultSnapshotEvery = time.Minute
	snapshotChunk        = 500
)

// Config configures a Tracker.
type Config struct {
	// Interval is how often the node renews its lease.
	// Optional. Default: 5s.
	Interval time.Duration
	// TTL is how long a silent node is considered alive.
	// Optional. Default: 3 × Interval.
	TTL time.Duration
	// SnapshotEvery is how often the node re-publishes its connections.
	// Optional. Default: 1m. Negative disables.
	SnapshotEvery time.Duration
	// QueueSize bounds the records waiting to be published; beyond it
	// events are dropped (counted, logged; the next snapshot heals
	// presence, but consumers of the log miss them).
	// Optional. Default: 10000.
	QueueSize int
	// RoomEvents sends members of a room a "presence" envelope when a
	// user joins or leaves it ({"event":"join"|"leave","user","conn"}),
	// through the room's channel (so it reaches every node and is in the
	// room's history). Off by default.
	RoomEvents bool
	// RoomEventsMaxMembers: rooms with more connections than this get no
	// presence envelopes (they would swamp the room).
	// Optional. Default: 100.
	RoomEventsMaxMembers int
	// RoomEventsRate bounds presence envelopes per room per second (a
	// token bucket with a burst of twice the rate); beyond it they are
	// skipped. Optional. Default: 5.
	RoomEventsRate float64
	// Local keeps the table in process without publishing anything: for
	// a single node on the in-memory broker, where no other node or
	// backend can read the log. Leases and snapshots are skipped.
	Local bool
	// Logger. Optional. Default: the node's.
	Logger *slog.Logger

	now func() time.Time // tests; default time.Now
}

// Record is one entry on Channel: Kind "event" (Event set), "lease",
// "sync" (a node asks for snapshots), "snapshot" (Conns of Node, in
// Parts parts) or "gone" (Node left or was declared dead).
type Record struct {
	ID        string      `json:"id,omitempty"` // idempotency id of events
	Kind      string      `json:"kind"`
	Node      string      `json:"node"`
	Event     *core.Event `json:"event,omitempty"`
	Synthetic bool        `json:"synthetic,omitempty"` // published by a survivor for a dead node
	Part      int         `json:"part,omitempty"`
	Parts     int         `json:"parts,omitempty"`
	Conns     []Conn      `json:"conns,omitempty"`
	TTLMillis int64       `json:"ttl_ms,omitempty"` // lease
}

// Conn is one connection in a snapshot and in presence answers.
type Conn struct {
	Conn      string            `json:"conn"`
	User      string            `json:"user"`
	Node      string            `json:"node"`
	Transport string            `json:"transport,omitempty"`
	Rooms     []string          `json:"rooms,omitempty"`
	Meta      map[string]string `json:"meta,omitempty"`
}

// Tracker publishes this node's records and keeps the cluster's table.
type Tracker struct {
	cfg   Config
	node  *core.Node
	log   *slog.Logger
	self  string
	queue chan Record
	seq   atomic.Uint64

	dropped atomic.Uint64

	mu    sync.Mutex
	nodes map[string]*nodeState
	rooms map[string]map[member]struct{} // room → its connections, cluster-wide
	syncs chan struct{}                  // a sync request arrived: publish a snapshot
	fence chan struct{}                  // this node was declared dead: end its sessions

	buckets map[string]*bucket // room → presence envelope budget; run goroutine only

	stop chan struct{} // ends run (Close, goodbye)
	done chan struct{} // closed when run has returned
	once sync.Once
	now  func() time.Time
}

type member struct{ node, conn string }

type nodeState struct {
	lastSeen time.Time
	ttl      time.Duration // from its leases; Config.TTL until one arrives
	gone     bool
	goneAt   time.Time
	handled  bool // this node published the dead node's goodbyes
	conns    map[string]*connState
}

type connState struct {
	user, transport string
	meta            map[string]string
	rooms           []string // joined rooms: few per connection, a slice costs less than a map
}

func (c *connState) join(room string) {
	if !slices.Contains(c.rooms, room) {
		c.rooms = append(c.rooms, room)
	}
}

func (c *connState) leave(room string) {
	if i := slices.Index(c.rooms, room); i >= 0 {
		c.rooms = slices.Delete(c.rooms, i, i+1)
	}
}

// ErrInvalidConfig is wrapped by the error of a Config that New refuses
// (a *core.ConfigError naming the field).
var ErrInvalidConfig = errors.New("switchboard/edge/presence: invalid config")

func (c *Config) setDefaults() {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.TTL == 0 && c.Interval > 0 {
		c.TTL = 3 * c.Interval
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = DefaultSnapshotEvery
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.RoomEventsMaxMembers <= 0 {
		c.RoomEventsMaxMembers = 100
	}
	if c.RoomEventsRate <= 0 {
		c.RoomEventsRate = 5
	}
}

// WithDefaults returns c with every zero field set to its default, as
// New applies them.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// Validate reports the first field New refuses, as a *core.ConfigError
// wrapping ErrInvalidConfig. Call it after defaults are applied.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return core.Invalid(ErrInvalidConfig, field, format, args...)
	}
	switch {
	case c.Interval < 0:
		return bad("Interval", "%s must be positive", c.Interval)
	case c.TTL <= c.Interval:
		return bad("TTL", "%s must exceed the interval %s (0: 3 x the interval)", c.TTL, c.Interval)
	}
	return nil
}

// New starts presence for node: it receives the node's lifecycle events
// (Node.OnEvent) and, on the node's shutdown, publishes what is still
// queued and a goodbye (Node.BeforeBrokerClose). Unless cfg.Local, it
// consumes Channel, asks the other nodes for snapshots and starts the
// publisher. Build it before the node serves connections (events of
// earlier ones are not seen). Close stops it without a goodbye.
func New(node *core.Node, cfg Config) (*Tracker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = node.Logger()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	t := &Tracker{
		cfg: cfg, node: node, self: node.ID(), log: cfg.Logger, now: cfg.now,
		queue: make(chan Record, cfg.QueueSize),
		nodes: make(map[string]*nodeState), rooms: make(map[string]map[member]struct{}),
		syncs: make(chan struct{}, 1), fence: make(chan struct{}, 1), buckets: make(map[string]*bucket),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	t.mu.Lock()
	t.state(t.self).lastSeen = t.now()
	t.mu.Unlock()
	if !cfg.Local {
		if err := node.Consume(Channel, t.apply); err != nil {
			return nil, err
		}
	}
	node.OnEvent(t.onEvent)
	node.BeforeBrokerClose(t.goodbye)
	go t.run()
	if !cfg.Local {
		t.enqueue(Record{Kind: "sync", Node: t.self})
		t.enqueue(t.lease())
	}
	return t, nil
}

// onEvent queues a lifecycle event of this node for publishing. It never
// blocks: with the queue full the event is dropped and counted.
func (t *Tracker) onEvent(ev core.Event) {
	r := Record{ID: ev.Node + ":" + strconv.FormatUint(t.seq.Add(1), 36), Kind: "event", Node: ev.Node, Event: &ev}
	if t.cfg.Local {
		t.mu.Lock()
		t.applyEvent(ev.Node, t.state(ev.Node), &ev)
		t.mu.Unlock()
		if t.cfg.RoomEvents && (ev.Type == core.EventJoin || ev.Type == core.EventLeave) {
			t.enqueue(r) // the publisher sends the room envelope only
		}
		return
	}
	select {
	case t.queue <- r:
	default:
		if t.dropped.Add(1)%1000 == 1 {
			slog.Warn("presence: event queue full, dropping lifecycle events", "dropped", t.dropped.Load())
		}
	}
}

// Dropped reports how many events the full queue dropped.
func (t *Tracker) Dropped() uint64 { return t.dropped.Load() }

func (t *Tracker) enqueue(r Record) {
	select {
	case t.queue <- r:
	default:
		t.dropped.Add(1)
	}
}

func (t *Tracker) lease() Record {
	return Record{Kind: "lease", Node: t.self, TTLMillis: t.cfg.TTL.Milliseconds()}
}

// run publishes queued records, renews the lease, re-publishes snapshots,
// declares dead nodes and fences this node when it was declared dead.
func (t *Tracker) run() {
	defer close(t.done)
	lease := time.NewTicker(t.cfg.Interval)
	defer lease.Stop()
	var snap <-chan time.Time
	if t.cfg.SnapshotEvery > 0 {
		st := time.NewTicker(t.cfg.SnapshotEvery)
		defer st.Stop()
		snap = st.C
	}
	for {
		select {
		case <-t.stop:
			return
		default:
		}
		select {
		case <-t.stop:
			return
		case r := <-t.queue:
			if !t.cfg.Local {
				t.publish(context.Background(), r)
			}
			t.roomEvent(r)
		case <-t.syncs:
			t.publishSnapshot()
		case <-snap:
			if !t.cfg.Local {
				t.publishSnapshot()
			}
		case <-t.fence:
			t.fenceSelf()
		case <-lease.C:
			if !t.cfg.Local {
				t.publish(context.Background(), t.lease())
				t.reap()
			} else {
				t.mu.Lock()
				t.state(t.self).lastSeen = t.now()
				t.mu.Unlock()
			}
		}
	}
}

// publish sends one record, bounded by the broker timeout (and ctx).
func (t *Tracker) publish(ctx context.Context, r Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		t.log.Error("presence: encode record", "err", err)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, t.node.Config().BrokerTimeout)
	defer cancel()
	if _, err := t.node.Publish(ctx, Channel, &core.Envelope{V: core.Version, Type: EnvelopeType, Data: data}); err != nil {
		t.log.Warn("presence: publish failed", "kind", r.Kind, "err", err)
		return err
	}
	return nil
}

// publishSnapshot publishes this node's live connections, in chunks.
// They come from the node, not the table: the table may not yet hold
// events still travelling through the broker, and a snapshot replaces
// what it knew.
func (t *Tracker) publishSnapshot() {
	var own []Conn
	for _, s := range t.node.Sessions() {
		own = append(own, Conn{Conn: s.ID(), User: s.User(), Node: t.self, Transport: s.Transport(), Rooms: s.Rooms(), Meta: s.Meta()})
	}
	parts := max(1, (len(own)+snapshotChunk-1)/snapshotChunk)
	for i := range parts {
		chunk := own[i*snapshotChunk : min(len(own), (i+1)*snapshotChunk)]
		if t.publish(context.Background(), Record{Kind: "snapshot", Node: t.self, Part: i, Parts: parts, Conns: chunk}) != nil {
			return
		}
	}
}

// fenceSelf ends every session of this node after the cluster declared
// it dead (its lease was late): the survivors already reported those
// connections' disconnects, so making that true keeps the log honest.
// Clients get 1012 and resume, here or elsewhere, with fresh connects.
func (t *Tracker) fenceSelf() {
	sessions := t.node.Sessions()
	t.log.Error("presence: this node was declared dead (its lease arrived late); closing its connections so they resume", "connections", len(sessions))
	for _, s := range sessions {
		go s.Close(core.DisconnectShutdown)
	}
	t.publish(context.Background(), t.lease())
}

// alive reports whether node n counts as live at now. This node counts
// only when its own lease came back in time: a node whose delivery stalls
// must not take itself for the last one standing and reap the cluster.
func (t *Tracker) alive(n *nodeState, now time.Time) bool {
	return !n.gone && now.Sub(n.lastSeen) <= n.ttl
}

// reap declares nodes silent past their TTL dead. The smallest live node
// id publishes their connections' leave and disconnect events (marking a
// node handled only once all of them went out, so a broker glitch is
// retried at the next lease); nodes gone long ago are forgotten.
func (t *Tracker) reap() {
	now := t.now()
	t.mu.Lock()
	var live, dead []string
	for id, n := range t.nodes {
		switch {
		case n.gone:
			if now.Sub(n.goneAt) > 10*n.ttl {
				delete(t.nodes, id)
			}
		case t.alive(n, now):
			live = append(live, id)
		case !n.handled:
			dead = append(dead, id)
		}
	}
	slices.Sort(live)
	leader := len(live) > 0 && live[0] == t.self
	batches := map[string][]Record{}
	if leader {
		for _, id := range dead {
			batches[id] = goodbyes(id, t.nodes[id], now)
		}
	}
	t.mu.Unlock()
	for id, records := range batches {
		ok := true
		for _, r := range records {
			if t.publish(context.Background(), r) != nil {
				ok = false
				break
			}
			t.roomEvent(r)
		}
		if !ok {
			continue // deterministic ids: the next attempt may repeat some
		}
		t.mu.Lock()
		if n := t.nodes[id]; n != nil {
			n.handled = true
		}
		t.mu.Unlock()
		t.log.Warn("presence: node lost; published its connections' leave and disconnect events", "node", id, "records", len(records))
	}
}

// goodbyes are the records a survivor publishes for dead node id.
func goodbyes(id string, n *nodeState, now time.Time) []Record {
	var records []Record
	conns := make([]string, 0, len(n.conns))
	for c := range n.conns {
		conns = append(conns, c)
	}
	slices.Sort(conns)
	for _, conn := range conns {
		c := n.conns[conn]
		base := core.Event{Node: id, Conn: conn, User: c.user, Transport: c.transport, Meta: c.meta, Time: now}
		rooms := slices.Clone(c.rooms)
		slices.Sort(rooms)
		for _, r := range rooms {
			ev := base
			ev.Type, ev.Room = core.EventLeave, r
			records = append(records, Record{ID: id + ":" + conn + ":leave:" + r, Kind: "event", Node: id, Event: &ev, Synthetic: true})
		}
		ev := base
		ev.Type, ev.Code, ev.Reason = core.EventDisconnect, 1006, "node lost"
		records = append(records, Record{ID: id + ":" + conn + ":disconnect", Kind: "event", Node: id, Event: &ev, Synthetic: true})
	}
	return append(records, Record{Kind: "gone", Node: id})
}

// apply folds one record from the log into the table. It runs on the
// broker's delivery goroutine, in log order.
func (t *Tracker) apply(d core.Delivery) {
	var r Record
	if err := json.Unmarshal(d.Envelope.Data, &r); err != nil || r.Node == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.state(r.Node)
	if r.Node == t.self && (r.Synthetic || (r.Kind == "gone" && !t.leaving())) {
		// The cluster declared this node dead: fence (once per episode).
		select {
		case t.fence <- struct{}{}:
		default:
		}
	}
	if !r.Synthetic && r.Kind != "gone" {
		n.lastSeen = t.now()
		n.gone, n.handled = false, false
	}
	switch r.Kind {
	case "lease":
		if r.TTLMillis > 0 {
			n.ttl = time.Duration(r.TTLMillis) * time.Millisecond
		}
	case "event":
		t.applyEvent(r.Node, n, r.Event)
	case "snapshot":
		if r.Part == 0 {
			t.dropConns(r.Node, n)
		}
		for _, c := range r.Conns {
			cs := &connState{user: c.User, transport: c.Transport, meta: c.Meta}
			n.conns[c.Conn] = cs
			for _, room := range c.Rooms {
				t.joinRoom(r.Node, c.Conn, cs, room)
			}
		}
	case "sync":
		if r.Node != t.self {
			select {
			case t.syncs <- struct{}{}:
			default:
			}
		}
	case "gone":
		n.gone, n.goneAt = true, t.now()
		t.dropConns(r.Node, n)
	}
}

// leaving reports whether this node is saying goodbye itself.
func (t *Tracker) leaving() bool {
	select {
	case <-t.stop:
		return true
	default:
		return false
	}
}

func (t *Tracker) applyEvent(node string, n *nodeState, ev *core.Event) {
	if ev == nil {
		return
	}
	switch ev.Type {
	case core.EventConnect:
		n.conns[ev.Conn] = &connState{user: ev.User, transport: ev.Transport, meta: ev.Meta}
	case core.EventJoin:
		if c := n.conns[ev.Conn]; c != nil {
			t.joinRoom(node, ev.Conn, c, ev.Room)
		}
	case core.EventLeave:
		if c := n.conns[ev.Conn]; c != nil {
			t.leaveRoom(node, ev.Conn, c, ev.Room)
		}
	case core.EventDisconnect:
		if c := n.conns[ev.Conn]; c != nil {
			for _, room := range slices.Clone(c.rooms) {
				t.leaveRoom(node, ev.Conn, c, room)
			}
			delete(n.conns, ev.Conn)
		}
	}
}

// joinRoom, leaveRoom and dropConns keep the room index in step with the
// node table. Called with t.mu held.
func (t *Tracker) joinRoom(node, conn string, c *connState, room string) {
	c.join(room)
	m := t.rooms[room]
	if m == nil {
		m = make(map[member]struct{})
		t.rooms[room] = m
	}
	m[member{node, conn}] = struct{}{}
}

func (t *Tracker) leaveRoom(node, conn string, c *connState, room string) {
	c.leave(room)
	if m := t.rooms[room]; m != nil {
		delete(m, member{node, conn})
		if len(m) == 0 {
			delete(t.rooms, room)
		}
	}
}

func (t *Tracker) dropConns(node string, n *nodeState) {
	for conn, c := range n.conns {
		for _, room := range slices.Clone(c.rooms) {
			t.leaveRoom(node, conn, c, room)
		}
	}
	n.conns = make(map[string]*connState)
}

func (t *Tracker) state(id string) *nodeState {
	n := t.nodes[id]
	if n == nil {
		n = &nodeState{conns: make(map[string]*connState), lastSeen: t.now(), ttl: t.cfg.TTL}
		t.nodes[id] = n
	}
	return n
}

// Members lists the connections in room on every live node, sorted by
// node and connection id. It costs the room's size, not the cluster's.
func (t *Tracker) Members(_ context.Context, room string) ([]Conn, error) {
	if t.self == "" {
		return nil, errors.New("presence: not started")
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Conn, 0, len(t.rooms[room]))
	for m := range t.rooms[room] {
		n := t.nodes[m.node]
		if n == nil || (m.node != t.self && !t.alive(n, now)) {
			continue
		}
		c := n.conns[m.conn]
		rooms := slices.Clone(c.rooms)
		slices.Sort(rooms)
		out = append(out, Conn{Conn: m.conn, User: c.user, Node: m.node, Transport: c.transport, Rooms: rooms, Meta: c.meta})
	}
	slices.SortFunc(out, func(a, b Conn) int { return strings.Compare(a.Node+"/"+a.Conn, b.Node+"/"+b.Conn) })
	return out, nil
}

// roomSize is the number of connections in room, cluster-wide.
func (t *Tracker) roomSize(room string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.rooms[room])
}

// goodbye stops the publisher, publishes what is still queued (this
// node's final disconnects) and a "gone" record, so the others drop this
// node at once instead of after its TTL. It is the node's
// BeforeBrokerClose and is bounded by ctx.
func (t *Tracker) goodbye(ctx context.Context) {
	if !t.halt() || t.cfg.Local {
		return
	}
	for ctx.Err() == nil {
		select {
		case r := <-t.queue:
			t.publish(ctx, r)
			continue
		default:
		}
		break
	}
	if ctx.Err() != nil {
		t.log.Warn("presence: shutdown ended before every lifecycle event was published", "left", len(t.queue))
	}
	t.publish(ctx, Record{Kind: "gone", Node: t.self})
}

// Close stops the publisher without a goodbye (tests; a node that
// crashes says none).
func (t *Tracker) Close() error {
	t.halt()
	return nil
}

// halt stops run and waits for it; it reports whether this call did.
func (t *Tracker) halt() bool {
	first := false
	t.once.Do(func() {
		first = true
		close(t.stop)
	})
	<-t.done
	return first
}

// bucket is a token bucket for one room's presence envelopes.
type bucket struct {
	tokens float64
	at     time.Time
}

// roomEvent sends a room's members a presence envelope for a join or
// leave record, when enabled, the room is small enough and its budget
// allows. It runs on the publisher goroutine.
func (t *Tracker) roomEvent(r Record) {
	ev := r.Event
	if !t.cfg.RoomEvents || ev == nil || (ev.Type != core.EventJoin && ev.Type != core.EventLeave) {
		return
	}
	if t.roomSize(ev.Room) > t.cfg.RoomEventsMaxMembers {
		return
	}
	now := t.now()
	b := t.buckets[ev.Room]
	if b == nil {
		if len(t.buckets) > 10000 { // forget idle rooms' budgets
			clear(t.buckets)
		}
		b = &bucket{tokens: 2 * t.cfg.RoomEventsRate, at: now}
		t.buckets[ev.Room] = b
	}
	b.tokens = min(2*t.cfg.RoomEventsRate, b.tokens+now.Sub(b.at).Seconds()*t.cfg.RoomEventsRate)
	b.at = now
	if b.tokens < 1 {
		return
	}
	b.tokens--
	data, _ := json.Marshal(map[string]string{"event": ev.Type, "user": ev.User, "conn": ev.Conn})
	ctx, cancel := context.WithTimeout(context.Background(), t.node.Config().BrokerTimeout)
	defer cancel()
	env := &core.Envelope{V: core.Version, Type: TypePresence, Room: ev.Room, From: ev.User, TS: now.UnixMilli(), Data: data}
	if _, err := t.node.Publish(ctx, core.RoomChannel(ev.Room), env); err != nil {
		t.log.Debug("presence: room event not published", "room", ev.Room, "err", err)
	}
}

// TypePresence is the envelope type of room presence events.
const TypePresence = "presence"
