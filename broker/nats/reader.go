package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
)

// readBlock is how long one Read waits for a record when there is none.
const readBlock = time.Second

// tail is the reader's consumer: an ephemeral consumer of the whole
// stream from an exact sequence, pulled continuously on the read
// connection (with idle heartbeats) into msgs, from which Read takes
// batches. It lives across Reads while they continue where the last one
// ended; anything else (another epoch or position, a consumer error, a
// change of the connection) drops it, and the next Read creates a new
// one from the position it is asked for, so nothing is skipped or read
// twice.
type tail struct {
	cc    jetstream.ConsumeContext
	name  string
	epoch string
	gen   uint64 // driver.rdGen when it was created

	msgs    chan jetstream.Msg
	stopped chan struct{} // closed when dropped: releases the consume callback
	failed  chan struct{} // closed on the consumer's first error
	once    sync.Once
	err     error // why it failed; set before failed is closed

	// Used by Read alone.
	last  uint64        // the stream sequence of the last record returned
	dseq  uint64        // the consumer's delivery sequence of the last message taken
	first uint64        // the stream's first sequence as last seen: every sequence below is gone
	held  jetstream.Msg // taken from msgs, returned by the next Read
}

// Read returns the records after `after` in the stream of epoch, from
// the reader's consumer, waiting up to readBlock for the first one. The
// consumer is created (from after+1) when there is none that continues
// at `after`. When the stream is no longer epoch (deleted and created
// again, or gone, in which case Read creates it anew: see absence), the
// batch names the new epoch and carries no records: the next Read starts
// at the new stream's beginning. A stream the server reports missing but
// not known to be gone (a server restarted on its data that has not
// loaded it yet) is an error wrapping ErrUnavailable, like an outage:
// the engine reads again from `after`, skipping and repeating nothing.
// Gap is set when the stream's limits removed records after `after`
// before they were read (the consumer moved past them).
func (d *driver) Read(ctx context.Context, epoch string, after engine.Pos, max int) (engine.Batch, error) {
	t := d.currentTail()
	if t != nil && (t.epoch != epoch || t.last != after.Lo || t.gen != d.rdGen.Load() || t.isFailed()) {
		d.dropTail()
		t = nil
	}
	// The engine's health is its reader's: Read fails while any of the
	// connections is down, so Healthy reports an outage of the publishing
	// or history connection too, and recovery only once all are back.
	if err := d.connected("read"); err != nil {
		return engine.Batch{}, err
	}
	if t == nil {
		var cur string
		var err error
		t, cur, err = d.follow(ctx, epoch, after, max)
		if err != nil {
			return engine.Batch{}, err
		}
		if t == nil {
			return engine.Batch{Epoch: cur}, nil
		}
	}
	return d.take(ctx, t, max)
}

// follow creates the reader's consumer of epoch's stream from after+1.
// It returns a nil tail and the stream's epoch when that is not epoch.
func (d *driver) follow(ctx context.Context, epoch string, after engine.Pos, max int) (*tail, string, error) {
	gen := d.rdGen.Load() // a change from here on drops the new consumer
	ctx, done, err := d.rd.use(ctx)
	if err != nil {
		return nil, "", d.unavailable("read", err)
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	cc := d.consumerConfig(after, "switchboard node reader")
	cc.InactiveThreshold = time.Minute // if the delete at its end is lost
	cons, err := d.rd.js.CreateConsumer(ctx, d.cfg.Stream, cc)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Replaced (another epoch), gone (created anew: a new epoch), or
		// not loaded yet (unavailable: read again from after).
		_, cur, err := d.stream(ctx, d.rd.js, true)
		if err != nil {
			return nil, "", d.unavailable("read: stream info", cause(ctx, err))
		}
		return nil, cur, nil
	}
	if err != nil {
		return nil, "", d.unavailable(fmt.Sprintf("read: create a consumer from sequence %d", after.Lo+1), cause(ctx, err))
	}
	name := cons.CachedInfo().Name
	// The stream's info after the consumer's creation: if it is still
	// epoch's stream, it was all along, and the consumer reads it.
	s, cur, err := d.stream(ctx, d.rd.js, true)
	if err != nil || cur != epoch {
		d.deleteConsumer(d.rd, name)
		if err != nil {
			return nil, "", d.unavailable("read: stream info", cause(ctx, err))
		}
		return nil, cur, nil
	}
	t := &tail{
		name:    name,
		epoch:   epoch,
		gen:     gen,
		msgs:    make(chan jetstream.Msg, max),
		stopped: make(chan struct{}),
		failed:  make(chan struct{}),
		last:    after.Lo,
		first:   s.CachedInfo().State.FirstSeq,
	}
	t.cc, err = cons.Consume(t.handle,
		jetstream.PullMaxMessages(max),
		jetstream.PullHeartbeat(d.cfg.Heartbeat),
		jetstream.PullExpiry(10*d.cfg.Heartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { t.fail(err) }))
	if err != nil {
		d.deleteConsumer(d.rd, name)
		return nil, "", d.unavailable("read: consume", err)
	}
	d.mu.Lock()
	if d.closing.Load() {
		d.mu.Unlock()
		close(t.stopped)
		t.cc.Stop()
		return nil, "", broker.ErrClosed
	}
	d.tail = t
	d.mu.Unlock()
	return t, cur, nil
}

// handle is the consume callback: it hands m to Read, waiting while
// Read has not taken the batch before (the pull requests stop meanwhile:
// the server sends no more than PullMaxMessages ahead).
func (t *tail) handle(m jetstream.Msg) {
	select {
	case t.msgs <- m:
	case <-t.stopped:
	}
}

// fail marks the consumer failed (the consume goroutine reports its
// errors here); the next Read replaces it.
func (t *tail) fail(err error) {
	t.once.Do(func() {
		t.err = err
		close(t.failed)
	})
}

func (t *tail) isFailed() bool {
	select {
	case <-t.failed:
		return true
	default:
		return false
	}
}

// take returns the next records of t: the first within readBlock, then
// those already received, up to max.
func (d *driver) take(ctx context.Context, t *tail, max int) (engine.Batch, error) {
	batch := engine.Batch{Epoch: t.epoch}
	m := t.held
	t.held = nil
	if m == nil {
		timer := time.NewTimer(readBlock)
		defer timer.Stop()
		select {
		case m = <-t.msgs:
		case <-timer.C:
			return batch, nil
		case <-t.failed:
			d.log.Debug("nats reader: the consumer failed; recreating it", "from", t.last+1, "err", t.err)
			d.dropTail()
			return batch, nil
		case <-d.connEvent:
			if t.gen != d.rdGen.Load() {
				d.dropTail() // a new consumer on the next Read
			}
			if err := d.connected("read"); err != nil {
				return engine.Batch{}, err
			}
			return batch, nil
		case <-ctx.Done():
			return engine.Batch{}, ctx.Err()
		case <-d.closed:
			return engine.Batch{}, broker.ErrClosed
		}
	}
	for m != nil && len(batch.Records) < max {
		meta, err := m.Metadata()
		if err == nil && meta.Sequence.Consumer != t.dseq+1 {
			// A message went missing between the server and here (a
			// slow consumer drop): read again after the last one taken.
			err = fmt.Errorf("delivery %d after %d", meta.Sequence.Consumer, t.dseq)
		}
		if err != nil {
			t.fail(fmt.Errorf("the consumer's messages are out of sequence: %w", err))
			break
		}
		seq := meta.Sequence.Stream
		if seq > t.last+1 {
			// Other subjects' messages, or messages the limits removed
			// before they were read: the stream's first sequence tells.
			if t.first <= t.last+1 {
				first, err := d.firstSeq(ctx)
				if err != nil {
					t.held = m
					if len(batch.Records) == 0 {
						return engine.Batch{}, err
					}
					break
				}
				t.first = first
			}
			if t.first > t.last+1 {
				if len(batch.Records) > 0 {
					t.held = m // the gap starts the next batch
					break
				}
				batch.Gap = true
			}
		}
		t.dseq = meta.Sequence.Consumer
		batch.Records = append(batch.Records, d.record(m, seq))
		t.last = seq
		m = nil
		select {
		case m = <-t.msgs:
		default:
		}
	}
	if m != nil && t.held == nil && !t.isFailed() {
		t.held = m
	}
	return batch, nil
}

// firstSeq asks for the stream's first sequence on the read connection.
func (d *driver) firstSeq(ctx context.Context) (uint64, error) {
	ctx, done, err := d.rd.use(ctx)
	if err != nil {
		return 0, d.unavailable("read", err)
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	s, err := d.rd.js.Stream(ctx, d.cfg.Stream)
	if err != nil {
		return 0, d.unavailable("read: stream info", cause(ctx, err))
	}
	return s.CachedInfo().State.FirstSeq, nil
}

func (d *driver) currentTail() *tail {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tail
}

// dropTail stops the reader's consumer and asks the server to delete it.
func (d *driver) dropTail() {
	d.mu.Lock()
	t := d.tail
	d.tail = nil
	d.mu.Unlock()
	if t == nil {
		return
	}
	close(t.stopped)
	t.cc.Stop()
	d.deleteConsumer(d.rd, t.name)
}
