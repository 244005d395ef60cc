package engine

import (
	"context"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/core"
)

// reader is the node's one loop over the whole log: it delivers every
// record in order, indexes it, drops repeated keys, and advances the
// node's progress once per batch.
type reader struct {
	b       *Broker
	deliver func(core.Delivery)
	at      position // the last record read and delivered
}

func (r *reader) run(ctx context.Context) {
	b := r.b
	backoff := b.cfg.ReconnectBackoff
	for ctx.Err() == nil {
		err := r.once(ctx)
		if err == nil {
			backoff = b.cfg.ReconnectBackoff
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if b.health.down(err) {
			b.log.Error(b.d.Name()+" unreachable; reader retrying with backoff until it is back", "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, b.cfg.MaxReconnectBackoff)
	}
}

// once reads one batch and delivers it. An error leaves r.at where it
// was, so the batch is read again after the backoff.
func (r *reader) once(ctx context.Context) error {
	b := r.b
	batch, err := b.d.Read(ctx, r.at.epoch, r.at.pos, b.cfg.ReadCount)
	if err != nil {
		return err
	}
	// Healthy before anything read is delivered: whoever sees a record
	// sees the node healthy.
	if b.health.up() {
		b.log.Info(b.d.Name()+" reachable again; reader resumes", "from", r.at.pos.String())
	}
	if batch.Epoch != r.at.epoch {
		b.log.Warn("the log was lost or recreated: new epoch, older ids resume with recovered:false", "epoch", batch.Epoch, "was", r.at.epoch)
		r.at = position{epoch: batch.Epoch}
		b.index.reset(batch.Epoch, Pos{})
		// The keys stay: a message this node delivered from the old log
		// was published, and a retry of it is still a duplicate.
		b.progress.advance(r.at) // releases the waiters of the old epoch
		// Whatever the old log held after what this node read is gone:
		// its live clients are told before the new log's first record.
		r.deliver(core.Delivery{Gap: true})
	}
	if len(batch.Records) == 0 {
		if batch.Gap && r.at.pos.Less(batch.Head) {
			// Everything up to the head went while this node was away:
			// waiters for those positions are released now rather than
			// at the next append.
			r.dropped(batch.Head)
			r.at.pos = batch.Head
			b.progress.advance(r.at)
		}
		return nil
	}
	if batch.Gap {
		r.dropped(batch.Records[0].Pos)
	}
	now := time.Now()
	for _, rec := range batch.Records {
		r.at.pos = rec.Pos
		r.record(rec, now)
	}
	b.progress.advance(r.at)
	return nil
}

// dropped reports records after r.at that the log deleted before this
// node read them, up to next: the index is complete from next on, and
// live clients are told.
func (r *reader) dropped(next Pos) {
	r.b.log.Warn("the log dropped records before this node read them (trimmed during an outage); they were not delivered live, and resumes from before them report recovered:false",
		"from", r.at.pos.String(), "next", next.String())
	r.b.index.reset(r.at.epoch, next)
	r.deliver(core.Delivery{Gap: true})
}

// record delivers and indexes one record, unless it is malformed or
// repeats a key.
func (r *reader) record(rec Record, now time.Time) {
	b := r.b
	if rec.Err != nil {
		b.log.Error("skipping a log entry that is not a Watermill message", "pos", rec.Pos.String(), "err", rec.Err)
		b.index.skip(rec.Pos)
		return
	}
	d, err := broker.ParseMessage(rec.Msg)
	if err != nil {
		b.log.Error("skipping malformed log entry", "pos", rec.Pos.String(), "err", err)
		b.index.skip(rec.Pos)
		return
	}
	id := FormatID(r.at.epoch, rec.Pos)
	if key := rec.Msg.Metadata.Get(MetadataKey); key != "" {
		first, isFirst, early := b.keys.See(key, rec.Msg.Metadata.Get(MetadataDigest), id, now)
		if early {
			b.log.Warn("more idempotency keys than DedupKeys within the window: the oldest are forgotten early, so the window is shorter than configured", "keys", b.cfg.DedupKeys, "window", b.cfg.DedupWindow)
		}
		if !isFirst && !b.d.KeysInLog() {
			b.log.Debug("dropping a repeated publish", "pos", rec.Pos.String(), "first", first.ID)
			b.index.skip(rec.Pos)
			return
		}
	}
	d.Envelope.ID = id
	size := rec.Size
	if size == 0 {
		size = len(rec.Msg.Payload)
	}
	b.index.add(d.Channel, rec.Pos, d.Envelope, size, now)
	r.deliver(d)
}
