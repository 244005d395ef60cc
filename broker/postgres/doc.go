// Package postgres is the PostgreSQL driver of the log engine
// (broker/engine): the log is a table (default "switchboard_log") whose
// rows are Watermill messages (uuid, payload as bytea, metadata as
// jsonb, as watermill-sql stores them) at positions 1, 2, 3, …; New
// returns the engine over it, which does the node's reading loop, ids,
// health, the resume index and group commit.
//
// Positions follow commit order. A sequence hands out values at insert,
// not at commit, so a reader of "after 7" can see 9 commit before 8 and
// pass 8 for good. Here an append is one short transaction (one call of
// the <Table>_append function) that first locks the one row of
// <Table>_head, takes its positions from it, inserts its rows, advances
// the head and commits: the next append waits for the lock, so it gets
// its positions only once the previous rows are visible. Whoever sees a
// position sees every one before it, and positions have no holes (a
// refused duplicate takes none, a rollback gives its own back). The
// price: appends from every node take turns, each holding the lock
// through its commit (its WAL flush), so throughput comes from batches
// (the engine's group commit), not from concurrent appends. Nothing else
// should write the log: a transaction that took the lock would hold
// every append until it ended.
//
// Readers wake on LISTEN/NOTIFY: an append notifies "<Schema>.<Table>"
// with the new head when it commits, and with its records when they fit
// in a notification (under 8000 bytes; notifications arrive in commit
// order, which is position order). Each node's reader has its own
// connection that listens, queries, then waits for a notification; a
// reader following the log delivers the records a notification carried
// without a query, queries for the others, and queries every
// PollInterval anyway, in case a notification was lost. A delivery on a
// live log is then one notification, not a notification and a query.
//
// The epoch is a random id in the head row, made with the log's tables:
// a log dropped and created again (by New, or by a running node that
// finds its tables gone) has another, so older ids resume with
// recovered:false. Retention (MaxMsgs, MaxAge, by the append time stored
// with each record) deletes the oldest records every TrimInterval; as
// positions are dense, a read that does not begin right after its
// position lost records to retention: Range reports Trimmed, Read a Gap.
// Idempotency keys live in <Table>_keys for Engine.DedupWindow and are
// decided under the head's lock: the log itself refuses a repeat.
//
// The schema is migrated by versioned steps (switchboard_schema_version
// records the last one per log) in one transaction under an advisory
// lock, so edges starting together migrate once.
//
// The outbox (Outbox, NewOutbox) is transactional publishing for
// backends on PostgreSQL, whatever the broker: switchboard_publish(room,
// data, type) and switchboard_publish_user(user_id, data) insert a
// publish request into switchboard_outbox and NOTIFY, inside the
// caller's transaction, so the message exists once it commits and never
// if it rolls back. Every edge runs a forwarder; the one holding a
// session advisory lock reads the oldest rows (woken by the
// notification, polling every PollInterval), publishes each through an
// OutboxPublisher with the idempotency key "outbox:<epoch>:<id>" (one
// goroutine per channel, so each room keeps its order), then deletes
// them. A crash in between leaves the rows, and the next forwarder's
// publication of them is refused by the broker as a duplicate. A
// request that can never be published moves to
// switchboard_outbox_failed. The outbox is migrated as a unit of its own
// (it may live in a database that is not the log's), and even with the
// log in the same database a backend's transaction never writes the log
// itself: it would hold the head's lock, and every node's appends with
// it, until it ended.
//
// Safe for concurrent use, as the engine's Driver contract requires; the
// reader's Read holds its connection for up to PollInterval. An Outbox's
// methods are safe for concurrent use.
package postgres
