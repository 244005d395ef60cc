// Package request reads what every HTTP transport needs from a request
// (credentials, client address) and maps authentication failures to
// answers, so the adapters agree on both. Strings are copied out of
// fasthttp's reused buffers.
package request

import (
	"bytes"
	"errors"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
)

// TokenSubprotocolPrefix marks the offered WebSocket subprotocol that
// carries the bearer token: "switchboard.token.<jwt>".
const TokenSubprotocolPrefix = "switchboard.token."

// Credentials collects the request's credentials for transport: the token
// from ?token=, then Authorization: Bearer, then an offered
// "switchboard.token.<jwt>" subprotocol; ?user=; the client address
// (fiber's c.IP(), which believes a proxy header only from trusted
// proxies); and, with details, the headers and query parameters without
// the token (copying them costs allocations on every connect, so only
// authenticators that read them, such as a connect webhook, ask).
func Credentials(c *fiber.Ctx, transport string, details bool) core.Credentials {
	cr := core.Credentials{
		Transport:  transport,
		User:       strings.Clone(c.Query("user")),
		RemoteAddr: strings.Clone(c.IP()),
	}
	if details {
		cr.Header = make(map[string][]string)
		cr.Query = make(map[string][]string)
	}
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if string(k) == "token" {
			if cr.Token == "" {
				cr.Token = string(v)
			}
			return
		}
		if details {
			key := string(k)
			cr.Query[key] = append(cr.Query[key], string(v))
		}
	})
	c.Request().Header.VisitAll(func(k, v []byte) {
		if !details && !bytes.EqualFold(k, authorization) && !bytes.EqualFold(k, subprotocols) {
			return
		}
		key := http.CanonicalHeaderKey(string(k))
		val := string(v)
		switch key {
		case "Authorization":
			if cr.Token == "" && len(val) > 7 && strings.EqualFold(val[:7], "bearer ") {
				cr.Token = strings.TrimSpace(val[7:])
			}
			return
		case "Sec-Websocket-Protocol":
			var kept []string
			for p := range strings.SplitSeq(val, ",") {
				p = strings.TrimSpace(p)
				if tok, ok := strings.CutPrefix(p, TokenSubprotocolPrefix); ok {
					if cr.Token == "" {
						cr.Token = tok
					}
					continue
				}
				kept = append(kept, p)
			}
			if len(kept) == 0 {
				return
			}
			val = strings.Join(kept, ", ")
		case "Cookie":
			return // never forwarded: Switchboard does not use cookies
		}
		if details {
			cr.Header[key] = append(cr.Header[key], val)
		}
	})
	return cr
}

var (
	authorization = []byte("Authorization")
	subprotocols  = []byte("Sec-WebSocket-Protocol")
)

// Refusal is how a transport turns a client away after a failed
// authentication: the close for connections, the HTTP status and error
// code for requests, and a one-line message (never the token).
type Refusal struct {
	Disconnect core.Disconnect
	Status     int
	Code       string
	Message    string
}

// Refuse maps an Authenticator error: a *core.Rejection chooses its own
// close and status; anything else is 4001 / 401 unauthorized.
func Refuse(err error) Refusal {
	msg := "invalid credentials"
	if err != nil {
		msg = strings.TrimPrefix(err.Error(), core.ErrUnauthorized.Error()+": ")
	}
	var rej *core.Rejection
	if errors.As(err, &rej) {
		r := Refusal{Disconnect: rej.Disconnect, Status: rej.Status, Code: core.CodeForbidden, Message: msg}
		if r.Disconnect.Code == 0 {
			r.Disconnect = core.DisconnectUnauthorized
		}
		if r.Status == 0 {
			r.Status = http.StatusForbidden
		}
		switch {
		case r.Status == http.StatusUnauthorized:
			r.Code = core.CodeUnauthorized
		case r.Status >= 500:
			r.Code = core.CodeUnavailable
		}
		return r
	}
	return Refusal{Disconnect: core.DisconnectUnauthorized, Status: http.StatusUnauthorized, Code: core.CodeUnauthorized, Message: msg}
}
