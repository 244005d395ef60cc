// Package engine is Switchboard's log engine: the one implementation of
// core.Broker over an append-only log that every edge node reads in full
// (a Redis stream, a Kafka partition, a JetStream stream). A log plugs in
// as a Driver — append, read from a position, read a range, head and
// epoch — and the engine does the rest once for all of them:
//
//   - the node's reading loop, with backoff and health, delivering every
//     record in log order, and the node's progress through the log, which
//     Publish and WaitDelivered wait on;
//   - message ids, "<epoch>-<position>": ordered across channels within an
//     epoch, and unrecoverable (recovered:false) once the log is recreated;
//   - resume from a bounded in-memory index of the recent log per channel
//     (Config.IndexBytes, Config.IndexAge), so a resume touches only what
//     the client's own channels missed; only a position older than the
//     index is read from the log, through the driver's separate range
//     path with bounded concurrency (Config.HistoryReads): a reconnect
//     storm queues there and never starves the live reader;
//   - exactly-once publishing by idempotency key: a driver decides
//     duplicates in the log where it can (Redis script, JetStream's
//     Nats-Msg-Id), and the reader drops a repeated key inside the window
//     (Config.DedupWindow) on every node alike, so even two racing
//     appends deliver once;
//   - group commit: concurrent publishes on a node share one Append (one
//     pipelined round trip, one produce request), and the wait for the
//     node's own reader happens once per batch.
//
// Records keep Watermill's wire format (each driver encodes a
// message.Message with its Watermill marshaller), so a Watermill
// application can publish into the log and read it. Every driver passes
// broker/brokertest through the engine.
package engine
