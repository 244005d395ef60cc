// Package websocket serves Switchboard over WebSocket on Fiber v2
// (gofiber/contrib/websocket). New returns the GET /ws handler; each
// connection becomes a core.Session.
//
// Writes: data frames, pings and the close frame are written only by the
// session's writer goroutine. The one exception is the pong answering a
// client's ping, written by the reader with WriteControl, which
// fasthttp/websocket allows concurrently with other writes; a client
// flooding pings is stopped by the rate limit (pings count).
//
// Frames: the server sends text frames carrying one or more '\n'-separated
// envelopes; it accepts text or binary frames in the same format. Concurrency: the handler goroutine only reads; every
// write (batches, pings, the close frame) happens on the session's single
// writer goroutine with a deadline, as fasthttp/websocket requires. The
// handler returns only after the session has ended, because the connection
// is pooled and reset when it returns.
package websocket
