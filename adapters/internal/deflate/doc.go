// Package deflate compresses envelopes once for every connection they go
// to, for the adapters' compressed forms: WebSocket permessage-deflate
// (RFC 7692) and gzip long-poll answers (RFC 1952).
//
// A Cache compresses each frame on its own (no context from earlier
// frames) and sync-flushes it, so its compressed form is a byte-aligned
// run of deflate blocks that can follow any other such run: Segments
// joins them, with stored (uncompressed) blocks for small frames and the
// bytes between frames, into one stream a standard decoder reads whole.
// Frames are cached by their memory: core's frames are immutable and
// shared by every connection they are written to (core.Transport).
//
// Concurrency: a Cache is safe for concurrent use; a Segments belongs to
// one writer. Inflate uses pooled decoders: nothing stays with a
// connection between messages.
package deflate
