package kafka

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/kafka/internal/ids"
	"github.com/switchboard-dev/switchboard/core"
)

// reader consumes the topic's partition with franz-go from an exact
// offset and delivers each record, in offset order, on one goroutine.
type reader struct {
	b       *Broker
	cl      *kgo.Client
	deliver func(core.Delivery)
	epoch   ids.Epoch
	next    int64 // the offset expected next
	lastErr string

	lastCheck time.Time

	mu         sync.Mutex
	nudged     bool               // check the topic ID after this poll
	cancelPoll context.CancelFunc // ends the poll in progress
}

// epochCheckInterval bounds how often fetch errors make the reader ask
// for the topic's ID (a nudge asks at once).
const epochCheckInterval = time.Second

func (r *reader) run(ctx context.Context) {
	for {
		r.mu.Lock()
		pctx, cancel := context.WithCancel(ctx)
		if r.nudged {
			cancel()
		}
		r.cancelPoll = cancel
		r.mu.Unlock()
		fs := r.cl.PollFetches(pctx)
		cancel()
		r.mu.Lock()
		nudged := r.nudged
		r.nudged, r.cancelPoll = false, nil
		r.mu.Unlock()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		topicErr := false
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			topicErr = true
			// franz-go retries by itself; say so once per distinct error.
			if msg := err.Error(); msg != r.lastErr {
				r.lastErr = msg
				r.b.log.Warn("kafka fetch error; retrying", "partition", p, "err", err)
			}
		})
		fs.EachTopic(func(ft kgo.FetchTopic) {
			if ft.Topic != r.b.cfg.Topic {
				return
			}
			for _, fp := range ft.Partitions {
				if fp.Partition != partition {
					continue
				}
				for _, rec := range fp.Records {
					r.handle(ctx, ids.Epoch(ft.TopicID), rec)
				}
				if fp.Err == nil {
					r.b.delivered.setHighWatermark(r.epoch, fp.HighWatermark)
				}
			}
		})
		if nudged || topicErr && time.Since(r.lastCheck) >= epochCheckInterval {
			r.checkEpoch(ctx)
		}
	}
}

// nudge makes the reader check the topic's ID now, as when the producer
// learned that the topic was recreated.
func (r *reader) nudge() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nudged = true
	if r.cancelPoll != nil {
		r.cancelPoll()
	}
}

// checkEpoch asks for the topic's ID. franz-go never follows a recreated
// topic by itself (it fails its fetches with UNKNOWN_TOPIC_ID): when the
// ID changed, the reader drops the old topic from its client and consumes
// the new one from its start, under the new epoch.
func (r *reader) checkEpoch(ctx context.Context) {
	r.lastCheck = time.Now()
	cctx, cancel := context.WithTimeout(ctx, r.b.cfg.RequestTimeout)
	defer cancel()
	ep, _, err := r.b.topicID(cctx)
	if err != nil || ep.IsZero() || ep == r.epoch {
		return
	}
	r.cl.PurgeTopicsFromClient(r.b.cfg.Topic)
	r.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{r.b.cfg.Topic: {partition: kgo.NewOffset().AtStart()}})
	r.switchEpoch(ep)
	r.next = 0
	r.b.delivered.advance(ep, 0)
}

// handle delivers one record, then marks it delivered and hands its id to
// the Publish waiting for it. A record that is not a Switchboard message
// is logged and skipped.
func (r *reader) handle(ctx context.Context, id ids.Epoch, rec *kgo.Record) {
	switch {
	case !id.IsZero() && id != r.epoch:
		r.switchEpoch(id)
	case id.IsZero() && rec.Offset < r.next:
		// Offsets went back and the fetch names no topic ID (Kafka before
		// 3.1): the topic may have been recreated; ask.
		if ep, _, err := r.b.topicID(ctx); err == nil && ep != r.epoch {
			r.switchEpoch(ep)
		}
	}
	d, uuid, err := r.b.decode(rec)
	var msgID string
	if err != nil {
		r.b.log.Error("dropping malformed kafka record", "offset", rec.Offset, "err", err)
	} else {
		msgID = ids.Format(r.epoch, rec.Offset)
		d.Envelope.ID = msgID
		r.deliver(d)
	}
	r.next = rec.Offset + 1
	r.b.delivered.advance(r.epoch, r.next)
	if err == nil {
		r.b.confirm.Resolve(uuid, msgID)
	}
}

func (r *reader) switchEpoch(id ids.Epoch) {
	r.b.log.Warn("kafka topic was recreated: a new epoch begins; resumes from older ids report recovered:false",
		"old_epoch", r.epoch.String(), "epoch", id.String())
	r.epoch = id
}

// progress is how far the reader has delivered, with waiters for it to
// get somewhere.
type progress struct {
	mu      sync.Mutex
	epoch   ids.Epoch
	next    int64 // every offset below next has been delivered
	hw      int64 // the high watermark the reader last saw
	waiters broker.Waitlist[int64]
}

// advance records that every offset of e below next has been delivered.
// A new epoch releases every waiter: their positions are gone.
func (p *progress) advance(e ids.Epoch, next int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e != p.epoch {
		p.epoch, p.next, p.hw = e, next, next
		p.waiters.Release(nil)
		return
	}
	if next <= p.next {
		return
	}
	p.next = next
	p.hw = max(p.hw, next)
	p.waiters.Release(func(w int64) bool { return w < next })
}

func (p *progress) setHighWatermark(e ids.Epoch, hw int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e == p.epoch {
		p.hw = max(p.hw, hw)
	}
}

func (p *progress) get() (e ids.Epoch, next, hw int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch, p.next, p.hw
}

// pending reports whether pos is of the current epoch and not delivered.
func (p *progress) pending(pos ids.Position) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pos.Epoch == p.epoch && pos.Offset >= p.next
}

// wait returns when pos has been delivered (or its epoch ended), when
// stopped is closed, or with ctx's error.
func (p *progress) wait(ctx context.Context, pos ids.Position, stopped <-chan struct{}) error {
	p.mu.Lock()
	if pos.Epoch != p.epoch || pos.Offset < p.next {
		p.mu.Unlock()
		return nil
	}
	ch := p.waiters.Park(pos.Offset)
	p.mu.Unlock()
	return p.waiters.Wait(ctx, &p.mu, ch, stopped)
}

// health is the reader's view of Kafka, kept by franz-go hooks on the
// reader's client: a completed fetch is proof of health (an idle reader
// completes one every fetchMaxWait); going staleAfter without one is an
// outage, logged once when first noticed and once when it ends.
type health struct {
	b          *Broker
	staleAfter time.Duration

	mu      sync.Mutex
	lastOK  time.Time
	lastErr error
	down    bool
}

var (
	_ kgo.HookBrokerConnect = (*health)(nil)
	_ kgo.HookBrokerE2E     = (*health)(nil)
)

func (h *health) init(b *Broker, staleAfter time.Duration) {
	h.b, h.staleAfter, h.lastOK = b, staleAfter, time.Now()
}

// OnBrokerConnect notes a failed dial.
func (h *health) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.fail(err)
	}
}

// OnBrokerE2E notes a fetch's outcome.
func (h *health) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key != int16(kmsg.Fetch) {
		return
	}
	if err := e2e.Err(); err != nil {
		h.fail(err)
		return
	}
	h.ok()
}

func (h *health) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastOK, h.lastErr = time.Now(), nil
	if h.down {
		h.down = false
		h.b.log.Info("kafka reachable again; the reader continues where it was")
	}
}

func (h *health) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err
	_ = h.checkLocked(time.Now())
}

func (h *health) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.checkLocked(time.Now())
}

func (h *health) checkLocked(now time.Time) error {
	stale := now.Sub(h.lastOK)
	if stale <= h.staleAfter {
		return nil
	}
	cause := h.lastErr
	if cause == nil {
		cause = errors.New("no fetch completed")
	}
	err := h.b.unavailable("reader", &staleError{since: stale.Round(time.Millisecond), cause: cause})
	if !h.down {
		h.down = true
		h.b.log.Warn("kafka unreachable; publishes fail and the reader retries", "err", err)
	}
	return err
}

type staleError struct {
	since time.Duration
	cause error
}

func (e *staleError) Error() string {
	return "no fetch for " + e.since.String() + ": " + e.cause.Error()
}
func (e *staleError) Unwrap() error { return e.cause }
