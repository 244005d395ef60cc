// Package api owns the server HTTP API under /api/v1, for backends that
// drive Switchboard without holding connections (functions, short-lived
// services): publish to a room, a user or everyone (singly or in batches,
// idempotently), read a room's history and presence, and send to or
// disconnect a connection or a user, wherever in the cluster it is. It
// authenticates with API keys compared in constant time. Publish is the
// publish route without HTTP, for the outbox's forwarder. docs/api.yaml is
// its OpenAPI description; a test checks every route is documented.
package api
