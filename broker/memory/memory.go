package memory

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/core"
)

const topic = "switchboard"

// Config tunes the in-memory broker.
type Config struct {
	// HistorySize is how many messages each channel keeps for resume.
	// Negative disables history (every resume reports recovered:false).
	// Optional. Default: 1000.
	HistorySize int
	// HistoryTTL drops the history of a channel with no publication for
	// this long, bounding memory when rooms come and go. Negative keeps
	// history forever. Optional. Default: 10m.
	HistoryTTL time.Duration
}

func (c *Config) setDefaults() {
	if c.HistorySize == 0 {
		c.HistorySize = 1000
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = 10 * time.Minute
	}
}

// Broker is the in-memory core.Broker.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	pubsub *gochannel.GoChannel
	epoch  string

	mu        sync.Mutex
	seq       uint64
	rings     map[string]*ring
	watermark uint64 // highest seq of any ring dropped by TTL
	lastSweep time.Time
	consumer  *broker.Consumer
	closed    bool
}

var (
	_ core.Broker = (*Broker)(nil)
	_ core.Closer = (*Broker)(nil)
)

// New returns an in-memory broker.
func New(cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	var rnd [5]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("switchboard/broker/memory: epoch: %w", err)
	}
	return &Broker{
		cfg: cfg,
		log: logger,
		pubsub: gochannel.NewGoChannel(gochannel.Config{
			// Publish returns only after the hub took the message, so
			// delivery order is id order.
			BlockPublishUntilSubscriberAck: true,
		}, broker.WatermillLogger(logger)),
		epoch:     strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(rnd[:])),
		rings:     make(map[string]*ring),
		lastSweep: time.Now(),
	}, nil
}

// Epoch identifies this broker's log; it changes on every start.
func (b *Broker) Epoch() string { return b.epoch }

// Start subscribes the node to every publication.
func (b *Broker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	c, err := broker.Consume(ctx, b.pubsub, topic, deliver, b.log)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.consumer = c
	b.mu.Unlock()
	return nil
}

// Publish assigns the next id, records env in channel's history and
// delivers it.
func (b *Broker) Publish(ctx context.Context, channel string, env *core.Envelope) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	b.seq++
	env.ID = b.epoch + "-" + strconv.FormatUint(b.seq, 10)
	stored := *env
	now := time.Now()
	if b.cfg.HistorySize > 0 {
		r := b.rings[channel]
		if r == nil {
			r = &ring{buf: make([]entry, 0, min(b.cfg.HistorySize, 16)), max: b.cfg.HistorySize, evictedUpTo: b.watermark}
			b.rings[channel] = r
		}
		r.add(entry{b.seq, &stored})
		r.last = now
		b.sweep(now)
	}
	if err := b.pubsub.Publish(topic, broker.NewMessage(channel, &stored)); err != nil {
		return "", fmt.Errorf("switchboard/broker/memory: publish: %w", err)
	}
	return env.ID, nil
}

// sweep drops the history of idle channels, raising the watermark so a
// resume across the dropped range is honestly unrecoverable.
func (b *Broker) sweep(now time.Time) {
	ttl := b.cfg.HistoryTTL
	if ttl < 0 || now.Sub(b.lastSweep) < ttl/4 {
		return
	}
	b.lastSweep = now
	for ch, r := range b.rings {
		if now.Sub(r.last) > ttl {
			if s := r.lastSeq(); s > b.watermark {
				b.watermark = s
			}
			delete(b.rings, ch)
		}
	}
}

// Subscribe is a no-op: every node-level publication reaches the hub,
// which keeps what has local members.
func (b *Broker) Subscribe(context.Context, string) error { return nil }

// Unsubscribe is a no-op; see Subscribe.
func (b *Broker) Unsubscribe(context.Context, string) error { return nil }

// History returns what was published to req.Channels after req.Since.
func (b *Broker) History(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
	if err := ctx.Err(); err != nil {
		return core.HistoryResult{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	since, ok := b.parse(req.Since)
	if !ok || since > b.seq || b.cfg.HistorySize < 0 {
		return core.HistoryResult{Recovered: false}, nil
	}
	recovered := true
	var out []entry
	for _, ch := range req.Channels {
		r := b.rings[ch]
		if r == nil {
			if since < b.watermark {
				recovered = false
			}
			continue
		}
		if r.evictedUpTo > since {
			recovered = false
		}
		out = r.after(since, out)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	if req.Limit > 0 && len(out) > req.Limit {
		out = out[len(out)-req.Limit:]
		recovered = false
	}
	envs := make([]*core.Envelope, len(out))
	for i, e := range out {
		envs[i] = e.env
	}
	return core.HistoryResult{Envelopes: envs, Recovered: recovered}, nil
}

// parse reads an id of this epoch.
func (b *Broker) parse(id string) (uint64, bool) {
	epoch, seq, ok := strings.Cut(id, "-")
	if !ok || epoch != b.epoch {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return n, err == nil
}

// Close stops delivery. It is idempotent.
func (b *Broker) Close(context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	c := b.consumer
	b.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if err := b.pubsub.Close(); err != nil {
		return fmt.Errorf("switchboard/broker/memory: close: %w", err)
	}
	return nil
}

type entry struct {
	seq uint64
	env *core.Envelope
}

// ring is one channel's bounded history, oldest first from head.
type ring struct {
	buf         []entry
	head        int
	max         int
	evictedUpTo uint64 // highest seq no longer retained
	last        time.Time
}

func (r *ring) add(e entry) {
	if len(r.buf) < r.max {
		r.buf = append(r.buf, e)
		return
	}
	r.evictedUpTo = r.buf[r.head].seq
	r.buf[r.head] = e
	r.head = (r.head + 1) % len(r.buf)
}

func (r *ring) lastSeq() uint64 {
	if len(r.buf) == 0 {
		return 0
	}
	return r.buf[(r.head+len(r.buf)-1)%len(r.buf)].seq
}

func (r *ring) after(since uint64, out []entry) []entry {
	for i := range r.buf {
		e := r.buf[(r.head+i)%len(r.buf)]
		if e.seq > since {
			out = append(out, e)
		}
	}
	return out
}
