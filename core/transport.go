package core

// Transport is what core needs from a connection: somewhere to write
// encoded envelopes and a way to end it. It is outbound-only: the adapter
// reads the wire itself and pushes inbound frames into the Session with
// HandleFrame and Activity.
//
// Core calls WriteMany, Ping and Close from exactly one goroutine at a time
// (the session's writer), so an implementation needs no locking of its own
// for writes. Every call must be bounded in time (use a write deadline): a
// stalled client must not hold the writer forever.
type Transport interface {
	// Name identifies the transport in logs and stats ("websocket", "sse").
	Name() string

	// Unidirectional reports that the client cannot send on this
	// connection, so silence is not a sign of death: core then judges
	// liveness by write errors only and skips the heartbeat timeout.
	Unidirectional() bool

	// WriteMany writes one or more encoded envelopes, in order. The
	// transport decides the framing (WebSocket joins them with '\n' into one
	// text frame; SSE writes one event each). The slices are shared with
	// other connections and must not be modified. Core never reuses their
	// memory, so a transport may keep them past the call (to answer a
	// poll later, to cache a compressed form); the outer slice is core's
	// and must not be kept.
	// An error ends the session.
	WriteMany(frames [][]byte) error

	// Close sends d to the client in the transport's own way (a close
	// frame, a final event, an HTTP body) and releases the connection.
	// Called exactly once, after the last WriteMany.
	Close(d Disconnect) error
}

// TryWriter is implemented by transports that can write without
// blocking. Core then writes to such a connection from a small pool of
// writer goroutines shared by the node (one per CPU), instead of starting
// a goroutine for the connection each time it has something to send:
// no goroutine start per recipient per message, and what queues up while
// a connection waits for its turn is written as one batch.
//
// TryWriteMany writes frames as WriteMany would if the connection takes
// them at once, and reports true. If it cannot (a full send buffer, a
// connection that cannot write without blocking), it keeps what it has
// not written, reports false, and never blocks; core then hands the
// connection to a goroutine of its own, which calls FlushPending (writing
// it as WriteMany would, with a deadline) before anything else. Both
// follow WriteMany's rules: one call at a time, frames shared and never
// modified. An error ends the session.
type TryWriter interface {
	TryWriteMany(frames [][]byte) (written bool, err error)
	FlushPending() error
}

// Aborter is implemented by transports that can be torn down from any
// goroutine, interrupting a write that is blocked on a stalled client (for
// a socket: close it). Node.Shutdown aborts the sessions still open when
// its context ends, so a stalled client cannot hold a shutdown past its
// deadline. After Abort, core still calls Close once; it may fail.
type Aborter interface {
	Abort()
}

// Ephemeral is implemented by transports whose sessions last a single
// request (a long-poll): their connects and disconnects are routine, so
// core logs them at Debug instead of Info. Failures are still warnings.
type Ephemeral interface {
	Ephemeral() bool
}

// Pinger is implemented by transports with a native keep-alive (a
// WebSocket ping frame, an SSE comment line). Core calls Ping from the
// writer goroutine every HeartbeatInterval. Transports without it rely on
// the client's own traffic (long-poll: the next poll).
type Pinger interface {
	Ping() error
}
