package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrUnauthorized is returned (wrapped) by an Authenticator that rejects
// credentials. Adapters answer it with 4001 (WebSocket) or HTTP 401.
var ErrUnauthorized = errors.New("switchboard/core: unauthorized")

// Credentials is what a client presented when connecting. Adapters fill
// it from the transport (query string, Authorization header).
type Credentials struct {
	// Token is a bearer token (a JWT), empty if none was given.
	Token string
	// User is the user id the client claims (?user=). Only development
	// mode trusts it.
	User string
	// Transport names the adapter: websocket, sse, longpoll, send.
	Transport string
	// RemoteAddr is the client's address (after a trusted proxy header).
	RemoteAddr string
	// Header and Query are the request's headers (canonical names) and
	// query parameters, for authenticators that decide on more than a
	// token, such as a connect webhook. The token's own parameter and
	// header are left out. Nil when the adapter has none.
	Header map[string][]string
	Query  map[string][]string
}

// Rejection is an Authenticator error that says how the client is
// turned away: the close sent on a connection (WebSocket, SSE) and the
// HTTP status for request-shaped transports (long-poll, /send). Adapters
// fall back to 4001 / 401 for any other error.
type Rejection struct {
	Disconnect Disconnect
	Status     int
	Err        error // why, for logs; its message reaches the client
}

func (r *Rejection) Error() string {
	if r.Err == nil {
		return "rejected: " + r.Disconnect.Reason
	}
	return r.Err.Error()
}

func (r *Rejection) Unwrap() error { return r.Err }

// Identity is who a connection is and what it may do.
type Identity struct {
	User string // empty: anonymous, core generates an id
	// Permissions restrict the rooms the connection may subscribe and
	// publish to; nil allows every room.
	Permissions *Permissions
	// Expires, when set, is when the credentials stop being valid: the
	// session is closed with 4001 "token expired" then, unless a refresh
	// envelope brought valid newer credentials.
	Expires time.Time
	// Rooms are joined at connect in addition to the ones the client
	// asked for (subject to Permissions and the room limit).
	Rooms []string
	// Meta is opaque metadata carried with the session: in lifecycle
	// events, webhooks, Session.Meta.
	Meta map[string]string
}

// Authenticator decides who a connection is. It must be safe for
// concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, c Credentials) (Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	return f(ctx, c)
}

// Insecure is the development-mode Authenticator: it trusts the claimed
// user id (anonymous when none) and ignores tokens. Never use it where
// identities matter.
var Insecure Authenticator = AuthenticatorFunc(func(_ context.Context, c Credentials) (Identity, error) {
	if c.User != "" {
		if err := ValidateUser(c.User); err != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
	}
	return Identity{User: c.User}, nil
})
