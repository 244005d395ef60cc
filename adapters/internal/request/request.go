// Package request reads what every HTTP transport needs from a request
// (credentials, client address), so the adapters agree on it. Strings are
// copied out of fasthttp's reused buffers. Authenticating the credentials
// is core's (core.Node.Accept, core.Node.Authenticate, core.Refuse).
package request

import (
	"bytes"
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
