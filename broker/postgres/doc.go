// Package postgres is the PostgreSQL driver of the log engine
// (broker/engine): the log is a table (default "switchboard_log") whose
// rows are Watermill messages (uuid, payload as bytea, metadata as
// jsonb, as watermill-sql stores them) at positions 1, 2, 3, …; New
// returns the engine over it, which does the node's reading loop, ids,
// health, the resume index and group commit.
//
// Positions follow commit order. A sequence hands out values when rows
// are inserted, not when they commit, so a reader asking for "after 7"
// could see 9 commit before 8 and pass 8 for good. Here an append is one
// short transaction (one call of the <Table>_append function) that first
// locks the one row of <Table>_head, takes its positions from it, inserts
// its rows, advances the head and commits: the next append waits for
// that lock, so it gets its positions only once the previous rows are
// visible. Whoever sees a position sees every one before it; positions
// have no holes (a duplicate takes none, a rollback gives its own back).
// Only appends write the log; a backend's transactions publish through
// an outbox (forwarded by the edges), so none holds this lock.
//
// Readers wake on LISTEN/NOTIFY: the append notifies "<Schema>.<Table>"
// with the new head when it commits, and each node's reader has its own
// connection that listens, queries, then waits for a notification; it
// queries at least every PollInterval anyway, in case one is lost.
//
// The epoch is a random id in the head row, made when the log's tables
// are: a log dropped and created again (New, or a running node that finds
// the tables gone, migrates) has another, so older ids resume with
// recovered:false. Retention (MaxMsgs, MaxAge) deletes the oldest
// records every TrimInterval; since positions are dense, a range that
// does not begin right after its position lost records to retention,
// which Range reports as Trimmed and Read as a Gap. Idempotency keys
// live in <Table>_keys for the engine's DedupWindow, decided under the
// head's lock, so the log itself refuses a repeat (KeysInLog). Since
// reads the append times stored with the records.
//
// The schema is migrated by versioned steps (switchboard_schema_version
// records the last per log), in one transaction under an advisory lock:
// edges starting together migrate once.
//
// Safe for concurrent use, as the engine's Driver contract requires.
package postgres
