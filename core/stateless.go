package core

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// StatelessRequest describes a request that arrives outside any
// connection (HTTP POST /send from an SSE or long-poll client): who sends
// it and which rooms its stream joined. Nothing is kept between requests,
// so any node can answer.
type StatelessRequest struct {
	// Principal is who sends it, from Node.Authenticate: the user
	// (anonymous, with an id generated for this request only, when
	// empty) and permissions. The zero Principal is refused.
	Principal Principal
	// Rooms are the rooms the client's stream joined: publishing is
	// allowed to these and the Identity's (others answer not_joined).
	// Invalid names are ignored; at most MaxRoomsPerConn are honoured.
	Rooms []string
	// RemoteAddr is for logs.
	RemoteAddr string
}

// HandleStateless runs one decoded envelope through the router as if it
// came from a connection of req.User joined to req.Rooms, and returns the
// encoded replies (ack, error, pong, or whatever a custom handler sends),
// in order. Middleware applies as usual. The request's session is never
// registered in the hub: join and leave (and Session.Join/Leave from a
// custom handler) answer CodeReconnectRequired, because a stateless
// client's rooms are fixed by its stream. While the node is shutting down
// it answers CodeUnavailable. Safe for concurrent use.
func (n *Node) HandleStateless(ctx context.Context, req StatelessRequest, env *Envelope) [][]byte {
	n.stats.in.Add(1)
	if n.ShuttingDown() {
		n.stats.errors.Add(1)
		return [][]byte{errorEnvelope(env.Ref, Errorf(CodeUnavailable, "node is shutting down; retry another node")).Encode()}
	}
	if !req.Principal.ok {
		n.stats.errors.Add(1)
		return [][]byte{errorEnvelope(env.Ref, Errorf(CodeUnauthorized, "no authenticated principal (core.Node.Authenticate)")).Encode()}
	}
	ident := req.Principal.id
	id := n.prefix + "-s" + strconv.FormatUint(n.nextID.Add(1), 36)
	user := ident.User
	if user == "" {
		user = "anon-" + id
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &Session{
		node: n, t: statelessTransport{}, id: id, user: user, remote: req.RemoteAddr,
		start: time.Now().UnixNano(), ctx: sctx, cancel: cancel,
		max: n.cfg.SendQueueSize,
		// recovering: replies collect in pending and no writer starts.
		recovering: true, stateless: true, done: make(chan struct{}),
		perms: ident.Permissions,
		meta:  ident.Meta,
		out:   new(atomic.Uint64), // never written to: replies are returned
	}
	for _, room := range append(req.Rooms[:len(req.Rooms):len(req.Rooms)], ident.Rooms...) {
		if max := n.cfg.MaxRoomsPerConn; max > 0 && s.rooms.len() >= max {
			break
		}
		if ValidateRoom(room) == nil && !s.rooms.has(room) {
			s.rooms.add(room)
		}
	}
	n.dispatch(s, env)
	s.mu.Lock()
	out := make([][]byte, 0, len(s.pending))
	for _, it := range s.pending {
		out = append(out, it.frame)
	}
	s.pending = nil
	if s.closing == nil { // a handler's late Send fails instead of queueing
		d := DisconnectNormal
		s.closing = &d
	}
	s.mu.Unlock()
	return out
}

// errStateless answers join and leave on a stateless request.
func errStateless(typ string) *Error {
	return Errorf(CodeReconnectRequired, "%s is not available on a stateless request: the rooms of an SSE or long-poll client are fixed by its stream; reconnect the stream with the new rooms list (and since=<last id> to lose nothing)", typ)
}

// statelessTransport backs the throwaway session of HandleStateless. It is
// written to only if a handler floods replies past the queue bound, which
// closes the session: then the excess is dropped.
type statelessTransport struct{}

func (statelessTransport) Name() string                    { return "stateless" }
func (statelessTransport) Unidirectional() bool            { return true }
func (statelessTransport) WriteMany(frames [][]byte) error { return nil }
func (statelessTransport) Close(Disconnect) error          { return nil }
