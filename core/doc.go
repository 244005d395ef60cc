// Package core is Switchboard's transport-agnostic engine: the v1 envelope,
// the type router, rooms and users (the hub), per-connection sessions with
// bounded send queues, heartbeat policy, disconnect codes, and the broker
// port that every message travels through.
//
// core imports only the standard library. Transports (WebSocket, SSE,
// long-poll, an integrator's own) implement the small outbound-only
// [Transport] interface and push inbound frames into a [Session]; brokers
// implement [Broker], every method of it: a broker delivers every channel
// to every node, and the hub keeps what has local members. Every resume
// reads the log forward a page at a time ([Broker.HistoryPage]), so a
// client far behind catches up instead of being told it missed what the
// log still holds.
//
// Authentication is core's: a transport hands [Node.Accept] the
// [Credentials] the client presented, and the node runs
// [Config.Authenticator] and applies the whole [Identity] (user,
// permissions, expiry, metadata, assigned rooms). A transport that must
// answer a refusal with an HTTP status calls [Node.Authenticate] first;
// [Refuse] maps a refusal to its close code and status.
//
// Concurrency contract: a [Node] and its [Hub] are safe for concurrent use.
// A [Session] accepts frames from one reader goroutine at a time and writes
// to its Transport from exactly one writer goroutine, which core starts on
// demand and stops when the queue is empty, so an idle connection costs no
// goroutine of core's. Fan-out never blocks: it enqueues shared, encoded
// bytes and applies the slow-consumer policy on overflow.
package core
