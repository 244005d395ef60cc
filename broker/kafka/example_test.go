package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/kafka"
)

// The edge turns --broker-url into seed brokers.
func ExampleParseURL() {
	brokers, err := kafka.ParseURL("kafka://kafka-0:9092,kafka-1")
	fmt.Println(brokers, err)
	_, err = kafka.ParseURL("kafka://user:secret@kafka-0:9092")
	fmt.Println(errors.Is(err, kafka.ErrInvalidConfig))
	// Output:
	// [kafka-0:9092 kafka-1:9092] <nil>
	// true
}

func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	brokers, err := kafka.ParseURL("kafka://127.0.0.1:9092")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := kafka.New(ctx, kafka.Config{
		Brokers:   brokers,
		Retention: 48 * time.Hour, // the resume window shared by every room, if New creates the topic
	}, slog.Default())
	if errors.Is(err, broker.ErrUnavailable) {
		fmt.Println(err) // one line: cannot reach kafka at …
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(context.Background())
	// node, err := core.NewNode(core.Config{}, b, logger)
}
