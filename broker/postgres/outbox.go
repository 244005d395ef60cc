package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrOutboxRefused is wrapped by an OutboxPublisher's error for a request
// that can never be published (it fails validation): the forwarder moves
// its row to switchboard_outbox_failed instead of retrying it.
var ErrOutboxRefused = errors.New("switchboard/broker/postgres: outbox request refused")

// OutboxPublisher publishes what backends committed to the outbox. The
// edge's is the server API's publish (edge/api.Publish), so that a row
// is validated and published exactly as POST /api/v1/publish publishes
// the same request.
type OutboxPublisher interface {
	// Publish publishes request, a publish request as JSON (the body of
	// POST /api/v1/publish; the functions write {"room", "data",
	// "type"} or {"to", "data"}), with the idempotency key key, and
	// returns nil once the broker has it, also when key was published
	// before (a duplicate: nothing is published again). An error wrapping
	// ErrOutboxRefused means it can never be published; any other error
	// (the broker unavailable, ctx done, an unconfirmed append) is
	// retried later with the same key.
	//
	// The forwarder calls it from several goroutines at once, one per
	// channel: requests of one room (or one user) are published one after
	// the other, in outbox order.
	Publish(ctx context.Context, request []byte, key string) error
}

// OutboxPublishFunc is a function as an OutboxPublisher.
type OutboxPublishFunc func(ctx context.Context, request []byte, key string) error

// Publish calls f.
func (f OutboxPublishFunc) Publish(ctx context.Context, request []byte, key string) error {
	return f(ctx, request, key)
}

var _ OutboxPublisher = OutboxPublishFunc(nil)

// The states of an Outbox, as OutboxStats reports them.
const (
	OutboxStarting   = "starting"   // connecting for the first time
	OutboxStandby    = "standby"    // connected; another edge forwards
	OutboxForwarding = "forwarding" // this edge forwards
	OutboxRetrying   = "retrying"   // the database failed (unreachable, restarting): reconnecting
	OutboxClosed     = "closed"
)

// OutboxStats is an Outbox's state and counters.
type OutboxStats struct {
	State string `json:"state"`
	// Forwarded counts the rows this edge published and deleted.
	Forwarded uint64 `json:"forwarded"`
	// DeadLettered counts the rows this edge moved to
	// switchboard_outbox_failed.
	DeadLettered uint64 `json:"dead_lettered"`
	// Retries counts the batches whose publication failed and was
	// retried.
	Retries uint64 `json:"retries"`
	// LastError is the last failure, of the database or of a
	// publication, until forwarding works again.
	LastError string `json:"last_error,omitempty"`
}

// Outbox forwards what backends publish with switchboard_publish (and
// switchboard_publish_user) inside their own transactions: see doc.go.
// Every edge runs one; the one that holds the outbox's advisory lock
// forwards, the others stand by to take over. Its methods are safe for
// concurrent use.
type Outbox struct {
	cfg  OutboxConfig
	n    outboxNames
	pub  OutboxPublisher
	log  *slog.Logger
	base *slog.Logger // without the outbox attribute: migrateUnit adds its own
	addr string
	conn *pgx.ConnConfig

	life    context.Context // ends at Close
	endLife context.CancelFunc
	done    chan struct{} // closed when run has returned

	mu         sync.Mutex
	stats      OutboxStats
	troubled   bool // the database is failing: logged once
	stalled    bool // publications are failing: logged once
	handedOver bool // and this edge handed the lock over: logged once
	lastState  string

	// run's own (and OnNotification's, called during run's reads):
	pending   bool           // a notification arrived since the last read of the outbox began
	epoch     string         // the outbox's epoch, as last read
	published map[int64]bool // rows of epoch published but not known to be deleted
	backoff   time.Duration  // before the next retry of lanes whose publication failed

	claimSQL, skipSQL, lockSQL, doneSQL string
}

// NewOutbox validates cfg, connects to the database, installs or
// migrates the outbox there (switchboard_publish with it) and starts
// forwarding through pub. A database that refuses this user or the
// migration is an error (a setting to fix); one that cannot be reached
// is not: the Outbox reports OutboxRetrying, logs it once, and keeps
// trying until it can. Close stops it.
func NewOutbox(ctx context.Context, cfg OutboxConfig, pub OutboxPublisher, logger *slog.Logger) (*Outbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, errors.New("switchboard/broker/postgres: NewOutbox: nil OutboxPublisher")
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	o, err := newOutbox(cfg, pub, logger)
	if err != nil {
		return nil, err
	}
	conn, err := o.connect(ctx)
	if err != nil {
		if !outage(err) {
			o.endLife()
			return nil, fmt.Errorf("switchboard/broker/postgres: outbox at %s: %w (check --outbox-url)", o.addr, err)
		}
		o.trouble(err)
	}
	go o.run(conn)
	return o, nil
}

// MigrateOutbox installs or migrates the outbox in cfg's database (what
// NewOutbox does first), for a deployment step or a test; edges do it
// themselves.
func MigrateOutbox(ctx context.Context, cfg OutboxConfig, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	o, err := newOutbox(cfg, OutboxPublishFunc(nil), logger)
	if err != nil {
		return err
	}
	defer o.endLife()
	conn, err := o.connect(ctx)
	if err != nil {
		return fmt.Errorf("switchboard/broker/postgres: outbox at %s: %w", o.addr, err)
	}
	o.closeConn(conn)
	return nil
}

func newOutbox(cfg OutboxConfig, pub OutboxPublisher, logger *slog.Logger) (*Outbox, error) {
	cc, err := pgx.ParseConfig(cfg.URL)
	if err != nil { // Validate parsed it already
		return nil, fmt.Errorf("%w: URL: %w", ErrInvalidConfig, err)
	}
	n := newOutboxNames(cfg.Schema)
	life, endLife := context.WithCancel(context.Background())
	o := &Outbox{
		cfg: cfg, n: n, pub: pub,
		log:  logger.With("outbox", n.unit),
		base: logger,
		addr: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))),
		life: life, endLife: endLife, done: make(chan struct{}),
		stats:     OutboxStats{State: OutboxStarting},
		published: map[int64]bool{},
		backoff:   cfg.RetryBackoff,
	}
	o.conn = outboxConnConfig(cc, cfg)
	o.conn.OnNotification = func(*pgconn.PgConn, *pgconn.Notification) { o.pending = true }
	o.lockSQL = `SELECT pg_try_advisory_lock(hashtextextended('switchboard_outbox:` + n.unit + `', 0))`
	// The oldest rows; skipSQL leaves out those of the lanes whose
	// publication failed: $2 names the lanes (as lanes does), $3 rows of
	// theirs outboxLane does not know.
	claim := func(where string) string {
		return `SELECT e.epoch, o.id, o.request::text
FROM (SELECT epoch FROM ` + n.epoch + ` LIMIT 1) e LEFT JOIN LATERAL (
	SELECT r.id, r.request FROM ` + n.outbox + ` r` + where + `
	ORDER BY r.id LIMIT $1) o ON true
ORDER BY o.id`
	}
	o.claimSQL = claim("")
	o.skipSQL = claim(`
	WHERE NOT coalesce(` + outboxLane("r") + ` = ANY($2::text[]), false) AND r.id <> ALL($3::bigint[])`)
	// One statement: the published rows go, the refused ones move to
	// the dead letters, unless the outbox was recreated since they were
	// read (its ids then name other rows).
	o.doneSQL = `WITH e AS (SELECT 1 FROM ` + n.epoch + ` WHERE epoch = $1),
gone AS (DELETE FROM ` + n.outbox + ` o WHERE o.id = ANY($2::bigint[]) AND EXISTS (SELECT 1 FROM e)),
dead AS (DELETE FROM ` + n.outbox + ` o USING unnest($3::bigint[], $4::text[]) AS d(id, error)
	WHERE o.id = d.id AND EXISTS (SELECT 1 FROM e)
	RETURNING o.id, o.request, o.created_at, d.error)
INSERT INTO ` + n.failed + ` (epoch, id, request, error, created_at)
SELECT $1, dead.id, dead.request, dead.error, dead.created_at FROM dead
ON CONFLICT DO NOTHING`
	return o, nil
}

// outboxConnConfig applies cfg's settings to the forwarder's connection.
// The server side keeps TCP keepalives short: a forwarding edge that
// vanished without closing its connection (a network partition, a
// machine lost) holds the lock until PostgreSQL notices, which by the
// operating system's defaults takes hours.
func outboxConnConfig(c *pgx.ConnConfig, cfg OutboxConfig) *pgx.ConnConfig {
	c = c.Copy()
	c.ConnectTimeout = cfg.DialTimeout
	if c.RuntimeParams == nil {
		c.RuntimeParams = map[string]string{}
	}
	for k, v := range map[string]string{
		"application_name":        "switchboard outbox",
		"tcp_keepalives_idle":     "10",
		"tcp_keepalives_interval": "5",
		"tcp_keepalives_count":    "3",
		"jit":                     "off",
	} {
		if c.RuntimeParams[k] == "" {
			c.RuntimeParams[k] = v
		}
	}
	return c
}

// connect opens a connection and migrates the outbox on it.
func (o *Outbox) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.DialTimeout+2*o.cfg.QueryTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, o.conn)
	if err != nil {
		return nil, err
	}
	if err := migrateUnit(ctx, c, o.n.schemaUnit(), o.base); err != nil {
		o.closeConn(c)
		return nil, err
	}
	return c, nil
}

func (o *Outbox) closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// run forwards until Close: it connects (conn, if not nil, is
// connected), stands by or forwards, and after any failure of the
// database connects again, with backoff. A session that hands the lock
// over (its publications all failed for handOverAfter) is followed by a
// pause of handOverPause, connected to nothing, for another edge to
// take over.
func (o *Outbox) run(conn *pgx.Conn) {
	defer close(o.done)
	defer o.setState(OutboxClosed)
	backoff := o.cfg.RetryBackoff
	for {
		if conn == nil {
			c, err := o.connect(o.life)
			if o.life.Err() != nil {
				if c != nil {
					o.closeConn(c)
				}
				return
			}
			if err != nil {
				o.trouble(err)
				if !o.wait(backoff) {
					return
				}
				backoff = min(2*backoff, o.cfg.MaxRetryBackoff)
				continue
			}
			conn = c
		}
		backoff = o.cfg.RetryBackoff
		err := o.session(conn)
		o.closeConn(conn) // and with it the lock, if this edge held it
		conn = nil
		if o.life.Err() != nil {
			return
		}
		if errors.Is(err, errHandOver) {
			o.setState(OutboxStandby)
			if !o.wait(o.handOverPause()) {
				return
			}
			continue
		}
		o.trouble(err)
		if !o.wait(backoff) {
			return
		}
	}
}

// errHandOver ends a session whose publications have all failed for
// handOverAfter.
var errHandOver = errors.New("switchboard/broker/postgres: outbox: publishing makes no progress")

// handOverAfter is how long the forwarder goes on while every
// publication fails (and none succeeds) before it hands the outbox's
// lock to another edge: ten of the longest retry backoffs and one
// publication's timeout (25 s by default). A broker's own failover,
// which every edge sees alike, passes well within it; an edge that
// reaches PostgreSQL but not its broker does not keep the lock from the
// edges that reach both.
func (o *Outbox) handOverAfter() time.Duration {
	return 10*o.cfg.MaxRetryBackoff + o.cfg.PublishTimeout
}

// handOverPause is how long an edge that handed the lock over waits
// before it tries to take it again: four takeover intervals, so that
// every standby edge has tried meanwhile, and no less than the longest
// retry backoff, so that edges whose brokers all fail pass the lock
// around no faster than they would retry (2 s by default).
func (o *Outbox) handOverPause() time.Duration {
	return max(4*o.cfg.TakeoverInterval, o.cfg.MaxRetryBackoff)
}

// wait waits for d, or until Close: it reports whether d passed.
func (o *Outbox) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-o.life.Done():
		return false
	case <-t.C:
		return true
	}
}

// session stands by until this edge holds the outbox's lock (a session
// lock: it is released when the connection ends, however it ends), then
// forwards until the connection fails, its publications have all failed
// for handOverAfter (errHandOver), or Close. While forwarding, it
// LISTENs before every read of the outbox, so a commit after a read's
// snapshot has its notification on the way: the wait that follows ends
// at once.
//
// A lane (a room, a user) whose publication fails is skipped, by the
// reads too, until its retry: the other lanes' rows keep coming however
// many of its rows wait, and a notification is answered at once while it
// waits. The lanes that failed are retried together, after a backoff
// that doubles while they go on failing.
func (o *Outbox) session(conn *pgx.Conn) error {
	for {
		var got bool
		err := o.query(func(ctx context.Context) error { return conn.QueryRow(ctx, o.lockSQL).Scan(&got) })
		if err != nil {
			return err
		}
		if got {
			break
		}
		o.setState(OutboxStandby)
		if !o.wait(o.cfg.TakeoverInterval) {
			return o.life.Err()
		}
	}
	if err := o.query(func(ctx context.Context) error {
		_, err := conn.Exec(ctx, "LISTEN "+o.n.listen)
		return err
	}); err != nil {
		return err
	}
	o.setState(OutboxForwarding)
	var (
		skip    skipped
		retryAt time.Time // when the skipped lanes are tried again
		failing time.Time // since when publications fail and none succeeds (zero: they do not)
	)
	for {
		if len(skip.lanes) > 0 && !time.Now().Before(retryAt) {
			skip = skipped{} // their turn: retried where each stopped
		}
		waiting := len(skip.lanes) > 0
		o.pending = false
		res, err := o.forwardBatch(conn, &skip)
		if err != nil {
			return err
		}
		now := time.Now()
		if res.published > 0 {
			failing = time.Time{}
		}
		if res.failed {
			if failing.IsZero() && res.published == 0 {
				failing = now
			}
			if !waiting { // the first to fail since the last retry
				retryAt = now.Add(o.backoff)
				o.backoff = min(2*o.backoff, o.cfg.MaxRetryBackoff)
			}
		}
		if !failing.IsZero() && now.Sub(failing) >= o.handOverAfter() {
			o.handOver(now.Sub(failing))
			return errHandOver
		}
		if res.full || o.pending {
			continue
		}
		// The outbox was read to its end.
		wait := o.cfg.PollInterval
		if len(skip.lanes) > 0 {
			wait = min(wait, time.Until(retryAt))
			if wait <= 0 {
				continue
			}
		} else {
			failing = time.Time{}
			o.backoff = o.cfg.RetryBackoff
			o.recovered()
		}
		wctx, cancel := context.WithTimeout(o.life, wait)
		err = conn.PgConn().WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
		case o.life.Err() != nil:
			return o.life.Err()
		case pgconn.Timeout(err) && !conn.IsClosed():
			// The wait passed without a notification: read the outbox
			// anyway (the fallback poll, or a retry).
		default:
			return err
		}
	}
}

// query runs op with a statement's timeout.
func (o *Outbox) query(op func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(o.life, o.cfg.QueryTimeout)
	defer cancel()
	return op(ctx)
}

// outboxRow is one row read from the outbox.
type outboxRow struct {
	id      int64
	request []byte
}

// skipped are the lanes whose publication failed, waiting for their
// retry: reads leave their rows out, so that they never fill a batch.
type skipped struct {
	lanes map[string]bool
	// ids are rows of those lanes that outboxLane does not recognise
	// (read once, then left out by id).
	ids []int64
}

type batchResult struct {
	full      bool // as many rows as BatchSize: more may wait
	progress  int  // rows published or moved to the dead letters
	published int  // rows the publisher took in this batch
	failed    bool // a publication failed: its lane is skipped until its retry
}

// forwardBatch reads the oldest rows, leaving out skip's, publishes them
// (a lane per channel, in order within each), then deletes the
// published ones and moves the refused ones to the dead letters in one
// statement. A lane whose publication fails stops there, so that its
// later rows wait for it, and joins skip; the other lanes go on.
//
// Every read starts at the oldest row, in a snapshot of its own, so a
// lane's rows come in the order of its commits: a lane either has all
// its rows left out or its oldest ones read.
//
// A crash after a publication and before the delete leaves the row: the
// next forwarder (another edge, or this one) publishes it again with
// the same key, which the broker refuses within its idempotency window,
// so nothing is delivered twice. Rows this edge published are also
// remembered until deleted, and are not published again by it at all.
func (o *Outbox) forwardBatch(conn *pgx.Conn, skip *skipped) (batchResult, error) {
	var epoch string
	var rows []outboxRow
	filtered := len(skip.lanes) > 0
	err := o.withSchema(conn, func(ctx context.Context) error {
		epoch, rows = "", rows[:0]
		var rs pgx.Rows
		var err error
		if filtered {
			names := make([]string, 0, len(skip.lanes))
			for l := range skip.lanes {
				names = append(names, l)
			}
			ids := skip.ids
			if ids == nil {
				ids = []int64{} // not NULL, which would leave out every row
			}
			rs, err = conn.Query(ctx, o.skipSQL, o.cfg.BatchSize, names, ids)
		} else {
			rs, err = conn.Query(ctx, o.claimSQL, o.cfg.BatchSize)
		}
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var id *int64
			var req []byte
			if err := rs.Scan(&epoch, &id, &req); err != nil {
				return err
			}
			if id != nil {
				rows = append(rows, outboxRow{*id, req})
			}
		}
		return rs.Err()
	})
	if err != nil {
		return batchResult{}, err
	}
	if epoch == "" {
		return batchResult{}, fmt.Errorf("%s has no row: drop the outbox's tables (rows not yet forwarded are lost) and an edge creates them again", o.n.epoch)
	}
	if epoch != o.epoch {
		o.epoch, o.published = epoch, map[int64]bool{}
		if len(skip.ids) > 0 {
			// Those ids were the old outbox's: read again without them.
			skip.ids = nil
			return batchResult{full: true}, nil
		}
	}
	if !filtered {
		// Ids are never reused within an epoch: what this edge
		// published below the oldest row left was deleted (by another
		// edge, say).
		for id := range o.published {
			if len(rows) == 0 || id < rows[0].id {
				delete(o.published, id)
			}
		}
	}
	res := batchResult{full: len(rows) == o.cfg.BatchSize}
	if len(rows) == 0 {
		return res, nil
	}

	var (
		mu       sync.Mutex
		done     []int64
		deadIDs  []int64
		deadErrs []string
		failed   error
		stopped  []string // lanes whose publication failed
		wg       sync.WaitGroup
		sem      = make(chan struct{}, o.cfg.Lanes)
	)
	for _, lane := range lanes(rows) {
		if skip.lanes[lane.key] { // rows outboxLane did not recognise
			for _, r := range lane.rows {
				skip.ids = append(skip.ids, r.id)
			}
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, r := range lane.rows {
				if o.published[r.id] { // read only while the lanes run
					mu.Lock()
					done = append(done, r.id)
					mu.Unlock()
					continue
				}
				ctx, cancel := context.WithTimeout(o.life, o.cfg.PublishTimeout)
				err := o.pub.Publish(ctx, r.request, OutboxKey(epoch, r.id))
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					done = append(done, r.id)
					res.published++
				case errors.Is(err, ErrOutboxRefused):
					deadIDs, deadErrs = append(deadIDs, r.id), append(deadErrs, err.Error())
				default:
					failed = err
					stopped = append(stopped, lane.key)
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, ErrOutboxRefused) {
					return // this lane's later rows wait for this one
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range done {
		o.published[id] = true
	}
	if len(stopped) > 0 {
		if skip.lanes == nil {
			skip.lanes = map[string]bool{}
		}
		for _, l := range stopped {
			skip.lanes[l] = true
		}
	}
	res.progress, res.failed = len(done)+len(deadIDs), failed != nil
	if res.progress > 0 {
		if err := o.query(func(ctx context.Context) error {
			_, err := conn.Exec(ctx, o.doneSQL, epoch, done, deadIDs, deadErrs)
			return err
		}); err != nil {
			return batchResult{}, err
		}
		for _, id := range done {
			delete(o.published, id)
		}
		for i, id := range deadIDs {
			o.log.Warn("outbox: a request can never be published; moved to "+o.n.failed,
				"id", id, "err", deadErrs[i], "request", truncate(rowRequest(rows, id), 200))
		}
	}
	o.mu.Lock()
	o.stats.Forwarded += uint64(len(done))
	o.stats.DeadLettered += uint64(len(deadIDs))
	if failed != nil {
		o.stats.Retries++
		o.stats.LastError = failed.Error()
		if !o.stalled {
			o.stalled = true
			o.log.Warn("outbox: publishing failed; retrying with the same idempotency keys", "err", failed)
		}
	}
	o.mu.Unlock()
	return res, nil
}

// recovered records that no publication is failing (the outbox was
// read to its end with no lane waiting for a retry), logged once after
// failures.
func (o *Outbox) recovered() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.handedOver = false
	if o.stalled {
		o.stalled = false
		o.stats.LastError = ""
		o.log.Info("outbox: publishing again")
	}
}

// handOver logs that this edge gives up the lock, once until
// publishing works again.
func (o *Outbox) handOver(failing time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.handedOver {
		o.log.Debug("outbox: publishing still fails; handing over again", "for", failing.Round(time.Millisecond))
		return
	}
	o.handedOver = true
	o.log.Warn("outbox: no publication has succeeded for "+failing.Round(time.Millisecond).String()+
		"; releasing the outbox's lock so that another edge forwards, and standing by",
		"pause", o.handOverPause(), "err", o.stats.LastError)
}

// OutboxKey is the idempotency key the forwarder publishes the outbox
// row id of epoch with.
func OutboxKey(epoch string, id int64) string {
	return "outbox:" + epoch + ":" + strconv.FormatInt(id, 10)
}

// laneRows are the rows of one channel, in outbox order.
type laneRows struct {
	key  string
	rows []outboxRow
}

// lanes splits rows by channel, keeping their order: the rows of one
// room (key "r<room>"), of one user's direct channel ("u<user>"), or
// the broadcasts ("b"). A request whose target cannot be read is a lane
// of its own ("#<id>": it will be refused).
func lanes(rows []outboxRow) []laneRows {
	var out []laneRows
	index := map[string]int{}
	for _, r := range rows {
		var t struct {
			Room      string `json:"room"`
			To        string `json:"to"`
			Broadcast bool   `json:"broadcast"`
		}
		var key string
		switch err := json.Unmarshal(r.request, &t); {
		case err != nil:
			key = "#" + strconv.FormatInt(r.id, 10)
		case t.Room != "":
			key = "r" + t.Room
		case t.To != "":
			key = "u" + t.To
		case t.Broadcast:
			key = "b"
		default:
			key = "#" + strconv.FormatInt(r.id, 10)
		}
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, laneRows{key: key})
		}
		out[i].rows = append(out[i].rows, r)
	}
	return out
}

// outboxLane is, in SQL, the lane key lanes gives the outbox row r, for
// the rows in the shape switchboard_publish and switchboard_publish_user
// write ({"room", "data"[, "type"]}, {"to", "data"}), and NULL for any
// other: lanes, which reads what the server API reads (case-insensitive
// names, say), decides those. So a read leaves out only rows of the
// lanes it is told, never another lane's.
func outboxLane(r string) string {
	q := r + ".request"
	return `(CASE WHEN jsonb_typeof(` + q + `) <> 'object' THEN NULL
	WHEN jsonb_typeof(` + q + `->'room') = 'string' AND ` + q + `->>'room' <> ''
		AND ` + q + ` - 'room' - 'data' - 'type' = '{}'::jsonb THEN 'r' || (` + q + `->>'room')
	WHEN jsonb_typeof(` + q + `->'to') = 'string' AND ` + q + `->>'to' <> ''
		AND ` + q + ` - 'to' - 'data' = '{}'::jsonb THEN 'u' || (` + q + `->>'to')
	END)`
}

func rowRequest(rows []outboxRow, id int64) string {
	for _, r := range rows {
		if r.id == id {
			return string(r.request)
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// withSchema runs op; if the outbox's tables are missing (dropped under
// a running edge), it migrates, which creates them anew under a new
// epoch, and runs op once more.
func (o *Outbox) withSchema(conn *pgx.Conn, op func(ctx context.Context) error) error {
	err := o.query(op)
	if !undefined(err) {
		return err
	}
	if merr := o.query(func(ctx context.Context) error { return migrateUnit(ctx, conn, o.n.schemaUnit(), o.base) }); merr != nil {
		return errors.Join(err, merr)
	}
	return o.query(op)
}

// setState records the state, logging a change of role.
func (o *Outbox) setState(state string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stats.State = state
	if state == OutboxStandby || state == OutboxForwarding {
		if o.troubled {
			o.troubled = false
			o.stats.LastError = ""
			o.log.Info("outbox: postgres reachable again", "addr", o.addr)
		}
	}
	if state == o.lastState {
		return
	}
	o.lastState = state
	switch state {
	case OutboxForwarding:
		o.log.Info("outbox: forwarding (this edge holds the outbox's lock)")
	case OutboxStandby:
		o.log.Info("outbox: standing by (another edge forwards)")
	}
}

// trouble records a failure of the database, logged once until it
// works again.
func (o *Outbox) trouble(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stats.State = OutboxRetrying
	o.lastState = OutboxRetrying
	o.stats.LastError = err.Error()
	if o.troubled {
		o.log.Debug("outbox: postgres still failing", "addr", o.addr, "err", err)
		return
	}
	o.troubled = true
	if outage(err) {
		o.log.Warn("outbox: cannot reach postgres; retrying", "addr", o.addr, "err", err)
	} else {
		o.log.Error("outbox: postgres refused a statement; retrying", "addr", o.addr, "err", err)
	}
}

// Stats returns the state and counters.
func (o *Outbox) Stats() OutboxStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// Close stops forwarding and closes the connection (another edge takes
// over). A publication in flight is abandoned: its row stays, and is
// published again with its key. It waits for the forwarder to stop, up
// to ctx, and is idempotent.
func (o *Outbox) Close(ctx context.Context) error {
	o.endLife()
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
