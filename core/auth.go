package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ErrUnauthorized is returned (wrapped) by an Authenticator that rejects
// credentials. Adapters answer it with 4001 (WebSocket) or HTTP 401.
var ErrUnauthorized = errors.New("switchboard/core: unauthorized")

// Credentials is what a client presented when connecting. Adapters fill
// it from the transport (query string, Authorization header) and hand it
// to Node.Accept (or Node.Authenticate); core runs Config.Authenticator
// on it. Adapters never decide an identity themselves.
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
	// header are left out. Adapters collect them only when the node's
	// Authenticator reads them (Node.RequestDetails); nil otherwise.
	Header map[string][]string
	Query  map[string][]string
	// Refresh: the credentials renew an open connection's (a refresh
	// envelope); only Token, Transport and RemoteAddr are set. An
	// authenticator that asks a backend once per connection (a connect
	// webhook) passes them on to the next one.
	Refresh bool
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

// DetailsReader is implemented by an Authenticator that reads
// Credentials.Header and Query (a connect webhook does). Copying them
// costs allocations on every connect, so adapters collect them only when
// the node's Authenticator says it reads them (Node.RequestDetails). An
// Authenticator wrapping another reports whether either reads them.
type DetailsReader interface {
	ReadsRequestDetails() bool
}

// ReadsRequestDetails reports whether a implements DetailsReader and
// reads them.
func ReadsRequestDetails(a Authenticator) bool {
	d, ok := a.(DetailsReader)
	return ok && d.ReadsRequestDetails()
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, c Credentials) (Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	return f(ctx, c)
}

// Insecure is the development-mode Authenticator, and Config's default:
// it trusts the claimed user id (anonymous when none) and ignores tokens,
// so it refuses a refresh. Never use it where identities matter.
var Insecure Authenticator = insecure{}

type insecure struct{}

func (insecure) Authenticate(_ context.Context, c Credentials) (Identity, error) {
	if c.Refresh {
		return Identity{}, fmt.Errorf("%w: development mode takes no tokens", ErrUnauthorized)
	}
	return Identity{User: c.User}, nil
}

// RefusedError is the error of Node.Accept and Node.Authenticate when the
// Authenticator refused the credentials (Err is its error). Refuse says
// how to answer the client.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string {
	return "switchboard/core: credentials refused: " + e.Err.Error()
}
func (e *RefusedError) Unwrap() error { return e.Err }

// Refusal is how a transport turns a client away after a failed
// authentication: the close for connections, the HTTP status and error
// code for requests, and a one-line message (never the token).
type Refusal struct {
	Disconnect Disconnect
	Status     int
	Code       string
	Message    string
}

// Refuse maps an authentication failure to its answer: a *Rejection
// chooses its own close and status (403 forbidden unless it says
// otherwise); anything else (an invalid user id included) is 4001 / 401
// unauthorized.
func Refuse(err error) Refusal {
	if re, ok := errors.AsType[*RefusedError](err); ok {
		err = re.Err
	}
	msg := "invalid credentials"
	if err != nil {
		msg = strings.TrimPrefix(err.Error(), ErrUnauthorized.Error()+": ")
	}
	if rej, ok := errors.AsType[*Rejection](err); ok {
		r := Refusal{Disconnect: rej.Disconnect, Status: rej.Status, Code: CodeForbidden, Message: msg}
		if r.Disconnect.Code == 0 {
			r.Disconnect = DisconnectUnauthorized
		}
		if r.Status == 0 {
			r.Status = http.StatusForbidden
		}
		switch {
		case r.Status == http.StatusUnauthorized:
			r.Code = CodeUnauthorized
		case r.Status >= 500:
			r.Code = CodeUnavailable
		}
		return r
	}
	return Refusal{Disconnect: DisconnectUnauthorized, Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: msg}
}

// Principal is an identity core authenticated (Node.Authenticate): what
// a request outside any connection (StatelessRequest) acts as. The zero
// Principal is nobody: core refuses it.
type Principal struct {
	id Identity
	ok bool
}

// User is the authenticated user id ("" for an anonymous principal).
func (p Principal) User() string { return p.id.User }

// Identity is what the Authenticator decided.
func (p Principal) Identity() Identity { return p.id }

// Authenticate runs Config.Authenticator on c within Config.AuthTimeout
// and checks the user id it names. Transports whose requests carry no
// connection (POST /send) use it; connections are authenticated by
// Accept. The error is a *RefusedError (Refuse maps it), or ctx's.
func (n *Node) Authenticate(ctx context.Context, c Credentials) (Principal, error) {
	actx, cancel := context.WithTimeout(ctx, n.cfg.AuthTimeout)
	defer cancel()
	id, err := n.cfg.Authenticator.Authenticate(actx, c)
	if err == nil && id.User != "" {
		if verr := ValidateUser(id.User); verr != nil {
			err = fmt.Errorf("%w: %w", ErrUnauthorized, verr) // a credentials problem: 4001 / 401
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return Principal{}, ctx.Err()
		}
		return Principal{}, &RefusedError{Err: err}
	}
	return Principal{id: id, ok: true}, nil
}
