package core

import "context"

// Broker is the port every room publication and direct message travels
// through, so that many edge nodes act as one service and clients can
// resume. Package broker implements it on Watermill; core defines it in its
// own terms.
//
// Channels are opaque strings built with RoomChannel and UserChannel.
// Implementations must be safe for concurrent use.
type Broker interface {
	// Start begins delivering publications to deliver, for every channel
	// this node is subscribed to, in publication order per channel.
	// deliver must not block for long (the hub only enqueues). Called once,
	// before any other method.
	Start(ctx context.Context, deliver func(Delivery)) error

	// Publish appends env to channel's log and delivers it to every
	// subscribed node, including this one. It returns the id (the
	// position) assigned to the message; env.ID is set to the same value.
	// env.Trace, when set, must reach the deliveries (as metadata beside
	// the encoded envelope, never inside it): it carries the publisher's
	// span across nodes (see Tracer; brokertest's TraceContext checks it).
	Publish(ctx context.Context, channel string, env *Envelope) (id string, err error)

	// Subscribe and Unsubscribe tell the broker which channels have local
	// members. The hub calls them when the first member arrives and the
	// last one leaves, serialized per channel. A broker that delivers
	// everything to every node may treat them as no-ops.
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error

	// History returns the messages of req.Channels published after the
	// position req.Since, oldest first, at most req.Limit of them.
	// Recovered is true only if nothing after Since is missing: false when
	// Since is older than retention, from another epoch (the log was lost
	// or recreated), unparseable, or when more than Limit messages were
	// missed (the newest Limit are returned).
	History(ctx context.Context, req HistoryRequest) (HistoryResult, error)
}

// Positioner is implemented by brokers whose ids are ordered across the
// channels a session resumes (the in-memory broker's ids are one sequence).
// Core uses it at the resume seam: delivery may lag publication, so a live
// message can arrive after the replay although it is positioned at or
// before the replay's end (the client saw it before disconnecting, or it
// was replayed); such a message is dropped rather than sent twice or out
// of order.
type Positioner interface {
	// After reports whether id is positioned after pos. ok is false when
	// the two cannot be compared (another epoch, unparseable).
	After(id, pos string) (after, ok bool)
}

// Syncer is implemented by brokers whose node-level delivery can lag
// behind the log (a reader of a remote stream, a delivery buffer). Before
// a resuming session goes live, core waits until this node has delivered
// everything up to the end of the replay, so nothing at or before it can
// arrive later as a duplicate; with Positioner, what arrived meanwhile is
// filtered. WaitDelivered returns ctx's error if delivery does not get
// there in time; core then resumes anyway and logs it.
type Syncer interface {
	WaitDelivered(ctx context.Context, id string) error
}

// Header is implemented by brokers that can name the current end of their
// log: one position across every channel, as the brokers with a
// Positioner have. It lets a client that has no position yet (a first
// long-poll) start from "now" without losing what is published between
// two of its requests: it keeps the head as its cursor.
type Header interface {
	// Head returns the position of the newest message in the log, an id
	// History accepts as Since: every message whose Publish returns after
	// Head returned comes after it, so History from it returns that message
	// (while retained) with Recovered true. A log with no position to name
	// yet (empty) returns "" and a nil error; callers then fall back to
	// "from now", as for a broker without Header.
	Head(ctx context.Context) (string, error)
}

// HealthChecker is implemented by brokers that can lose their backend.
// Healthy returns nil while the broker can publish and deliver; the edge
// reports not ready otherwise. It must be cheap (no I/O): report state
// the broker's own loops maintain.
type HealthChecker interface {
	Healthy() error
}

// Closer is implemented by brokers holding resources. Node.Shutdown calls
// it last, after every session has ended.
type Closer interface {
	Close(ctx context.Context) error
}

// Delivery is one publication arriving from the broker.
type Delivery struct {
	Channel  string
	Envelope *Envelope // ID set; shared, read-only
}

// HistoryRequest asks for what a resuming client missed.
type HistoryRequest struct {
	Channels []string
	Since    string // an envelope id previously delivered
	Limit    int
}

// HistoryResult is the answer to a HistoryRequest.
type HistoryResult struct {
	Envelopes []*Envelope
	Recovered bool
}

// RoomChannel is the broker channel of a room.
func RoomChannel(room string) string { return "room:" + room }

// UserChannel is the broker channel carrying direct messages to a user.
func UserChannel(user string) string { return "user:" + user }

// Head returns the position of the newest message in the broker's log
// (see Header), bounded by BrokerTimeout, or "" and a nil error when the
// broker does not implement Header or has no position to name.
func (n *Node) Head(ctx context.Context) (string, error) {
	h, ok := n.broker.(Header)
	if !ok {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.BrokerTimeout)
	defer cancel()
	return h.Head(ctx)
}
