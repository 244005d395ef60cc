package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
