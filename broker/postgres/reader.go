package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
)

// listener is the reader's own connection: it LISTENs on the log's
// channel and runs the reader's queries, so a notification is never
// missed between a query and the wait that follows it. It is
// (re)connected by the Read that needs it; every failure drops it.
type listener struct {
	d   *driver
	cfg *pgx.ConnConfig

	mu     sync.Mutex // held by Read and close
	conn   *pgx.Conn
	closed bool

	// What notifications said since the last query began, in commit
	// order, written by OnNotification during the connection's reads
	// (Read's goroutine, mu held).
	notes []note

	// caught is where the last Read left the reader: every record up to
	// the head its query saw, on this connection, with no notification
	// of a later append read since. A Read from there waits for the
	// next notification at once instead of querying a head it knows.
	caught struct {
		ok    bool
		epoch string
		pos   int64
	}

	queries atomic.Int64 // read queries run, for tests

	// wentBack is the head last reported below the reader's position
	// under the same epoch (logged once per head).
	wentBack int64
}

func (l *listener) init(d *driver, cfg *pgx.ConnConfig) {
	l.d = d
	l.cfg = cfg.Copy()
	l.cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		if len(l.notes) == maxNotes {
			// A reader this far behind queries; the last note says
			// there is more.
			l.notes[0] = l.notes[len(l.notes)-1]
			l.notes = l.notes[:1]
			l.notes[0].recs = nil
		}
		l.notes = append(l.notes, parseNote(n.Payload))
	}
}

// note is one append's notification: the log's epoch, its head after
// the append and, when they fitted, the append's records (appendV3).
type note struct {
	epoch string
	last  int64
	recs  []engine.Record // nil: not carried, or not understood
}

// maxNotes bounds the notes kept between queries.
const maxNotes = 256

// unknownPos is the head of a note whose position does not parse.
const unknownPos = math.MaxInt64

// parseNote reads "<epoch> <last>[ <records>]". A payload it does not
// understand gives a note of an unknown position, which only makes the
// reader query.
func parseNote(payload string) note {
	epoch, rest, _ := strings.Cut(payload, " ")
	last, recs, _ := strings.Cut(rest, " ")
	n := note{epoch: epoch}
	var err error
	if n.last, err = strconv.ParseInt(last, 10, 64); err != nil {
		// Newer than any position: news, never taken for a record
		// read already.
		return note{epoch: epoch, last: unknownPos}
	}
	if recs != "" {
		n.recs = parseRecords(recs, n.last)
	}
	return n
}

// parseRecords decodes appendV3's JSON array of [pos, uuid, payload in
// base64, metadata]: nil unless it is consecutive positions ending at
// last, each well formed (what it cannot read, the reader queries).
func parseRecords(s string, last int64) []engine.Record {
	var raw [][4]json.RawMessage
	if json.Unmarshal([]byte(s), &raw) != nil || len(raw) == 0 {
		return nil
	}
	recs := make([]engine.Record, len(raw))
	for i, r := range raw {
		var pos int64
		var uuid, payload string
		if json.Unmarshal(r[0], &pos) != nil || json.Unmarshal(r[1], &uuid) != nil || json.Unmarshal(r[2], &payload) != nil {
			return nil
		}
		if pos != last-int64(len(raw)-1-i) {
			return nil
		}
		b, err := base64.StdEncoding.DecodeString(payload)
		if err != nil {
			return nil
		}
		if recs[i] = decode(pos, uuid, b, r[3]); recs[i].Err != nil {
			return nil // the log's row is read by a query, not skipped
		}
	}
	return recs
}

// take returns the records that notes carry from after+1 on, at most
// max, and forgets the notes it used up; nil if the next record after
// `after` is not in a note (the reader then queries).
func (l *listener) take(epoch string, after engine.Pos, max int) []engine.Record {
	var out []engine.Record
	for len(l.notes) > 0 && len(out) < max {
		n := &l.notes[0]
		if n.epoch != epoch || after.Hi != 0 {
			break
		}
		if n.last <= int64(after.Lo) {
			l.notes = l.notes[1:] // seen already
			continue
		}
		i := 0
		for i < len(n.recs) && n.recs[i].Pos.Lo <= after.Lo {
			i++
		}
		if i == len(n.recs) || n.recs[i].Pos.Lo != after.Lo+1 {
			break // not carried, or not the next record
		}
		k := min(len(n.recs), i+max-len(out))
		out = append(out, n.recs[i:k]...)
		after = n.recs[k-1].Pos
		if k < len(n.recs) {
			n.recs = n.recs[k:]
			break
		}
		l.notes = l.notes[1:]
	}
	if len(l.notes) == 0 {
		l.notes = nil // let the used-up array go
	}
	return out
}

// announced forgets the notes of appends a query's result included
// (epoch, up to head), and reports whether none is left: nothing was
// appended after the query's snapshot.
func (l *listener) announced(epoch string, head int64) bool {
	for len(l.notes) > 0 && l.notes[0].epoch == epoch && l.notes[0].last <= head {
		l.notes = l.notes[1:]
	}
	return len(l.notes) == 0
}

// connect opens the connection and LISTENs, unless it is open.
func (l *listener) connect(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connectLocked(ctx)
}

func (l *listener) connectLocked(ctx context.Context) error {
	if l.closed {
		return broker.ErrClosed
	}
	if l.conn != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.d.cfg.DialTimeout+l.d.cfg.QueryTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "LISTEN "+l.d.names.listen); err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return err
	}
	l.conn = c
	return nil
}

// drop closes the connection after a failure (with mu held).
func (l *listener) drop() {
	l.caught.ok = false // a new connection may have missed notifications
	l.notes = nil
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = l.conn.Close(ctx)
		cancel()
		l.conn = nil
	}
}

func (l *listener) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.drop()
}

// Read returns the records after `after` (from the new log's start when
// the log is no longer epoch), waiting up to PollInterval for a
// notification when there are none.
//
// Records a notification carried (appendV3) are returned without a
// query when they are the next ones. Otherwise Read queries. The query
// and the wait share the connection that LISTENs, and the query comes
// after LISTEN, so an append committed after the query's snapshot has
// its notification on the way: nothing waits a PollInterval for a
// record that is there. The query after the wait's end is the fallback
// poll for a notification lost.
//
// A Read that continues where the last one caught up with the head (see
// listener.caught) starts with the wait: the query it would run first
// could only find the head it already knows, and any later append's
// notification is on this connection. A notification of records it has
// read already (one that arrives after the query that saw its append)
// does not make it query either.
func (d *driver) Read(ctx context.Context, epoch string, after engine.Pos, max int) (engine.Batch, error) {
	l := &d.listen
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.life, cancel)()
	if err := l.connectLocked(ctx); err != nil {
		if errors.Is(err, broker.ErrClosed) || ctx.Err() != nil {
			return engine.Batch{}, err
		}
		return engine.Batch{}, d.unavailable("read", err)
	}
	deadline := time.Now().Add(d.cfg.PollInterval)
	// atHead: the head is known to be `after`, and every notification
	// read since said nothing newer. Then only a notification can bring
	// news: wait for it rather than query.
	atHead := l.caught.ok && l.caught.epoch == epoch && after.Hi == 0 && after.Lo == uint64(l.caught.pos) && len(l.notes) == 0
	l.caught.ok = false
	for {
		// take forgets notes of what was read already (a notification
		// that arrives after a query saw its append), so only news is
		// left in l.notes.
		if recs := l.take(epoch, after, max); len(recs) > 0 {
			if len(l.notes) == 0 {
				l.caught.ok, l.caught.epoch, l.caught.pos = true, epoch, int64(recs[len(recs)-1].Pos.Lo)
			}
			return engine.Batch{Epoch: epoch, Records: recs}, nil
		}
		if !atHead || len(l.notes) > 0 {
			l.notes = l.notes[:0] // the query sees what they announced
			l.queries.Add(1)
			qctx, qcancel := d.timeout(ctx)
			var r rows
			err := d.withSchema(qctx, func() (err error) {
				r, err = d.query(qctx, l.conn, d.readSQL, int64(after.Lo), max, epoch)
				return err
			})
			qcancel()
			if err != nil {
				l.drop()
				if ctx.Err() != nil {
					return engine.Batch{}, ctx.Err()
				}
				return engine.Batch{}, d.unavailable("read", err)
			}
			if r.epoch != epoch {
				after = engine.Pos{} // the new log, from its start
			} else if r.head < int64(after.Lo) && r.head != l.wentBack {
				l.wentBack = r.head
				d.log.Error("the log's head went back under the same epoch: its positions up to this node's are handed out again and this node skips them (a failover to a standby that lost commits, a restore, synchronous_commit off and a crash?); drop the log's tables to start it under a new epoch",
					"head", r.head, "reader", after.Lo, "epoch", epoch)
			}
			announced := l.announced(r.epoch, r.head)
			if len(r.recs) > 0 || r.epoch != epoch {
				if n := len(r.recs); announced && n > 0 && r.recs[n-1].Pos.Lo == uint64(r.head) {
					l.caught.ok, l.caught.epoch, l.caught.pos = true, r.epoch, r.head
				}
				// Positions start at 1 in every epoch: a reader that
				// has read nothing of this log (after 0) and finds 16
				// first lost 1 to 15 to retention, as any other would.
				gap := len(r.recs) > 0 && (missing(after, r.head, r.recs) || after.IsZero() && r.recs[0].Pos.Lo != 1)
				return engine.Batch{Epoch: r.epoch, Records: r.recs, Gap: gap}, nil
			}
			if !announced {
				atHead = false
				continue // an append committed after the query's snapshot
			}
			if int64(after.Lo) < r.head {
				// Nothing after `after` in a snapshot whose head is past
				// it: retention took every one of them.
				return engine.Batch{Epoch: epoch, Gap: true, Head: at(r.head)}, nil
			}
			atHead = r.head == int64(after.Lo)
			if !time.Now().Before(deadline) {
				if atHead {
					l.caught.ok, l.caught.epoch, l.caught.pos = true, epoch, r.head
				}
				return engine.Batch{Epoch: epoch}, nil
			}
		}
		wctx, wcancel := context.WithDeadline(ctx, deadline)
		err := l.conn.PgConn().WaitForNotification(wctx)
		wcancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return engine.Batch{}, ctx.Err()
		case pgconn.Timeout(err) && !l.conn.IsClosed():
			// PollInterval passed without a notification: query once
			// more (the fallback poll), then return.
			atHead = false
		default:
			l.drop()
			return engine.Batch{}, d.unavailable("read", err)
		}
	}
}
