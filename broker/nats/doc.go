// Package nats is the NATS JetStream broker: every node publishes through
// watermill-nats's Publisher (JetStream, watermill's NATSMarshaler) into one
// stream (default "SWITCHBOARD") and reads the whole stream with its own
// ephemeral consumer from an exact stream sequence, with no queue group and
// no durable, so nodes never compete, a node needs one subscription however
// many rooms it serves, order is the stream's total order, and one id
// positions a client in all its channels. Each channel has its own subject
// under Config.Subject, so History asks the server for the resuming
// client's channels only.
//
// Message ids are "<epoch>-<seq>": the stream sequence plus the stream's
// creation time, which changes when the stream is deleted and created again
// (or lost with a server's storage), so a resume across that reports
// recovered:false instead of guessing. Retention is the stream's limits
// (MaxMsgs, MaxAge, MaxBytes); a since older than the stream's first
// sequence is recovered:false. See docs/brokers.md. The id codec is
// internal/ids.
//
// Safe for concurrent use. One reader goroutine per Broker calls the
// delivery callback, in sequence order; Publish returns once that reader
// has read the message back, so "Publish returned" means "this node has
// delivered it". Healthy reports the connection's and the reader's state
// without I/O.
package nats
