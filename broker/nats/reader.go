package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/nats/internal/ids"
	"github.com/switchboard-dev/switchboard/core"
)

// reader consumes the whole stream through its own ephemeral consumer,
// created from an exact stream sequence, and delivers each message, in
// sequence order, on one goroutine. When the consumer fails (missed
// heartbeats, a server restart, the stream deleted) the reader checks the
// stream's epoch and creates a new consumer from the sequence after the
// last one it delivered, so nothing is skipped or delivered twice.
type reader struct {
	b       *Broker
	deliver func(core.Delivery)
	epoch   ids.Epoch
	next    uint64 // the stream sequence expected next

	nudged chan struct{} // buffered(1): recreate the consumer now

	mu     sync.Mutex
	cancel context.CancelFunc // ends the consumer in use
}

func (r *reader) run(ctx context.Context) {
	wait := r.b.cfg.ReconnectWait
	for ctx.Err() == nil {
		err := r.consume(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNudged) {
			wait = r.b.cfg.ReconnectWait
			continue
		}
		r.b.log.Debug("nats reader: consumer ended; recreating it", "next", r.next, "err", err)
		pause := r.b.cfg.ReconnectWait // a consumer that worked: recreate it soon
		if errors.Is(err, errConsumerLost) {
			wait = r.b.cfg.ReconnectWait
		} else {
			// One that could not be set up: report it, and back off.
			r.b.health.readerFailed(err)
			pause = wait
			wait = min(2*wait, max(maxReaderBackoff, r.b.cfg.ReconnectWait))
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.nudged:
			wait = r.b.cfg.ReconnectWait
		case <-t.C:
		}
		t.Stop()
	}
}

var (
	errNudged       = errors.New("nudged")
	errConsumerLost = errors.New("consumer lost")
)

// nudge makes the reader recreate its consumer now, as after a reconnect
// (the server may have restarted, losing the consumer or, with memory
// storage, the stream).
func (r *reader) nudge() {
	select {
	case r.nudged <- struct{}{}:
	default:
	}
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
}

// consume (re)creates the consumer from r.next and delivers until it
// fails. An error wrapping errConsumerLost means the consumer worked and
// then ended (recreate at once); any other, that it could not be set up.
func (r *reader) consume(ctx context.Context) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()
	select {
	case <-r.nudged: // this attempt is the fresh start a nudge asks for
	default:
	}
	defer func() {
		r.mu.Lock()
		r.cancel = nil
		r.mu.Unlock()
	}()

	b := r.b
	if !b.nc.IsConnected() {
		// Wait for the reconnect (it nudges) rather than spin.
		return fmt.Errorf("not connected (%s)", b.nc.Status())
	}
	if _, err := r.checkEpoch(cctx); err != nil {
		return err
	}
	rctx, rcancel := context.WithTimeout(cctx, b.cfg.RequestTimeout)
	cons, err := b.js.CreateConsumer(rctx, b.cfg.Stream, jetstream.ConsumerConfig{
		Description:       "switchboard node reader",
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       r.next,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     b.all,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	rcancel()
	if err != nil {
		if cctx.Err() != nil && ctx.Err() == nil {
			return errNudged
		}
		return fmt.Errorf("create consumer from sequence %d: %w", r.next, err)
	}
	name := cons.CachedInfo().Name
	defer func() {
		if !b.nc.IsConnected() {
			return // the server drops it after InactiveThreshold
		}
		dctx, cancel := context.WithTimeout(context.Background(), b.cfg.RequestTimeout)
		defer cancel()
		_ = b.js.DeleteConsumer(dctx, b.cfg.Stream, name)
	}()
	// The stream may have been recreated between the epoch check and the
	// consumer's creation: the consumer would then start at an old
	// sequence of a new stream. Check once more.
	if changed, err := r.checkEpoch(cctx); err != nil {
		return err
	} else if changed {
		return fmt.Errorf("%w: the stream was recreated while the consumer was created", errConsumerLost)
	}

	it, err := cons.Messages(
		jetstream.PullMaxMessages(256),
		jetstream.PullHeartbeat(b.cfg.Heartbeat),
		jetstream.PullExpiry(10*b.cfg.Heartbeat),
		jetstream.WithMessagesErrOnMissingHeartbeat(true),
	)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	b.health.readerOK()
	var delivered uint64 // the consumer's delivery sequence
	for {
		m, err := it.Next(jetstream.NextContext(cctx))
		if err != nil {
			if cctx.Err() != nil && ctx.Err() == nil {
				return errNudged
			}
			return fmt.Errorf("%w: %w", errConsumerLost, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			b.log.Error("nats reader: message without metadata", "err", err)
			continue
		}
		if meta.Sequence.Consumer != delivered+1 {
			// A message went missing between the server and here (a slow
			// consumer drop): start again from the last one delivered.
			return fmt.Errorf("%w: delivery sequence %d after %d", errConsumerLost, meta.Sequence.Consumer, delivered)
		}
		delivered = meta.Sequence.Consumer
		seq := meta.Sequence.Stream
		if seq < r.next {
			continue // delivered already (a redelivery after a reset)
		}
		r.handle(m, seq)
	}
}

// checkEpoch asks for the stream's info (creating the stream if it is
// missing: deleted, or lost with a memory-storage server's restart; an
// existing stream's config is left alone, so nodes never fight over it)
// and,
// when its creation time changed, starts a new epoch from its first
// sequence. A stream that lost messages the reader had not delivered
// (limits reached during an outage) is read from its first sequence.
func (r *reader) checkEpoch(ctx context.Context) (changed bool, err error) {
	b := r.b
	cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	info, err := b.streamInfo(cctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		info, err = b.ensureStream(cctx)
	}
	if err != nil {
		return false, fmt.Errorf("stream info: %w", err)
	}
	if ep := ids.EpochOf(info.Created); ep != r.epoch {
		changed = true
		b.log.Warn("nats stream was recreated: a new epoch begins; resumes from older ids report recovered:false",
			"old_epoch", r.epoch.String(), "epoch", ep.String())
		r.epoch, r.next = ep, max(info.State.FirstSeq, 1)
		b.delivered.advance(ep, r.next)
	}
	if first := info.State.FirstSeq; first > r.next {
		b.log.Warn("nats stream limits removed messages this node had not delivered yet", "from", r.next, "first", first)
		r.next = first
		b.delivered.advance(r.epoch, r.next)
	}
	b.delivered.setLast(r.epoch, info.State.LastSeq)
	return changed, nil
}

// handle delivers one message, then marks it delivered and hands its id
// to the Publish waiting for it. A message that is not a Switchboard
// message is logged and skipped.
func (r *reader) handle(m jetstream.Msg, seq uint64) {
	d, uuid, err := r.b.decode(m, seq)
	var msgID string
	if err != nil {
		r.b.log.Error("dropping malformed nats message", "seq", seq, "subject", m.Subject(), "err", err)
	} else {
		msgID = ids.Format(r.epoch, seq)
		d.Envelope.ID = msgID
		r.deliver(d)
	}
	r.next = seq + 1
	r.b.delivered.advance(r.epoch, r.next)
	if err == nil {
		r.b.confirm.Resolve(uuid, msgID)
	}
}

// progress is how far the reader has delivered, with waiters for it to
// get somewhere.
type progress struct {
	mu      sync.Mutex
	epoch   ids.Epoch
	next    uint64 // every sequence below next has been delivered
	last    uint64 // the stream's last sequence as last seen
	waiters broker.Waitlist[uint64]
}

// advance records that every sequence of e below next has been
// delivered. A new epoch releases every waiter: their positions are gone.
func (p *progress) advance(e ids.Epoch, next uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e != p.epoch {
		p.epoch, p.next, p.last = e, next, next-1
		p.waiters.Release(nil)
		return
	}
	if next <= p.next {
		return
	}
	p.next = next
	p.last = max(p.last, next-1)
	p.waiters.Release(func(w uint64) bool { return w < next })
}

func (p *progress) setLast(e ids.Epoch, last uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e == p.epoch {
		p.last = max(p.last, last)
	}
}

func (p *progress) get() (e ids.Epoch, next, last uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch, p.next, p.last
}

// pending reports whether pos is of the current epoch and not delivered.
func (p *progress) pending(pos ids.Position) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pos.Epoch == p.epoch && pos.Seq >= p.next
}

// wait returns when pos has been delivered (or its epoch ended), when
// stopped is closed, or with ctx's error.
func (p *progress) wait(ctx context.Context, pos ids.Position, stopped <-chan struct{}) error {
	p.mu.Lock()
	if pos.Epoch != p.epoch || pos.Seq < p.next {
		p.mu.Unlock()
		return nil
	}
	ch := p.waiters.Park(pos.Seq)
	p.mu.Unlock()
	return p.waiters.Wait(ctx, &p.mu, ch, stopped)
}

// health is the broker's view of NATS, kept by the connection's handlers
// and the reader: down while the connection is (nats.go reconnects), or
// while the reader cannot set up a consumer. Each outage is logged once
// when it begins and once when it ends.
type health struct {
	b *Broker

	mu        sync.Mutex
	connErr   error // why the connection was lost; nil while connected
	readerErr error // why the reader cannot consume; nil while it does
	down      bool
}

func (h *health) disconnected(err error) {
	if err == nil {
		err = errors.New("connection lost")
	}
	h.mu.Lock()
	h.connErr = err
	h.mu.Unlock()
	h.check()
}

func (h *health) reconnected() {
	h.mu.Lock()
	h.connErr = nil
	h.mu.Unlock()
	h.b.mu.Lock()
	rd := h.b.rd
	h.b.mu.Unlock()
	if rd != nil {
		rd.nudge() // the server may have lost the consumer, or the stream
	}
	h.check()
}

func (h *health) readerFailed(err error) {
	h.mu.Lock()
	h.readerErr = err
	h.mu.Unlock()
	h.check()
}

func (h *health) readerOK() {
	h.mu.Lock()
	h.readerErr = nil
	h.mu.Unlock()
	h.check()
}

// check computes the state and logs a transition.
func (h *health) check() { _ = h.get() }

func (h *health) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var err error
	switch {
	case !h.b.nc.IsConnected():
		cause := h.connErr
		if cause == nil {
			cause = fmt.Errorf("not connected (%s)", h.b.nc.Status())
		}
		err = h.b.unavailable("connection", cause)
	case h.readerErr != nil:
		err = h.b.unavailable("reader", h.readerErr)
	}
	switch {
	case err != nil && !h.down:
		h.down = true
		h.b.log.Warn("nats unavailable; publishes fail and the node reconnects", "err", err)
	case err == nil && h.down:
		h.down = false
		h.b.log.Info("nats available again; the reader continues from its last delivered sequence")
	}
	return err
}
