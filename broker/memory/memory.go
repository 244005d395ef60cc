package memory

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/core"
)

const topic = "switchboard"

// Limits enforced by Config.Validate.
const (
	MaxHistorySize    = 1_000_000
	MaxDeliveryBuffer = 1 << 20
)

// ErrInvalidConfig is wrapped by the error New returns for a Config that
// fails Validate.
var ErrInvalidConfig = errors.New("switchboard/broker/memory: invalid config")

// Config tunes the in-memory broker. Zero values mean the default and
// negative values disable a bound.
type Config struct {
	// HistorySize is how many messages each channel keeps for resume, at
	// most MaxHistorySize. Negative disables history (every resume reports
	// recovered:false).
	// Optional. Default: 1000.
	HistorySize int
	// HistoryTTL drops the history of a channel with no publication for
	// this long, bounding memory when rooms come and go. Negative keeps
	// history forever.
	// Optional. Default: 10m.
	HistoryTTL time.Duration
	// HistoryMaxBytes is the total bytes of retained history across all
	// channels; when exceeded, the least recently published channels'
	// histories are dropped whole (raising the watermark so resumes across
	// them honestly report recovered:false) until under budget. A single
	// channel over budget on its own loses its oldest messages instead,
	// keeping at least its newest. Bytes are the encoded envelope plus an
	// estimate of the bookkeeping around it. Negative disables the bound.
	// Optional. Default: 64 MiB.
	HistoryMaxBytes int64
	// DeliveryBuffer is how many publications wait, in order, between
	// Publish and the node's delivery callback (see
	// broker.ConsumeOptions.Buffer): Publish returns once its message is
	// buffered and waits only while the buffer is full. At most
	// MaxDeliveryBuffer. Negative makes every Publish wait for the callback.
	// Optional. Default: 1024.
	DeliveryBuffer int
	// DedupWindow is how long an idempotency key is remembered: a
	// publication with a key seen within it is not published again.
	// Optional. Default: broker.DefaultDedupWindow (5m).
	DedupWindow time.Duration
	// DedupKeys bounds the keys remembered; above it the oldest are
	// forgotten early (a keyed publish is never refused).
	// Optional. Default: broker.DefaultDedupKeys (500000).
	DedupKeys int
}

func (c *Config) setDefaults() {
	if c.HistorySize == 0 {
		c.HistorySize = 1000
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = 10 * time.Minute
	}
	if c.HistoryMaxBytes == 0 {
		c.HistoryMaxBytes = 64 << 20
	}
	if c.DeliveryBuffer == 0 {
		c.DeliveryBuffer = broker.DefaultConsumeBuffer
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = broker.DefaultDedupWindow
	}
	if c.DedupKeys <= 0 {
		c.DedupKeys = broker.DefaultDedupKeys
	}
}

// WithDefaults returns c with every zero field set to its default, as
// New applies them.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// Validate reports the first field New refuses, as a *core.ConfigError
// wrapping ErrInvalidConfig. Zero values are valid (they mean the
// default).
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return core.Invalid(ErrInvalidConfig, field, format, args...)
	}
	switch {
	case c.HistorySize > MaxHistorySize:
		return bad("HistorySize", "%d exceeds %d", c.HistorySize, MaxHistorySize)
	case c.DeliveryBuffer > MaxDeliveryBuffer:
		return bad("DeliveryBuffer", "%d exceeds %d", c.DeliveryBuffer, MaxDeliveryBuffer)
	}
	return nil
}

// Estimated bytes of bookkeeping, counted against HistoryMaxBytes on top of
// the encoded envelopes: per retained message (the decoded envelope
// struct and its ring slot) and per channel (map entry, list element, ring).
const (
	entryOverhead = 160
	ringOverhead  = 256
)

// Broker is the in-memory core.Broker.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	pubsub *gochannel.GoChannel
	epoch  string
	closed atomic.Bool

	// pubMu serializes Publish from id assignment until GoChannel has
	// buffered the message, so delivery order is id order. Taken before mu.
	pubMu sync.Mutex

	mu        sync.Mutex // guards what follows; never held while waiting
	seq       uint64
	rings     map[string]*ring
	lru       list.List // of *ring, least recently published first
	bytes     int64     // retained history, see HistoryMaxBytes
	watermark uint64    // highest seq of any ring dropped whole
	consumer  *broker.Consumer

	delivered progress
	keys      *broker.Keys
}

var _ core.Broker = (*Broker)(nil)

// New returns an in-memory broker, or an error wrapping ErrInvalidConfig.
func New(cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	var rnd [5]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("switchboard/broker/memory: epoch: %w", err)
	}
	return &Broker{
		cfg:  cfg,
		log:  logger,
		keys: broker.NewKeys(cfg.DedupWindow, cfg.DedupKeys),
		pubsub: gochannel.NewGoChannel(gochannel.Config{
			// Publish returns once the node's consumer has buffered the
			// message, so publications enter the buffer in id order.
			BlockPublishUntilSubscriberAck: true,
		}, broker.WatermillLogger(logger)),
		epoch: strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(rnd[:])),
		rings: make(map[string]*ring),
	}, nil
}

// Epoch identifies this broker's log; it changes on every start.
func (b *Broker) Epoch() string { return b.epoch }

// Start subscribes the node to every publication.
func (b *Broker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	c, err := broker.Consume(ctx, b.pubsub, topic, func(d core.Delivery) {
		deliver(d)
		if seq, ok := b.parse(d.Envelope.ID); ok {
			b.delivered.advance(seq)
		}
	}, b.log, broker.ConsumeOptions{Buffer: b.cfg.DeliveryBuffer})
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.consumer = c
	b.mu.Unlock()
	return nil
}

// Publish assigns the next id, records env in channel's history and hands
// it to the node's delivery buffer. It returns once the message is
// buffered, possibly before the delivery callback has run; it waits only
// while the buffer is full, and then ignores ctx.
func (b *Broker) Publish(ctx context.Context, p core.Publication) (core.Published, error) {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	if b.closed.Load() {
		return core.Published{}, broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return core.Published{}, err
	}
	now := time.Now()
	if p.Key != "" {
		if first, ok := b.keys.Get(p.Key, now); ok {
			if first.Digest != p.Digest {
				return core.Published{}, fmt.Errorf("switchboard/broker/memory: key %q: %w", p.Key, core.ErrKeyReused)
			}
			return core.Published{ID: first.ID, Duplicate: true}, nil
		}
	}
	channel, env := p.Channel, p.Envelope

	b.mu.Lock()
	b.seq++
	seq := b.seq
	env.ID = b.epoch + "-" + strconv.FormatUint(seq, 10)
	stored := *env
	msg := broker.NewMessage(channel, &stored)
	if b.cfg.HistorySize > 0 {
		b.record(channel, entry{seq: seq, env: &stored, size: int64(len(msg.Payload)) + entryOverhead}, now)
	}
	started := b.consumer != nil
	b.mu.Unlock()

	if err := b.pubsub.Publish(topic, msg); err != nil {
		if b.closed.Load() {
			return core.Published{}, broker.ErrClosed
		}
		return core.Published{}, fmt.Errorf("switchboard/broker/memory: publish: %w", err)
	}
	if p.Key != "" {
		if _, _, early := b.keys.See(p.Key, p.Digest, env.ID, now); early {
			b.log.Warn("more idempotency keys than DedupKeys within the window: the oldest are forgotten early", "keys", b.cfg.DedupKeys, "window", b.cfg.DedupWindow)
		}
	}
	if !started {
		b.delivered.advance(seq) // nobody to deliver to: History need not wait
	}
	return core.Published{ID: env.ID}, nil
}

// record appends e to channel's history, then enforces HistoryTTL and
// HistoryMaxBytes. Called with mu held.
func (b *Broker) record(channel string, e entry, now time.Time) {
	r := b.rings[channel]
	if r == nil {
		r = &ring{max: b.cfg.HistorySize, evictedUpTo: b.watermark, bytes: ringOverhead + 2*int64(len(channel)), channel: channel}
		r.elem = b.lru.PushBack(r)
		b.rings[channel] = r
		b.bytes += r.bytes
	} else {
		b.lru.MoveToBack(r.elem)
	}
	r.last = now
	freed := r.add(e)
	r.bytes += e.size - freed
	b.bytes += e.size - freed

	if ttl := b.cfg.HistoryTTL; ttl >= 0 {
		for f := b.lru.Front(); f != nil; f = b.lru.Front() {
			old := f.Value.(*ring)
			if now.Sub(old.last) <= ttl {
				break
			}
			b.drop(old)
		}
	}
	if limit := b.cfg.HistoryMaxBytes; limit >= 0 {
		for b.bytes > limit {
			if old := b.lru.Front().Value.(*ring); old != r {
				b.drop(old)
				continue
			}
			// Only this channel is left: trim it, keeping its newest.
			if r.n <= 1 {
				break
			}
			freed := r.dropOldest()
			r.bytes -= freed
			b.bytes -= freed
		}
	}
}

// drop forgets r's history, raising the watermark so a resume across the
// dropped range is honestly unrecoverable. Called with mu held.
func (b *Broker) drop(r *ring) {
	if s := r.lastSeq(); s > b.watermark {
		b.watermark = s
	}
	b.bytes -= r.bytes
	b.lru.Remove(r.elem)
	delete(b.rings, r.channel)
}

// History returns what was published to req.Channels after req.Since,
// at most req.Limit (the newest, with Recovered false, when more were
// missed). Before returning it waits until the newest of those messages
// has been delivered to the node, so a message is never both in a
// resuming session's history and still on its way to the hub (core's
// recovery dedups only what reached the hub meanwhile). That wait is at
// most one delivery buffer and is bounded by ctx.
func (b *Broker) History(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
	out, recovered, err := b.after(ctx, req)
	if err != nil {
		return core.HistoryResult{}, err
	}
	if req.Limit > 0 && len(out) > req.Limit {
		out = out[len(out)-req.Limit:]
		recovered = false
	}
	return core.HistoryResult{Envelopes: out, Recovered: recovered}, nil
}

// HistoryPage returns the oldest req.Limit messages after req.Since (see
// core.Broker): the memory broker holds its history in memory, so a page
// costs what History does.
func (b *Broker) HistoryPage(ctx context.Context, req core.HistoryRequest) (core.HistoryPage, error) {
	out, recovered, err := b.after(ctx, req)
	if err != nil {
		return core.HistoryPage{}, err
	}
	p := core.HistoryPage{Envelopes: out, Recovered: recovered, Next: req.Since}
	if req.Limit > 0 && len(out) > req.Limit {
		p.Envelopes, p.More = out[:req.Limit], true
	}
	if k := len(p.Envelopes); k > 0 {
		p.Next = p.Envelopes[k-1].ID
	}
	return p, nil
}

// after returns every retained message of req.Channels after req.Since,
// oldest first, once the newest has been delivered to the node, and
// whether none is missing.
func (b *Broker) after(ctx context.Context, req core.HistoryRequest) ([]*core.Envelope, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	b.mu.Lock()
	since, ok := b.parse(req.Since)
	if !ok || since > b.seq || b.cfg.HistorySize < 0 {
		b.mu.Unlock()
		return nil, false, nil
	}
	recovered := true
	var out []entry
	var newest uint64
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
		newest = max(newest, r.lastSeq())
		out = r.after(since, out)
	}
	var stopped <-chan struct{}
	if b.consumer != nil {
		stopped = b.consumer.Done()
	}
	b.mu.Unlock()

	if stopped != nil {
		if err := b.delivered.wait(ctx, newest, stopped); err != nil {
			return nil, false, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	envs := make([]*core.Envelope, len(out))
	for i, e := range out {
		envs[i] = e.env
	}
	return envs, recovered, nil
}

// Sync waits until every publication whose Publish returned before the
// call has been delivered to the node (or delivery stopped), or ctx ends.
// Publish returns once its message is buffered, so a caller that needs
// "published means the hub has it" (a resume that must not see an older
// message arrive live) calls Sync first.
func (b *Broker) Sync(ctx context.Context) error {
	b.mu.Lock()
	seq := b.seq
	var stopped <-chan struct{}
	if b.consumer != nil {
		stopped = b.consumer.Done()
	}
	b.mu.Unlock()
	if stopped == nil {
		return ctx.Err()
	}
	return b.delivered.wait(ctx, seq, stopped)
}

// WaitDelivered waits until the message id (and everything before it) has
// been delivered to the node. An id of another epoch returns at once.
func (b *Broker) WaitDelivered(ctx context.Context, id string) error {
	seq, ok := b.parse(id)
	if !ok {
		return nil
	}
	b.mu.Lock()
	if seq > b.seq { // beyond the log (a forged id): nothing will deliver it
		b.mu.Unlock()
		return nil
	}
	var stopped <-chan struct{}
	if b.consumer != nil {
		stopped = b.consumer.Done()
	}
	b.mu.Unlock()
	if stopped == nil {
		return ctx.Err()
	}
	return b.delivered.wait(ctx, seq, stopped)
}

// Head returns the id of the newest publication, on any channel; before
// the first one it is "<epoch>-0", from which History returns everything.
func (b *Broker) Head(ctx context.Context) (string, error) {
	if b.closed.Load() {
		return "", broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	b.mu.Lock()
	seq := b.seq
	b.mu.Unlock()
	return b.epoch + "-" + strconv.FormatUint(seq, 10), nil
}

// After reports whether id comes after pos: ids of one epoch are one
// sequence across every channel.
func (b *Broker) After(id, pos string) (after, ok bool) {
	a, okA := b.parse(id)
	p, okP := b.parse(pos)
	if !okA || !okP {
		return false, false
	}
	return a > p, true
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

// Healthy returns nil until Close, then broker.ErrClosed: the broker
// lives in the process and has no backend to lose. No I/O.
func (b *Broker) Healthy() error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return nil
}

// Close stops delivery, dropping publications still in the delivery
// buffer, and waits for a delivery callback in progress. It is idempotent.
func (b *Broker) Close(context.Context) error {
	if b.closed.Swap(true) {
		return nil
	}
	b.mu.Lock()
	c := b.consumer
	b.mu.Unlock()
	if c != nil {
		c.Close() // also releases a Publish waiting for buffer space
	}
	if err := b.pubsub.Close(); err != nil {
		return fmt.Errorf("switchboard/broker/memory: close: %w", err)
	}
	return nil
}

// progress is the highest seq whose delivery callback has returned, with
// waiters for it to reach a value.
type progress struct {
	mu      sync.Mutex
	done    uint64
	waiters broker.Waitlist[uint64]
}

func (p *progress) advance(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq <= p.done {
		return
	}
	p.done = seq
	p.waiters.Release(func(w uint64) bool { return w <= seq })
}

// wait returns when seq has been delivered or stopped is closed, or
// ctx's error.
func (p *progress) wait(ctx context.Context, seq uint64, stopped <-chan struct{}) error {
	p.mu.Lock()
	if seq <= p.done {
		p.mu.Unlock()
		return nil
	}
	ch := p.waiters.Park(seq)
	p.mu.Unlock()
	return p.waiters.Wait(ctx, &p.mu, ch, stopped)
}

type entry struct {
	seq  uint64
	env  *core.Envelope
	size int64 // counted against HistoryMaxBytes
}

// ring is one channel's bounded history: n entries, oldest at head, in a
// buffer that grows up to max.
type ring struct {
	buf         []entry
	head, n     int
	max         int
	evictedUpTo uint64 // highest seq no longer retained
	last        time.Time
	bytes       int64 // entries plus ringOverhead
	elem        *list.Element
	channel     string
}

// add appends e, returning the size of the entry it overwrote, if any.
func (r *ring) add(e entry) (freed int64) {
	switch {
	case r.n == r.max:
		old := r.buf[r.head]
		r.evictedUpTo = old.seq
		r.buf[r.head] = e
		r.head = (r.head + 1) % len(r.buf)
		return old.size
	case r.n == len(r.buf):
		if r.head != 0 { // unroll before growing
			buf := make([]entry, r.n, min(2*r.n+1, r.max))
			for i := range buf {
				buf[i] = r.buf[(r.head+i)%len(r.buf)]
			}
			r.buf, r.head = buf, 0
		}
		r.buf = append(r.buf, e)
	default:
		r.buf[(r.head+r.n)%len(r.buf)] = e
	}
	r.n++
	return 0
}

// dropOldest forgets the oldest entry and returns its size.
func (r *ring) dropOldest() int64 {
	old := r.buf[r.head]
	r.buf[r.head] = entry{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	r.evictedUpTo = old.seq
	return old.size
}

func (r *ring) lastSeq() uint64 {
	if r.n == 0 {
		return 0
	}
	return r.buf[(r.head+r.n-1)%len(r.buf)].seq
}

func (r *ring) after(since uint64, out []entry) []entry {
	for i := range r.n {
		if e := r.buf[(r.head+i)%len(r.buf)]; e.seq > since {
			out = append(out, e)
		}
	}
	return out
}
