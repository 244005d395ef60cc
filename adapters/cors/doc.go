// Package cors owns the browser-origin policy shared by every HTTP
// transport: which Origins may open a WebSocket, an event stream or a
// long-poll, or POST /send, and the CORS headers (preflight included)
// that let an allowed page on another origin use SSE, long-poll and
// /send. A request without an Origin header is not a browser's and is
// judged by its credentials alone. New is the middleware for Fiber,
// NewHandler for net/http; both apply one policy.
package cors
