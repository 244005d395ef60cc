package pgtest_test

import (
	"context"
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
