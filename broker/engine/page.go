package engine

import (
	"context"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/core"
)

// Interface guard.
var _ core.Broker = (*Broker)(nil)

// HistoryPage returns the oldest req.Limit messages of req.Channels after
// req.Since (see core.Broker), reading one more than the page to
// know whether more follow: at most Limit+1 entries of each channel from
// the index, and at most Limit+1 records from the log for a position
// older than the index. A page whose log read ends before the index
// (Limit+1 records read, fewer of them on req.Channels) has More, and
// Next is the last record read. Recovered is false as for History, but
// never because many messages follow: a page of a log that dropped
// records after Since starts at the oldest one retained.
func (b *Broker) HistoryPage(ctx context.Context, req core.HistoryRequest) (core.HistoryPage, error) {
	none := core.HistoryPage{Next: req.Since}
	epoch, since, head, ok, lost, err := b.historyFrom(ctx, req.Since)
	if err != nil {
		return core.HistoryPage{}, err
	}
	if !ok {
		return none, nil
	}
	limit := max(req.Limit, 1)
	envs, floor, res := b.index.first(epoch, since, req.Channels, limit+1)
	recovered := true
	switch res {
	case ahead, otherEpoch:
		return none, nil
	case tooOld:
		b.fromLog.Add(1)
		lp, err := b.readPage(ctx, epoch, since, floor, req.Channels, limit+1)
		switch {
		case err != nil:
			return core.HistoryPage{}, err
		case lp.lost:
			return none, nil
		case !lp.complete && len(lp.envs) <= limit:
			// The read stopped short of the index: this is the page, and
			// the next one starts after the last record read.
			return core.HistoryPage{Envelopes: lp.envs, Recovered: lp.recovered && !lost, More: true, Next: FormatID(epoch, lp.end)}, nil
		case !lp.complete:
			envs = lp.envs
		default:
			envs = append(lp.envs, envs...)
		}
		recovered = lp.recovered
	default:
		b.fromIndex.Add(1)
	}
	page := core.HistoryPage{Envelopes: envs, Recovered: recovered && !lost, Next: req.Since}
	if len(envs) > limit {
		page.Envelopes, page.More = envs[:limit], true
	}
	if k := len(page.Envelopes); k > 0 {
		page.Next = page.Envelopes[k-1].ID
	} else if lost && !page.More {
		// Nothing for these channels in the new log so far: continue
		// from the head this read caught up with, not from the lost
		// position (which would be lost again) nor from a later head
		// (which would skip what came in between).
		page.Next = FormatID(epoch, head)
	}
	return page, nil
}

// logPage is what readPage read.
type logPage struct {
	envs      []*core.Envelope
	end       Pos  // the last position read through
	complete  bool // the read got to the floor: the index has what follows
	recovered bool // false: records after since are no longer retained
	lost      bool // the log is of another epoch now
}

// readPage reads the log after since up to floor for the first want
// records of channels, reading at most want records in all, through a
// history read slot. A read that gets to floor extends the index below
// its floor with what it read, as readLog does.
func (b *Broker) readPage(ctx context.Context, epoch string, since, floor Pos, channels []string, want int) (logPage, error) {
	select {
	case b.reads <- struct{}{}:
		defer func() { <-b.reads }()
	case <-ctx.Done():
		return logPage{}, b.errorf("history: waiting for a read slot: %w", ctx.Err())
	case <-b.closing:
		return logPage{}, broker.ErrClosed
	}
	wanted := make(map[string]bool, len(channels))
	for _, ch := range channels {
		wanted[ch] = true
	}
	lp := logPage{end: since, recovered: true}
	seen := make(map[string]bool)
	fill := b.index.filler()
	at := time.Now()
	for read := 0; read < want; {
		n := min(b.cfg.ReadCount, want-read)
		chunk, err := b.d.Range(ctx, lp.end, n)
		b.logRead.Add(uint64(len(chunk.Records)))
		if err != nil {
			return logPage{}, err
		}
		if chunk.Epoch != epoch {
			return logPage{lost: true}, nil
		}
		if chunk.Trimmed {
			lp.recovered = false // the page starts at what is left
		}
		past := false // a record after floor: the index has the rest
		for _, rec := range chunk.Records {
			if floor.Less(rec.Pos) {
				past = true
				break
			}
			read++
			lp.end = rec.Pos
			env, ok := b.history(epoch, rec, seen, fill, at, wanted)
			if !ok {
				continue
			}
			lp.envs = append(lp.envs, env)
			if len(lp.envs) == want {
				return lp, nil // the page is full, and one more tells that more follow
			}
		}
		if past || len(chunk.Records) < n || !lp.end.Less(floor) {
			lp.end, lp.complete = floor, true // nothing else up to floor
			if lp.recovered {
				fill.commit(b.index, epoch, since, floor, time.Now())
			}
			return lp, nil
		}
	}
	return lp, nil
}

// decode returns the delivery of a record History read, with its id set,
// or false for one to skip: not a message, or (on a log that does not
// decide keys itself) a repeat of a key that an earlier record carried,
// in this read (seen) or as the reader knows it. The reader skipped the
// same records, so a history answers what live delivery did.
func (b *Broker) decode(epoch string, rec Record, seen map[string]bool) (core.Delivery, bool) {
	if rec.Err != nil {
		return core.Delivery{}, false
	}
	d, err := broker.ParseMessage(rec.Msg)
	if err != nil {
		return core.Delivery{}, false
	}
	id := FormatID(epoch, rec.Pos)
	if k := rec.Msg.Metadata.Get(MetadataKey); k != "" && !b.d.KeysInLog() {
		if seen[k] {
			return core.Delivery{}, false
		}
		seen[k] = true
		if first, ok := b.keys.Get(k, time.Now()); ok && first.ID != id {
			if fe, fp, ok := ParseID(first.ID); ok && fe == epoch && fp.Less(rec.Pos) {
				return core.Delivery{}, false
			}
		}
	}
	d.Envelope.ID = id
	return d, true
}

// history takes one record of a history read of the log: it decodes it
// (see decode), backfills the index with it, and returns its envelope
// when its channel is one of wanted.
func (b *Broker) history(epoch string, rec Record, seen map[string]bool, fill *filler, at time.Time, wanted map[string]bool) (*core.Envelope, bool) {
	d, ok := b.decode(epoch, rec, seen)
	if !ok {
		return nil, false
	}
	fill.add(d.Channel, rec.Pos, d.Envelope, recordSize(rec), at)
	return d.Envelope, wanted[d.Channel]
}

// recordSize is a record's size for the index budget.
func recordSize(rec Record) int {
	if rec.Size > 0 {
		return rec.Size
	}
	if rec.Msg != nil {
		return len(rec.Msg.Payload)
	}
	return 0
}
