package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/core"
)

// Metadata keys the engine adds to a keyed message.
const (
	// MetadataKey holds a publication's idempotency key.
	MetadataKey = "switchboard_key"
	// MetadataDigest holds the digest of the request behind the key.
	MetadataDigest = "switchboard_digest"
)

// Broker is core.Broker over a Driver. Create it with New.
type Broker struct {
	cfg Config
	d   Driver
	log *slog.Logger

	index    *index
	keys     *broker.Keys
	progress progress
	health   health
	reads    chan struct{} // history read slots (Config.HistoryReads)

	fromIndex, fromLog, logRead atomic.Uint64 // see Stats
	heads                       heads         // the log's head, shared by concurrent callers
	endLife                     context.CancelFunc

	queue   chan *request // publishes waiting for the committer
	closing chan struct{} // closed by Close

	mu      sync.Mutex // guards what follows
	started bool
	closed  bool
	stop    context.CancelFunc // ends the reader and the committer
	done    sync.WaitGroup     // the reader and the committer
	running chan struct{}      // closed when both have returned
}

// Interface guard.
var _ core.Broker = (*Broker)(nil)

// New returns an unstarted engine over d; it owns d from now on (Close
// closes it). A nil logger logs to slog.Default.
func New(d Driver, cfg Config, logger *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	life, endLife := context.WithCancel(context.Background())
	b := &Broker{
		cfg:     cfg,
		d:       d,
		log:     logger,
		index:   newIndex(cfg.IndexBytes, cfg.IndexEntries, cfg.IndexAge),
		keys:    broker.NewKeys(cfg.DedupWindow, cfg.DedupKeys),
		reads:   make(chan struct{}, cfg.HistoryReads),
		queue:   make(chan *request, cfg.MaxBatch),
		closing: make(chan struct{}),
		endLife: endLife,
	}
	b.heads = heads{fetch: d.Head, life: life}
	return b, nil
}

func (b *Broker) errorf(format string, args ...any) error {
	return fmt.Errorf("switchboard/broker/"+b.d.Name()+": "+format, args...)
}

// Start pins the reader at the log's head (a restarted node replays
// nothing to live clients, and nothing published after Start returns is
// missed) and starts the reader and the committer, which run until Close
// or until ctx ends.
func (b *Broker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return broker.ErrClosed
	}
	if b.started {
		return b.errorf("Start called twice")
	}
	epoch, head, err := b.d.Head(ctx)
	if err != nil {
		return err
	}
	at := position{epoch, head}
	b.progress.advance(at)
	b.index.reset(epoch, head)
	if !b.d.KeysInLog() {
		b.primeKeys(ctx, epoch, head)
	}
	rctx, cancel := context.WithCancel(ctx)
	b.started, b.stop = true, cancel
	b.running = make(chan struct{})
	r := &reader{b: b, deliver: deliver, at: at}
	b.done.Add(2)
	go func() { defer b.done.Done(); r.run(rctx) }()
	go func() { defer b.done.Done(); b.commit(rctx) }()
	go func() { b.done.Wait(); close(b.running) }()
	b.log.Debug("reader started", "epoch", epoch, "from", head.String())
	return nil
}

// primeTimeout bounds primeKeys: a node does not wait longer than this to
// start.
const primeTimeout = 30 * time.Second

// primeKeys reads the log from Since(now - DedupWindow) to head and
// records the idempotency keys it holds, on a log that does not decide
// keys itself: the readers of the nodes that were running dropped the
// repeats of those keys, and a replay from this node must drop them too
// (a hedged or retried publish can be in such a log twice). Best effort,
// bounded by primeTimeout and DedupKeys: a failure is logged, and the
// node starts knowing fewer keys.
func (b *Broker) primeKeys(ctx context.Context, epoch string, head Pos) {
	if head.IsZero() {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, primeTimeout)
	defer cancel()
	after, err := b.d.Since(ctx, start.Add(-b.cfg.DedupWindow))
	keys, read := 0, 0
	for err == nil && after.Less(head) && keys < b.cfg.DedupKeys {
		var ch Chunk
		if ch, err = b.d.Range(ctx, after, b.cfg.ReadCount); err != nil || ch.Epoch != epoch || len(ch.Records) == 0 {
			break
		}
		for _, rec := range ch.Records {
			if head.Less(rec.Pos) {
				after = head
				break
			}
			after = rec.Pos
			read++
			if rec.Msg == nil {
				continue
			}
			if k := rec.Msg.Metadata.Get(MetadataKey); k != "" {
				b.keys.See(k, rec.Msg.Metadata.Get(MetadataDigest), FormatID(epoch, rec.Pos), start)
				keys++
			}
		}
	}
	if err != nil {
		b.log.Warn("could not learn the idempotency keys of the log's last window; a repeat of one of them could be replayed from this node", "window", b.cfg.DedupWindow, "keys", keys, "err", err)
		return
	}
	b.log.Debug("learned the idempotency keys of the log's last window", "window", b.cfg.DedupWindow, "records", read, "keys", keys, "took", time.Since(start))
}

// Publish appends the publication to the log (sharing the round trip
// with the node's other publishes in flight) and returns its id (also
// set in env.ID), the position the log gave it: every node, this one
// included, delivers it from there. A keyed publication seen before
// within the window is not appended again: Published.Duplicate, with
// the first one's id. On a log that does not decide keys itself (see
// Driver.KeysInLog), a keyed publish returns once this node's reader has
// passed it, and fails with an error wrapping core.ErrUnconfirmed if
// that does not happen before ctx ends (it may still be delivered). It
// fails promptly, wrapping the driver's unavailable error, when the log
// cannot take the message.
func (b *Broker) Publish(ctx context.Context, p core.Publication) (core.Published, error) {
	if err := ctx.Err(); err != nil {
		return core.Published{}, err
	}
	b.mu.Lock()
	started, closed := b.started, b.closed
	b.mu.Unlock()
	switch {
	case closed:
		return core.Published{}, broker.ErrClosed
	case !started:
		return core.Published{}, b.errorf("Publish before Start")
	}
	env := p.Envelope
	env.ID = ""
	if p.Key != "" {
		if e, ok := b.keys.Get(p.Key, time.Now()); ok {
			return b.duplicate(p, e)
		}
	}
	msg := broker.NewMessage(p.Channel, env)
	if p.Key != "" {
		msg.Metadata.Set(MetadataKey, p.Key)
		msg.Metadata.Set(MetadataDigest, p.Digest)
	}
	r := &request{msg: msg, done: make(chan struct{})}
	select {
	case b.queue <- r:
	case <-ctx.Done():
		return core.Published{}, ctx.Err()
	case <-b.closing:
		return core.Published{}, broker.ErrClosed
	}
	select {
	case <-r.done:
	case <-b.closing:
		return core.Published{}, broker.ErrClosed
	case <-ctx.Done():
		if r.state.CompareAndSwap(queued, abandoned) {
			return core.Published{}, ctx.Err() // the committer will skip it: not appended
		}
		return core.Published{}, b.errorf("append in flight when the deadline passed: %w", errors.Join(core.ErrUnconfirmed, ctx.Err()))
	}
	if r.err != nil {
		return core.Published{}, r.err
	}
	at := position{r.epoch, r.res.Pos}
	if p.Key != "" && b.d.KeysInLog() && r.res.Duplicate {
		first := broker.KeyEntry{ID: FormatID(at.epoch, at.pos), Digest: r.res.Digest}
		if first.Digest == "" { // the reader may know it
			first.Digest = p.Digest
			if e, ok := b.keys.Get(p.Key, time.Now()); ok && e.ID == first.ID {
				first = e
			}
		}
		return b.duplicate(p, first)
	}
	if p.Key != "" && !b.d.KeysInLog() {
		// Only the reader can tell whether this record repeats an
		// earlier one with the key (racing appends on a log that does
		// not refuse them): wait until it has passed it.
		select {
		case <-r.delivered:
		case <-b.closing:
			return core.Published{}, broker.ErrClosed
		case <-ctx.Done():
			return core.Published{}, b.errorf("appended but not read back in time: %w", errors.Join(core.ErrUnconfirmed, ctx.Err()))
		}
		e, known := b.keys.Get(p.Key, time.Now())
		switch {
		case known && e.ID != FormatID(at.epoch, at.pos):
			return b.duplicate(p, e)
		case !known && b.progress.get().epoch != at.epoch:
			// The log was lost or recreated while the batch was in
			// flight, and the reader never read this record: it may be
			// in either log, or in none.
			return core.Published{}, b.errorf("appended while the log was recreated: %w", core.ErrUnconfirmed)
		}
	}
	id := FormatID(at.epoch, at.pos)
	env.ID = id
	return core.Published{ID: id}, nil
}

// duplicate answers a publication whose key the log already carries.
func (b *Broker) duplicate(p core.Publication, first broker.KeyEntry) (core.Published, error) {
	if first.Digest != p.Digest {
		return core.Published{}, b.errorf("key %q: %w", p.Key, core.ErrKeyReused)
	}
	return core.Published{ID: first.ID, Duplicate: true}, nil
}

// History returns what req.Channels missed after req.Since: from the
// index when Since is inside it, otherwise from the log (bounded
// concurrency, see Config.HistoryReads) up to the index and from the
// index after that. Recovered is false when Since is not an id of the
// current epoch, is ahead of the log, when records after it are no
// longer retained, or when more than Limit messages matched (the newest
// Limit are returned). A Limit of zero or less returns everything.
func (b *Broker) History(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
	epoch, since, _, ok, lost, err := b.historyFrom(ctx, req.Since)
	if err != nil || !ok {
		return core.HistoryResult{}, err
	}
	envs, floor, res := b.index.lookup(epoch, since, req.Channels)
	switch res {
	case ahead, otherEpoch:
		return core.HistoryResult{}, nil
	case tooOld:
		b.fromLog.Add(1)
		older, recovered, err := b.readLog(ctx, epoch, since, floor, req.Channels, req.Limit)
		if err != nil {
			return core.HistoryResult{}, err
		}
		if !recovered {
			return limit(append(older, envs...), req.Limit, false), nil
		}
		envs = append(older, envs...)
	default:
		b.fromIndex.Add(1)
	}
	return limit(envs, req.Limit, !lost), nil
}

// historyFrom parses since and catches this node's reader up with the
// log's head, so that everything appended before the call is in the
// index. ok is false, with a nil error, when since is unparseable or
// ahead of the log: nothing can be recovered from it. A position of
// another epoch (the log it was in is gone: lost or recreated) reads the
// current log from its start, every record of which came after it, and
// is not recovered (lost): what the old log held after it is gone.
//
// head is the log's head the read is caught up with: what a reader that
// found nothing continues from.
func (b *Broker) historyFrom(ctx context.Context, since string) (epoch string, pos, head Pos, ok, lost bool, err error) {
	if b.isClosed() {
		return "", Pos{}, Pos{}, false, false, broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", Pos{}, Pos{}, false, false, err
	}
	epoch, pos, ok = ParseID(since)
	if !ok {
		return "", Pos{}, Pos{}, false, false, nil
	}
	headEpoch, head, err := b.heads.get(ctx)
	if err != nil {
		return "", Pos{}, Pos{}, false, false, err
	}
	if headEpoch != epoch {
		epoch, pos, lost = headEpoch, Pos{}, true
	} else if head.Less(pos) {
		return "", Pos{}, Pos{}, false, false, nil // an id never issued
	}
	if err := b.WaitDelivered(ctx, FormatID(headEpoch, head)); err != nil {
		return "", Pos{}, Pos{}, false, false, b.errorf("history: this node's reader lags the log: %w", err)
	}
	return epoch, pos, head, true, lost, nil
}

// limit keeps the newest n of envs (all when n <= 0); more than n is not
// recovered.
func limit(envs []*core.Envelope, n int, recovered bool) core.HistoryResult {
	if n > 0 && len(envs) > n {
		return core.HistoryResult{Envelopes: envs[len(envs)-n:], Recovered: false}
	}
	return core.HistoryResult{Envelopes: envs, Recovered: recovered}
}

// readLog reads the log after since up to floor, keeping channels'
// records, through a history read slot. What it reads of every channel
// also goes into the index below its floor (see index.backfill), so the
// resumes of a storm from positions older than the index (a node that
// has just started, say) read the log once between them, not once each.
func (b *Broker) readLog(ctx context.Context, epoch string, since, floor Pos, channels []string, limit int) ([]*core.Envelope, bool, error) {
	select {
	case b.reads <- struct{}{}:
		defer func() { <-b.reads }()
	case <-ctx.Done():
		return nil, false, b.errorf("history: waiting for a read slot: %w", ctx.Err())
	case <-b.closing:
		return nil, false, broker.ErrClosed
	}
	want := make(map[string]bool, len(channels))
	for _, ch := range channels {
		want[ch] = true
	}
	var out []*core.Envelope
	seen := make(map[string]bool) // keys read in this range: repeats dropped, as the reader does
	dropped := false
	fill := b.index.filler()
	at := time.Now()
	after := since
	done := func() ([]*core.Envelope, bool, error) {
		if !dropped {
			fill.commit(b.index, epoch, since, after, time.Now())
		}
		return out, !dropped, nil
	}
	for {
		chunk, err := b.d.Range(ctx, after, b.cfg.ReadCount)
		b.logRead.Add(uint64(len(chunk.Records)))
		if err != nil {
			return nil, false, err
		}
		if chunk.Epoch != epoch {
			return nil, false, nil
		}
		if chunk.Trimmed {
			dropped = true // what is left is still returned, the newest last
		}
		for _, rec := range chunk.Records {
			if floor.Less(rec.Pos) {
				after = floor // nothing between the last record read and floor
				return done() // the index has the rest
			}
			after = rec.Pos
			env, ok := b.history(epoch, rec, seen, fill, at, want)
			if !ok {
				continue
			}
			out = append(out, env)
			if limit > 0 && len(out) > 2*limit {
				out = append(out[:0], out[len(out)-limit:]...)
				dropped = true // more than limit missed: not recovered
			}
		}
		if len(chunk.Records) < b.cfg.ReadCount || !after.Less(floor) {
			after = floor // nothing else up to floor: the range is complete
			return done()
		}
	}
}

// Head returns the id of the log's newest record, or "" for an empty
// log: every record appended after it returns comes after it.
func (b *Broker) Head(ctx context.Context) (string, error) {
	if b.isClosed() {
		return "", broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	epoch, pos, err := b.heads.get(ctx)
	if err != nil {
		return "", err
	}
	if pos.IsZero() {
		return "", nil
	}
	return FormatID(epoch, pos), nil
}

// After reports whether id comes after pos: ids of one epoch are ordered
// by their position in the log, across every channel, and epochs by
// when this node's reader was in them (every id of a log that was lost
// or recreated comes before every id of the log that replaced it). Ids
// of an epoch this node's reader has not been in cannot be compared.
//
// This is what keeps a resume in order across a lost log: the reader may
// still deliver the old log's tail while a resuming client is replayed
// the new log, and those deliveries are dropped at the seam (the client
// was told recovered:false) rather than sent after the new log's
// messages.
func (b *Broker) After(id, pos string) (after, ok bool) {
	ea, a, okA := ParseID(id)
	ep, p, okP := ParseID(pos)
	if !okA || !okP {
		return false, false
	}
	if ea == ep {
		return p.Less(a), true
	}
	order, ok := b.progress.epochOrder(ea, ep)
	return order > 0, ok
}

// WaitDelivered waits until this node's reader has delivered id or a
// later record. It returns nil at once for an id of another epoch, an
// unparseable id, one the reader already passed, or one ahead of the log
// (it may never be delivered).
func (b *Broker) WaitDelivered(ctx context.Context, id string) error {
	epoch, pos, ok := ParseID(id)
	if !ok {
		return nil
	}
	if !b.progress.pending(position{epoch, pos}) {
		return nil
	}
	headEpoch, head, err := b.heads.get(ctx)
	if err != nil {
		return err
	}
	if headEpoch != epoch || head.Less(pos) {
		return nil
	}
	return b.waitReader(ctx, position{epoch, pos})
}

// waitReader waits until the reader has delivered want (nil at once
// before Start and after the reader stopped).
func (b *Broker) waitReader(ctx context.Context, want position) error {
	b.mu.Lock()
	running := b.running
	b.mu.Unlock()
	if running == nil {
		return nil
	}
	return b.progress.wait(ctx, want, running)
}

// Sync waits until this node has delivered every record the log held
// when Sync was called, or ctx ends.
func (b *Broker) Sync(ctx context.Context) error {
	epoch, head, err := b.heads.get(ctx)
	if err != nil {
		return err
	}
	return b.waitReader(ctx, position{epoch, head})
}

// Healthy returns nil while the reader reads the log, and an error
// wrapping the driver's unavailable error while it cannot (it retries
// with backoff). After Close it returns broker.ErrClosed. No I/O.
func (b *Broker) Healthy() error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	return b.health.get()
}

// Epoch returns the epoch of the ids the reader currently issues.
func (b *Broker) Epoch() string { return b.progress.get().epoch }

// Stats are counters and gauges of the engine, for metrics and tests.
type Stats struct {
	IndexEntries int   // entries in the resume index now
	IndexBytes   int64 // their estimated bytes
	// HistoryFromIndex and HistoryFromLog count History and
	// HistoryPage calls answered from the index alone, and those that
	// had to read the log (a position older than the index).
	HistoryFromIndex, HistoryFromLog uint64
	// LogRecordsRead counts the records History and HistoryPage read
	// from the log; IndexEntriesRead the index entries they took.
	LogRecordsRead, IndexEntriesRead uint64
}

// Stats reports the engine's counters.
func (b *Broker) Stats() Stats {
	n, by, _, _ := b.index.stats()
	return Stats{IndexEntries: n, IndexBytes: by,
		HistoryFromIndex: b.fromIndex.Load(), HistoryFromLog: b.fromLog.Load(),
		LogRecordsRead: b.logRead.Load(), IndexEntriesRead: b.index.read.Load()}
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close stops the reader and the committer, fails waiting publishes with
// broker.ErrClosed and closes the driver (which interrupts a blocked
// Read). It waits for the loops or ctx. Idempotent.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	stop, running := b.stop, b.running
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
	b.endLife()
	b.heads.close()
	err := b.d.Close()
	if running != nil {
		select {
		case <-running:
		case <-ctx.Done():
			return b.errorf("close: reader still running: %w", ctx.Err())
		}
	}
	if err != nil {
		return b.errorf("close: %w", err)
	}
	return nil
}
