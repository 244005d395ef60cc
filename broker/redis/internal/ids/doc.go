// Package ids holds what the Redis Streams driver spells itself: stream
// entry IDs as Redis prints them, "<ms>-<seq>", read with exactly one
// spelling (ParseEntryID), and the random epochs the driver keeps at
// "<stream>:epoch" (NewEpoch, ValidEpoch: 13 characters of [0-9a-v]).
// Message ids, "<epoch>-<ms>-<seq>", are the engine's (engine.FormatID,
// engine.ParseID, fuzzed there).
//
// It imports the standard library alone, so fuzzing it compiles nothing
// else. Pure functions and values (NewEpoch reads crypto/rand): safe for
// concurrent use.
package ids
