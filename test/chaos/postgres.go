package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	sbpostgres "github.com/switchboard-dev/switchboard/broker/postgres"
	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
)

// pgServer is the suite's PostgreSQL: a server of pgtest (Debian's
// postgresql, initialised in a temporary directory, run as the postgres
// user when the suite runs as root, as the suite's child) on a fixed
// address, so that a restart keeps the edges' URL. Its data directory is
// a temporary one (the postgres user must reach it, and it is large);
// its output goes to logPath in the run's directory. The suite's
// goroutine calls its methods, one at a time.
type pgServer struct {
	dir     string // the server's directory, removed by close
	logPath string
	host    string
	port    int
	srv     *pgtest.Server
}

// newPGServer prepares a server on host:port (started by start).
func newPGServer(host string, port int, logPath string) (*pgServer, error) {
	dir, err := os.MkdirTemp("", "switchboard-chaos-postgres-")
	if err != nil {
		return nil, err
	}
	return &pgServer{dir: dir, logPath: logPath, host: host, port: port}, nil
}

// start initialises the server and runs it the first time, and starts it
// again on its data afterwards.
func (p *pgServer) start(ctx context.Context) error {
	if p.srv != nil {
		return p.srv.StartContext(ctx)
	}
	srv, err := pgtest.Run(ctx, p.dir, pgtest.Config{Host: p.host, Port: p.port, LogPath: p.logPath})
	if err != nil {
		return err
	}
	p.srv = srv
	return nil
}

// restart shuts the server down and starts it on its data: with crash,
// as pg_ctl -m immediate does (SIGQUIT: nothing written, the start
// recovers from the write-ahead log), else as -m fast does (SIGINT:
// clients disconnected, a checkpoint). Neither loses a committed row.
func (p *pgServer) restart(ctx context.Context, crash bool) error {
	if p.srv == nil {
		return errors.New("postgres: not started")
	}
	if crash {
		p.srv.Kill()
	} else {
		p.srv.Stop()
	}
	return p.srv.StartContext(ctx)
}

// pause stops the postmaster and every process it forked (SIGSTOP):
// each leads a process group of its own, so the group of the one the
// suite started is not enough.
func (p *pgServer) pause() error {
	if p.srv == nil {
		return errors.New("postgres: not started")
	}
	return p.srv.Pause()
}

func (p *pgServer) resume() error {
	if p.srv == nil {
		return errors.New("postgres: not started")
	}
	return p.srv.Resume()
}

// close shuts the server down and removes its directory.
func (p *pgServer) close() {
	if p.srv != nil {
		p.srv.Close()
	}
	_ = os.RemoveAll(p.dir)
}

func (p *pgServer) logTail(n int) string { return tailFile(p.logPath, n) }

// pgLog is the edges' log table, quoted.
var pgLog = pgx.Identifier{sbpostgres.DefaultSchema, sbpostgres.DefaultTable}.Sanitize()

// readPostgresLog reads the whole log table in position order, decoding
// each row's Watermill message as the driver does (uuid, payload, and
// metadata as a JSON object).
func readPostgresLog(ctx context.Context, url string) ([]entry, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	const page = 5000
	var out []entry
	after := int64(0)
	for {
		rows, err := conn.Query(ctx, `SELECT pos, uuid, payload, metadata FROM `+pgLog+` WHERE pos > $1 ORDER BY pos LIMIT `+strconv.Itoa(page), after)
		if err != nil {
			return nil, err
		}
		n := 0
		for rows.Next() {
			var pos int64
			var uuid string
			var payload, md []byte
			if err := rows.Scan(&pos, &uuid, &payload, &md); err != nil {
				rows.Close()
				return nil, err
			}
			var meta message.Metadata
			if err := json.Unmarshal(md, &meta); err != nil {
				rows.Close()
				return nil, fmt.Errorf("row %d (%s): metadata: %w", pos, uuid, err)
			}
			msg := broker.LogMessage(uuid, meta, payload)
			e := parseEntry(msg.Payload, msg.Metadata.Get(engine.MetadataKey))
			e.Pos = strconv.FormatInt(pos, 10)
			out = append(out, e)
			after = pos
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if n < page {
			return out, nil
		}
	}
}

// positionHoles lists where the positions of a log read by
// readPostgresLog skip some. The driver promises none (it hands them
// out under the head row's lock, a refused duplicate takes none, a
// rollback gives its own back), and retention removes a prefix only: a
// hole is a failure.
func positionHoles(log []entry) []string {
	var holes []string
	prev := int64(-1)
	for _, e := range log {
		pos, err := strconv.ParseInt(e.Pos, 10, 64)
		if err != nil {
			return []string{fmt.Sprintf("position %q is not a number", e.Pos)}
		}
		if prev >= 0 && pos != prev+1 {
			holes = append(holes, fmt.Sprintf("%d to %d", prev+1, pos-1))
		}
		prev = pos
	}
	return holes
}

// trimPostgres deletes every record before position from, as the
// driver's retention does (a prefix of the log: DELETE … WHERE pos <=
// cut).
func trimPostgres(ctx context.Context, url, from string) error {
	pos, err := strconv.ParseInt(from, 10, 64)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `DELETE FROM `+pgLog+` WHERE pos < $1`, pos); err != nil {
		return fmt.Errorf("DELETE below position %d: %w", pos, err)
	}
	return nil
}
