package core

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// BroadcastChannel carries messages to every connection on every node.
// Every session is a member, so a resume replays broadcasts too.
const BroadcastChannel = "broadcast"

// ControlChannel carries commands between nodes: disconnect a connection
// or a user, send to a connection. Every node consumes it; the node
// holding the target acts, the others ignore the command.
const ControlChannel = "control"

// DisconnectByApp: the application (the server API) ended the
// connection. Terminal unless the command says otherwise.
var DisconnectByApp = Disconnect{Code: 4010, Reason: "disconnected by the application", Reconnect: false}

// control is the payload of a control envelope.
type control struct {
	Op        string    `json:"op"` // "disconnect", "disconnect_user", "send"
	Conn      string    `json:"conn,omitempty"`
	User      string    `json:"user,omitempty"`
	Code      uint16    `json:"code,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Reconnect bool      `json:"reconnect,omitempty"`
	Envelope  *Envelope `json:"envelope,omitempty"`
}

// Broadcast publishes env to every connection of the cluster (type
// defaults to "broadcast") and returns its id.
func (n *Node) Broadcast(ctx context.Context, env *Envelope) (string, error) {
	if env.Type == "" {
		env.Type = TypeBroadcast
	}
	env.Room, env.To = "", ""
	return n.Publish(ctx, BroadcastChannel, env)
}

// DisconnectConn asks the node holding connection conn (any node of the
// cluster) to close it with d. It returns once the command is in the
// broker; an unknown connection is ignored.
func (n *Node) DisconnectConn(ctx context.Context, conn string, d Disconnect) error {
	return n.command(ctx, control{Op: "disconnect", Conn: conn, Code: d.Code, Reason: d.Reason, Reconnect: d.Reconnect})
}

// DisconnectUser closes every connection of user, on every node, with d.
func (n *Node) DisconnectUser(ctx context.Context, user string, d Disconnect) error {
	if err := ValidateUser(user); err != nil {
		return err
	}
	return n.command(ctx, control{Op: "disconnect_user", User: user, Code: d.Code, Reason: d.Reason, Reconnect: d.Reconnect})
}

// SendToConn delivers env to connection conn only, on whichever node
// holds it. The envelope is not stored for resume.
func (n *Node) SendToConn(ctx context.Context, conn string, env *Envelope) error {
	if env == nil {
		return Errorf(CodeBadRequest, "send: no envelope")
	}
	if err := ValidateType(env.Type); err != nil {
		return err
	}
	if reserved[env.Type] {
		return Errorf(CodeBadRequest, "send: type %q is built in; use a custom type", env.Type)
	}
	return n.command(ctx, control{Op: "send", Conn: conn, Envelope: env})
}

func (n *Node) command(ctx context.Context, c control) error {
	if c.Conn != "" && !strings.Contains(c.Conn, "-") {
		return Errorf(CodeBadRequest, "connection id %q is not one this cluster hands out", c.Conn)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("switchboard/core: encode control command: %w", err)
	}
	_, err = n.Publish(ctx, ControlChannel, &Envelope{V: Version, Type: typeControl, Data: data})
	return err
}

// typeControl marks control envelopes; they never reach clients.
const typeControl = "control"

// onControl runs a command delivered on ControlChannel.
func (n *Node) onControl(env *Envelope) {
	var c control
	if err := json.Unmarshal(env.Data, &c); err != nil {
		n.log.Warn("bad control command", "id", env.ID, "err", err)
		return
	}
	d := Disconnect{Code: c.Code, Reason: c.Reason, Reconnect: c.Reconnect}
	if d.Code == 0 {
		d = DisconnectByApp
	}
	local := func() *Session {
		if !strings.HasPrefix(c.Conn, n.prefix+"-") {
			return nil // another node's connection
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.byID[c.Conn]
	}
	switch c.Op {
	case "send":
		if s := local(); s != nil && c.Envelope != nil && !reserved[c.Envelope.Type] && ValidateType(c.Envelope.Type) == nil {
			if err := s.Send(c.Envelope); err != nil {
				n.log.Debug("control send failed", "conn", c.Conn, "err", err)
			}
		}
	case "disconnect":
		if s := local(); s != nil {
			n.log.Info("disconnect by the application", append(s.logAttrs(), "code", d.Code, "reason", d.Reason)...)
			s.closeAsync(d)
		}
	case "disconnect_user":
		// The hub indexes sessions by user channel: no scan of the node.
		for _, s := range n.hub.sessions(UserChannel(c.User)) {
			n.log.Info("disconnect by the application", append(s.logAttrs(), "code", d.Code, "reason", d.Reason)...)
			s.closeAsync(d)
		}
	default:
		n.log.Warn("unknown control command", "op", c.Op)
	}
}

// History reads the broker's log for channels after req.Since (see
// Broker.History), bounded by BrokerTimeout: for backends and APIs, not
// for sessions.
func (n *Node) History(ctx context.Context, req HistoryRequest) (HistoryResult, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.BrokerTimeout)
	defer cancel()
	res, err := n.broker.History(ctx, req)
	if err != nil {
		return HistoryResult{}, &Error{Code: CodeBrokerDown, Message: "history unavailable; retry"}
	}
	return res, nil
}

// Consume hands every delivery on a broker channel whose messages are for
// the server, not for connections (cluster state such as presence), to
// fn, on the broker's delivery goroutine, in log order; fn must not
// block. Channels named like rooms or users ("room:", "user:") are
// refused.
func (n *Node) Consume(channel string, fn func(Delivery)) error {
	if connectionChannel(channel) || channel == ControlChannel {
		return fmt.Errorf("switchboard/core: Consume(%q): a connection channel", channel)
	}
	n.consumers.Store(channel, fn)
	return nil
}

// connectionChannel reports whether messages on channel go to connections:
// a room, a user, or the broadcast channel. Others are server channels.
func connectionChannel(channel string) bool {
	return strings.HasPrefix(channel, "room:") || strings.HasPrefix(channel, "user:") || channel == BroadcastChannel
}
