// Command chaos is Switchboard's public fault-injection suite (issue
// #15): it starts real processes, injects real faults and checks every
// subscriber against the broker's log.
//
//	make chaos           # Redis, NATS, Postgres: 10,000 messages each (what CI runs)
//	make chaos FULL=1    # 100,000 messages per broker
//	go run ./test/chaos --help
//
// Per broker (a redis-server with AOF persistence; a nats-server with
// JetStream file storage, built from the module's nats-server version;
// PostgreSQL from Debian's postgresql package, through
// broker/postgres/pgtest: initialised in a temporary directory, run as
// the postgres user when the suite runs as root, its log the table
// switchboard_log; with --brokers kafka, kfake in a process of its own,
// this binary's `kfake` subcommand, which keeps its log in memory: its
// restart loses the log, the suite reads it just before, and checks
// that clients are told recovered:false, where what they missed is the
// broker's loss): three edge processes, one of them with
// --slow-consumer resume; --subs WebSocket, SSE and long-poll
// subscribers written to docs/protocol.md, each resuming on the next
// edge after every disconnect (since= / Last-Event-ID / cursor=);
// --browsers subscribers (default 3) through the project's own browser
// client (/client.js) in headless Chromium, one tab in a browser
// context of its own each, the client forced onto one transport
// (WebSocket, SSE, long-poll in turn) and left to reconnect and resume
// by itself (its lastId), reporting every envelope, open
// (recovered:false), gap and reconnecting to the suite through a
// runtime binding (page.html); --publishers backends publishing
// sequence-numbered messages with idempotency keys through POST
// /api/v1/publish, retrying a failure on the next edge as a careful
// backend does. While they publish, the faults run in order, each once
// its share of the messages is accepted: an edge SIGKILLed and
// restarted, an edge SIGTERMed (drained) and restarted, the broker
// restarted on its data (PostgreSQL twice: a crash, an immediate
// shutdown after which the start recovers from the write-ahead log,
// then 2 s later a fast shutdown), the broker stopped (SIGSTOP; for
// PostgreSQL the postmaster and every process it forked, each of which
// leads a process group of its own) for --pause, one edge cut from the
// broker for --pause (partition: that edge runs in a network namespace
// the suite creates, reached by clients over one veth pair and reaching
// the broker over another, whose link goes down: established
// connections hang, new ones fail with "network is unreachable"; it
// needs root and iproute2), retention (one subscriber per transport
// goes away for --pause while the suite trims the log to the newer half
// of what was accepted meanwhile, as retention would: XTRIM MINID, a
// JetStream purge, Kafka DeleteRecords, a DELETE of the log table's
// oldest rows; edge 0 restarts, so its resume index starts after the
// trim, and they come back there: each must be told recovered:false and
// get what the log still holds, and must have missed some trimmed
// message), and stalled readers (WebSocket and SSE subscribers that
// read nothing for --stall while a burst of 1,500 messages of 8 KB is
// published, and longer if the burst takes longer, until drop-oldest
// and conflate have acted (at most --stall more): more than the
// kernel's socket buffers take for a reader that does not read, so that
// their edges' send queues overflow. Two
// per transport: one in every room, whose edge's policy acts, close or
// resume (one edge runs --slow-consumer resume); one in the rooms
// chaos-drop and chaos-conflate only, which every edge gives
// drop-oldest and conflate with --slow-consumer-rooms).
//
// The edges run with --send-queue 32, so that overflow happens at this
// scale, and with --retention-messages above the run's messages: the
// log keeps everything but what the retention fault trims, so any other
// loss, signalled or not, is a failure. drop-oldest and conflate lose
// messages by design, without a signal: in their rooms the check counts
// those as dropped by the policy and holds them to what they promise
// (the room's newest message, nothing twice, nothing out of order), and
// the edges' /stats must show that both acted.
//
// Subscribers move to the next edge after every disconnect, so
// by the later faults most of them sit on the edges that were
// restarted; that is part of the test. A browser subscriber cannot
// move: the client takes one edge URL, so it stays on its edge (every
// nine of them cover each transport on each edge) and rides out that
// edge's faults by reconnecting to it; the suite restarts an edge on
// the same address, so it comes back. Browser subscribers are not
// stalled readers (the stall fault is for the Go ones), and they need
// Chromium (apt-get install -y chromium; .ci/run installs it) unless
// run with --browsers 0. Their rows are browser-websocket, browser-sse
// and browser-longpoll.
//
// Then the log is read from the broker itself (PostgreSQL: the table in
// position order, each row's Watermill message decoded from its payload
// and metadata; its positions must have no hole) and every subscriber is
// checked against it: expected, received, lost without a signal, lost
// with one (recovered:false or gap), duplicates by id and by sequence,
// reordering, signals with nothing missing, reconnects and latency, per
// transport and per fault (a message belongs to the fault during which
// it was accepted). The log itself is checked against what publishers
// were told: every accepted message in it, none twice. What the broker
// lost (kfake's restart) or the retention fault trimmed counts as in
// the log, and a subscriber that missed it must have been told; any
// other loss, signalled or not, misses the target. Results go to --out:
// results.jsonl (a JSON line per broker),
// report.md (also printed) and timeline.html (faults and deliveries per
// transport over time), with each process's log. The exit status is 1
// when a target is missed, 2 for bad flags.
package main
