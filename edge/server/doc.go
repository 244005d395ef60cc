// Package server wires a Switchboard edge node: the broker, core.Node, the
// outbox's forwarder (--outbox-url: switchboard_publish, published as the
// server API publishes), the Fiber app and its routes (/ws, /healthz,
// /readyz, /stats), logging and the ordered shutdown. It is importable so tests and examples can run a
// real edge in-process on 127.0.0.1:0.
//
// A Server is started once with Serve and stopped with Shutdown, which is
// idempotent and safe to call from another goroutine.
package server
