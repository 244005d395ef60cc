package core

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

func (n *Node) registerBuiltins() {
	n.router.set(TypeJoin, n.handleJoin)
	n.router.set(TypeLeave, n.handleLeave)
	n.router.set(TypePublish, n.handlePublish)
	n.router.set(TypeDirect, n.handleDirect)
	n.router.set(TypePing, n.handlePing)
	n.router.set(TypeRefresh, n.handleRefresh)
}

// dispatch routes env to its handler and turns a returned error into an
// error envelope. An unknown type is an error reply, never a disconnect.
func (n *Node) dispatch(s *Session, env *Envelope) {
	h := n.router.lookup(env.Type)
	n.countInbound(env.Type, h != nil, s.t.Name())
	if h == nil {
		s.replyError(env.Ref, Errorf(CodeUnknownType, "unknown type %q", env.Type))
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, n.cfg.BrokerTimeout)
	defer cancel()
	if err := h(ctx, s, env); err != nil {
		s.replyError(env.Ref, err)
	}
}

type ackData struct {
	Room string `json:"room,omitempty"`
	To   string `json:"to,omitempty"`
	ID   string `json:"id,omitempty"`
}

func (s *Session) ack(ref string, d ackData) {
	data, _ := json.Marshal(d)
	s.reply(&Envelope{V: Version, Type: TypeAck, Ref: ref, Data: data})
}

func requireRoom(env *Envelope) error {
	if env.Room == "" {
		return Errorf(CodeBadRequest, `%s: field "room" is required`, env.Type)
	}
	return nil
}

func (n *Node) handleJoin(_ context.Context, s *Session, env *Envelope) error {
	if err := requireRoom(env); err != nil {
		return err
	}
	if err := s.join(env.Room); err != nil {
		return err
	}
	s.ack(env.Ref, ackData{Room: env.Room})
	return nil
}

func (n *Node) handleLeave(ctx context.Context, s *Session, env *Envelope) error {
	if err := requireRoom(env); err != nil {
		return err
	}
	if err := s.Leave(ctx, env.Room); err != nil {
		return err
	}
	s.ack(env.Ref, ackData{Room: env.Room})
	return nil
}

func (n *Node) handlePublish(ctx context.Context, s *Session, env *Envelope) error {
	if err := requireRoom(env); err != nil {
		return err
	}
	if !s.permissions().CanPublish(env.Room) {
		return Errorf(CodeForbidden, "not allowed to publish to room %q", env.Room)
	}
	if !s.InRoom(env.Room) {
		return Errorf(CodeNotJoined, "join room %q before publishing to it", env.Room)
	}
	msg := &Envelope{V: Version, Type: TypeMessage, Room: env.Room, From: s.user, TS: time.Now().UnixMilli(), Data: env.Data}
	id, err := n.Publish(ctx, RoomChannel(env.Room), msg)
	if err != nil {
		return err
	}
	s.ack(env.Ref, ackData{Room: env.Room, ID: id})
	return nil
}

func (n *Node) handleDirect(ctx context.Context, s *Session, env *Envelope) error {
	if env.To == "" {
		return Errorf(CodeBadRequest, `direct: field "to" is required`)
	}
	msg := &Envelope{V: Version, Type: TypeDirect, To: env.To, From: s.user, TS: time.Now().UnixMilli(), Data: env.Data}
	id, err := n.Publish(ctx, UserChannel(env.To), msg)
	if err != nil {
		return err
	}
	s.ack(env.Ref, ackData{To: env.To, ID: id})
	return nil
}

func (n *Node) handlePing(_ context.Context, s *Session, env *Envelope) error {
	s.reply(&Envelope{V: Version, Type: TypePong, Ref: env.Ref})
	return nil
}

// Publish sends env to channel through the broker, so every node's
// members receive it. A broker failure is an *Error with CodeBrokerDown.
func (n *Node) Publish(ctx context.Context, channel string, env *Envelope) (string, error) {
	res, err := n.PublishKeyed(ctx, Publication{Channel: channel, Envelope: env})
	return res.ID, err
}

// PublishKeyed is Publish for a Publication that may carry an
// idempotency key (see Broker.Publish): a retry with the same key, on
// any node, is not published again and reports Duplicate with the first
// one's id. A key reused for a different request is an *Error with
// CodeKeyReused.
func (n *Node) PublishKeyed(ctx context.Context, p Publication) (Published, error) {
	if t := n.cfg.Tracer; t != nil && connectionChannel(p.Channel) {
		var end func(error)
		ctx, end = t.Start(ctx, "switchboard.publish", p.Envelope.Trace, "switchboard.channel", p.Channel, "switchboard.type", p.Envelope.Type)
		trace := make(map[string]string, 2) // the caller's envelope keeps its own
		t.Inject(ctx, trace)
		copied := *p.Envelope
		copied.Trace = trace
		p.Envelope = &copied
		res, err := n.publish(ctx, p)
		end(err)
		return res, err
	}
	return n.publish(ctx, p)
}

func (n *Node) publish(ctx context.Context, p Publication) (Published, error) {
	start := time.Now()
	res, err := n.broker.Publish(ctx, p)
	if n.cfg.OnPublish != nil {
		n.cfg.OnPublish(time.Since(start), err)
	}
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, ErrKeyReused):
		return Published{}, &Error{Code: CodeKeyReused, Message: "this idempotency key was used for a different request"}
	case errors.Is(err, ErrUnconfirmed):
		n.log.WarnContext(ctx, "publish not confirmed in time", "channel", p.Channel, "err", err)
		return Published{}, &Error{Code: CodeUnconfirmed, Message: "the broker took the message but its position was not confirmed in time; it will probably be delivered, so do not resend it blindly"}
	}
	n.log.WarnContext(ctx, "publish failed", "channel", p.Channel, "err", err)
	return Published{}, &Error{Code: CodeBrokerDown, Message: "message not accepted by the broker; retry"}
}

// InRoom reports whether the session has joined room.
func (s *Session) InRoom(room string) bool {
	s.roomsMu.Lock()
	defer s.roomsMu.Unlock()
	ok := s.rooms.has(room)
	return ok
}

// Join adds the session to room (idempotent), subject to the room name
// rules and MaxRoomsPerConn.
func (s *Session) Join(_ context.Context, room string) error { return s.join(room) }

func (s *Session) join(room string) error {
	if err := ValidateRoom(room); err != nil {
		return err
	}
	if s.stateless {
		return errStateless(TypeJoin)
	}
	s.roomsMu.Lock()
	defer s.roomsMu.Unlock()
	if !s.perms.CanSubscribe(room) {
		return Errorf(CodeForbidden, "not allowed to subscribe to room %q", room)
	}
	if s.isClosing() { // detach may already have run; joining now would leak
		return ErrSessionClosed
	}
	if s.rooms.has(room) {
		return nil
	}
	if max := s.node.cfg.MaxRoomsPerConn; max > 0 && s.rooms.len() >= max {
		return Errorf(CodeTooManyRooms, "at most %d rooms per connection", max)
	}
	if err := s.node.hub.add(RoomChannel(room), s); err != nil {
		return err // closing: detach ran after the check above
	}
	s.rooms.add(room)
	s.node.emit(s, EventJoin, room, nil)
	return nil
}

// Leave removes the session from room (idempotent).
func (s *Session) Leave(_ context.Context, room string) error {
	if err := ValidateRoom(room); err != nil {
		return err
	}
	if s.stateless {
		return errStateless(TypeLeave)
	}
	s.roomsMu.Lock()
	defer s.roomsMu.Unlock()
	if !s.rooms.has(room) {
		return nil
	}
	s.rooms.del(room)
	s.node.hub.remove(RoomChannel(room), s)
	s.node.emit(s, EventLeave, room, nil)
	return nil
}

// permissions returns the session's current permissions (nil: all rooms).
func (s *Session) permissions() *Permissions {
	s.roomsMu.Lock()
	defer s.roomsMu.Unlock()
	return s.perms
}

// handleRefresh takes new credentials for the connection: the token must
// be valid for the same user. The new permissions apply to later joins
// and publishes (rooms already joined are left if no longer allowed), and
// the expiry moves to the new token's.
func (n *Node) handleRefresh(ctx context.Context, s *Session, env *Envelope) error {
	if n.cfg.Authenticator == Insecure {
		return Errorf(CodeBadRequest, "refresh: this server takes no tokens (development mode)")
	}
	if s.stateless {
		return Errorf(CodeBadRequest, "refresh: not available on a stateless request; send the token with the request")
	}
	var d struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(env.Data, &d); err != nil || d.Token == "" {
		return Errorf(CodeBadRequest, `refresh: data must be {"token": "<jwt>"}`)
	}
	p, err := n.Authenticate(ctx, Credentials{Token: d.Token, Transport: s.t.Name(), RemoteAddr: s.remote, Refresh: true})
	if err != nil {
		n.log.Warn("refresh refused", append(s.logAttrs(), "err", err)...)
		return Errorf(CodeUnauthorized, "refresh: %s", Refuse(err).Message)
	}
	id := p.Identity()
	if id.User != s.user {
		return Errorf(CodeForbidden, "refresh: the token is for another user")
	}
	s.roomsMu.Lock()
	s.perms = id.Permissions
	var revoked []string
	for _, room := range s.rooms.list() {
		if !id.Permissions.CanSubscribe(room) {
			revoked = append(revoked, room)
		}
	}
	s.roomsMu.Unlock()
	for _, room := range revoked {
		if err := s.Leave(ctx, room); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.closing == nil {
		s.expireAtLocked(id.Expires)
	}
	s.mu.Unlock()
	var ack struct {
		Expires int64    `json:"expires,omitempty"`
		Left    []string `json:"left,omitempty"`
	}
	if !id.Expires.IsZero() {
		ack.Expires = id.Expires.Unix()
	}
	ack.Left = revoked
	data, _ := json.Marshal(ack)
	s.reply(&Envelope{V: Version, Type: TypeAck, Ref: env.Ref, Data: data})
	return nil
}

// expireAtLocked (re)arms the expiry timer: the session closes with 4001
// "token expired" at t. A zero t disarms it. Called with s.mu held.
func (s *Session) expireAtLocked(t time.Time) {
	if s.expiry != nil {
		s.expiry.Stop()
		s.expiry = nil
	}
	if t.IsZero() {
		return
	}
	s.expiry = time.AfterFunc(time.Until(t), func() {
		s.node.log.Info("token expired", s.logAttrs()...)
		s.closeAsync(DisconnectTokenExpired)
	})
}
