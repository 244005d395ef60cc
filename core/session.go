package core

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Session is one client connection as core sees it: identity, joined
// rooms, a bounded outbound queue drained by a single writer goroutine,
// heartbeat state and the inbound rate limiter.
//
// Adapters obtain a Session from Node.Accept, feed it inbound frames from
// one goroutine with HandleFrame (and Activity for transport-level
// keep-alives), and wait for Done before releasing the connection.
type Session struct {
	node   *Node
	t      Transport
	pinger Pinger
	tw     TryWriter // set: the node's writer pool writes it (writers.go)
	id     string
	user   string
	remote string
	ip     string // counted in Node.perIP; empty when not counted
	meta   map[string]string
	// announcing is held from registration until the connect event was
	// reported, so detach reports the disconnect after it; never held for
	// sessions never registered (stateless). A mutex, not a channel: it
	// costs no allocation per connection.
	announcing sync.Mutex
	// eventful: lifecycle events are reported (not for Ephemeral
	// transports or stateless requests).
	eventful bool
	start    int64           // unix nanos
	ctx      context.Context // cancelled when the session ends
	cancel   context.CancelFunc

	lastSeen atomic.Int64 // unix nanos of the last inbound frame or pong

	inMu   sync.Mutex // guards the token bucket
	tokens float64
	refill int64 // unix nanos of the last refill

	roomsMu sync.Mutex
	rooms   smallSet[string]
	perms   *Permissions // guarded by roomsMu; nil allows every room

	mu         sync.Mutex // guards everything below
	ring       []item     // outbound queue, a ring that grows to max
	head, n    int
	max        int
	recovering bool
	stateless  bool    // a HandleStateless request: never joins or leaves
	pending    []item  // live frames held while history is fetched
	lastID     string  // id of the newest broker message queued: where a resume pause starts
	floor      string  // drop live broker messages at or before this id (delivery lagged a resume)
	replay     *Replay // what the session replayed at connect; nil until then
	paged      bool    // the replay was a page with more to follow: live broker messages are dropped
	replayN    int     // replayed items in the queue: they do not count against max
	pause      *pause  // the resume policy's state; nil when not paused
	writing    bool    // a writer goroutine is running, or the session is in the writer pool
	owed       bool    // TryWriteMany left bytes for FlushPending
	writer     func()  // s.writeLoop, bound once by wakeLocked
	pingDue    bool
	closing    *Disconnect // set once: the session is ending
	closed     bool        // the transport has been closed
	slow       bool        // in a drop-oldest episode
	dropped    uint64

	out    *atomic.Uint64 // envelopes written: the node's counter for this transport
	batch  [][]byte       // writer-owned
	hb     *time.Timer
	expiry *time.Timer // closes with 4001 "token expired"; guarded by mu
	done   chan struct{}
}

// item is one queued frame: shared encoded bytes, the message id ("" for
// replies) and the broker channel it came from ("" for replies).
type item struct {
	frame  []byte
	id     string
	ch     string
	replay bool // replayed from the log: does not count against the queue bound
}

// ID is the connection id, unique within the node.
func (s *Session) ID() string { return s.id }

// User is the authenticated (or development-mode) user id.
func (s *Session) User() string { return s.user }

// Transport is the name of the session's transport.
func (s *Session) Transport() string { return s.t.Name() }

// RemoteAddr is the client address the adapter reported.
func (s *Session) RemoteAddr() string { return s.remote }

// Context is cancelled when the session ends.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed when the session has ended: the transport is closed and
// the session has left every room.
func (s *Session) Done() <-chan struct{} { return s.done }

// Rooms returns the rooms the session has joined, in no particular order.
func (s *Session) Rooms() []string {
	s.roomsMu.Lock()
	defer s.roomsMu.Unlock()
	return s.rooms.list()
}

// queued is the number of envelopes waiting in the send queue.
func (s *Session) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Dropped returns how many envelopes the drop-oldest policy discarded.
func (s *Session) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Send encodes env and queues it for this session only.
func (s *Session) Send(env *Envelope) error {
	if !s.enqueue(env.Encode(), "", "", s.node.replyPolicy) {
		return ErrSessionClosed
	}
	return nil
}

// HandleFrame processes one inbound frame (one or more '\n'-separated
// envelopes). Call it from a single goroutine; frame is not retained, so
// the caller may reuse its buffer. Bad envelopes get error
// replies; oversize frames and floods end the session (4003, 4002).
func (s *Session) HandleFrame(frame []byte) {
	if s.isClosing() {
		return
	}
	s.touch()
	if len(frame) > s.node.cfg.MaxMessageSize {
		s.closeAsync(DisconnectMessageTooLarge)
		return
	}
	if !s.allow() {
		s.closeAsync(DisconnectRateLimit)
		return
	}
	first := true
	SplitFrame(frame, func(line []byte) {
		if s.isClosing() {
			return
		}
		if !first && !s.allow() { // every envelope in a batch costs a token
			s.closeAsync(DisconnectRateLimit)
			return
		}
		first = false
		s.node.stats.in.Add(1)
		env, err := DecodeEnvelope(line)
		if err != nil {
			s.replyError(refOf(line), err)
			return
		}
		s.node.dispatch(s, env)
	})
}

// Activity records a transport-level keep-alive from the client (a
// WebSocket ping or pong frame). It counts against the rate limit.
func (s *Session) Activity() {
	if s.isClosing() {
		return
	}
	s.touch()
	if !s.allow() {
		s.closeAsync(DisconnectRateLimit)
	}
}

// Close ends the session with d and waits until it has ended. Orderly
// disconnects (1000, 1012) flush the queue first. Safe to call more than
// once and from any goroutine except the session's writer.
func (s *Session) Close(d Disconnect) {
	s.closeAsync(d)
	<-s.done
}

func (s *Session) touch() { s.lastSeen.Store(time.Now().UnixNano()) }

// allow takes one token from the inbound bucket.
func (s *Session) allow() bool {
	limit := s.node.cfg.RateLimit
	if limit < 0 {
		return true
	}
	s.inMu.Lock()
	defer s.inMu.Unlock()
	now := time.Now().UnixNano()
	s.tokens += float64(now-s.refill) / float64(time.Second) * limit
	if burst := float64(s.node.cfg.RateBurst); s.tokens > burst {
		s.tokens = burst
	}
	s.refill = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

func (s *Session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing != nil
}

// enqueue queues a shared frame. It never blocks; it reports whether the
// frame was accepted (queued, conflated, held for a resume, already
// delivered, or left for the next page after a paged replay). id is the message id and ch its broker channel ("" for
// replies); pol is the slow-consumer policy for ch, applied when the queue
// is full.
//
// Every broker message a client receives has a larger id than the one
// before, so "the last id received" is always a sound since: conflate
// moves the newest message to the tail, and resume pauses every broker
// message of the connection, not one room's.
func (s *Session) enqueue(frame []byte, id, ch string, pol SlowPolicy) bool {
	s.mu.Lock()
	if s.closing != nil {
		s.mu.Unlock()
		return false
	}
	if s.recovering {
		if len(s.pending) >= s.max+s.node.cfg.HistoryLimit {
			return s.slowCloseLocked()
		}
		s.pending = append(s.pending, item{frame: frame, id: id, ch: ch})
		s.mu.Unlock()
		return true
	}
	if s.paged && id != "" {
		// After a page of a longer replay a live message would skip the
		// rest: the client asks for the next page instead.
		s.mu.Unlock()
		return true
	}
	if id != "" && s.floor != "" {
		// A resume finished before this node's delivery caught up: drop
		// what the client already has until delivery passes the floor.
		if after, ok := s.node.broker.After(id, s.floor); ok {
			if !after {
				s.mu.Unlock()
				return true
			}
			s.floor = ""
		}
	}
	if s.pause != nil && id != "" {
		s.holdLocked(item{frame: frame, id: id, ch: ch})
		s.mu.Unlock()
		return true
	}
	if pol == SlowConflate && s.n > 0 && ch != "" && s.removeOldestLocked(ch) {
		s.node.stats.conflated.Add(1) // the newer message goes to the tail below
	}
	episode := false
	if s.n-s.replayN >= s.max {
		switch {
		case pol == SlowResume && id != "":
			// Stop queueing broker messages; the writer replays them from
			// the log once the queue has drained.
			s.pause = &pause{since: s.lastID}
			s.node.stats.gaps.Add(1)
			s.mu.Unlock()
			s.node.log.Info("slow consumer: pausing, will replay from the log", append(s.logAttrs(), "channel", ch)...)
			return true
		case pol == SlowDropOldest || pol == SlowConflate:
			// Only this channel's messages (or, for replies, replies) are
			// dropped: other rooms keep their own guarantees.
			s.dropped++
			s.node.stats.dropped.Add(1)
			if !s.slow {
				s.slow, episode = true, true
			}
			if !s.removeOldestLocked(ch) {
				s.mu.Unlock() // nothing of ch queued: the new one is dropped
				if episode {
					s.node.log.Warn("slow consumer: dropping messages", append(s.logAttrs(), "queue", s.max)...)
				}
				return true
			}
		default: // SlowClose, or a reply under a policy replies cannot follow
			return s.slowCloseLocked()
		}
	}
	s.pushLocked(item{frame: frame, id: id, ch: ch})
	spawn := s.wakeLocked()
	s.mu.Unlock()
	if episode {
		s.node.log.Warn("slow consumer: dropping messages", append(s.logAttrs(), "queue", s.max)...)
	}
	if spawn && (s.tw == nil || !s.node.writers.submit(s)) {
		go s.writer()
	}
	return true
}

// writeFailedLocked ends the session after a failed write: the client is
// gone, nothing more is written.
func (s *Session) writeFailedLocked(err error) {
	s.node.log.Debug("write failed", append(s.logAttrs(), "err", err)...)
	if s.closing == nil {
		d := DisconnectGoingAway
		s.closing = &d
	}
	s.discardLocked()
}

// takeBatchLocked takes up to WriteBatch queued frames, oldest first,
// into s.batch.
func (s *Session) takeBatchLocked() [][]byte {
	batch := s.batch[:0]
	for s.n > 0 && len(batch) < s.node.cfg.WriteBatch {
		batch = append(batch, s.ring[s.head].frame)
		if s.ring[s.head].replay {
			s.replayN--
		}
		s.ring[s.head] = item{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
	}
	return batch
}

// slowCloseLocked ends the session with 4008. Called with s.mu held;
// releases it.
func (s *Session) slowCloseLocked() bool {
	spawn := s.startCloseLocked(DisconnectSlow)
	s.mu.Unlock()
	s.node.stats.slowClosed.Add(1)
	if spawn { // a recovering session has no writer yet: start one to close
		go s.writer()
	}
	return false
}

// removeOldestLocked removes the oldest queued item of channel ch (ch ""
// means replies), shifting the later ones up, and reports whether there
// was one.
func (s *Session) removeOldestLocked(ch string) bool {
	for i := 0; i < s.n; i++ {
		j := (s.head + i) % len(s.ring)
		if s.ring[j].ch != ch {
			continue
		}
		if s.ring[j].replay {
			s.replayN--
		}
		for k := i; k < s.n-1; k++ {
			s.ring[(s.head+k)%len(s.ring)] = s.ring[(s.head+k+1)%len(s.ring)]
		}
		s.ring[(s.head+s.n-1)%len(s.ring)] = item{}
		s.n--
		return true
	}
	return false
}

func (s *Session) pushLocked(it item) {
	if s.n == len(s.ring) {
		// Start small: an idle connection keeps its ring, and most
		// queues hold one or two items at a time; bursts double it.
		size := max(2*len(s.ring), 2)
		if size > s.max && s.n < s.max {
			size = s.max
		}
		if size <= s.n { // recovery may exceed max once; keep growing
			size = 2 * s.n
		}
		ring := make([]item, size)
		for i := 0; i < s.n; i++ {
			ring[i] = s.ring[(s.head+i)%len(s.ring)]
		}
		s.ring, s.head = ring, 0
	}
	s.ring[(s.head+s.n)%len(s.ring)] = it
	s.n++
	if it.id != "" {
		s.lastID = it.id
	}
	if it.replay {
		s.replayN++
	}
}

// wakeLocked marks a writer as running and reports whether the caller
// must start it with go s.writer().
//
// The method value is bound once per session: `go s.writeLoop()` compiles
// to a closure capturing s, one heap allocation per writer start, which on
// the fan-out path is one allocation per recipient per message.
func (s *Session) wakeLocked() bool {
	if s.writing || s.recovering {
		return false
	}
	s.writing = true
	if s.writer == nil {
		s.writer = s.writeLoop
	}
	return true
}

func (s *Session) closeAsync(d Disconnect) {
	s.mu.Lock()
	spawn := s.startCloseLocked(d)
	s.mu.Unlock()
	if spawn {
		go s.writer()
	}
}

// startCloseLocked records d as the reason to end (first reason wins) and
// reports whether a writer must be started to carry it out.
func (s *Session) startCloseLocked(d Disconnect) bool {
	if s.closing != nil {
		return false
	}
	s.closing = &d
	if !d.flushes() {
		s.discardLocked()
	}
	s.recovering = false
	s.pending = nil
	s.pause = nil
	s.cancel() // stop a replay or a handler waiting on the broker
	return s.wakeLocked()
}

func (s *Session) discardLocked() {
	for i := 0; i < s.n; i++ {
		s.ring[(s.head+i)%len(s.ring)] = item{}
	}
	s.head, s.n, s.replayN = 0, 0, 0
}

// writeLoop is the session's only writer. It runs while there is something
// to write and exits when the queue is empty, so an idle session has no
// goroutine. It performs the final Close when the session ends.
func (s *Session) writeLoop() {
	for {
		s.mu.Lock()
		if s.owed && (s.closing == nil || s.closing.flushes()) {
			s.owed = false
			s.mu.Unlock()
			if err := s.tw.FlushPending(); err != nil {
				s.mu.Lock()
				s.writeFailedLocked(err)
				s.mu.Unlock()
			}
			continue
		}
		if s.closing != nil && (s.n == 0 || !s.closing.flushes()) {
			s.finalLocked()
			return
		}
		if s.n == 0 && !s.pingDue && s.pause != nil {
			s.mu.Unlock()
			s.catchUp() // drained: replay a paused channel from the log
			continue
		}
		if s.n == 0 && !s.pingDue {
			s.writing = false
			s.slow = false
			if len(s.ring) > 64 { // give a burst's memory back when idle
				s.ring, s.head = nil, 0
			}
			s.mu.Unlock()
			return
		}
		ping := s.pingDue
		s.pingDue = false
		batch := s.takeBatchLocked()
		s.mu.Unlock()

		var err error
		if ping && s.pinger != nil {
			err = s.pinger.Ping()
		}
		if err == nil && len(batch) > 0 {
			if err = s.t.WriteMany(batch); err == nil {
				s.out.Add(uint64(len(batch)))
			}
		}
		clear(batch)
		s.batch = batch
		if err != nil {
			s.mu.Lock()
			s.writeFailedLocked(err)
			s.mu.Unlock()
		}
	}
}

// finalLocked closes the transport and cleans up. Called with s.mu held by
// the writer; releases it.
func (s *Session) finalLocked() {
	d := *s.closing
	s.closed = true
	s.discardLocked()
	s.ring, s.batch = nil, nil
	s.mu.Unlock()
	if s.hb != nil {
		s.hb.Stop()
	}
	s.mu.Lock()
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.mu.Unlock()
	if err := s.t.Close(d); err != nil {
		s.node.log.Debug("transport close failed", append(s.logAttrs(), "err", err)...)
	}
	s.cancel()
	s.node.detach(s, d)
	close(s.done)
	s.node.unregister(s) // last: a Shutdown that sees no sessions sees every Done closed
}

// heartbeat runs on the session's timer: it ends a silent bidirectional
// session and otherwise asks the writer for a ping.
func (s *Session) heartbeat() {
	cfg := &s.node.cfg
	s.mu.Lock()
	if s.closing != nil {
		s.mu.Unlock()
		return
	}
	silent := time.Since(time.Unix(0, s.lastSeen.Load()))
	if !s.t.Unidirectional() && silent >= cfg.HeartbeatTimeout {
		spawn := s.startCloseLocked(DisconnectHeartbeat)
		s.mu.Unlock()
		if spawn {
			go s.writer()
		}
		return
	}
	spawn := false
	if s.pinger != nil {
		s.pingDue = true
		spawn = s.wakeLocked()
	}
	// Wake at the next ping, or exactly when the timeout would expire.
	next := cfg.HeartbeatInterval
	if !s.t.Unidirectional() {
		if left := cfg.HeartbeatTimeout - silent; left < next {
			next = left
		}
	}
	s.hb.Reset(next)
	s.mu.Unlock()
	if spawn {
		go s.writer()
	}
}

func (s *Session) reply(env *Envelope) { s.enqueue(env.Encode(), "", "", s.node.replyPolicy) }

func (s *Session) replyError(ref string, err error) {
	if ErrorCode(err) == CodeInternal {
		s.node.log.Error("handler failed", append(s.logAttrs(), "err", err)...)
	}
	s.node.stats.errors.Add(1)
	s.reply(errorEnvelope(ref, err))
}

// refOf extracts "ref" from a frame that failed strict decoding, so the
// error reply can still be correlated.
func refOf(line []byte) string {
	var probe struct {
		Ref string `json:"ref"`
	}
	if json.Unmarshal(line, &probe) != nil || len(probe.Ref) > MaxRefLen {
		return ""
	}
	return probe.Ref
}

func (s *Session) logAttrs() []any {
	return []any{slog.String("conn", s.id), slog.String("user", s.user), slog.String("transport", s.t.Name()), slog.String("remote", s.remote)}
}
