package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
)

// New validates cfg, connects to PostgreSQL, migrates the log's schema
// (creating the log if it has none) and returns the log engine over it.
// An unreachable database is an error wrapping broker.ErrUnavailable; a
// bad cfg one wrapping ErrInvalidConfig. Call Start to begin delivering,
// and Close to release the connections.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*engine.Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("broker", "postgres", "log", cfg.Schema+"."+cfg.Table)
	d, err := open(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	b, err := engine.New(d, cfg.Engine, logger)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return b, nil
}

// driver is the PostgreSQL engine.Driver: the log is a table whose rows
// are Watermill messages at dense positions, handed out under the head
// row's lock (see doc.go). Three connection sets keep the paths apart:
// appends and trimming (pub), history reads and Head (hist), and the
// reader's own connection, which LISTENs (listen).
type driver struct {
	cfg   Config
	names names
	addr  string
	log   *slog.Logger

	pub, hist *pgxpool.Pool
	listen    listener
	migrating sync.Mutex // one migration at a time on this node

	life    context.Context // ends at Close
	endLife context.CancelFunc
	trimmer sync.WaitGroup

	readSQL, rangeSQL, headSQL, sinceSQL, appendSQL, trimSQL string
}

// open connects, migrates and starts the trimmer.
func open(ctx context.Context, cfg Config, logger *slog.Logger) (*driver, error) {
	n := newNames(cfg.Schema, cfg.Table)
	conn, err := pgx.ParseConfig(cfg.URL)
	if err != nil { // Validate parsed it already
		return nil, fmt.Errorf("%w: URL: %w", ErrInvalidConfig, err)
	}
	life, endLife := context.WithCancel(context.Background())
	d := &driver{
		cfg: cfg, names: n, log: logger,
		addr: net.JoinHostPort(conn.Host, strconv.Itoa(int(conn.Port))),
		life: life, endLife: endLife,
	}
	d.statements()
	if d.pub, err = d.pool(cfg.PoolSize); err == nil {
		d.hist, err = d.pool(cfg.HistoryPoolSize)
	}
	if err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("%w: URL: %w", ErrInvalidConfig, err)
	}
	d.listen.init(d, connConfig(conn, cfg))
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.QueryTimeout)
	defer cancel()
	if err := d.pub.Ping(pctx); err != nil {
		_ = d.Close()
		if refused(err) {
			return nil, fmt.Errorf("switchboard/broker/postgres: postgres at %s refused the connection: %w (check --broker-url)", d.addr, err)
		}
		return nil, d.unreachable(err)
	}
	if err := d.migrate(pctx); err != nil {
		_ = d.Close()
		if !outage(err) { // privileges, a schema in the way: nothing to wait for
			return nil, fmt.Errorf("switchboard/broker/postgres: migrate %s at %s: %w", n.unit, d.addr, err)
		}
		return nil, d.unavailable("migrate", err)
	}
	if err := d.listen.connect(pctx); err != nil {
		_ = d.Close()
		return nil, d.unreachable(err)
	}
	if cfg.TrimInterval > 0 {
		d.trimmer.Add(1)
		go d.trimLoop()
	}
	return d, nil
}

// connConfig applies cfg's settings to a connection's.
func connConfig(c *pgx.ConnConfig, cfg Config) *pgx.ConnConfig {
	c = c.Copy()
	c.ConnectTimeout = cfg.DialTimeout
	if c.RuntimeParams == nil {
		c.RuntimeParams = map[string]string{}
	}
	if c.RuntimeParams["application_name"] == "" {
		c.RuntimeParams["application_name"] = "switchboard"
	}
	// Append relies on read committed: waiting for the head row's lock,
	// it reads the head the previous append committed.
	c.RuntimeParams["default_transaction_isolation"] = "read committed"
	// Compiling a plan costs more than running any of these statements.
	c.RuntimeParams["jit"] = "off"
	return c
}

// pool is a connection pool of size connections. A connection idle for
// longer than pingIdle is pinged before use (pgx's default is 1s): one
// that PostgreSQL's restart closed is replaced, instead of failing the
// append that takes it, unless the restart took less than that.
func (d *driver) pool(size int) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(d.cfg.URL)
	if err != nil {
		return nil, err
	}
	pc.ConnConfig = connConfig(pc.ConnConfig, d.cfg)
	pc.MaxConns = int32(size)
	pc.MinConns = 0
	pc.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool { return p.IdleDuration > pingIdle }
	return pgxpool.NewWithConfig(context.Background(), pc)
}

// readBytesMax bounds the payload bytes of one read of the reader (the
// first record is read whatever its size).
const readBytesMax = 4 << 20

// pingIdle is how long a pooled connection may be idle before
// it is pinged (history reads are also retried: see readOnly).
const pingIdle = 100 * time.Millisecond

// statements spells the driver's SQL with the log's names.
func (d *driver) statements() {
	n := d.names
	// One statement, one snapshot: the head and the records after a
	// position. The records are the positions up to the head, every one
	// of them, except what trimming deleted (always the oldest), up to
	// $2 records and, past the first record, fewer than `bytes` bytes of
	// payloads.
	read := func(after string, bytes int64) string {
		return `SELECT h.epoch, h.pos, l.pos, l.uuid, l.payload, l.metadata
FROM (SELECT epoch, pos FROM ` + n.head + ` LIMIT 1) h LEFT JOIN LATERAL (
	SELECT s.pos, s.uuid, s.payload, s.metadata FROM (
		SELECT w.pos, w.uuid, w.payload, w.metadata,
			sum(octet_length(w.payload)) OVER (ORDER BY w.pos) - octet_length(w.payload) AS before
		FROM (SELECT r.pos, r.uuid, r.payload, r.metadata FROM ` + n.log + ` r
			WHERE r.pos > ` + after + ` ORDER BY r.pos LIMIT $2) w) s
	WHERE s.before < ` + strconv.FormatInt(bytes, 10) + `) l ON true
ORDER BY l.pos`
	}
	// The reader reads the new log from its start when the epoch changed,
	// and at most readBytesMax at once: ReadCount large messages would
	// otherwise be one transfer that QueryTimeout cuts off every time it
	// is tried again. History pages are not bounded (the engine takes a
	// short page for the log's end).
	d.readSQL = read(`CASE WHEN h.epoch = $3 THEN $1::bigint ELSE 0 END`, readBytesMax)
	d.rangeSQL = read(`$1::bigint`, math.MaxInt64)
	d.headSQL = `SELECT h.epoch, h.pos FROM ` + n.head + ` h`
	d.sinceSQL = `SELECT coalesce((SELECT min(l.pos) - 1 FROM ` + n.log + ` l WHERE l.created_at >= $1),
	(SELECT h.pos FROM ` + n.head + ` h))`
	d.appendSQL = `SELECT pos, duplicate, digest, epoch FROM ` + n.appendFn + `($1, $2, $3::text[]::jsonb[], $4, $5, $6)`
	d.trimSQL = `SELECT ` + n.trimFn + `($1, $2)`
}

func (d *driver) Name() string { return "postgres" }

// KeysInLog: the append function decides idempotency keys under the
// head row's lock, in the append's transaction.
func (d *driver) KeysInLog() bool { return true }

// unreachable is the one-line error for a database that cannot be
// reached at start.
func (d *driver) unreachable(err error) error {
	return broker.Unavailable(fmt.Sprintf("switchboard/broker/postgres: cannot reach postgres at %s: %v (is postgres running? check --broker-url)", d.addr, err), err)
}

// unavailable wraps an operation's failure.
func (d *driver) unavailable(op string, err error) error {
	return broker.Unavailable(fmt.Sprintf("switchboard/broker/postgres: %s: postgres at %s: %v", op, d.addr, err), err)
}

// refused reports whether err is the database refusing this user or
// this request (authentication, a missing database, privileges): a
// configuration to fix, not an outage to wait out.
func refused(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000" || pe.Code == "42501"
}

// outage reports whether err is the database being unreachable or
// unable to serve for now (a connection failed or timed out, a server
// shutting down, starting up or out of resources) rather than refusing
// the request itself.
func outage(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return true
	}
	for _, class := range []string{"08", "53", "57", "58"} {
		if strings.HasPrefix(pe.Code, class) {
			return true
		}
	}
	return false
}

// withSchema runs op; if the log's tables or functions are missing
// (dropped under a running node), it migrates, which creates the log
// anew under a new epoch, and runs op once more.
func (d *driver) withSchema(ctx context.Context, op func() error) error {
	err := op()
	if !undefined(err) {
		return err
	}
	if merr := d.migrate(ctx); merr != nil {
		return errors.Join(err, merr)
	}
	return op()
}

// readOnly runs a statement that changes nothing (withSchema's op) once
// more if its connection failed: a pooled connection may have been
// closed by a restart of PostgreSQL since it was last used.
func (d *driver) readOnly(ctx context.Context, op func() error) error {
	err := d.withSchema(ctx, op)
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &pe) || ctx.Err() != nil {
		return err
	}
	return d.withSchema(ctx, op)
}

// timeout bounds one statement.
func (d *driver) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.cfg.QueryTimeout)
}

// Head reads the epoch and the last position.
func (d *driver) Head(ctx context.Context) (string, engine.Pos, error) {
	ctx, cancel := d.timeout(ctx)
	defer cancel()
	var epoch string
	var pos int64
	err := d.readOnly(ctx, func() error {
		return d.hist.QueryRow(ctx, d.headSQL).Scan(&epoch, &pos)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", engine.Pos{}, fmt.Errorf("switchboard/broker/postgres: %s_head has no row: drop the log's tables to create the log again", d.names.unit)
	}
	if err != nil {
		return "", engine.Pos{}, d.unavailable("head", err)
	}
	return epoch, at(pos), nil
}

func at(pos int64) engine.Pos { return engine.Pos{Lo: uint64(pos)} }

// rows is what the read statement returns: the head, and records.
type rows struct {
	epoch string
	head  int64
	recs  []engine.Record
}

// query runs the read statement (readSQL or rangeSQL) on q.
func (d *driver) query(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) (rows, error) {
	var out rows
	rs, err := q.Query(ctx, sql, args...)
	if err != nil {
		return out, err
	}
	defer rs.Close()
	for rs.Next() {
		var pos *int64
		var uuid *string
		var payload, md []byte
		if err := rs.Scan(&out.epoch, &out.head, &pos, &uuid, &payload, &md); err != nil {
			return rows{}, err
		}
		if pos == nil {
			continue // no records: the head alone
		}
		out.recs = append(out.recs, decode(*pos, *uuid, payload, md))
	}
	if err := rs.Err(); err != nil {
		return rows{}, err
	}
	if out.epoch == "" {
		return rows{}, fmt.Errorf("%s_head has no row: drop the log's tables to create the log again", d.names.unit)
	}
	return out, nil
}

// missing reports whether records after `after` are not among recs
// although the log had them: positions are dense, so recs must begin
// right after `after` (or be empty with the head at `after`) and have no
// hole. From the zero position, the log's start is wherever it is now.
func missing(after engine.Pos, head int64, recs []engine.Record) bool {
	if len(recs) == 0 {
		return !after.IsZero() && after.Less(at(head))
	}
	if !after.IsZero() && recs[0].Pos.Lo != after.Lo+1 {
		return true
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Pos.Lo != recs[i-1].Pos.Lo+1 {
			return true
		}
	}
	return false
}

// Range reads up to max records after `after`, with the epoch and
// whether some after it were trimmed, in one statement.
func (d *driver) Range(ctx context.Context, after engine.Pos, max int) (engine.Chunk, error) {
	ctx, cancel := d.timeout(ctx)
	defer cancel()
	var r rows
	err := d.readOnly(ctx, func() (err error) {
		r, err = d.query(ctx, d.hist, d.rangeSQL, int64(after.Lo), max)
		return err
	})
	if err != nil {
		return engine.Chunk{}, d.unavailable("history", err)
	}
	return engine.Chunk{Epoch: r.epoch, Records: r.recs, Trimmed: missing(after, r.head, r.recs)}, nil
}

// Since is the position before the first record appended at or after t
// (by the database's clock), or the head when there is none.
func (d *driver) Since(ctx context.Context, t time.Time) (engine.Pos, error) {
	ctx, cancel := d.timeout(ctx)
	defer cancel()
	var pos int64
	err := d.readOnly(ctx, func() error {
		return d.hist.QueryRow(ctx, d.sinceSQL, t).Scan(&pos)
	})
	if err != nil {
		return engine.Pos{}, d.unavailable("since", err)
	}
	return at(max(pos, 0)), nil
}

// Append appends msgs with one call of the append function: one
// statement, one short transaction, one round trip. A failed statement
// appended nothing (its transaction rolled back).
func (d *driver) Append(ctx context.Context, msgs []*message.Message, window time.Duration) (string, []engine.Appended, error) {
	out := make([]engine.Appended, len(msgs))
	sent := make([]int, 0, len(msgs)) // out's index of each message sent
	uuids := make([]string, 0, len(msgs))
	payloads := make([][]byte, 0, len(msgs))
	metadata := make([]string, 0, len(msgs))
	keys := make([]*string, 0, len(msgs))
	digests := make([]string, 0, len(msgs))
	for i, msg := range msgs {
		md, err := encodeMetadata(msg)
		if err != nil {
			out[i].Err = err
			continue
		}
		sent = append(sent, i)
		uuids = append(uuids, msg.UUID)
		payloads = append(payloads, msg.Payload)
		metadata = append(metadata, md)
		var key *string
		if k := msg.Metadata.Get(engine.MetadataKey); k != "" {
			key = &k
		}
		keys = append(keys, key)
		digests = append(digests, msg.Metadata.Get(engine.MetadataDigest))
	}
	if len(sent) == 0 {
		epoch, _, err := d.Head(ctx)
		return epoch, out, err
	}
	ctx, cancel := d.timeout(ctx)
	defer cancel()
	var epoch string
	err := d.withSchema(ctx, func() error {
		rs, err := d.pub.Query(ctx, d.appendSQL, uuids, payloads, metadata, keys, digests, window)
		if err != nil {
			return err
		}
		defer rs.Close()
		k := 0
		for rs.Next() {
			var pos int64
			var dup bool
			var digest *string
			if err := rs.Scan(&pos, &dup, &digest, &epoch); err != nil {
				return err
			}
			if k == len(sent) {
				return fmt.Errorf("the append function returned more than %d results", len(sent))
			}
			a := &out[sent[k]]
			a.Pos, a.Duplicate = at(pos), dup
			if digest != nil {
				a.Digest = *digest
			}
			k++
		}
		if err := rs.Err(); err != nil {
			return err
		}
		if k != len(sent) {
			return fmt.Errorf("the append function returned %d results for %d messages", k, len(sent))
		}
		return nil
	})
	if err != nil {
		return "", nil, d.unavailable("publish", err)
	}
	return epoch, out, nil
}

// encodeMetadata is msg's metadata as a JSON object, refusing what
// PostgreSQL's text and jsonb cannot hold as it is (NUL characters,
// invalid UTF-8, which encoding/json would silently replace).
func encodeMetadata(msg *message.Message) (string, error) {
	bad := func(what, s string) error {
		return fmt.Errorf("switchboard/broker/postgres: %s %q: PostgreSQL text holds valid UTF-8 without NUL characters only", what, s)
	}
	if !validText(msg.UUID) {
		return "", bad("message UUID", msg.UUID)
	}
	for k, v := range msg.Metadata {
		if !validText(k) {
			return "", bad("metadata key", k)
		}
		if !validText(v) {
			return "", bad("metadata value of "+k, v)
		}
	}
	md := msg.Metadata
	if md == nil {
		md = message.Metadata{}
	}
	b, err := json.Marshal(md)
	if err != nil {
		return "", fmt.Errorf("switchboard/broker/postgres: metadata: %w", err)
	}
	return string(b), nil
}

func validText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// decode turns a row into a record: the Watermill message it holds, as
// watermill-sql's unmarshaller would (uuid, payload, metadata as a JSON
// object).
func decode(pos int64, uuid string, payload, md []byte) engine.Record {
	rec := engine.Record{Pos: at(pos), Size: len(payload) + len(md)}
	var meta message.Metadata
	if err := json.Unmarshal(md, &meta); err != nil {
		rec.Err = fmt.Errorf("%w: row %d: metadata: %w", broker.ErrMalformed, pos, err)
		return rec
	}
	rec.Msg = broker.LogMessage(uuid, meta, payload)
	return rec
}

// trimLoop deletes what retention no longer keeps, every TrimInterval,
// until Close.
func (d *driver) trimLoop() {
	defer d.trimmer.Done()
	t := time.NewTicker(d.cfg.TrimInterval)
	defer t.Stop()
	for {
		select {
		case <-d.life.Done():
			return
		case <-t.C:
		}
		if _, err := d.trim(d.life); err != nil && d.life.Err() == nil {
			// The reader reports outages; this is a detail of one.
			d.log.Debug("trimming the log failed", "err", err)
		}
	}
}

// trim runs the trim function once and returns how many records it
// deleted (0 when another node was trimming).
func (d *driver) trim(ctx context.Context) (int64, error) {
	ctx, cancel := d.timeout(ctx)
	defer cancel()
	var maxMsgs *int64
	var maxAge *time.Duration
	if d.cfg.MaxMsgs > 0 {
		maxMsgs = &d.cfg.MaxMsgs
	}
	if d.cfg.MaxAge > 0 {
		maxAge = &d.cfg.MaxAge
	}
	var n int64
	err := d.withSchema(ctx, func() error {
		return d.pub.QueryRow(ctx, d.trimSQL, maxMsgs, maxAge).Scan(&n)
	})
	return n, err
}

// Close stops the trimmer and closes the connections; closing the
// reader's ends a Read waiting for a notification.
func (d *driver) Close() error {
	d.endLife()
	d.trimmer.Wait()
	d.listen.close()
	if d.pub != nil {
		d.pub.Close()
	}
	if d.hist != nil {
		d.hist.Close()
	}
	return nil
}
