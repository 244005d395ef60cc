// Package command runs one edge node as a program: it loads the edge's
// flags and environment (edge/config), sets up tracing from the OTEL_*
// variables, waits for the broker with --broker-wait, serves the public
// and admin listeners, and drains on shutdown. The switchboard binary
// (edge/main.go) and applications built on the edge (examples/chat) share
// it, so they take the same settings and exit with the same statuses.
//
// It is separate from edge/server so that a program embedding the server
// does not compile the OpenTelemetry exporters. Command.Run blocks until
// its context ends and the node has drained; it is meant to be called
// once per process.
package command
