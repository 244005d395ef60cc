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
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/nats/internal/ids"
)

// New validates cfg, connects to NATS (three connections: publishing,
// the node's reader, history), creates the stream if it does not exist
// (or updates its subjects, limits and duplicate window to cfg) and
// returns the log engine over it. No server reachable, or JetStream
// disabled, is an error wrapping broker.ErrUnavailable; a bad cfg one wrapping
// ErrInvalidConfig. Call Start to begin delivering, and Close to release
// the connections.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*engine.Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	d, err := newDriver(ctx, cfg, logger.With("broker", "nats", "stream", cfg.Stream))
	if err != nil {
		return nil, err
	}
	b, err := engine.New(d, cfg.Engine, d.log)
	if err != nil {
		d.closeConns()
		return nil, err
	}
	return b, nil
}

// newDriver connects the driver for a validated cfg with its defaults
// set, and makes sure the stream exists (see New).
func newDriver(ctx context.Context, cfg Config, log *slog.Logger) (*driver, error) {
	servers, err := ParseURL(cfg.URL)
	if err != nil { // Validate parsed it already
		return nil, err
	}
	d := &driver{
		cfg:       cfg,
		log:       log,
		addrs:     hosts(servers),
		all:       cfg.Subject + ".>",
		closed:    make(chan struct{}),
		connEvent: make(chan struct{}, 1),
	}
	connectTimeout := cfg.ConnectTimeout
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < connectTimeout {
		connectTimeout = max(time.Until(deadline), time.Millisecond)
	}
	url := strings.Join(servers, ",")
	for _, c := range []struct {
		conn **conn
		role string
	}{{&d.pub, "publish"}, {&d.rd, "read"}, {&d.hist, "history"}} {
		cn, err := d.dial(url, c.role, connectTimeout)
		if err != nil {
			d.closeConns()
			return nil, d.unreachable(err)
		}
		*c.conn = cn
	}
	opt := jetstream.WithDefaultTimeout(cfg.RequestTimeout)
	inflight := 4 * max(cfg.Engine.MaxBatch, engine.DefaultMaxBatch) // one batch, and any abandoned before it
	if d.pub.js, err = jetstream.New(d.pub.Conn, opt, jetstream.WithPublishAsyncTimeout(cfg.RequestTimeout), jetstream.WithPublishAsyncMaxPending(inflight)); err == nil {
		if d.rd.js, err = jetstream.New(d.rd.Conn, opt); err == nil {
			d.hist.js, err = jetstream.New(d.hist.Conn, opt)
		}
	}
	if err != nil {
		d.closeConns()
		return nil, fmt.Errorf("switchboard/broker/nats: jetstream: %w", err)
	}
	// Advisories about the stream tell the publishing path it may have
	// been replaced (see pubEpoch), and a deletion that the stream is
	// gone (see absence); subscribed to before the stream is looked at,
	// so none is missed after.
	if _, err := d.pub.Subscribe(d.advisories(), d.advisory); err != nil {
		d.pubEpoch.noAdvisories()
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	if err := d.pub.FlushWithContext(cctx); err != nil {
		d.closeConns()
		return nil, d.unreachable(err)
	}
	if err := d.ensureStream(cctx); err != nil {
		d.closeConns()
		return nil, err
	}
	return d, nil
}

// driver is the NATS JetStream engine.Driver: one stream holds every
// channel, each on its own subject under Config.Subject; records are
// Watermill messages in watermill-nats's format (NATSMarshaler: metadata
// in headers, payload as data); positions are stream sequences; the
// epoch is the stream's creation time. Three connections keep the paths
// apart: appends, the reader's consumer, and history (with Head).
type driver struct {
	cfg   Config
	log   *slog.Logger
	addrs string // the servers' host:port, for messages
	all   string // "<Subject>.>", what the stream captures
	codec wnats.NATSMarshaler

	pub, rd, hist *conn

	closing atomic.Bool
	closed  chan struct{} // closed by Close: interrupts a blocked Read

	// A connection changed (lost, back, closed): connEvent wakes a
	// blocked Read. rdGen counts the changes of the reader's own, which
	// drop its consumer (the server may have lost it, or the stream).
	rdGen     atomic.Uint64
	connEvent chan struct{}

	pubEpoch pubEpoch // the epoch of appended batches
	absent   absence  // whether a stream reported missing is gone

	mu   sync.Mutex // guards what follows
	tail *tail      // the reader's consumer; used by the engine's reader goroutine alone, and by Close
	seen string     // the epoch of the stream as last looked at
}

// Interface guard.
var _ engine.Driver = (*driver)(nil)

func (d *driver) Name() string { return "nats" }

// KeysInLog: the stream refuses a repeated Nats-Msg-Id within its
// duplicate window, atomically, whichever node publishes it.
func (d *driver) KeysInLog() bool { return true }

// connChanged wakes a blocked Read when a connection is lost or back, so
// the engine's health follows every connection (see Read); a change of
// the reader's own also drops its consumer.
func (d *driver) connChanged(c *conn) {
	if c.role == "read" {
		d.rdGen.Add(1)
	}
	select {
	case d.connEvent <- struct{}{}:
	default:
	}
}

// connected returns op's error if any of the three connections is down.
func (d *driver) connected(op string) error {
	for _, c := range []*conn{d.rd, d.pub, d.hist} {
		if !c.IsConnected() {
			return d.unavailable(op, c.down())
		}
	}
	return nil
}

// streamConfig is the stream this Config asks for.
func (d *driver) streamConfig() jetstream.StreamConfig {
	cfg := d.cfg
	sc := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "Switchboard: every channel's messages, in one order",
		Subjects:    []string{d.all},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     max(cfg.MaxMsgs, -1),
		MaxBytes:    max(cfg.MaxBytes, -1),
		MaxAge:      max(cfg.MaxAge, 0),
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Engine.DedupWindow,
	}
	if cfg.Storage == "memory" {
		sc.Storage = jetstream.MemoryStorage
	}
	if sc.MaxAge > 0 && sc.Duplicates > sc.MaxAge {
		sc.Duplicates = sc.MaxAge // JetStream's rule: the window may not exceed MaxAge
	}
	return sc
}

// ensureStream creates the stream if it is missing, or updates its
// subjects, limits and duplicate window to the Config's.
func (d *driver) ensureStream(ctx context.Context) error {
	want := d.streamConfig()
	s, err := d.hist.js.Stream(ctx, d.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = d.createStream(ctx, d.hist.js)
	}
	if err != nil {
		return d.streamError(err)
	}
	info := s.CachedInfo()
	have := info.Config
	upd := have
	if !slices.Contains(have.Subjects, d.all) {
		upd.Subjects = append(slices.Clone(have.Subjects), d.all)
	}
	upd.MaxMsgs, upd.MaxBytes, upd.MaxAge, upd.Replicas = want.MaxMsgs, want.MaxBytes, want.MaxAge, want.Replicas
	upd.Duplicates = want.Duplicates
	if have.Storage != want.Storage {
		d.log.Warn("stream exists with another storage; keeping it", "storage", have.Storage.String(), "configured", want.Storage.String())
	}
	if !slices.Equal(upd.Subjects, have.Subjects) || upd.MaxMsgs != have.MaxMsgs || upd.MaxBytes != have.MaxBytes ||
		upd.MaxAge != have.MaxAge || upd.Replicas != have.Replicas || upd.Duplicates != have.Duplicates {
		s, err = d.hist.js.UpdateStream(ctx, upd)
		if err != nil {
			return d.streamError(fmt.Errorf("update to the configured limits: %w", err))
		}
		info = s.CachedInfo()
		d.log.Info("updated stream", "subjects", upd.Subjects, "max_msgs", upd.MaxMsgs, "max_age", upd.MaxAge,
			"max_bytes", upd.MaxBytes, "replicas", upd.Replicas, "duplicates", upd.Duplicates)
	}
	epoch, err := d.epochOf(info)
	if err != nil {
		return err
	}
	d.pubEpoch.epoch, d.pubEpoch.maxSeq = epoch, info.State.LastSeq // the first batch looks the stream up on its own connection
	return nil
}

// createStream creates the stream with the Config's settings; a stream
// another node created meanwhile is taken as it is.
func (d *driver) createStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	want := d.streamConfig()
	s, err := js.CreateStream(ctx, want)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another node won the race
		return js.Stream(ctx, d.cfg.Stream)
	}
	if err == nil {
		d.log.Info("created stream", "subjects", d.all, "max_msgs", want.MaxMsgs, "max_age", want.MaxAge,
			"max_bytes", want.MaxBytes, "storage", want.Storage.String(), "replicas", want.Replicas, "duplicates", want.Duplicates)
	}
	return s, err
}

// stream looks the stream up through js and returns it with its epoch.
// A stream the server reports missing is created anew (a new epoch) when
// create is set and it is gone (see absence: deleted, or lost with a
// memory-storage server's restart); otherwise the error wraps
// jetstream.ErrStreamNotFound and says why it is not taken as gone (a
// server that has not loaded the stream yet answers the same). An
// existing stream's config is left alone, so nodes never fight over it.
func (d *driver) stream(ctx context.Context, js jetstream.JetStream, create bool) (jetstream.Stream, string, error) {
	s, err := js.Stream(ctx, d.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		why, gone := d.absent.gone(time.Now())
		if !create || !gone {
			return nil, "", fmt.Errorf("stream %q not found, %s: %w", d.cfg.Stream, why, err)
		}
		d.log.Warn("the stream is gone; creating it anew: ids issued before resume with recovered:false", "why", why)
		s, err = d.createStream(ctx, js)
	}
	if err != nil {
		return nil, "", err
	}
	e, err := d.epochOf(s.CachedInfo())
	if err != nil {
		return nil, "", err
	}
	return s, e, nil
}

// epochOf is the epoch of the stream info describes; it is also
// remembered as the epoch last seen.
func (d *driver) epochOf(info *jetstream.StreamInfo) (string, error) {
	e, ok := ids.EpochOf(info.Created)
	if !ok {
		return "", fmt.Errorf("switchboard/broker/nats: stream %q reports the creation time %v, which cannot be an epoch", d.cfg.Stream, info.Created)
	}
	d.absent.found(info.Config.Storage == jetstream.MemoryStorage)
	d.mu.Lock()
	d.seen = e.String()
	d.mu.Unlock()
	return e.String(), nil
}

func (d *driver) seenEpoch() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen
}

// streamError is ensureStream's error: broker.ErrUnavailable with the usual hint
// when JetStream cannot be reached or is off, a plain one otherwise.
func (d *driver) streamError(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, natsio.ErrNoResponders):
		return broker.Unavailable(fmt.Sprintf("switchboard/broker/nats: nats at %s answers but JetStream does not: %v (is nats-server running with JetStream, -js? check --broker-url)",
			d.addrs, err), err)
	case errors.As(err, &apiErr):
		return fmt.Errorf("switchboard/broker/nats: stream %q at %s: %w", d.cfg.Stream, d.addrs, err)
	default:
		return d.unreachable(err)
	}
}

// unreachable is the one-line error for NATS that cannot be used.
func (d *driver) unreachable(err error) error {
	return broker.Unavailable(fmt.Sprintf("switchboard/broker/nats: cannot reach nats at %s: %v (is nats-server running with JetStream? check --broker-url)", d.addrs, err), err)
}

// unavailable wraps an operation's failure during an outage.
func (d *driver) unavailable(op string, err error) error {
	return broker.Unavailable(fmt.Sprintf("switchboard/broker/nats: %s: nats at %s: %v", op, d.addrs, err), err)
}

// subject is the subject channel's messages are published on: the
// channel in unpadded base64url is one token of [A-Za-z0-9_-], whatever
// the room name holds.
func (d *driver) subject(channel string) string {
	return d.cfg.Subject + "." + base64.RawURLEncoding.EncodeToString([]byte(channel))
}

// Head returns the stream's epoch and last sequence. A stream the server
// reports missing is created anew, under a new epoch, only when it is
// known to be gone (see absence); until then Head fails with an error
// wrapping broker.ErrUnavailable, as it does while NATS or JetStream is
// unreachable, so a server restarted on its data that has not loaded the
// stream yet never starts a new epoch.
func (d *driver) Head(ctx context.Context) (string, engine.Pos, error) {
	ctx, done, err := d.hist.use(ctx)
	if err != nil {
		return "", engine.Pos{}, d.unavailable("head", err)
	}
	defer done()
	s, epoch, err := d.stream(ctx, d.hist.js, true)
	if err != nil {
		return "", engine.Pos{}, d.unavailable("head: stream info", cause(ctx, err))
	}
	return epoch, engine.Pos{Lo: s.CachedInfo().State.LastSeq}, nil
}

// Append publishes the batch asynchronously on the publishing connection
// (every message sent before the first ack is awaited: one round trip)
// and waits for every ack; the epoch is the one verified last unless
// the stream may have been replaced since (see pubEpoch). A keyed message carries its key as
// Nats-Msg-Id, so the stream itself refuses a repeat within its
// duplicate window (Config.Engine.DedupWindow; window is not used): the
// ack then names the first one's sequence. nats.go resends a message
// only when no server received it (no responders), so nothing is
// appended twice.
func (d *driver) Append(ctx context.Context, msgs []*message.Message, _ time.Duration) (string, []engine.Appended, error) {
	ctx, done, err := d.pub.use(ctx)
	if err != nil {
		return "", nil, d.unavailable("publish", err)
	}
	defer done()
	out := make([]engine.Appended, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, msg := range msgs {
		nm, err := d.codec.Marshal(d.subject(msg.Metadata.Get(broker.MetadataChannel)), msg)
		if err != nil {
			out[i].Err = err
			continue
		}
		opts := []jetstream.PublishOpt{jetstream.WithExpectStream(d.cfg.Stream)}
		if key := msg.Metadata.Get(engine.MetadataKey); key != "" {
			opts = append(opts, jetstream.WithMsgID(key))
		}
		f, err := d.pub.js.PublishMsgAsync(nm, opts...)
		switch {
		case errors.Is(err, natsio.ErrMaxPayload):
			out[i].Err = err // refused before sending: not appended
		case err != nil:
			return "", nil, d.unavailable("publish", err) // what was sent before is unknown
		default:
			futures[i] = f
		}
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			out[i] = engine.Appended{Pos: engine.Pos{Lo: ack.Sequence}, Duplicate: ack.Duplicate}
		case err := <-f.Err():
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) {
				out[i].Err = err // the stream refused it
				continue
			}
			return "", nil, d.unavailable("publish", err)
		case <-ctx.Done():
			return "", nil, d.unavailable("publish", context.Cause(ctx))
		case <-d.closed:
			return "", nil, broker.ErrClosed
		}
	}
	s, epoch, err := d.batchEpoch(ctx, msgs, out)
	if err != nil {
		return "", nil, err
	}
	for i := range out {
		if out[i].Duplicate {
			out[i].Digest = firstDigest(ctx, s, out[i].Pos, msgs[i])
		}
	}
	return epoch, out, nil
}

// Range reads up to limit records after `after` through a short-lived
// consumer on the history connection: one request creates it (the
// server skips other subjects' messages), one no-wait fetch takes what
// it has (another only if the first came back short), and the stream's
// info afterwards gives the epoch and the first sequence kept. The
// consumer is deleted without waiting for the answer (its inactivity
// threshold removes it if that is lost). Every failure wraps
// broker.ErrUnavailable, the stream not found included: Range cannot tell a
// stream that is gone from one a restarting server has not loaded yet,
// and an empty chunk would read as the log of another epoch (recovered:
// false). The engine's next Head tells them apart: it finds the stream
// again, or creates it anew once it is gone (a new epoch).
func (d *driver) Range(ctx context.Context, after engine.Pos, limit int) (engine.Chunk, error) {
	ctx, done, err := d.hist.use(ctx)
	if err != nil {
		return engine.Chunk{}, d.unavailable("history", err)
	}
	defer done()
	cc := d.consumerConfig(after, "switchboard history read")
	cc.InactiveThreshold = d.cfg.RequestTimeout + 10*time.Second
	cons, err := d.hist.js.CreateConsumer(ctx, d.cfg.Stream, cc)
	if err != nil {
		return engine.Chunk{}, d.unavailable("history: create consumer", cause(ctx, err))
	}
	defer d.deleteConsumer(d.hist, cons.CachedInfo().Name)
	want := int(min(uint64(limit), cons.CachedInfo().NumPending))
	recs := make([]engine.Record, 0, want)
	for len(recs) < want {
		if err := ctx.Err(); err != nil {
			return engine.Chunk{}, d.unavailable("history: fetch", context.Cause(ctx))
		}
		batch, err := cons.FetchNoWait(want - len(recs))
		if err != nil {
			return engine.Chunk{}, d.unavailable("history: fetch", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if meta, err := m.Metadata(); err == nil {
				recs = append(recs, d.record(m, meta.Sequence.Stream))
			}
		}
		if err := batch.Error(); err != nil {
			return engine.Chunk{}, d.unavailable("history: fetch", err)
		}
		if got == 0 {
			break // the limits removed the rest meanwhile
		}
	}
	s, epoch, err := d.stream(ctx, d.hist.js, false)
	if err != nil {
		return engine.Chunk{}, d.unavailable("history: stream info", cause(ctx, err))
	}
	chunk := engine.Chunk{Epoch: epoch, Records: recs}
	// The limits remove the oldest messages first: nothing after `after`
	// is missing if the record right after it was read, or the stream
	// still starts at or before it.
	next := after.Lo + 1
	if first := s.CachedInfo().State.FirstSeq; first > next && (len(recs) == 0 || recs[0].Pos.Lo > next) {
		chunk.Trimmed = true
	}
	return chunk, nil
}

// Since is the position before the first message the stream stored at
// or after t: an ephemeral consumer delivering by start time, on the
// history connection, asked for one message. None (nothing stored since
// t) is the stream's last sequence. JetStream decides keys in the log
// (KeysInLog), so the engine does not call it today; it answers
// honestly all the same.
func (d *driver) Since(ctx context.Context, t time.Time) (engine.Pos, error) {
	ctx, done, err := d.hist.use(ctx)
	if err != nil {
		return engine.Pos{}, d.unavailable("since", err)
	}
	defer done()
	cc := d.consumerConfig(engine.Pos{}, "switchboard position by time")
	cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	cc.InactiveThreshold = d.cfg.RequestTimeout + 10*time.Second
	cons, err := d.hist.js.CreateConsumer(ctx, d.cfg.Stream, cc)
	if err != nil {
		return engine.Pos{}, d.unavailable("since: create consumer", cause(ctx, err))
	}
	defer d.deleteConsumer(d.hist, cons.CachedInfo().Name)
	if cons.CachedInfo().NumPending == 0 {
		s, _, err := d.stream(ctx, d.hist.js, false)
		if err != nil {
			return engine.Pos{}, d.unavailable("since: stream info", cause(ctx, err))
		}
		return engine.Pos{Lo: s.CachedInfo().State.LastSeq}, nil
	}
	batch, err := cons.FetchNoWait(1)
	if err != nil {
		return engine.Pos{}, d.unavailable("since: fetch", err)
	}
	for m := range batch.Messages() {
		if meta, err := m.Metadata(); err == nil && meta.Sequence.Stream > 0 {
			return engine.Pos{Lo: meta.Sequence.Stream - 1}, nil
		}
	}
	if err := batch.Error(); err != nil {
		return engine.Pos{}, d.unavailable("since: fetch", err)
	}
	return engine.Pos{}, nil // the limits removed it meanwhile: from the start
}

// consumerConfig is an ephemeral consumer of every channel's subject
// from the sequence after `after`, without acks, kept in memory.
func (d *driver) consumerConfig(after engine.Pos, description string) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Description:   description,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckNonePolicy,
		FilterSubject: d.all,
		MemoryStorage: true,
		Replicas:      1,
	}
	if after.Lo > 0 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = after.Lo + 1
	}
	return cc
}

// deleteConsumer asks the server to delete an ephemeral consumer without
// waiting for its answer: the request is a plain publish to JetStream's
// API. If it is lost, the consumer's inactivity threshold removes it.
func (d *driver) deleteConsumer(c *conn, name string) {
	if c.IsConnected() {
		_ = c.Publish("$JS.API.CONSUMER.DELETE."+d.cfg.Stream+"."+name, nil)
	}
}

// record decodes a stream message with watermill-nats's own
// unmarshaler, so the wire format stays Watermill's.
func (d *driver) record(m jetstream.Msg, seq uint64) engine.Record {
	pos := engine.Pos{Lo: seq}
	msg, err := d.codec.Unmarshal(&natsio.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	if err != nil {
		return engine.Record{Pos: pos, Err: fmt.Errorf("%w: sequence %d: %w", broker.ErrMalformed, seq, err)}
	}
	size := len(msg.Payload)
	for k, v := range msg.Metadata {
		size += len(k) + len(v)
	}
	return engine.Record{Pos: pos, Msg: msg, Size: size}
}

// Close stops the reader's consumer (asking the server to delete it),
// closes the three connections, which ends sends in flight, and
// interrupts a blocked Read. Idempotent.
func (d *driver) Close() error {
	if d.closing.Swap(true) {
		return nil
	}
	close(d.closed)
	d.dropTail()
	d.closeConns() // flushes the delete request first
	return nil
}

func (d *driver) closeConns() {
	for _, c := range []*conn{d.pub, d.rd, d.hist} {
		if c != nil {
			c.Close()
		}
	}
}
