package postgres_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql's "pgx" driver

	"github.com/switchboard-dev/switchboard/broker"
	sbpg "github.com/switchboard-dev/switchboard/broker/postgres"
)

// A node's broker on PostgreSQL: New checks the config, reaches the
// database and creates or migrates the log's tables; the node
// (core.NewNode) starts it; Close releases it on shutdown.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := sbpg.New(ctx, sbpg.Config{
		URL:     "postgres://switchboard@127.0.0.1:5432/app?sslmode=disable",
		MaxMsgs: 1_000_000, // the resume window shared by every room
		MaxAge:  time.Hour,
	}, slog.Default())
	if errors.Is(err, broker.ErrUnavailable) {
		fmt.Println(err) // one line: cannot reach postgres at …
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(context.Background())
	// node, err := core.NewNode(core.Config{}, b, logger)
}

// A backend on PostgreSQL publishes inside its own transaction, here
// with database/sql (through pgx's driver; lib/pq works alike): the
// order's row and its message commit together. The edge (--outbox-url,
// or --broker postgres) installed switchboard_publish and forwards the
// message once the transaction commits; after a rollback there is
// nothing to forward.
func Example_databaseSQL() {
	db, err := sql.Open("pgx", "postgres://app@127.0.0.1:5432/app?sslmode=disable")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := payOrder(ctx, db, 42); err != nil {
		fmt.Println(err) // nothing was paid, nothing is published
	}
}

// payOrder marks an order paid and announces it to the order's room, in
// one transaction.
func payOrder(ctx context.Context, db *sql.DB, order int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = 'paid' WHERE id = $1`, order); err != nil {
		return err
	}
	data, err := json.Marshal(map[string]any{"order": order, "status": "paid"})
	if err != nil {
		return err
	}
	room := fmt.Sprintf("orders:%d", order)
	if _, err := tx.ExecContext(ctx, `SELECT switchboard_publish($1, $2, 'order.paid')`, room, string(data)); err != nil {
		return err // e.g. an invalid room: the transaction fails here
	}
	return tx.Commit()
}

// An edge of your own (see edge/command) forwards the outbox through its
// node: NewOutbox installs switchboard_publish and forwards each row
// with an OutboxPublisher. The switchboard edge's publishes as the
// server API does (edge/api.Publish).
func ExampleNewOutbox() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	publish := sbpg.OutboxPublishFunc(func(ctx context.Context, request []byte, key string) error {
		// Validate request (a publish request as JSON) and publish it with
		// key as its idempotency key; wrap ErrOutboxRefused for a request
		// that can never be published.
		return nil
	})
	o, err := sbpg.NewOutbox(ctx, sbpg.OutboxConfig{URL: "postgres://switchboard@127.0.0.1:5432/app?sslmode=disable"}, publish, slog.Default())
	if err != nil {
		fmt.Println(err) // the database refused: a setting to fix
		return
	}
	defer o.Close(context.Background())
	fmt.Println(o.Stats().State) // starting, standby, forwarding or retrying
}
