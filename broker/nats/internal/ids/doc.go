// Package ids is the NATS JetStream broker's message-id codec: an id is
// "<epoch>-<seq>", the stream's creation time (the epoch, base 36) and
// the message's stream sequence, with exactly one spelling per position,
// so ids compare by equality. Ids are handed to clients and come back as
// since= and cursors: Parse accepts only what Format writes.
//
// It imports the standard library alone, so fuzzing it compiles nothing
// else. Pure functions and values: safe for concurrent use.
package ids
