package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/nats/internal/ids"
	"github.com/switchboard-dev/switchboard/core"
)

// ErrUnavailable is wrapped by errors caused by NATS being unreachable:
// from New when no server can be reached at start (or JetStream is off),
// from Publish and History during an outage, and from Healthy while the
// connection is down or the reader cannot consume.
var ErrUnavailable = errors.New("switchboard/broker/nats: unavailable")

// historyChunk is the most messages one History fetch asks for.
const historyChunk = 512

// maxFilterSubjects bounds the subjects one History consumer filters on;
// a resume over more channels reads the whole range and filters here.
const maxFilterSubjects = 64

// Broker is the NATS JetStream core.Broker. Create it with New.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	addrs   string // the servers' host:port, for messages
	all     string // "<Subject>.>", what the stream captures
	nc      *natsio.Conn
	js      jetstream.JetStream
	publish *wnats.Publisher // watermill's JetStream publisher on nc
	codec   wnats.NATSMarshaler

	// pubMu is held shared by each Publish that starts a send and
	// exclusively by Close when it closes the connection; sends counts
	// the sends still running, which Close waits for.
	pubMu  sync.RWMutex
	sends  sync.WaitGroup
	closed atomic.Bool

	mu      sync.Mutex // guards what follows
	started bool
	confirm broker.Confirmations // watermill UUID → id, for Publish
	stop    context.CancelFunc   // ends the reader
	done    chan struct{}        // closed when the reader has returned
	rd      *reader
	closing chan struct{} // closed by Close

	health    health
	delivered progress
}

// Interface guards.
var _ core.Broker = (*Broker)(nil)

// New validates cfg, connects to NATS, creates the stream if it does not
// exist (or updates its subjects and limits to cfg) and sets up the
// publisher. No server reachable, or JetStream disabled, is an error
// wrapping ErrUnavailable; a bad cfg one wrapping ErrInvalidConfig. Call
// Start to begin delivering, and Close to release the connection.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	servers, err := ParseURL(cfg.URL)
	if err != nil { // Validate parsed it already
		return nil, err
	}
	b := &Broker{
		cfg:     cfg,
		log:     logger.With("broker", "nats", "stream", cfg.Stream),
		addrs:   hosts(servers),
		all:     cfg.Subject + ".>",
		closing: make(chan struct{}),
	}
	b.health.b = b
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < cfg.ConnectTimeout {
		cfg.ConnectTimeout = max(time.Until(deadline), time.Millisecond)
	}
	b.nc, err = natsio.Connect(strings.Join(servers, ","), b.options(cfg.ConnectTimeout)...)
	if err != nil {
		return nil, b.unreachable(err)
	}
	b.js, err = jetstream.New(b.nc, jetstream.WithDefaultTimeout(cfg.RequestTimeout))
	if err != nil {
		b.nc.Close()
		return nil, fmt.Errorf("switchboard/broker/nats: jetstream: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	if _, err := b.ensureStream(cctx); err != nil {
		b.nc.Close()
		return nil, err
	}
	b.publish, err = wnats.NewPublisherWithNatsConn(b.nc, wnats.PublisherPublishConfig{
		Marshaler:         &wnats.NATSMarshaler{},
		SubjectCalculator: wnats.DefaultSubjectCalculator,
		JetStream: wnats.JetStreamConfig{
			// Nats-Msg-Id = the watermill UUID: a publish nats.go retries
			// (no responders during a leader election) is not appended twice.
			TrackMsgId:     true,
			ConnectOptions: []natsio.JSOpt{natsio.MaxWait(cfg.RequestTimeout)},
			PublishOptions: []natsio.PubOpt{natsio.ExpectStream(cfg.Stream)},
		},
	}, broker.WatermillLogger(b.log))
	if err != nil {
		b.nc.Close()
		return nil, fmt.Errorf("switchboard/broker/nats: publisher: %w", err)
	}
	return b, nil
}

// options are the nats.go connection settings, chosen deliberately (see
// Config): bounded dials, frequent pings, reconnecting forever with
// jitter, no reconnect buffer (a publish during an outage fails at once
// instead of being appended late), and handlers that keep Healthy current
// and log each outage once.
func (b *Broker) options(connectTimeout time.Duration) []natsio.Option {
	cfg := b.cfg
	return []natsio.Option{
		natsio.Name(cfg.Name),
		natsio.Timeout(connectTimeout),
		natsio.PingInterval(cfg.PingInterval),
		natsio.MaxPingsOutstanding(2),
		natsio.ReconnectWait(cfg.ReconnectWait),
		natsio.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
		natsio.MaxReconnects(cfg.MaxReconnects),
		natsio.ReconnectBufSize(-1),
		natsio.NoCallbacksAfterClientClose(),
		natsio.DisconnectErrHandler(func(_ *natsio.Conn, err error) { b.health.disconnected(err) }),
		natsio.ReconnectHandler(func(*natsio.Conn) { b.health.reconnected() }),
		natsio.ClosedHandler(func(*natsio.Conn) {
			if !b.closed.Load() {
				b.log.Error("nats connection closed for good (MaxReconnects exhausted); the broker stays unavailable")
			}
		}),
		natsio.ErrorHandler(func(_ *natsio.Conn, _ *natsio.Subscription, err error) {
			b.log.Warn("nats asynchronous error", "err", err)
		}),
	}
}

// streamConfig is the stream this Config asks for.
func (b *Broker) streamConfig() jetstream.StreamConfig {
	cfg := b.cfg
	sc := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "Switchboard: every channel's messages, in one order",
		Subjects:    []string{b.all},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     max(cfg.MaxMsgs, -1),
		MaxBytes:    max(cfg.MaxBytes, -1),
		MaxAge:      max(cfg.MaxAge, 0),
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}
	if cfg.Storage == "memory" {
		sc.Storage = jetstream.MemoryStorage
	}
	if sc.MaxAge > 0 && sc.MaxAge < 2*time.Minute {
		sc.Duplicates = sc.MaxAge // the dedupe window may not exceed MaxAge
	}
	return sc
}

// ensureStream creates the stream if it is missing, or updates its
// subjects and limits to the Config's, and returns its info.
func (b *Broker) ensureStream(ctx context.Context) (*jetstream.StreamInfo, error) {
	want := b.streamConfig()
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another node won the race
			s, err = b.js.Stream(ctx, b.cfg.Stream)
		}
		if err == nil {
			b.log.Info("created stream", "subjects", b.all, "max_msgs", want.MaxMsgs, "max_age", want.MaxAge,
				"max_bytes", want.MaxBytes, "storage", want.Storage.String(), "replicas", want.Replicas)
		}
	}
	if err != nil {
		return nil, b.streamError(err)
	}
	info := s.CachedInfo()
	have := info.Config
	upd := have
	if !slices.Contains(have.Subjects, b.all) {
		upd.Subjects = append(slices.Clone(have.Subjects), b.all)
	}
	upd.MaxMsgs, upd.MaxBytes, upd.MaxAge, upd.Replicas = want.MaxMsgs, want.MaxBytes, want.MaxAge, want.Replicas
	if upd.MaxAge > 0 && upd.Duplicates > upd.MaxAge {
		upd.Duplicates = upd.MaxAge
	}
	if have.Storage != want.Storage {
		b.log.Warn("stream exists with another storage; keeping it", "storage", have.Storage.String(), "configured", want.Storage.String())
	}
	if !slices.Equal(upd.Subjects, have.Subjects) || upd.MaxMsgs != have.MaxMsgs || upd.MaxBytes != have.MaxBytes ||
		upd.MaxAge != have.MaxAge || upd.Replicas != have.Replicas || upd.Duplicates != have.Duplicates {
		s, err = b.js.UpdateStream(ctx, upd)
		if err != nil {
			return nil, b.streamError(fmt.Errorf("update to the configured limits: %w", err))
		}
		info = s.CachedInfo()
		b.log.Info("updated stream", "subjects", upd.Subjects, "max_msgs", upd.MaxMsgs, "max_age", upd.MaxAge,
			"max_bytes", upd.MaxBytes, "replicas", upd.Replicas)
	}
	return info, nil
}

// streamError is ensureStream's error: ErrUnavailable with the usual hint
// when JetStream cannot be reached or is off, a plain one otherwise.
func (b *Broker) streamError(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, natsio.ErrNoResponders):
		return &unavailableError{
			msg: fmt.Sprintf("switchboard/broker/nats: nats at %s answers but JetStream does not: %v (is nats-server running with JetStream, -js? check --broker-url)",
				b.addrs, oneLine(err)),
			cause: err,
		}
	case errors.As(err, &apiErr):
		return fmt.Errorf("switchboard/broker/nats: stream %q at %s: %w", b.cfg.Stream, b.addrs, err)
	default:
		return b.unreachable(err)
	}
}

// unreachable is the one-line error for NATS that cannot be used.
func (b *Broker) unreachable(err error) error {
	return &unavailableError{
		msg:   fmt.Sprintf("switchboard/broker/nats: cannot reach nats at %s: %v (is nats-server running with JetStream? check --broker-url)", b.addrs, oneLine(err)),
		cause: err,
	}
}

// unavailable wraps an operation's failure during an outage.
func (b *Broker) unavailable(op string, err error) error {
	return &unavailableError{msg: fmt.Sprintf("switchboard/broker/nats: %s: nats at %s: %v", op, b.addrs, oneLine(err)), cause: err}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// unavailableError prints one line and matches both ErrUnavailable and
// its cause (a context error, a nats.go error).
type unavailableError struct {
	msg   string
	cause error
}

func (e *unavailableError) Error() string   { return e.msg }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// subject is the subject channel's messages are published on: the
// channel in unpadded base64url is one token of [A-Za-z0-9_-], whatever
// the room name holds.
func (b *Broker) subject(channel string) string {
	return b.cfg.Subject + "." + base64.RawURLEncoding.EncodeToString([]byte(channel))
}

// Start pins the reader at the stream's last sequence + 1 (so a restarted
// node replays nothing to live clients, and nothing published after Start
// returns is missed), takes the stream's creation time as the epoch, and
// starts the reader. The reader runs until Close or until ctx ends.
func (b *Broker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if b.started {
		return errors.New("switchboard/broker/nats: Start called twice")
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	info, err := b.streamInfo(cctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) { // deleted since New
		info, err = b.ensureStream(cctx)
	}
	if err != nil {
		return b.unavailable("start: stream info", err)
	}
	ep, next := ids.EpochOf(info.Created), info.State.LastSeq+1
	b.delivered.advance(ep, next)
	rctx, rcancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, rcancel)
	b.started = true
	b.stop = func() { stop(); rcancel() }
	b.done = make(chan struct{})
	r := &reader{b: b, deliver: deliver, epoch: ep, next: next, nudged: make(chan struct{}, 1)}
	b.rd = r
	go func() {
		defer close(b.done)
		defer rcancel()
		r.run(rctx)
	}()
	b.log.Debug("reader started", "epoch", ep.String(), "from", next)
	return nil
}

// Publish appends env to the stream through watermill-nats's publisher
// and returns once this node's reader has read the message back, with its
// id (also set in env.ID). It fails at once with an error wrapping
// ErrUnavailable while the connection is down, and with one when
// JetStream does not ack within RequestTimeout or ctx ends first; in the
// latter cases the message may still be appended and delivered. A message
// is never appended twice (its watermill UUID is its Nats-Msg-Id).
func (b *Broker) Publish(ctx context.Context, p core.Publication) (core.Published, error) {
	id, err := b.publishOne(ctx, p.Channel, p.Envelope)
	return core.Published{ID: id}, err
}

func (b *Broker) publishOne(ctx context.Context, channel string, env *core.Envelope) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	env.ID = ""
	msg := broker.NewMessage(channel, env)

	b.mu.Lock()
	started, closing := b.started, b.closing
	b.mu.Unlock()
	if b.closed.Load() {
		return "", broker.ErrClosed
	}
	if !started {
		return "", errors.New("switchboard/broker/nats: Publish before Start")
	}
	confirmed, done := b.confirm.Expect(msg.UUID)
	defer done()
	if !b.nc.IsConnected() {
		return "", b.unavailable("publish", fmt.Errorf("not connected (%s)", b.nc.Status()))
	}

	// watermill's Publish takes no context: run it aside so Publish
	// honours ctx; it ends within RequestTimeout, and Close waits.
	sent := make(chan error, 1)
	b.pubMu.RLock()
	if b.closed.Load() {
		b.pubMu.RUnlock()
		return "", broker.ErrClosed
	}
	b.sends.Add(1)
	b.pubMu.RUnlock()
	go func() {
		defer b.sends.Done()
		sent <- b.publish.Publish(b.subject(channel), msg)
	}()
	select {
	case err := <-sent:
		if err != nil {
			if b.closed.Load() {
				return "", broker.ErrClosed
			}
			return "", b.unavailable("publish", err)
		}
	case <-closing:
		return "", broker.ErrClosed
	case <-ctx.Done():
		return "", b.unavailable("publish", ctx.Err())
	}
	id, err := broker.AwaitConfirmation(ctx, confirmed, closing, "nats")
	if err == nil {
		env.ID = id
	}
	return id, err
}

// History reads the stream from req.Since up to its last sequence at the
// time of the call, through a short-lived consumer filtered on the
// subjects of req.Channels (so the server skips other channels' messages).
// Recovered is false when Since is not an id of the current stream
// (another epoch, unparseable, ahead of the stream), when messages after
// Since were removed by the stream's limits (what is left is returned),
// or when more than Limit messages matched (the newest Limit are
// returned). A Limit of zero or less returns everything.
func (b *Broker) History(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
	if b.closed.Load() {
		return core.HistoryResult{}, broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return core.HistoryResult{}, err
	}
	since, ok := ids.Parse(req.Since)
	if !ok {
		return core.HistoryResult{}, nil
	}
	info, err := b.streamInfo(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return core.HistoryResult{}, nil // the stream is gone
	case err != nil:
		return core.HistoryResult{}, b.unavailable("history: stream info", err)
	case ids.EpochOf(info.Created) != since.Epoch:
		return core.HistoryResult{}, nil // another epoch
	case since.Seq > info.State.LastSeq:
		return core.HistoryResult{}, nil // not an id this stream issued
	}
	from, last := since.Seq+1, info.State.LastSeq
	recovered := true
	if info.State.FirstSeq > from {
		recovered = false // the limits removed messages after since
		from = info.State.FirstSeq
	}
	if from > last || len(req.Channels) == 0 {
		return core.HistoryResult{Recovered: recovered}, nil
	}

	want := make(map[string]bool, len(req.Channels))
	var filters []string
	for _, ch := range req.Channels {
		if !want[ch] {
			want[ch] = true
			filters = append(filters, b.subject(ch))
		}
	}
	if len(filters) > maxFilterSubjects {
		filters = []string{b.all}
	}
	envs, err := b.read(ctx, from, last, filters, func(d core.Delivery) bool { return want[d.Channel] }, req.Limit)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return core.HistoryResult{}, nil // deleted meanwhile
		}
		return core.HistoryResult{}, b.unavailable("history", err)
	}
	if envs.trimmed {
		recovered = false
	}
	// The limits may have removed messages after since while it read, and
	// the stream may have been recreated: ask again.
	after, err := b.streamInfo(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return core.HistoryResult{}, nil
	case err != nil:
		return core.HistoryResult{}, b.unavailable("history: stream info", err)
	case ids.EpochOf(after.Created) != since.Epoch:
		return core.HistoryResult{}, nil
	case after.State.FirstSeq > from:
		recovered = false
	}
	for _, e := range envs.list {
		e.ID = ids.Format(since.Epoch, e.seq)
	}
	out := make([]*core.Envelope, len(envs.list))
	for i, e := range envs.list {
		out[i] = e.Envelope
	}
	return core.HistoryResult{Envelopes: out, Recovered: recovered}, nil
}

type seqEnvelope struct {
	*core.Envelope
	seq uint64
}

type readResult struct {
	list    []seqEnvelope
	trimmed bool // more than limit matched
}

// read fetches the messages of filters with sequences from..last through
// an ephemeral consumer, keeping those keep accepts, at most limit (the
// newest) when limit > 0.
func (b *Broker) read(ctx context.Context, from, last uint64, filters []string, keep func(core.Delivery) bool, limit int) (readResult, error) {
	cc := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: b.cfg.RequestTimeout + 10*time.Second, // if the delete below is lost
		MemoryStorage:     true,
		Replicas:          1,
	}
	if len(filters) == 1 {
		cc.FilterSubject = filters[0]
	} else {
		cc.FilterSubjects = filters
	}
	cons, err := b.js.CreateConsumer(ctx, b.cfg.Stream, cc)
	if err != nil {
		return readResult{}, err
	}
	name := cons.CachedInfo().Name
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.RequestTimeout)
		defer cancel()
		if err := b.js.DeleteConsumer(dctx, b.cfg.Stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			b.log.Debug("history: deleting the consumer", "consumer", name, "err", err)
		}
	}()
	var res readResult
	pending := cons.CachedInfo().NumPending // matching messages from `from` when created
	for pending > 0 {
		if err := ctx.Err(); err != nil {
			return readResult{}, err
		}
		batch, err := cons.FetchNoWait(int(min(pending, historyChunk)))
		if err != nil {
			return readResult{}, err
		}
		got := uint64(0)
		done := false
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil || done {
				continue
			}
			seq := meta.Sequence.Stream
			if seq > last {
				done = true
				continue
			}
			d, _, err := b.decode(m, seq)
			if err != nil || !keep(d) {
				continue
			}
			res.list = append(res.list, seqEnvelope{d.Envelope, seq})
			if limit > 0 && len(res.list) >= 2*limit {
				res.list = append(res.list[:0], res.list[len(res.list)-limit:]...)
				res.trimmed = true
			}
		}
		if err := batch.Error(); err != nil {
			return readResult{}, err
		}
		if done || got == 0 {
			break
		}
		pending -= min(got, pending)
	}
	if limit > 0 && len(res.list) > limit {
		res.list = res.list[len(res.list)-limit:]
		res.trimmed = true
	}
	return res, nil
}

// streamInfo asks for the stream's info.
func (b *Broker) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// decode turns a stream message into a delivery with the watermill
// message's UUID, through watermill-nats's own unmarshaler so the wire
// format stays watermill's.
func (b *Broker) decode(m jetstream.Msg, seq uint64) (core.Delivery, string, error) {
	var msg *message.Message
	msg, err := b.codec.Unmarshal(&natsio.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	if err != nil {
		return core.Delivery{}, "", fmt.Errorf("%w: sequence %d: %w", broker.ErrMalformed, seq, err)
	}
	d, err := broker.ParseMessage(msg)
	if err != nil {
		return core.Delivery{}, "", fmt.Errorf("sequence %d: %w", seq, err)
	}
	return d, msg.UUID, nil
}

// Head returns the id of the stream's last message: every message stored
// later has a larger sequence. An empty stream has no message to name
// (sequences start at 1): "".
func (b *Broker) Head(ctx context.Context) (string, error) {
	if b.closed.Load() {
		return "", broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	info, err := b.streamInfo(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return "", nil
	case err != nil:
		return "", b.unavailable("head: stream info", err)
	case info.State.LastSeq == 0:
		return "", nil
	}
	return ids.Format(ids.EpochOf(info.Created), info.State.LastSeq), nil
}

// After reports whether id comes after pos: ids of one epoch are ordered
// by stream sequence, across every channel.
func (b *Broker) After(id, pos string) (after, ok bool) {
	a, okA := ids.Parse(id)
	p, okP := ids.Parse(pos)
	if !okA || !okP || a.Epoch != p.Epoch {
		return false, false
	}
	return a.Seq > p.Seq, true
}

// WaitDelivered waits until this node's reader has delivered the message
// id (and everything before it). It returns nil at once for an id of
// another epoch, an unparseable id, one the reader already passed, or one
// ahead of the stream (it may never be delivered).
func (b *Broker) WaitDelivered(ctx context.Context, id string) error {
	p, ok := ids.Parse(id)
	if !ok {
		return nil
	}
	return b.waitPosition(ctx, p, true)
}

// Sync waits until this node has delivered every message the stream held
// when Sync was called, or ctx ends.
func (b *Broker) Sync(ctx context.Context) error {
	info, err := b.streamInfo(ctx)
	if err != nil {
		return b.unavailable("sync", err)
	}
	if info.State.LastSeq == 0 {
		return nil
	}
	return b.waitPosition(ctx, ids.Position{Epoch: ids.EpochOf(info.Created), Seq: info.State.LastSeq}, false)
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
	if _, _, last := b.delivered.get(); checkAhead && p.Seq > last {
		// Possibly ahead of the stream: ask.
		info, err := b.streamInfo(ctx)
		if err != nil {
			return b.unavailable("wait delivered", err)
		}
		if ids.EpochOf(info.Created) != p.Epoch || p.Seq > info.State.LastSeq {
			return nil
		}
	}
	return b.delivered.wait(ctx, p, done)
}

// Healthy returns nil while the connection is up and the reader consumes,
// and an error wrapping ErrUnavailable while the connection is down
// (nats.go keeps reconnecting) or the reader cannot (re)create its
// consumer (it keeps retrying, and resumes from the last delivered
// sequence). After Close it returns broker.ErrClosed. No I/O.
func (b *Broker) Healthy() error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if !started {
		return nil
	}
	return b.health.get()
}

// Epoch returns the epoch of the ids the reader currently issues: the
// stream's creation time, as it appears in ids.
func (b *Broker) Epoch() string {
	e, _, _ := b.delivered.get()
	return e.String()
}

// Close stops the reader (deleting its consumer when the server is
// reachable), fails waiting Publish calls with broker.ErrClosed, closes
// the connection (which ends sends in flight) and waits for them. It
// returns ctx's error if that takes longer than ctx allows; the release
// then finishes in the background. Idempotent.
func (b *Broker) Close(ctx context.Context) error {
	if b.closed.Swap(true) {
		return nil
	}
	b.mu.Lock()
	close(b.closing)
	stop, done := b.stop, b.done
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		if done != nil {
			<-done
		}
		// An empty critical section on purpose: a barrier. Every
		// Publish that saw closed == false has done sends.Add(1) by the
		// time it releases its read lock, so sends.Wait below sees it.
		b.pubMu.Lock() // no send starts from here on
		//lint:ignore SA2001 a barrier, not a mistake
		b.pubMu.Unlock()
		b.nc.Close()
		b.sends.Wait()
	}()
	select {
	case <-released:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("switchboard/broker/nats: close: %w", ctx.Err())
	}
}
