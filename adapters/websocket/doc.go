// Package websocket serves Switchboard over WebSocket on Fiber v2. New
// returns the GET /ws handler; each connection becomes a core.Session.
//
// The upgrade handshake goes through gofiber/contrib/websocket, after New
// has refused (400) a Sec-WebSocket-Key that is not the base64 of 16
// bytes. After it, the package speaks RFC 6455 frames itself (wire.go): it
// parses the client's masked frames (fragmentation, control frames between
// fragments, the closing handshake; violations close with 1002, text that
// is not UTF-8 with 1007 as soon as a fragment shows it, oversize messages
// with 4003 without being buffered) and writes unmasked text frames.
//
// Reading: with DetachConnections on the app (the edge does this), plain
// TCP on Linux, the handler returns once the session is accepted and an
// epoll poller shared by the handler's connections watches the socket.
// When data arrives a short-lived goroutine reads it into a pooled
// buffer, feeds the session and re-arms the socket, so an idle connection
// holds no goroutine, stack or buffer. Otherwise (TLS, other systems, an
// app without DetachConnections) the handler goroutine reads for the
// connection's life. Both modes share the frame parser and pass the
// adapter conformance suite.
//
// Writing: the session's single writer goroutine writes batches ('\n'
// joined envelopes in one text frame, one write call from a pooled
// buffer), pings and the close frame; the reader writes only the pong
// answering a client's ping and the close frame answering the client's.
// A mutex orders them, and every write has a deadline (WriteTimeout).
// Frames: the server sends text frames carrying one or more
// '\n'-separated envelopes; it accepts text or binary frames in the same
// format.
package websocket
