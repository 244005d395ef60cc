package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/redis/internal/ids"
	"github.com/switchboard-dev/switchboard/core"
)

// reader is the node's one XREAD loop over the whole stream.
type reader struct {
	b       *Broker
	deliver func(core.Delivery)
	epoch   string      // epoch of the ids issued for what is read next
	last    ids.EntryID // last entry read and delivered
}

func (r *reader) run(ctx context.Context) {
	b := r.b
	backoff := b.cfg.ReconnectBackoff
	for ctx.Err() == nil {
		err := r.once(ctx)
		if err == nil {
			if b.health.up() {
				b.log.Info("redis reachable again; reader resumes", "from", r.last.String())
				r.checkGap(ctx)
			}
			backoff = b.cfg.ReconnectBackoff
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if b.health.down(b.unavailable("read", err)) {
			b.log.Error("redis unreachable; reader retrying with backoff until it is back", "addr", b.addr, "err", err)
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

// once reads one batch and delivers it. An error leaves r.last where it
// was, so the batch is read again after the backoff.
func (r *reader) once(ctx context.Context) error {
	b := r.b
	rctx, cancel := context.WithTimeout(ctx, b.cfg.Block+b.cfg.ReadTimeout)
	defer cancel()
	res, err := b.rd.XRead(rctx, &goredis.XReadArgs{
		Streams: []string{b.cfg.Stream, r.last.String()},
		Count:   b.cfg.ReadCount,
		Block:   b.cfg.Block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil // nothing new within Block
	}
	if err != nil {
		return err
	}
	var msgs []goredis.XMessage
	for _, s := range res {
		msgs = append(msgs, s.Messages...)
	}
	if len(msgs) == 0 {
		return nil
	}
	epoch, next, err := r.batchEpoch(rctx, msgs)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		id, ok := ids.ParseEntryID(m.ID)
		if !ok {
			b.log.Error("skipping stream entry with an unexpected ID", "entry", m.ID)
			continue
		}
		msgID := ids.Format(epoch, id)
		d, uuid, err := b.decode(m)
		if err != nil {
			b.log.Error("skipping malformed stream entry", "entry", m.ID, "err", err)
		} else {
			d.Envelope.ID = msgID
			r.deliver(d)
		}
		r.last = id
		b.delivered.advance(epoch, id)
		if uuid != "" {
			b.confirm.Resolve(uuid, msgID)
		}
	}
	if next != epoch {
		r.epoch = next
		b.delivered.advance(next, r.last) // releases waiters of the old epoch
		b.log.Warn("redis lost the stream (flushed or restarted empty): new epoch, older ids resume with recovered:false", "epoch", next)
	}
	return nil
}

// batchEpoch decides the epoch of a batch just read, and the epoch of the
// batches after it. The epoch key is read after the batch: if it still
// holds the reader's epoch, no flush happened since the reader learnt it
// and the batch belongs to it. Otherwise Redis lost the stream at some
// point; the batch belongs to the new log only if its last entry is still
// in the stream now.
func (r *reader) batchEpoch(ctx context.Context, msgs []goredis.XMessage) (this, next string, err error) {
	b := r.b
	cur, err := b.rd.Get(ctx, b.epochKey).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return "", "", err
	}
	if cur == r.epoch {
		return r.epoch, r.epoch, nil
	}
	last := msgs[len(msgs)-1]
	now, err := b.rd.XRangeN(ctx, b.cfg.Stream, last.ID, last.ID, 1).Result()
	if err != nil {
		return "", "", err
	}
	next, err = b.ensureEpoch(ctx)
	if err != nil {
		return "", "", err
	}
	key := "_watermill_message_uuid"
	if len(now) == 1 && fmt.Sprint(now[0].Values[key]) == fmt.Sprint(last.Values[key]) {
		return next, next, nil
	}
	return r.epoch, next, nil
}

// checkGap warns when the stream was trimmed past the reader's position
// while Redis was unreachable: XREAD then silently starts at the oldest
// entry, and this node's clients miss what lay between.
func (r *reader) checkGap(ctx context.Context) {
	b := r.b
	info, err := b.rd.XInfoStream(ctx, b.cfg.Stream).Result()
	if err != nil {
		return
	}
	if f, ok := ids.ParseEntryID(info.FirstEntry.ID); ok && r.last.Less(f) && r.last != (ids.EntryID{}) {
		b.log.Warn("the stream was trimmed past this node's position during the outage; some messages were not delivered live (resumes report recovered:false)",
			"from", r.last.String(), "oldest", info.FirstEntry.ID)
	}
}

// health is the reader's view of Redis.
type health struct {
	mu  sync.Mutex
	err error
}

// down records an outage; it reports whether this starts one.
func (h *health) down(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := h.err == nil
	h.err = err
	return first
}

// up records a successful read; it reports whether this ends an outage.
func (h *health) up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	was := h.err != nil
	h.err = nil
	return was
}

func (h *health) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// progress is the reader's delivered position, with waiters for it.
type progress struct {
	mu      sync.Mutex
	epoch   string
	pos     ids.EntryID
	waiters broker.Waitlist[ids.Position]
}

func (p *progress) get() (string, ids.EntryID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch, p.pos
}

// reached reports whether the reader is at or past want, or in another
// epoch (so want will never be delivered). Called with mu held.
func (p *progress) reached(want ids.Position) bool {
	return want.Epoch != p.epoch || !p.pos.Less(want.Entry)
}

// pending reports whether want is still to be delivered.
func (p *progress) pending(want ids.Position) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.reached(want)
}

func (p *progress) advance(epoch string, pos ids.EntryID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.epoch, p.pos = epoch, pos
	p.waiters.Release(p.reached)
}

// wait returns nil once want is reached or stopped is closed, or ctx's
// error.
func (p *progress) wait(ctx context.Context, want ids.Position, stopped <-chan struct{}) error {
	p.mu.Lock()
	if p.reached(want) {
		p.mu.Unlock()
		return nil
	}
	ch := p.waiters.Park(want)
	p.mu.Unlock()
	return p.waiters.Wait(ctx, &p.mu, ch, stopped)
}
