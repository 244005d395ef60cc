package engine

import (
	"context"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchboard-dev/switchboard/broker"
)

// request is one Publish waiting for the committer.
type request struct {
	msg   *message.Message
	state atomic.Int32 // queued, taken by the committer, or abandoned by the caller

	// Set by the committer before it closes done.
	done      chan struct{}
	err       error
	res       Appended
	epoch     string
	delivered <-chan struct{} // closed once the reader has passed the batch
}

const (
	queued int32 = iota
	taken
	abandoned
)

// commit is the group-commit loop: it takes every publish waiting (up
// to MaxBatch), appends them with one Append, and parks one waiter for
// the whole batch on the reader's progress.
func (b *Broker) commit(ctx context.Context) {
	batch := make([]*request, 0, b.cfg.MaxBatch)
	msgs := make([]*message.Message, 0, b.cfg.MaxBatch)
	for {
		batch, msgs = batch[:0], msgs[:0]
		select {
		case r := <-b.queue:
			batch = append(batch, r)
		case <-ctx.Done():
			b.drain()
			return
		}
	more:
		for len(batch) < b.cfg.MaxBatch {
			select {
			case r := <-b.queue:
				batch = append(batch, r)
			default:
				break more
			}
		}
		live := batch[:0]
		for _, r := range batch {
			if r.state.CompareAndSwap(queued, taken) {
				live = append(live, r)
				msgs = append(msgs, r.msg)
			}
		}
		if len(live) == 0 {
			continue
		}
		epoch, res, err := b.d.Append(ctx, msgs, b.cfg.DedupWindow)
		if err == nil && len(res) != len(live) {
			err = b.errorf("append returned %d results for %d messages", len(res), len(live))
		}
		if err != nil { // the driver's error names it already
			for _, r := range live {
				r.err = err
				close(r.done)
			}
			continue
		}
		var last Pos
		for _, a := range res {
			if a.Err == nil && last.Less(a.Pos) {
				last = a.Pos
			}
		}
		delivered := b.progress.park(position{epoch, last})
		for i, r := range live {
			r.res, r.epoch, r.delivered = res[i], epoch, delivered
			if res[i].Err != nil {
				r.err = b.errorf("publish: %w", res[i].Err)
			}
			close(r.done)
		}
	}
}

// drain answers every request still queued when the committer stops.
func (b *Broker) drain() {
	for {
		select {
		case r := <-b.queue:
			r.err = broker.ErrClosed
			close(r.done)
		default:
			return
		}
	}
}
