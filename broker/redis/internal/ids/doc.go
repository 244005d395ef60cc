// Package ids is the Redis Streams broker's message-id codec: an id is
// "<epoch>-<ms>-<seq>", a random epoch (base32hex) and the stream entry
// ID, with exactly one spelling per position, so ids compare by equality.
// Ids are handed to clients and come back as since= and cursors: Parse
// accepts only what Format writes. It also makes new epochs (NewEpoch)
// and reads entry IDs as Redis prints them (ParseEntryID).
//
// It imports the standard library alone, so fuzzing it compiles nothing
// else. Pure functions and values (NewEpoch reads crypto/rand): safe for
// concurrent use.
package ids
