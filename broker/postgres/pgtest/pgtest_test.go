package pgtest_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
)

// TestServer: a server accepts connections at URL; its data survive a
// Stop and a Kill with the Start after each, on the same address; a
// stopped server refuses connections; CreateDatabase gives an empty
// database of its own.
func TestServer(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	exec := func(url, sql string) error {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}
	count := func() int {
		t.Helper()
		c, err := pgx.Connect(ctx, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := exec(srv.URL, "CREATE TABLE t (i int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if srv.Running() {
		t.Fatal("Running after Stop")
	}
	if err := exec(srv.URL, "SELECT 1"); err == nil {
		t.Fatal("a stopped server accepted a connection")
	}
	srv.Start()
	if n := count(); n != 1 {
		t.Fatalf("%d rows after Stop and Start, want 1", n)
	}
	if err := exec(srv.URL, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Start()
	if n := count(); n != 2 {
		t.Fatalf("%d rows after Kill and Start, want 2 (a committed row survives a crash)", n)
	}
	db := srv.CreateDatabase(t)
	if err := exec(db, "SELECT * FROM t"); err == nil {
		t.Fatal("CreateDatabase's database has the postgres database's table")
	}
	if err := exec(db, "CREATE TABLE t (i int)"); err != nil {
		t.Fatal(err)
	}
}

// TestRun: a server of Run (outside a test's life) accepts connections
// on Config.Port, writes its output to Config.LogPath, and is gone after Close, which
// may be called twice; Run refuses a directory that holds a server's
// data already, leaving nothing running.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "server.log")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv, err := pgtest.Run(ctx, dir, pgtest.Config{Port: port, LogPath: logPath})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if want := "127.0.0.1:" + strconv.Itoa(port); srv.Addr != want {
		t.Errorf("Addr %s, want %s (Config.Port)", srv.Addr, want)
	}
	c, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	srv.Close()
	srv.Close()
	if srv.Running() {
		t.Fatal("Running after Close")
	}
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "=== ") {
		t.Fatalf("the log %s has no start line: %v\n%s", logPath, err, b)
	}
	if again, err := pgtest.Run(ctx, dir, pgtest.Config{}); err == nil {
		again.Close()
		t.Fatal("Run initialised a directory that holds a server's data")
	}
}

// TestPause: while paused, a query on an open connection and a new
// connection both go unanswered (the backend and the postmaster are
// stopped); after Resume, a connection opened before the pause works
// and new ones are accepted. Kill ends a paused server promptly, and it
// starts again.
func TestPause(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connect := func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, srv.URL) }
	busy, err := connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(context.Background())
	idle, err := connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(context.Background())
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Pause(); err == nil {
		t.Error("a second Pause succeeded")
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := busy.Exec(short, "SELECT 1"); err == nil {
		t.Error("a query on an open connection was answered while paused")
	}
	if c, err := connect(short); err == nil {
		c.Close(ctx)
		t.Error("a new connection was accepted while paused")
	}
	cancelShort()
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("a connection opened before the pause, after Resume: %v", err)
	}
	c, err := connect(ctx)
	if err != nil {
		t.Fatalf("a new connection after Resume: %v", err)
	}
	c.Close(ctx)

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv.Kill()
	// Unless Kill resumed them first, the stopped processes would ignore
	// it until its 30 s timeout.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Kill of a paused server took %s", d)
	}
	srv.Start()
	if c, err = connect(ctx); err != nil {
		t.Fatalf("after Pause, Kill and Start: %v", err)
	}
	c.Close(ctx)
}
