// Package sse serves Switchboard over Server-Sent Events. New returns the
// GET /sse handler for Fiber v2, NewHandler the same for net/http; each
// stream becomes a core.Session whose transport is unidirectional (the
// client sends with POST /send, see adapters/httpsend). The two share
// the request handling, the framing and the stream loop; only where the
// bytes go differs (fasthttp's body stream writer, or the
// http.ResponseWriter with an http.ResponseController for flushes and
// write deadlines).
//
// Wire format: one event per envelope, "id: <message id>" (only for
// envelopes that have one) and "data: <envelope JSON>"; heartbeats are
// comment lines (": ping"); the last event of a stream the server ends is
// "event: close" with {code, reason, reconnect}. Resume with the
// Last-Event-ID header (browsers send it on reconnect) or ?since=.
//
// Concurrency: every write (events, heartbeats, the close event) happens
// on the session's single writer goroutine. The stream callback (Fiber)
// or handler (net/http) only writes the initial retry line, then blocks
// until the session is done, the Fiber server shuts down or the net/http
// client goes away, and returns; nothing touches the stream after it
// returns. On Fiber a client that goes away is noticed only as a failed
// Flush a write or two later, so the heartbeat is also the disconnect
// detector; net/http sees it leave at once. A net/http server's
// Shutdown does not end streams: the node's does (1012).
package sse
