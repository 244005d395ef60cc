package core

import "context"

// Broker is the port every room publication and direct message travels
// through, so that many edge nodes act as one service and clients can
// resume. Package broker implements it; core defines it in its own terms.
//
// A broker delivers every publication to every node (the hub drops what
// has no local member), so the port has no per-channel subscription.
// Channels are opaque strings built with RoomChannel and UserChannel.
// Ids (positions) are "<epoch>-<position>"-like strings, opaque to core
// but ordered across channels by After.
//
// Implementations must be safe for concurrent use. A broker that lacks a
// capability implements its method honestly as stated on it (Head returns
// "", After reports ok=false, WaitDelivered returns at once): core then
// does without it.
type Broker interface {
	// Start begins delivering publications to deliver, for every channel,
	// in publication order per channel. deliver must not block for long
	// (the hub only enqueues). Called once, before any other method.
	Start(ctx context.Context, deliver func(Delivery)) error

	// Publish appends p.Envelope to p.Channel's log and delivers it to
	// every node, including this one. It returns the id (the position)
	// assigned to the message; Envelope.ID is set to the same value.
	// Envelope.Trace, when set, must reach the deliveries (as metadata
	// beside the encoded envelope, never inside it): it carries the
	// publisher's span across nodes (see Tracer; brokertest's
	// TraceContext checks it). A publication with a Key is published at
	// most once per key within the broker's documented window, across
	// nodes and retries: a repeat returns the first one's id with
	// Duplicate set (or ErrKeyReused when its Digest differs).
	Publish(ctx context.Context, p Publication) (Published, error)

	// History returns the messages of req.Channels published after the
	// position req.Since, oldest first, at most req.Limit of them.
	// Recovered is true only if nothing after Since is missing: false when
	// Since is older than retention, from another epoch (the log was lost
	// or recreated), unparseable, or when more than Limit messages were
	// missed (the newest Limit are returned).
	History(ctx context.Context, req HistoryRequest) (HistoryResult, error)

	// HistoryPage reads history forward, a page at a time: the oldest
	// messages of req.Channels positioned after req.Since, at most
	// req.Limit (at least one), oldest first, at a cost that follows the
	// page, not how far behind Since is. Having more than Limit after
	// Since is not a gap: More says so, and the next page starts at Next.
	// Recovered is false as for History when Since is unparseable, from
	// another epoch, or older than retention (the page then starts with
	// the oldest message retained); never because of how many messages
	// follow. A page may end early (More, with fewer than Limit messages,
	// even none) once it has read about Limit records of other channels.
	// Every resume reads pages: a client far behind catches up page by
	// page (long-poll: one page per poll, ConnectRequest.ReplayPage;
	// WebSocket and SSE: page after page as the connection drains)
	// instead of being told it missed what the log still holds.
	HistoryPage(ctx context.Context, req HistoryRequest) (HistoryPage, error)

	// Head returns the position of the newest message in the log, across
	// every channel: an id History accepts as Since, such that every
	// message whose Publish returns after Head returned comes after it, so
	// History from it returns that message (while retained) with Recovered
	// true. It lets a client that has no position yet (a first long-poll)
	// start from "now" without losing what is published between two of
	// its requests: it keeps the head as its cursor. A log with no
	// position to name (empty, or a broker that cannot name one) returns
	// "" and a nil error; callers then fall back to "from now".
	Head(ctx context.Context) (string, error)

	// After reports whether id is positioned after pos. ok is false when
	// the two cannot be compared (unparseable, an epoch this node has
	// not read, or a broker whose ids are not ordered across channels);
	// every id of a log that was lost or recreated comes before every id
	// of the log that replaced it. Core uses it at the
	// resume seam: delivery may lag publication, so a live message can
	// arrive after the replay although it is positioned at or before the
	// replay's end (the client saw it before disconnecting, or it was
	// replayed); such a message is dropped rather than sent twice or out
	// of order. It does no I/O.
	After(id, pos string) (after, ok bool)

	// WaitDelivered returns once this node has delivered id and
	// everything before it, or with ctx's error if delivery does not get
	// there in time. An id the broker cannot place (another epoch, beyond
	// the log) returns at once, as does every id on a broker whose
	// delivery cannot lag behind its log. Before a resuming session goes
	// live, core waits for the end of the replay, so nothing at or before
	// it can arrive later as a duplicate (with After, what arrived
	// meanwhile is filtered); on an error core resumes anyway and logs it.
	WaitDelivered(ctx context.Context, id string) error

	// Healthy returns nil while the broker can publish and deliver, and
	// an error otherwise (after Close too); the edge reports not ready
	// while it does. It must be cheap and do no I/O: it reports state the
	// broker's own loops maintain. A broker that cannot lose its backend
	// returns nil until it is closed.
	Healthy() error

	// Close stops delivery and releases the broker's resources. It is
	// idempotent. Node.Shutdown calls it last, after every session has
	// ended; nothing calls another method afterwards except Healthy.
	Close(ctx context.Context) error
}

// Publication is one message for Broker.Publish.
type Publication struct {
	Channel  string
	Envelope *Envelope
	// Key, when set, is an idempotency key: the broker publishes the
	// message once however often it is retried with the same Key, on any
	// node. Optional.
	Key string
	// Digest identifies the request Key was given for (a hash of it, say),
	// so that a Key reused for a different request is refused with
	// ErrKeyReused instead of being taken for a retry. Optional.
	Digest string
}

// Published is the outcome of Broker.Publish.
type Published struct {
	ID string
	// Duplicate: a publication with the same Key was already published;
	// nothing was published again and ID is the first one's.
	Duplicate bool
}

// Delivery is one publication arriving from the broker, or a gap.
type Delivery struct {
	Channel  string
	Envelope *Envelope // ID set; shared, read-only
	// Gap, with neither Channel nor Envelope: the broker's log lost
	// records before the next delivery that this node may not have
	// delivered (the log was lost or recreated, or retention trimmed
	// records the node had not read yet). The node tells every open
	// session (a "gap" envelope, recovered:false) before what follows.
	Gap bool
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

// HistoryPage is the answer to Broker.HistoryPage.
type HistoryPage struct {
	Envelopes []*Envelope
	Recovered bool
	// More: the page ends before the log does; the messages after Next
	// are for the next page.
	More bool
	// Next is where the page ends, the Since of the next page: the last
	// envelope's id or, with More, a later position the read got to
	// through records of other channels. Without envelopes or More it is
	// the request's Since, or, when Since is of another epoch (its log is
	// gone: the page reads the current log from its start), the position
	// of the current log the read went through.
	Next string
}

// RoomChannel is the broker channel of a room.
func RoomChannel(room string) string { return "room:" + room }

// UserChannel is the broker channel carrying direct messages to a user.
func UserChannel(user string) string { return "user:" + user }

// Head returns the position of the newest message in the broker's log
// (see Broker.Head), bounded by BrokerTimeout, or "" and a nil error when
// the broker has no position to name.
func (n *Node) Head(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.BrokerTimeout)
	defer cancel()
	return n.broker.Head(ctx)
}
