package core

import "strconv"

// Disconnect is why the server ends a connection. Transports translate it:
// WebSocket sends a close frame with Code and Reason, SSE a final event,
// long-poll a JSON body. Reconnect tells clients whether retrying (with
// backoff) can succeed; docs/protocol.md documents every code.
type Disconnect struct {
	Code      uint16
	Reason    string
	Reconnect bool
}

func (d Disconnect) String() string {
	return strconv.Itoa(int(d.Code)) + " " + d.Reason
}

// The disconnects Switchboard sends. Codes 1000-1015 are RFC 6455 codes;
// 4000-4999 are Switchboard's own.
var (
	// DisconnectNormal: the client or the server ended the session cleanly.
	DisconnectNormal = Disconnect{Code: 1000, Reason: "normal closure", Reconnect: false}
	// DisconnectGoingAway: the peer went away (read error, EOF). Nothing is
	// sent; it is recorded for logs and stats.
	DisconnectGoingAway = Disconnect{Code: 1001, Reason: "going away", Reconnect: true}
	// DisconnectProtocolError: a frame the wire protocol forbids (RFC
	// 6455 §7.4.1); transports send their own Reason naming the fault.
	// Terminal: the client is broken, retrying repeats the fault.
	DisconnectProtocolError = Disconnect{Code: 1002, Reason: "protocol error", Reconnect: false}
	// DisconnectInvalidData: a text message (or close reason) that is not
	// UTF-8 (RFC 6455 §8.1). Terminal like 1002.
	DisconnectInvalidData = Disconnect{Code: 1007, Reason: "invalid data", Reconnect: false}
	// DisconnectInternal: the server failed; reconnect with backoff.
	DisconnectInternal = Disconnect{Code: 1011, Reason: "internal error", Reconnect: true}
	// DisconnectTryAgain: the node is at its connection cap (overall or
	// for the client's IP); reconnect after a backoff, ideally elsewhere.
	DisconnectTryAgain = Disconnect{Code: 1013, Reason: "try again later", Reconnect: true}
	// DisconnectShutdown: this node is restarting; reconnect (to any node).
	DisconnectShutdown = Disconnect{Code: 1012, Reason: "service restart", Reconnect: true}
	// DisconnectUnauthorized: bad, expired or missing credentials. Terminal:
	// reconnecting with the same credentials fails again.
	DisconnectUnauthorized = Disconnect{Code: 4001, Reason: "unauthorized", Reconnect: false}
	// DisconnectTokenExpired: the credentials expired on an open
	// connection and were not refreshed in time. Terminal like 4001: get
	// a new token, then reconnect.
	DisconnectTokenExpired = Disconnect{Code: 4001, Reason: "token expired", Reconnect: false}
	// DisconnectRateLimit: the client sent frames faster than allowed.
	// Reconnect after a backoff.
	DisconnectRateLimit = Disconnect{Code: 4002, Reason: "rate limit exceeded", Reconnect: true}
	// DisconnectMessageTooLarge: an inbound frame exceeded MaxMessageSize.
	DisconnectMessageTooLarge = Disconnect{Code: 4003, Reason: "message too large", Reconnect: true}
	// DisconnectSlow: the outbound queue overflowed. Reconnect and resume
	// with the last id received.
	DisconnectSlow = Disconnect{Code: 4008, Reason: "slow consumer", Reconnect: true}
	// DisconnectHeartbeat: nothing arrived from the client within
	// HeartbeatTimeout. Reconnect and resume.
	DisconnectHeartbeat = Disconnect{Code: 4009, Reason: "heartbeat timeout", Reconnect: true}
)

// flushes reports whether queued messages are written before the close:
// yes for orderly ends, and for a broken wire protocol (1002, 1007) so
// that the replies to the client's valid messages before the fault reach
// it ahead of the close; no when the client floods, is too slow or is gone.
func (d Disconnect) flushes() bool {
	switch d.Code {
	case DisconnectNormal.Code, DisconnectShutdown.Code, DisconnectProtocolError.Code, DisconnectInvalidData.Code:
		return true
	}
	return false
}
