// Package request is what every HTTP transport reads from a request and
// how it answers one, for Fiber and net/http alike, so that each
// transport has one core and two thin front ends: Fiber and HTTP wrap
// the request in a Request; Credentials collects core.Credentials from
// it; an Answer (Error for the usual JSON error) is written back with
// Reply or Write. Authenticating the credentials is core's
// (core.Node.Accept, core.Node.Authenticate, core.Refuse).
//
// Concurrency: a Request is used by its handler's goroutine while the
// handler runs. Strings it returns may point into buffers the server
// reuses once the handler returns (fasthttp): copy what is kept.
package request

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// Request is the part of an HTTP request the transports read.
type Request interface {
	// Method is the request's method.
	Method() string
	// Host is the Host header (host[:port]).
	Host() string
	// Query is the first value of the query parameter key, "" if absent.
	Query(key string) string
	// Header is the first value of the request header key, "" if absent.
	Header(key string) string
	// VisitQuery calls fn for every query parameter value (the values of
	// one key in order).
	VisitQuery(fn func(key, value string))
	// VisitHeaders calls fn for every request header value (Host
	// included).
	VisitHeaders(fn func(key, value string))
	// ClientIP is the client's address: Fiber's c.IP() (which believes a
	// proxy header only from trusted proxies); for net/http the host of
	// RemoteAddr (put a middleware that rewrites it from a trusted proxy
	// header in front if you need one).
	ClientIP() string
	// RemoteAddr is the peer's ip:port, for logs.
	RemoteAddr() string
	// Context carries the request's values; it is not canceled when the
	// client goes away (Done says that).
	Context() context.Context
	// Done is closed when the request should stop waiting: when the
	// server shuts down (Fiber; it cannot see a client leave) or when the
	// client has gone (net/http).
	Done() <-chan struct{}
	// Body reads the request body, at most limit+1 bytes: a body longer
	// than limit shows as one byte over it.
	Body(limit int) ([]byte, error)
}

// TokenSubprotocolPrefix marks the offered WebSocket subprotocol that
// carries the bearer token: "switchboard.token.<jwt>".
const TokenSubprotocolPrefix = "switchboard.token."

// Credentials collects r's credentials for transport: the token from
// ?token=, then Authorization: Bearer, then an offered
// "switchboard.token.<jwt>" subprotocol; ?user=; the client address
// (Request.ClientIP); and, with details, the headers and query parameters
// without the token, the Authorization header and cookies (copying them
// costs allocations on every connect, so only authenticators that read
// them, such as a connect webhook, ask). Everything is copied out of r.
func Credentials(r Request, transport string, details bool) core.Credentials {
	cr := core.Credentials{
		Transport:  transport,
		User:       strings.Clone(r.Query("user")),
		RemoteAddr: strings.Clone(r.ClientIP()),
	}
	if details {
		cr.Header = make(map[string][]string)
		cr.Query = make(map[string][]string)
	}
	r.VisitQuery(func(k, v string) {
		if k == "token" {
			if cr.Token == "" {
				cr.Token = strings.Clone(v)
			}
			return
		}
		if details {
			key := strings.Clone(k)
			cr.Query[key] = append(cr.Query[key], strings.Clone(v))
		}
	})
	r.VisitHeaders(func(k, v string) {
		if !details && !strings.EqualFold(k, "Authorization") && !strings.EqualFold(k, "Sec-WebSocket-Protocol") {
			return
		}
		key := http.CanonicalHeaderKey(k)
		switch key {
		case "Authorization":
			if cr.Token == "" && len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
				cr.Token = strings.Clone(strings.TrimSpace(v[7:]))
			}
			return
		case "Sec-Websocket-Protocol":
			var kept []string
			for p := range strings.SplitSeq(v, ",") {
				p = strings.TrimSpace(p)
				if tok, ok := strings.CutPrefix(p, TokenSubprotocolPrefix); ok {
					if cr.Token == "" {
						cr.Token = strings.Clone(tok)
					}
					continue
				}
				kept = append(kept, p)
			}
			if len(kept) == 0 {
				return
			}
			v = strings.Join(kept, ", ")
		case "Cookie":
			return // never forwarded: Switchboard does not use cookies
		}
		if details {
			key = strings.Clone(key)
			cr.Header[key] = append(cr.Header[key], strings.Clone(v))
		}
	})
	return cr
}

// Answer is a whole HTTP answer with a JSON body: what a transport
// sends when it refuses a request, and long-poll's and /send's replies.
type Answer struct {
	Status int
	Body   []byte            // JSON
	Header map[string]string // set besides Content-Type: application/json
}

// Error is the answer {"error":{"code":code,"message":msg}} with status.
func Error(status int, code, msg string) *Answer {
	body, _ := json.Marshal(errorBody{Error: errorDetail{Code: code, Message: msg}})
	return &Answer{Status: status, Body: body}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Unavailable is the answer of a transport while its node shuts down.
func Unavailable() *Answer {
	return Error(http.StatusServiceUnavailable, core.CodeUnavailable, "node is shutting down; retry another node")
}

// Refused is the answer to credentials the node refused (core.Refuse).
func Refused(err error) *Answer {
	r := core.Refuse(err)
	return Error(r.Status, r.Code, r.Message)
}

// HeaderHasToken reports whether a request header key (any of its
// lines) lists token in its comma-separated value, ignoring case: the
// Connection and Upgrade headers of a WebSocket handshake.
func HeaderHasToken(r Request, key, token string) bool {
	found := false
	r.VisitHeaders(func(k, v string) {
		if found || !strings.EqualFold(k, key) {
			return
		}
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				found = true
				return
			}
		}
	})
	return found
}

// WriteTimeout is the default bound on each write to a client of the
// streaming transports (websocket.Config and sse.Config WriteTimeout).
const WriteTimeout = 10 * time.Second
