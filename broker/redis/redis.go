package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/redis/internal/ids"
)

// New validates cfg, connects to Redis and PINGs it, and returns the log
// engine over the stream. An unreachable Redis is an error wrapping
// broker.ErrUnavailable; a bad cfg one wrapping ErrInvalidConfig. Call Start to
// begin delivering, and Close to release the connections.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*engine.Broker, error) {
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
	d := &driver{
		cfg:      cfg,
		addr:     opt.Addr,
		epochKey: cfg.Stream + ":epoch",
		keyspace: cfg.Stream + ":key:",
	}
	d.pub = goredis.NewClient(clientOptions(*opt, cfg, cfg.PoolSize, false))
	d.rd = goredis.NewClient(clientOptions(*opt, cfg, 2, true))
	// History reads hold at most Engine.HistoryReads connections; the
	// two more serve Head, which resumes need too.
	d.hist = goredis.NewClient(clientOptions(*opt, cfg, cfg.HistoryPoolSize+2, true))
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.ReadTimeout)
	defer cancel()
	for _, c := range d.clients() {
		if err := c.Ping(pctx).Err(); err != nil {
			_ = d.Close()
			return nil, d.unreachable(err)
		}
	}
	b, err := engine.New(d, cfg.Engine, logger.With("broker", "redis", "stream", cfg.Stream))
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return b, nil
}

// driver is the Redis Streams engine.Driver: one stream holds every
// channel; entries are Watermill messages in watermill-redisstream's
// format; positions are stream entry IDs. Three clients keep the paths
// apart: appends (never retried), the reader's XREAD, and history.
type driver struct {
	cfg      Config
	addr     string
	epochKey string
	keyspace string // prefix of idempotency keys

	pub, rd, hist *goredis.Client
	codec         redisstream.DefaultMarshallerUnmarshaller

	wasDown bool // the last Read failed: check for a gap after the next (reader goroutine only)
}

func (d *driver) clients() []*goredis.Client { return []*goredis.Client{d.pub, d.rd, d.hist} }

// clientOptions are the go-redis settings, chosen deliberately (see
// docs/brokers.md): short dials, bounded reads and writes, deadlines from
// the caller's ctx, one dial retry per attempt (the command retry and the
// reader's backoff do the rest), and no retried append.
func clientOptions(opt goredis.Options, cfg Config, pool int, retry bool) *goredis.Options {
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
	opt.PoolSize = pool
	opt.MaxRetries = cfg.MaxRetries
	if !retry {
		opt.MaxRetries = -1 // a retried XADD may append twice
	}
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if opt.ClientName == "" {
		opt.ClientName = "switchboard"
	}
	return &opt
}

func (d *driver) Name() string { return "redis" }

// KeysInLog: appendScript decides idempotency keys in Redis, atomically.
func (d *driver) KeysInLog() bool { return true }

// unreachable is the one-line error for a Redis that cannot be reached.
func (d *driver) unreachable(err error) error {
	return broker.Unavailable(fmt.Sprintf("switchboard/broker/redis: cannot reach redis at %s: %v (is redis-server running? check --broker-url)", d.addr, err), err)
}

// unavailable wraps a command's failure during operation.
func (d *driver) unavailable(op string, err error) error {
	return broker.Unavailable(fmt.Sprintf("switchboard/broker/redis: %s: redis at %s: %v", op, d.addr, err), err)
}

// Head atomically reads (creating if absent) the epoch and the stream's
// last generated entry ID (zero without a stream), on the history client:
// never queued behind the reader's blocking XREAD.
func (d *driver) Head(ctx context.Context) (string, engine.Pos, error) {
	candidate, err := ids.NewEpoch()
	if err != nil {
		return "", engine.Pos{}, err
	}
	var get *goredis.StringCmd
	var info *goredis.XInfoStreamCmd
	_, _ = d.hist.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.SetNX(ctx, d.epochKey, candidate, 0)
		get = p.Get(ctx, d.epochKey)
		info = p.XInfoStream(ctx, d.cfg.Stream)
		return nil
	})
	if err := get.Err(); err != nil {
		return "", engine.Pos{}, d.unavailable("read epoch", err)
	}
	epoch := get.Val()
	if !ids.ValidEpoch(epoch) {
		return "", engine.Pos{}, fmt.Errorf("switchboard/broker/redis: key %q holds %q, not an epoch: delete it", d.epochKey, epoch)
	}
	switch err := info.Err(); {
	case isNoSuchKey(err):
		return epoch, engine.Pos{}, nil
	case err != nil:
		return "", engine.Pos{}, d.unavailable("XINFO STREAM", err)
	}
	last, err := mustPos(info.Val().LastGeneratedID)
	return epoch, last, err
}

// ensureEpoch returns the epoch, creating a new one if the key is gone.
func (d *driver) ensureEpoch(ctx context.Context) (string, error) {
	candidate, err := ids.NewEpoch()
	if err != nil {
		return "", err
	}
	var get *goredis.StringCmd
	_, _ = d.rd.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.SetNX(ctx, d.epochKey, candidate, 0)
		get = p.Get(ctx, d.epochKey)
		return nil
	})
	if err := get.Err(); err != nil {
		return "", err
	}
	if e := get.Val(); ids.ValidEpoch(e) {
		return e, nil
	}
	return "", fmt.Errorf("key %q holds %q, not an epoch", d.epochKey, get.Val())
}

// Read is one XREAD COUNT max BLOCK Block from after. The epoch key is
// read after the batch: if it still holds epoch, no flush happened since
// the reader learnt it and the batch belongs to it. Otherwise Redis lost
// the stream at some point; the batch belongs to the new log only if its
// last entry is still in the stream now.
func (d *driver) Read(ctx context.Context, epoch string, after engine.Pos, max int) (engine.Batch, error) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.Block+d.cfg.ReadTimeout)
	defer cancel()
	args := &goredis.XReadArgs{Streams: []string{d.cfg.Stream, entryID(after)}, Count: int64(max), Block: d.cfg.Block}
	var xread *goredis.XStreamSliceCmd
	var get *goredis.StringCmd
	if d.cfg.Block < d.cfg.ReadTimeout {
		// One round trip: Redis answers the GET once the XREAD returns,
		// so the epoch is read after the batch. (go-redis gives a
		// pipeline ReadTimeout, not the blocking command's allowance.)
		_, _ = d.rd.Pipelined(rctx, func(p goredis.Pipeliner) error {
			xread = p.XRead(rctx, args)
			get = p.Get(rctx, d.epochKey)
			return nil
		})
	} else {
		xread = d.rd.XRead(rctx, args)
		get = d.rd.Get(rctx, d.epochKey)
	}
	res, err := xread.Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		d.wasDown = true
		return engine.Batch{}, d.unavailable("read", err)
	}
	var msgs []goredis.XMessage
	for _, s := range res {
		msgs = append(msgs, s.Messages...)
	}
	cur, err := get.Result()
	if errors.Is(err, goredis.Nil) {
		cur, err = d.ensureEpoch(rctx)
	}
	if err != nil {
		d.wasDown = true
		return engine.Batch{}, d.unavailable("read epoch", err)
	}
	batch := engine.Batch{Epoch: epoch}
	if cur != epoch && ids.ValidEpoch(cur) {
		if len(msgs) == 0 {
			return engine.Batch{Epoch: cur}, nil
		}
		last := msgs[len(msgs)-1]
		now, err := d.rd.XRangeN(rctx, d.cfg.Stream, last.ID, last.ID, 1).Result()
		if err != nil {
			return engine.Batch{}, d.unavailable("read", err)
		}
		key := "_watermill_message_uuid"
		if len(now) == 1 && fmt.Sprint(now[0].Values[key]) == fmt.Sprint(last.Values[key]) {
			batch.Epoch = cur
		}
	}
	if d.wasDown && len(msgs) > 0 {
		batch.Gap = d.trimmedAfter(rctx, after)
	}
	d.wasDown = false
	batch.Records = d.decodeAll(msgs)
	return batch, nil
}

// trimmedAfter reports whether the stream's oldest entry is after pos:
// XREAD from a trimmed-away ID silently starts at the oldest entry.
func (d *driver) trimmedAfter(ctx context.Context, pos engine.Pos) bool {
	info, err := d.rd.XInfoStream(ctx, d.cfg.Stream).Result()
	if err != nil || pos.IsZero() {
		return false
	}
	f, ok := parsePos(info.FirstEntry.ID)
	return ok && pos.Less(f)
}

// Since is the last possible entry ID of the millisecond before t: an
// entry ID's first part is the Redis server's clock in ms when XADD ran.
// No round trip.
func (d *driver) Since(_ context.Context, t time.Time) (engine.Pos, error) {
	ms := t.UnixMilli()
	if ms <= 0 {
		return engine.Pos{}, nil
	}
	return engine.Pos{Hi: uint64(ms) - 1, Lo: math.MaxUint64}, nil
}

// Range reads up to max entries after `after`, with the epoch and the
// trimming state, in one transaction: one consistent snapshot.
func (d *driver) Range(ctx context.Context, after engine.Pos, max int) (engine.Chunk, error) {
	var get *goredis.StringCmd
	var info *goredis.XInfoStreamCmd
	var rng *goredis.XMessageSliceCmd
	_, _ = d.hist.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		get = p.Get(ctx, d.epochKey)
		info = p.XInfoStream(ctx, d.cfg.Stream)
		rng = p.XRangeN(ctx, d.cfg.Stream, "("+entryID(after), "+", int64(max))
		return nil
	})
	switch err := get.Err(); {
	case errors.Is(err, goredis.Nil):
		return engine.Chunk{}, nil // no epoch: nothing to recover
	case err != nil:
		return engine.Chunk{}, d.unavailable("history", err)
	}
	chunk := engine.Chunk{Epoch: get.Val()}
	switch err := info.Err(); {
	case isNoSuchKey(err):
		chunk.Trimmed = !after.IsZero() // the stream is gone
		return chunk, nil
	case err != nil:
		return engine.Chunk{}, d.unavailable("history", err)
	}
	if err := rng.Err(); err != nil {
		return engine.Chunk{}, d.unavailable("history", err)
	}
	// Trimming removes the oldest entries first, so nothing after `after`
	// is missing unless the oldest entry left is after it (conservative:
	// `after` itself may have been the last one trimmed) or an XDEL
	// removed one after it.
	st := info.Val()
	if f, ok := parsePos(st.FirstEntry.ID); ok && after.Less(f) && !after.IsZero() {
		chunk.Trimmed = true
	}
	if del, ok := parsePos(st.MaxDeletedEntryID); ok && after.Less(del) {
		chunk.Trimmed = true
	}
	chunk.Records = d.decodeAll(rng.Val())
	return chunk, nil
}

// entryFields appends to dst the fields of msg's stream entry, in
// watermill-redisstream's format (the UUID, the metadata as a msgpack map,
// the payload), written directly: its marshaller builds a map and
// msgpack-encodes the metadata by reflection for every publish.
func entryFields(msg *message.Message, dst []any) []any {
	var md []byte
	if len(msg.Metadata) > 0 {
		md = appendMetadata(make([]byte, 0, 64), msg.Metadata)
	}
	return append(dst, redisstream.UUIDHeaderKey, msg.UUID, "metadata", md, "payload", []byte(msg.Payload))
}

// appendScript appends an entry unless its idempotency key is already
// set, and sets the key to the entry's ID and the request's digest for
// the window: one atomic step in Redis, so a retry on any node, after
// any crash, finds it. KEYS: stream, key. ARGV: maxlen (0: none), window
// in ms, digest, fields…. It returns {"<id> <digest>", 1} for a key
// already set, {id, 0} after appending.
var appendScript = goredis.NewScript(`
local first = redis.call('GET', KEYS[2])
if first then return {first, 1} end
local id
if ARGV[1] == '0' then
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 4))
end
redis.call('SET', KEYS[2], id .. ' ' .. ARGV[3], 'PX', ARGV[2])
return {id, 0}
`)

// Append pipelines one XADD (or, for a keyed message, one run of
// appendScript) per message: one round trip for the batch. Nothing is
// retried, so nothing is appended twice.
func (d *driver) Append(ctx context.Context, msgs []*message.Message, window time.Duration) (string, []engine.Appended, error) {
	maxLen := max(d.cfg.MaxLen, 0)
	cmds := make([]goredis.Cmder, len(msgs))
	var epoch *goredis.StringCmd
	out := make([]engine.Appended, len(msgs))
	_, err := d.pub.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, msg := range msgs {
			if msg.Metadata.Get(redisstream.UUIDHeaderKey) != "" {
				out[i].Err = fmt.Errorf("switchboard/broker/redis: metadata %s is reserved for the message UUID", redisstream.UUIDHeaderKey)
				continue
			}
			key := msg.Metadata.Get(engine.MetadataKey)
			if key == "" {
				cmds[i] = p.XAdd(ctx, &goredis.XAddArgs{Stream: d.cfg.Stream, MaxLen: maxLen, Approx: maxLen > 0, Values: entryFields(msg, nil)})
				continue
			}
			args := make([]any, 3, 9)
			args[0], args[1], args[2] = maxLen, window.Milliseconds(), msg.Metadata.Get(engine.MetadataDigest)
			cmds[i] = appendScript.Eval(ctx, p, []string{d.cfg.Stream, d.keyspace + key}, entryFields(msg, args)...)
		}
		epoch = p.Get(ctx, d.epochKey) // the log the entries went to
		return nil
	})
	for i, c := range cmds {
		if out[i].Err != nil {
			continue // refused before sending
		}
		if c == nil {
			return "", nil, d.unavailable("publish", err)
		}
		if cerr := c.Err(); cerr != nil {
			var rerr goredis.Error
			if !errors.As(cerr, &rerr) {
				// The connection failed: which appends happened is unknown.
				return "", nil, d.unavailable("publish", cerr)
			}
			out[i].Err = cerr
			continue
		}
		var id string
		switch c := c.(type) {
		case *goredis.StringCmd:
			id = c.Val()
		case *goredis.Cmd:
			v, _ := c.Val().([]any)
			if len(v) == 2 {
				id, _ = v[0].(string)
				dup, _ := v[1].(int64)
				if out[i].Duplicate = dup == 1; out[i].Duplicate {
					id, out[i].Digest, _ = strings.Cut(id, " ")
				}
			}
		}
		pos, ok := parsePos(id)
		if !ok {
			out[i].Err = fmt.Errorf("switchboard/broker/redis: unexpected entry ID %q", id)
			continue
		}
		out[i].Pos = pos
	}
	e := epoch.Val()
	if errors.Is(epoch.Err(), goredis.Nil) { // flushed: the reader names the new log alike
		if e, err = d.ensureEpoch(ctx); err != nil {
			return "", nil, d.unavailable("publish", err)
		}
	} else if err := epoch.Err(); err != nil {
		return "", nil, d.unavailable("publish", err)
	}
	return e, out, nil
}

func (d *driver) decodeAll(msgs []goredis.XMessage) []engine.Record {
	recs := make([]engine.Record, 0, len(msgs))
	for _, m := range msgs {
		pos, ok := parsePos(m.ID)
		if !ok {
			continue // not an ID Redis makes
		}
		msg, size, err := d.decode(m)
		recs = append(recs, engine.Record{Pos: pos, Msg: msg, Err: err, Size: size})
	}
	return recs
}

// decode turns a stream entry into the Watermill message it carries, as
// watermill-redisstream's unmarshaller would: its fields are the message
// UUID, the payload and the metadata (a msgpack map), which decodeMetadata
// reads directly when it can.
func (d *driver) decode(m goredis.XMessage) (msg *message.Message, size int, err error) {
	uuid, okU := m.Values[redisstream.UUIDHeaderKey].(string)
	payload, okP := m.Values["payload"].(string)
	md, okM := m.Values["metadata"].(string)
	if okU && okP && okM {
		if meta, ok := decodeMetadata([]byte(md)); ok {
			return broker.LogMessage(uuid, meta, []byte(payload)), len(payload) + len(md), nil
		}
	}
	defer func() {
		if r := recover(); r != nil { // the unmarshaller asserts field types
			msg, err = nil, fmt.Errorf("%w: entry %s: %v", broker.ErrMalformed, m.ID, r)
		}
	}()
	msg, err = d.codec.Unmarshal(m.Values)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: entry %s: %w", broker.ErrMalformed, m.ID, err)
	}
	size = len(msg.Payload)
	for k, v := range msg.Metadata {
		size += len(k) + len(v)
	}
	return msg, size, nil
}

// Close closes the three clients; closing the reader's interrupts a
// blocked XREAD.
func (d *driver) Close() error {
	var errs []error
	for _, c := range d.clients() {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("switchboard/broker/redis: close: %w", err)
	}
	return nil
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// entryID spells pos as a stream entry ID.
func entryID(pos engine.Pos) string { return ids.EntryID{MS: pos.Hi, Seq: pos.Lo}.String() }

func parsePos(s string) (engine.Pos, bool) {
	e, ok := ids.ParseEntryID(s)
	return engine.Pos{Hi: e.MS, Lo: e.Seq}, ok
}

func mustPos(s string) (engine.Pos, error) {
	p, ok := parsePos(s)
	if !ok {
		return engine.Pos{}, fmt.Errorf("switchboard/broker/redis: unexpected stream entry ID %q", s)
	}
	return p, nil
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
