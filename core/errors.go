package core

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on.
var (
	// ErrShuttingDown is returned by Node.Accept once Shutdown has begun.
	ErrShuttingDown = errors.New("switchboard/core: node is shutting down")
	// ErrTooManyConnections is returned by Node.Accept when
	// Config.MaxConnections or MaxConnectionsPerIP is reached.
	ErrTooManyConnections = errors.New("switchboard/core: too many connections")
	// ErrSessionClosed is returned when enqueueing to a closed session.
	ErrSessionClosed = errors.New("switchboard/core: session closed")
	// ErrInvalidConfig wraps every configuration validation failure.
	ErrInvalidConfig = errors.New("switchboard/core: invalid config")
	// ErrUnconfirmed is wrapped by a broker's Publish error when the
	// message was appended to the log but the call could not confirm its
	// position in time: it will most likely be delivered, so a retry
	// without an idempotency key would publish it twice.
	ErrUnconfirmed = errors.New("switchboard/core: published but not confirmed")

	// ErrHistoryUnavailable is returned by Node.Accept when a resuming
	// connection's history cannot be read (the broker is unreachable, or
	// too slow within BrokerTimeout): the connection is closed with 1013
	// (try again later) so the client resumes later from the same
	// position, rather than going live with a gap.
	ErrHistoryUnavailable = errors.New("switchboard/core: history unavailable")

	// ErrKeyReused is wrapped by a broker's Publish error when an
	// idempotency key comes back with a different Digest: the key was
	// reused for another request, which is not published.
	ErrKeyReused = errors.New("switchboard/core: idempotency key reused for a different request")
)

// Error codes carried by "error" envelopes. They are stable API: clients
// branch on them. docs/protocol.md lists each with its meaning.
const (
	CodeBadRequest   = "bad_request"            // the frame is not a valid v1 envelope
	CodeUnknownType  = "unknown_type"           // no handler for the envelope's type
	CodeInvalidRoom  = "invalid_room"           // room name breaks the naming rules
	CodeInvalidUser  = "invalid_user"           // "to" is not a valid user id
	CodeNotJoined    = "not_joined"             // publish to a room the sender has not joined
	CodeTooManyRooms = "too_many_rooms"         // per-connection room limit reached
	CodeForbidden    = "forbidden"              // authenticated, but not allowed
	CodeUnavailable  = "unavailable"            // the node cannot serve the request now (shutting down); retry elsewhere
	CodeBrokerDown   = "broker_unavailable"     // the broker could not take the message or subscription; retry with backoff
	CodeUnconfirmed  = "publish_unconfirmed"    // appended to the log but not confirmed in time; do not resend blindly
	CodeKeyReused    = "idempotency_key_reused" // the idempotency key was used for a different request (HTTP 422)
	CodeInternal     = "internal"               // a bug or an integrator handler failed
	CodeUnauthorized = "unauthorized"           // bad, expired or missing credentials (HTTP 401; refresh refused)
	// CodeReconnectRequired: join or leave sent where rooms cannot change
	// (a stateless POST /send): reconnect the stream with the new rooms.
	CodeReconnectRequired = "reconnect_required"
)

// Error is a protocol error: it becomes an "error" envelope
// {"code": Code, "message": Message} carrying the offending request's ref.
// Handlers return it to answer a request with a precise error while the
// connection stays open.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode extracts the protocol code from err (CodeInternal when err is
// not, and does not wrap, an *Error).
func ErrorCode(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CodeInternal
}
