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
}

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
