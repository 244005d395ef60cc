// Package ids spells the NATS JetStream broker's epoch: the stream's
// creation time, in base 36, the first part of every message id
// ("<epoch>-<seq>", formatted and parsed by broker/engine). A stream
// deleted and created again, or lost with a server's storage, gets a new
// creation time, so ids of the old log no longer resolve.
//
// It imports the standard library alone, so fuzzing it compiles nothing
// else. Pure functions and values: safe for concurrent use.
package ids
