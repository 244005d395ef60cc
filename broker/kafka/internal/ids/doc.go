// Package ids is the Kafka broker's message-id codec: an id is
// "<epoch>-<offset>", the topic's Kafka topic ID (the epoch, base32hex)
// and the record's offset in the topic's one partition, with exactly one
// spelling per position, so ids compare by equality. Ids are handed to
// clients and come back as since= and cursors: Parse accepts only what
// Format writes.
//
// It imports the standard library alone, so fuzzing it compiles nothing
// else. Pure functions and values: safe for concurrent use.
package ids
