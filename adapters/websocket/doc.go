// Package websocket serves Switchboard over WebSocket. New returns the
// GET /ws handler for Fiber v2, NewHandler the same for net/http; each
// connection becomes a core.Session. Both front ends share everything
// but the upgrade: the request checks (426, 405, 400 for a bad version or
// Sec-WebSocket-Key, 403 for an origin, 503 while shutting down), the
// credentials, the session, the frame reader and writer.
//
// The upgrade handshake goes through gofiber/contrib/websocket on Fiber;
// on net/http the handler hijacks the connection and answers the 101
// itself. After it, the package speaks RFC 6455 frames itself (wire.go): it
// parses the client's masked frames (fragmentation, control frames between
// fragments, the closing handshake; violations close with 1002, text that
// is not UTF-8 with 1007 as soon as a fragment shows it, oversize messages
// with 4003 without being buffered) and writes unmasked text frames.
//
// Reading: with DetachConnections on the app (the edge does this) or on
// net/http (which always leaves hijacked connections to their handler),
// plain TCP on Linux, the handler returns once the session is accepted
// and an epoll poller shared by the handler's connections watches the
// socket.
// When data arrives a short-lived goroutine reads it into a pooled
// buffer, feeds the session and re-arms the socket, so an idle connection
// holds no goroutine, stack or buffer. Otherwise (TLS, a listener that
// wraps connections, other systems, a Fiber app without
// DetachConnections) the handler goroutine reads for the connection's
// life. Both modes, on both front ends, share the frame parser and pass
// the adapter conformance suite.
//
// Writing: the session's single writer goroutine writes batches ('\n'
// joined envelopes in one text frame, one write call from a pooled
// buffer), pings and the close frame; the reader writes only the pong
// answering a client's ping and the close frame answering the client's.
// A mutex orders them, and every write has a deadline (WriteTimeout).
// Frames: the server sends text frames carrying one or more
// '\n'-separated envelopes; it accepts text or binary frames in the same
// format.
//
// Compression: permessage-deflate (RFC 7692) is negotiated with every
// client that offers it, without context takeover either way, so one
// compressed form of an envelope serves every connection: the handler's
// connections share a cache of compressed frames, each compressed once
// (deflate.go). Compression state lives only while a message is written
// or read, in pooled compressors: an idle connection holds none.
package websocket
