package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
)

// A node's broker on Redis: New checks the config and reaches Redis; the
// node (core.NewNode) starts it; Close releases it on shutdown.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := sbredis.New(ctx, sbredis.Config{
		URL:    "redis://127.0.0.1:6379/0",
		MaxLen: 1_000_000, // the resume window shared by every room
	}, slog.Default())
	if errors.Is(err, broker.ErrUnavailable) {
		fmt.Println(err) // one line: cannot reach redis at …
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(context.Background())
	// node, err := core.NewNode(core.Config{}, b, logger)
}
