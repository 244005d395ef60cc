package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/redis/internal/ids"
	"github.com/switchboard-dev/switchboard/core"
)

// ErrUnavailable is wrapped by errors caused by Redis being unreachable:
// from New when Redis cannot be reached at start, from Publish and History
// during an outage, and from Healthy while the reader cannot read.
var ErrUnavailable = errors.New("switchboard/broker/redis: unavailable")

// historyChunk is how many entries one History round trip reads.
const historyChunk = 1000

// Broker is the Redis Streams core.Broker. Create it with New.
type Broker struct {
	cfg      Config
	log      *slog.Logger
	addr     string
	epochKey string

	pub       *goredis.Client // XADD through publisher; never retried
	rd        *goredis.Client // XREAD loop, History, epoch, XINFO
	publisher *redisstream.Publisher
	codec     redisstream.DefaultMarshallerUnmarshaller

	// pubMu is held shared around each XADD and exclusively by Close, so
	// no XADD runs on a closed client.
	pubMu  sync.RWMutex
	closed bool // guarded by pubMu

	mu      sync.Mutex // guards what follows
	started bool
	confirm broker.Confirmations // watermill UUID → id, for Publish
	stop    context.CancelFunc   // ends the reader
	done    chan struct{}        // closed when the reader has returned
	closing chan struct{}        // closed by Close

	health    health
	delivered progress
}

// Interface guards.
var _ core.Broker = (*Broker)(nil)

// New validates cfg, connects to Redis and PINGs it. An unreachable Redis
// is an error wrapping ErrUnavailable; a bad cfg one wrapping
// ErrInvalidConfig. Call Start to begin delivering, and Close to release
// the connections.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	opt, err := goredis.ParseURL(cfg.URL)
	if err != nil { // Validate parsed it already
		return nil, fmt.Errorf("%w: URL: %w", ErrInvalidConfig, err)
	}
	b := &Broker{
		cfg:      cfg,
		log:      logger.With("broker", "redis", "stream", cfg.Stream),
		addr:     opt.Addr,
		epochKey: cfg.Stream + ":epoch",
		closing:  make(chan struct{}),
	}
	b.pub = goredis.NewClient(clientOptions(*opt, cfg, false))
	b.rd = goredis.NewClient(clientOptions(*opt, cfg, true))
	b.publisher, err = redisstream.NewPublisher(redisstream.PublisherConfig{
		Client:     b.pub,
		Marshaller: redisstream.DefaultMarshallerUnmarshaller{},
		Maxlens:    map[string]int64{cfg.Stream: max(cfg.MaxLen, 0)}, // 0: no MAXLEN
	}, broker.WatermillLogger(logger))
	if err != nil {
		b.closeClients()
		return nil, fmt.Errorf("switchboard/broker/redis: publisher: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.ReadTimeout)
	defer cancel()
	for _, c := range []*goredis.Client{b.rd, b.pub} {
		if err := c.Ping(pctx).Err(); err != nil {
			b.closeClients()
			return nil, b.unreachable(err)
		}
	}
	return b, nil
}

// clientOptions are the go-redis settings, chosen deliberately (see
// docs/brokers.md): short dials, bounded reads and writes, deadlines from
// the caller's ctx, one dial retry per attempt (the command retry and the
// reader's backoff do the rest), and no retried XADD.
func clientOptions(opt goredis.Options, cfg Config, reader bool) *goredis.Options {
	opt.DialTimeout = cfg.DialTimeout
	opt.ReadTimeout = cfg.ReadTimeout
	opt.WriteTimeout = cfg.WriteTimeout
	opt.MinRetryBackoff = cfg.MinRetryBackoff
	opt.MaxRetryBackoff = cfg.MaxRetryBackoff
	opt.ContextTimeoutEnabled = true
	opt.DialerRetries = 1
	opt.DialerRetryTimeout = cfg.MinRetryBackoff
	if opt.DialerRetryTimeout <= 0 {
		opt.DialerRetryTimeout = time.Millisecond
	}
	opt.PoolSize = cfg.PoolSize
	opt.MaxRetries = cfg.MaxRetries
	if !reader {
		opt.MaxRetries = -1 // a retried XADD may append twice
	}
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if opt.ClientName == "" {
		opt.ClientName = "switchboard"
	}
	return &opt
}

// unreachable is the one-line error for a Redis that cannot be reached.
func (b *Broker) unreachable(err error) error {
	return &unavailableError{
		msg:   fmt.Sprintf("switchboard/broker/redis: cannot reach redis at %s: %v (is redis-server running? check --broker-url)", b.addr, err),
		cause: err,
	}
}

// unavailable wraps a command's failure during operation.
func (b *Broker) unavailable(op string, err error) error {
	return &unavailableError{msg: fmt.Sprintf("switchboard/broker/redis: %s: redis at %s: %v", op, b.addr, err), cause: err}
}

// unavailableError prints one line and matches both ErrUnavailable and
// its cause (a context error, a net.Error).
type unavailableError struct {
	msg   string
	cause error
}

func (e *unavailableError) Error() string   { return e.msg }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// Start pins the reader at the stream's last generated entry (so a
// restarted node replays nothing to live clients, and nothing published
// after Start returns is missed), reads or creates the epoch, and starts
// the reader. The reader runs until Close or until ctx ends.
func (b *Broker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.isClosed() {
		return broker.ErrClosed
	}
	if b.started {
		return errors.New("switchboard/broker/redis: Start called twice")
	}
	epoch, last, err := b.position(ctx)
	if err != nil {
		return err
	}
	b.delivered.advance(epoch, last)
	rctx, cancel := context.WithCancel(ctx)
	b.started = true
	b.stop = cancel
	b.done = make(chan struct{})
	r := &reader{b: b, deliver: deliver, epoch: epoch, last: last}
	go func() {
		defer close(b.done)
		defer cancel()
		r.run(rctx)
	}()
	b.log.Debug("reader started", "epoch", epoch, "from", last.String())
	return nil
}

// position atomically reads (creating if absent) the epoch and the
// stream's last generated entry ID ("0-0" without a stream).
func (b *Broker) position(ctx context.Context) (string, ids.EntryID, error) {
	candidate, err := ids.NewEpoch()
	if err != nil {
		return "", ids.EntryID{}, err
	}
	var get *goredis.StringCmd
	var info *goredis.XInfoStreamCmd
	_, _ = b.rd.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.SetNX(ctx, b.epochKey, candidate, 0)
		get = p.Get(ctx, b.epochKey)
		info = p.XInfoStream(ctx, b.cfg.Stream)
		return nil
	})
	if err := get.Err(); err != nil {
		return "", ids.EntryID{}, b.unavailable("read epoch", err)
	}
	epoch := get.Val()
	if !ids.ValidEpoch(epoch) {
		return "", ids.EntryID{}, fmt.Errorf("switchboard/broker/redis: key %q holds %q, not an epoch: delete it", b.epochKey, epoch)
	}
	last := ids.EntryID{}
	switch err := info.Err(); {
	case isNoSuchKey(err):
	case err != nil:
		return "", ids.EntryID{}, b.unavailable("XINFO STREAM", err)
	default:
		if last, err = mustEntryID(info.Val().LastGeneratedID); err != nil {
			return "", ids.EntryID{}, err
		}
	}
	return epoch, last, nil
}

// ensureEpoch returns the epoch, creating a new one if the key is gone.
func (b *Broker) ensureEpoch(ctx context.Context) (string, error) {
	candidate, err := ids.NewEpoch()
	if err != nil {
		return "", err
	}
	var get *goredis.StringCmd
	_, _ = b.rd.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.SetNX(ctx, b.epochKey, candidate, 0)
		get = p.Get(ctx, b.epochKey)
		return nil
	})
	if err := get.Err(); err != nil {
		return "", err
	}
	if e := get.Val(); ids.ValidEpoch(e) {
		return e, nil
	}
	return "", fmt.Errorf("key %q holds %q, not an epoch", b.epochKey, get.Val())
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

func mustEntryID(s string) (ids.EntryID, error) {
	e, ok := ids.ParseEntryID(s)
	if !ok {
		return ids.EntryID{}, fmt.Errorf("switchboard/broker/redis: unexpected stream entry ID %q", s)
	}
	return e, nil
}

// Publish appends env to the stream through watermill-redisstream's
// publisher (XADD MAXLEN ~ MaxLen) and returns once this node's reader has
// read the entry back, with its id (also set in env.ID). It fails
// promptly, wrapping ErrUnavailable, when Redis cannot take the message,
// and with ctx's error (also wrapping ErrUnavailable) if the reader does
// not read the entry back in time; in that case the message may still be
// delivered. XADD is never retried, so a message is never appended twice.
func (b *Broker) Publish(ctx context.Context, channel string, env *core.Envelope) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	env.ID = ""
	msg := broker.NewMessage(channel, env)
	msg.SetContext(ctx)

	b.mu.Lock()
	started, closing := b.started, b.closing
	b.mu.Unlock()
	if !started && !b.isClosed() {
		return "", errors.New("switchboard/broker/redis: Publish before Start")
	}
	confirmed, done := b.confirm.Expect(msg.UUID)
	defer done()

	b.pubMu.RLock()
	if b.closed {
		b.pubMu.RUnlock()
		return "", broker.ErrClosed
	}
	err := b.publisher.Publish(b.cfg.Stream, msg)
	b.pubMu.RUnlock()
	if err != nil {
		return "", b.unavailable("publish", err)
	}
	id, err := broker.AwaitConfirmation(ctx, confirmed, closing, "redis")
	if err == nil {
		env.ID = id
	}
	return id, err
}

// History reads the stream backwards from its end down to req.Since, in
// chunks, keeping the entries of req.Channels. Recovered is false when
// Since is not an id of the current epoch, is ahead of the stream, when
// an entry after Since was trimmed (MAXLEN) or deleted before it was read
// (the newest entries are still returned), or when more than Limit
// entries matched (the newest Limit are returned). A Limit of zero or
// less returns everything.
func (b *Broker) History(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
	if b.isClosed() {
		return core.HistoryResult{}, broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return core.HistoryResult{}, err
	}
	since, ok := ids.Parse(req.Since)
	if !ok {
		return core.HistoryResult{}, nil
	}
	want := make(map[string]bool, len(req.Channels))
	for _, ch := range req.Channels {
		want[ch] = true
	}
	var newestFirst []*core.Envelope
	result := func(recovered bool) (core.HistoryResult, error) {
		slices.Reverse(newestFirst)
		return core.HistoryResult{Envelopes: newestFirst, Recovered: recovered}, nil
	}
	floor := "(" + since.Entry.String()
	end := "+"
	for first := true; ; first = false {
		var get *goredis.StringCmd
		var info *goredis.XInfoStreamCmd
		var rng *goredis.XMessageSliceCmd
		// One transaction: the entries, the epoch and the trimming state
		// are one consistent snapshot.
		_, _ = b.rd.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			get = p.Get(ctx, b.epochKey)
			info = p.XInfoStream(ctx, b.cfg.Stream)
			rng = p.XRevRangeN(ctx, b.cfg.Stream, end, floor, historyChunk)
			return nil
		})
		if err := get.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return core.HistoryResult{}, b.unavailable("history", err)
		}
		if get.Val() != since.Epoch {
			// Another epoch (or the log was lost in between chunks).
			return core.HistoryResult{}, nil
		}
		if err := info.Err(); err != nil {
			if isNoSuchKey(err) {
				return core.HistoryResult{}, nil // the stream is gone
			}
			return core.HistoryResult{}, b.unavailable("history", err)
		}
		if err := rng.Err(); err != nil {
			return core.HistoryResult{}, b.unavailable("history", err)
		}
		st := info.Val()
		if first {
			last, err := mustEntryID(st.LastGeneratedID)
			if err != nil {
				return core.HistoryResult{}, err
			}
			if last.Less(since.Entry) {
				return core.HistoryResult{}, nil // not an id this stream issued
			}
		}
		msgs := rng.Val()
		for _, m := range msgs {
			d, _, err := b.decode(m)
			if err != nil || !want[d.Channel] {
				continue
			}
			d.Envelope.ID = since.Epoch + "-" + m.ID
			newestFirst = append(newestFirst, d.Envelope)
			if req.Limit > 0 && len(newestFirst) > req.Limit {
				newestFirst = newestFirst[:req.Limit]
				return result(false)
			}
		}
		if len(msgs) < historyChunk {
			// Reached since. Trimming removes the oldest entries first, so
			// nothing after since is missing unless the oldest entry left is
			// after since (conservative: since itself may have been the last
			// one trimmed) or an XDEL removed one after since.
			gap := false
			if st.FirstEntry.ID != "" {
				if f, ok := ids.ParseEntryID(st.FirstEntry.ID); ok && since.Entry.Less(f) {
					gap = true
				}
			}
			if d, ok := ids.ParseEntryID(st.MaxDeletedEntryID); ok && since.Entry.Less(d) {
				gap = true
			}
			return result(!gap)
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
}

// decode turns a stream entry into a delivery with the watermill
// message's UUID, using watermill-redisstream's own unmarshaller.
func (b *Broker) decode(m goredis.XMessage) (d core.Delivery, uuid string, err error) {
	defer func() {
		if r := recover(); r != nil { // the unmarshaller asserts field types
			err = fmt.Errorf("%w: entry %s: %v", broker.ErrMalformed, m.ID, r)
		}
	}()
	msg, err := b.codec.Unmarshal(m.Values)
	if err != nil {
		return d, "", fmt.Errorf("%w: entry %s: %w", broker.ErrMalformed, m.ID, err)
	}
	d, err = broker.ParseMessage(msg)
	return d, msg.UUID, err
}

// Head returns the id of the stream's last generated entry, read with the
// epoch in one transaction: every entry appended later has a larger ID.
// Without a stream (nothing was ever published, or it was deleted) or an
// epoch it returns "": History could not resume from such a position.
func (b *Broker) Head(ctx context.Context) (string, error) {
	if b.isClosed() {
		return "", broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var get *goredis.StringCmd
	var info *goredis.XInfoStreamCmd
	_, _ = b.rd.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		get = p.Get(ctx, b.epochKey)
		info = p.XInfoStream(ctx, b.cfg.Stream)
		return nil
	})
	switch err := get.Err(); {
	case errors.Is(err, goredis.Nil):
		return "", nil
	case err != nil:
		return "", b.unavailable("head", err)
	}
	epoch := get.Val()
	if !ids.ValidEpoch(epoch) {
		return "", nil // History refuses it too
	}
	switch err := info.Err(); {
	case isNoSuchKey(err):
		return "", nil
	case err != nil:
		return "", b.unavailable("head", err)
	}
	last, err := mustEntryID(info.Val().LastGeneratedID)
	if err != nil {
		return "", err
	}
	return ids.Format(epoch, last), nil
}

// After reports whether id comes after pos: ids of one epoch are ordered
// by their stream entry ID, across every channel.
func (b *Broker) After(id, pos string) (after, ok bool) {
	a, okA := ids.Parse(id)
	p, okP := ids.Parse(pos)
	if !okA || !okP || a.Epoch != p.Epoch {
		return false, false
	}
	return p.Entry.Less(a.Entry), true
}

// WaitDelivered waits until this node's reader has delivered the entry id
// or a later one. It returns nil at once for an id of another epoch, an
// unparseable id, one the reader already passed, or one ahead of the
// stream (it may never be delivered).
func (b *Broker) WaitDelivered(ctx context.Context, id string) error {
	p, ok := ids.Parse(id)
	if !ok {
		return nil
	}
	return b.waitPosition(ctx, p, true)
}

// Sync waits until this node has delivered every entry the stream held
// when Sync was called, or ctx ends.
func (b *Broker) Sync(ctx context.Context) error {
	last, err := b.lastGenerated(ctx)
	if err != nil {
		return err
	}
	epoch, _ := b.delivered.get()
	return b.waitPosition(ctx, ids.Position{Epoch: epoch, Entry: last}, false)
}

func (b *Broker) waitPosition(ctx context.Context, p ids.Position, checkAhead bool) error {
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	if done == nil {
		return nil // not started: nothing to deliver to
	}
	if !b.delivered.pending(p) {
		return nil
	}
	if checkAhead {
		last, err := b.lastGenerated(ctx)
		if err != nil {
			return err
		}
		if last.Less(p.Entry) {
			return nil
		}
	}
	return b.delivered.wait(ctx, p, done)
}

func (b *Broker) lastGenerated(ctx context.Context) (ids.EntryID, error) {
	info, err := b.rd.XInfoStream(ctx, b.cfg.Stream).Result()
	if isNoSuchKey(err) {
		return ids.EntryID{}, nil
	}
	if err != nil {
		return ids.EntryID{}, b.unavailable("XINFO STREAM", err)
	}
	return mustEntryID(info.LastGeneratedID)
}

// Healthy returns nil while the reader reads from Redis, and an error
// wrapping ErrUnavailable while it cannot (it retries with backoff). After
// Close it returns broker.ErrClosed. No I/O.
func (b *Broker) Healthy() error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	return b.health.get()
}

// Epoch returns the epoch of the ids the reader currently issues.
func (b *Broker) Epoch() string {
	e, _ := b.delivered.get()
	return e
}

func (b *Broker) isClosed() bool {
	b.pubMu.RLock()
	defer b.pubMu.RUnlock()
	return b.closed
}

// Close stops the reader, fails waiting Publish calls with
// broker.ErrClosed, and closes the publisher and both clients. It waits
// for the reader (at most one XREAD, which closing its client interrupts)
// or ctx. Idempotent.
func (b *Broker) Close(ctx context.Context) error {
	b.pubMu.Lock()
	if b.closed {
		b.pubMu.Unlock()
		return nil
	}
	b.closed = true
	b.pubMu.Unlock()

	b.mu.Lock()
	close(b.closing)
	stop, done := b.stop, b.done
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
	err := b.closeClients() // interrupts a blocked XREAD
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("switchboard/broker/redis: close: reader still running: %w", ctx.Err())
		}
	}
	return err
}

func (b *Broker) closeClients() error {
	var errs []error
	if b.publisher != nil {
		errs = append(errs, b.publisher.Close()) // closes b.pub
	} else {
		errs = append(errs, b.pub.Close())
	}
	errs = append(errs, b.rd.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("switchboard/broker/redis: close: %w", err)
	}
	return nil
}

// SetClientLogger sends go-redis's own log lines (one per failed dial
// during an outage, for instance) to l at debug level instead of stderr.
// go-redis has one logger per process, so this is process-wide: call it
// once at start-up. The broker reports outages itself, once per episode.
func SetClientLogger(l *slog.Logger) {
	goredis.SetLogger(clientLogger{l})
}

type clientLogger struct{ l *slog.Logger }

func (c clientLogger) Printf(ctx context.Context, format string, v ...any) {
	c.l.Log(ctx, slog.LevelDebug, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "go-redis")
}
