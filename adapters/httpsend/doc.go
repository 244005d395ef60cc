// Package httpsend serves POST /send, New on Fiber v2 and NewHandler on
// net/http (one shared handler): the client-to-server path of SSE and
// long-poll clients, which have no socket to send on.
//
// A request carries one envelope, or several separated by '\n', and the
// identity and rooms of the stream it belongs to (?user=, ?rooms=,
// ?token= or "Authorization: Bearer"). It is stateless, so any node can
// answer: core.Node.HandleStateless runs each envelope through the router
// as if it came from a connection joined to those rooms. join and leave
// answer reconnect_required: reconnect the stream with the new rooms.
//
// The reply is the ack/error/pong envelope as JSON (an array when the
// request carried several), with the HTTP status of the first failure:
// 400 bad envelope, 401 credentials, 403 not allowed (not_joined,
// forbidden), 413 body over MaxMessageSize, 429 rate limit (a token bucket
// per user, or per IP for anonymous senders, one token per envelope), 503
// broker unavailable or node shutting down, 202 publish_unconfirmed.
//
// Concurrency: the handler is safe for concurrent use; the rate limiter
// is a mutex-guarded map swept of idle buckets once a minute.
package httpsend
