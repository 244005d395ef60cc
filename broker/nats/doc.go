// Package nats is the NATS JetStream driver of the log engine
// (broker/engine): every channel's messages go to one stream (default
// "SWITCHBOARD"), each channel on its own subject under Config.Subject,
// in watermill-nats's wire format (its NATSMarshaler: metadata in
// headers), so a Watermill application can publish into the stream and
// read it. New returns the engine over the stream; the engine does the
// node's reading loop, ids, health, the resume index and group commit.
//
// The driver keeps three connections apart: appends (each batch
// published asynchronously, then every ack awaited), the node's reader
// (an ephemeral consumer of the whole stream from an exact sequence,
// with no queue group and no durable, so nodes never compete), and
// history (a short-lived consumer per range read, and Head). Positions
// are stream sequences; the epoch is the stream's creation time (see
// internal/ids), which changes when the stream is deleted and created
// again or lost with a server's storage, so a resume across that
// reports recovered:false instead of guessing. A stream the server
// reports missing is recreated (a new epoch) only once it is known to be
// gone; before, it is unavailable, as a server restarted on its data
// answers "not found" until it has loaded the stream. Retention is the
// stream's limits (MaxMsgs, MaxAge, MaxBytes). A keyed publish carries
// its key as Nats-Msg-Id: the stream itself refuses a repeat within its
// duplicate window (Engine.DedupWindow), whichever node sends it. See
// docs/brokers.md.
//
// Safe for concurrent use, as the engine's Driver contract requires.
package nats
