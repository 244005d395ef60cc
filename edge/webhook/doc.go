// Package webhook calls an operator's backend on connection lifecycle
// events, like AWS API Gateway's $connect, $default and $disconnect
// routes: connect authorises a new connection after the edge's own
// authenticator (and may set its user, rooms and metadata, or reject it),
// message forwards envelopes of configured custom types and relays or
// publishes what the backend answers, and disconnect reports ended
// connections. Every call is a signed (HMAC-SHA256, see Sign and Verify)
// JSON POST with a per-attempt timeout, bounded retries with jittered
// exponential backoff, and a circuit breaker per route. docs/webhooks.md
// is the contract for backends.
//
// Concurrency: a *Hooks is safe for concurrent use. Connect and message
// calls run on the caller's goroutine (the adapter's handshake, the
// session's reader) and are bounded by Config.Timeout and MaxInFlight.
// OnEvent never blocks: disconnects go to a bounded queue served by
// Config.Workers goroutines started by New; a full queue drops and
// counts. Close stops them, waiting at most Config.DrainTimeout.
package webhook
