package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
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

	// What notifications said, written by OnNotification during the
	// connection's reads (Read's goroutine, mu held).
	pending bool   // a notification arrived since the last query began
	noted   string // its epoch
	notedAt int64  // its position: the head after the append it announces
}

func (l *listener) init(d *driver, cfg *pgx.ConnConfig) {
	l.d = d
	l.cfg = cfg.Copy()
	l.cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		l.pending = true
		epoch, pos, _ := strings.Cut(n.Payload, " ")
		l.noted = epoch
		l.notedAt, _ = strconv.ParseInt(pos, 10, 64)
	}
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
// notification when there are none. The query and the wait share the
// connection that LISTENs, and the query comes after LISTEN, so an
// append committed after the query's snapshot has its notification on
// the way: nothing waits a PollInterval for a record that is there. The
// query after the wait's end is the fallback poll for a notification
// lost.
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
	for {
		l.pending = false
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
		}
		if len(r.recs) > 0 || r.epoch != epoch {
			return engine.Batch{Epoch: r.epoch, Records: r.recs, Gap: len(r.recs) > 0 && missing(after, r.head, r.recs)}, nil
		}
		if l.pending && l.noted == r.epoch && l.notedAt <= r.head {
			l.pending = false // announced what the query saw
		}
		if l.pending {
			continue // an append committed after the query's snapshot
		}
		if !time.Now().Before(deadline) {
			return engine.Batch{Epoch: epoch}, nil
		}
		wctx, wcancel := context.WithDeadline(ctx, deadline)
		err = l.conn.PgConn().WaitForNotification(wctx)
		wcancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return engine.Batch{}, ctx.Err()
		case pgconn.Timeout(err) && !l.conn.IsClosed():
			// PollInterval passed without a notification: query once
			// more (the fallback poll), then return.
		default:
			l.drop()
			return engine.Batch{}, d.unavailable("read", err)
		}
	}
}
