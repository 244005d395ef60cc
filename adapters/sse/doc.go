// Package sse serves Switchboard over Server-Sent Events on Fiber v2. New
// returns the GET /sse handler; each stream becomes a core.Session whose
// transport is unidirectional (the client sends with POST /send, see
// adapters/httpsend).
//
// Wire format: one event per envelope, "id: <message id>" (only for
// envelopes that have one) and "data: <envelope JSON>"; heartbeats are
// comment lines (": ping"); the last event of a stream the server ends is
// "event: close" with {code, reason, reconnect}. Resume with the
// Last-Event-ID header (browsers send it on reconnect) or ?since=.
//
// Concurrency: every write (events, heartbeats, the close event) happens
// on the session's single writer goroutine. The stream callback only
// writes the initial retry line, then blocks until the session is done
// (or the server shuts down) and returns; nothing touches the stream after
// it returns. A client that goes away is noticed only as a failed Flush a
// write or two later, so the heartbeat is also the disconnect detector.
package sse
