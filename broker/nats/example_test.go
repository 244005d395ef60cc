package nats_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/nats"
)

// The edge checks --broker-url up front.
func ExampleParseURL() {
	servers, err := nats.ParseURL("nats://nats-0:4222,nats-1")
	fmt.Println(servers, err)
	_, err = nats.ParseURL("nats://nats-0:4222/stream")
	fmt.Println(errors.Is(err, nats.ErrInvalidConfig))
	// Output:
	// [nats://nats-0:4222 nats://nats-1:4222] <nil>
	// true
}

func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := nats.New(ctx, nats.Config{
		URL:    "nats://127.0.0.1:4222",
		MaxAge: 48 * time.Hour, // the resume window shared by every room
	}, slog.Default())
	if errors.Is(err, broker.ErrUnavailable) {
		fmt.Println(err) // one line: cannot reach nats at …
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(context.Background())
	// node, err := core.NewNode(core.Config{}, b, logger)
}
