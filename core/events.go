package core

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Lifecycle event types reported to Config.OnEvent.
const (
	EventConnect    = "connect"
	EventDisconnect = "disconnect"
	EventJoin       = "join"
	EventLeave      = "leave"
)

// Event is one session lifecycle event: a connection opened or closed, or
// joined or left a room. A session's events arrive in order: connect,
// then joins and leaves, then a leave for every room still joined, then
// disconnect, so a consumer can keep presence from them alone. Sessions
// of Ephemeral transports (a long-poll request) and stateless requests
// produce none.
type Event struct {
	Type      string            `json:"type"`
	Node      string            `json:"node"` // Node.ID of the node holding the connection
	Conn      string            `json:"conn"`
	User      string            `json:"user"`
	Room      string            `json:"room,omitempty"`   // join, leave
	Transport string            `json:"transport"`        // websocket, sse, …
	Remote    string            `json:"remote,omitempty"` // client address
	Meta      map[string]string `json:"meta,omitempty"`   // Identity.Meta
	Code      uint16            `json:"code,omitempty"`   // disconnect
	Reason    string            `json:"reason,omitempty"` // disconnect
	Time      time.Time         `json:"time"`
}

// ID returns the node's id: unique per process, the prefix of every
// connection id it hands out.
func (n *Node) ID() string { return n.prefix }

// OnEvent adds fn to the receivers of every lifecycle event, after
// Config.OnEvent and those added before it, with Config.OnEvent's
// contract (synchronous, must not block or call back into the node).
// Add receivers before the node serves connections: earlier events are
// not replayed. Safe for concurrent use.
func (n *Node) OnEvent(fn func(Event)) { addHook(&n.hooksMu, &n.eventHooks, fn) }

// BeforeBrokerClose adds fn to what Shutdown runs once every session has
// ended and before the broker closes (Config.BeforeBrokerClose runs
// first), within Config.BrokerTimeout. Safe for concurrent use.
func (n *Node) BeforeBrokerClose(fn func(context.Context)) { addHook(&n.hooksMu, &n.closeHooks, fn) }

// addHook appends fn to a copy-on-write list.
func addHook[F any](mu *sync.Mutex, list *atomic.Pointer[[]F], fn F) {
	mu.Lock()
	defer mu.Unlock()
	var next []F
	if cur := list.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, fn)
	list.Store(&next)
}

// emit reports a lifecycle event of s to the OnEvent receivers.
func (n *Node) emit(s *Session, typ, room string, d *Disconnect) {
	hooks := n.eventHooks.Load()
	if hooks == nil || s.stateless || !s.eventful {
		return
	}
	ev := Event{
		Type: typ, Node: n.prefix, Conn: s.id, User: s.user, Room: room,
		Transport: s.t.Name(), Remote: s.remote, Meta: s.meta, Time: time.Now(),
	}
	if d != nil {
		ev.Code, ev.Reason = d.Code, d.Reason
	}
	for _, fn := range *hooks {
		fn(ev)
	}
}

// Meta returns the metadata the Authenticator attached (Identity.Meta);
// nil if none. Callers must not modify it.
func (s *Session) Meta() map[string]string { return s.meta }

// Sessions returns the node's open sessions that report lifecycle events
// (not Ephemeral transports), in no particular order: for snapshots of
// presence.
func (n *Node) Sessions() []*Session {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Session, 0, len(n.sessions))
	for s := range n.sessions {
		if s.eventful {
			out = append(out, s)
		}
	}
	return out
}
