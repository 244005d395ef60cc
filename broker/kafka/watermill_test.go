package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/core"
)

// saramaConfig is what a Watermill application would use: Sarama through
// watermill-kafka, speaking a protocol version with record headers.
func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_8_0_0
	c.ClientID = "watermill-app"
	c.Producer.Return.Successes = true
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}

// TestWatermillAppOnTheTopic: a Watermill application on the topic, with
// watermill-kafka's own publisher and subscriber, interoperates with the
// broker over the wire: what it publishes (a message made the way the
// broker makes them) is delivered by the broker, and what the broker
// publishes reaches its subscriber as the same message.
func TestWatermillAppOnTheTopic(t *testing.T) {
	t.Parallel()
	cluster := newCluster(t)
	cfg := config(cluster.ListenAddrs(), "watermill")
	b := newBroker(t, cfg)
	rec := brokertest.Listen(t, b)
	wlog := broker.WatermillLogger(quiet)

	pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{
		Brokers: cfg.Brokers, Marshaler: wkafka.DefaultMarshaler{}, OverwriteSaramaConfig: saramaConfig(),
	}, wlog)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sent := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "w", Data: []byte(`"from watermill"`),
		Trace: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	if err := pub.Publish(cfg.Topic, broker.NewMessage(core.RoomChannel("w"), sent)); err != nil {
		t.Fatalf("watermill-kafka Publish: %v", err)
	}
	rec.WaitN(t, 1, waitTime)
	got := rec.Deliveries()[0] // with its channel
	if got.Channel != core.RoomChannel("w") || string(got.Envelope.Data) != string(sent.Data) ||
		got.Envelope.Trace["traceparent"] != sent.Trace["traceparent"] || got.Envelope.ID == "" {
		t.Fatalf("delivered %s %+v, want room:w %+v with an id", got.Channel, got.Envelope, sent)
	}

	sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
		Brokers: cfg.Brokers, Unmarshaler: wkafka.DefaultMarshaler{}, OverwriteSaramaConfig: saramaConfig(),
	}, wlog)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, cfg.Topic)
	if err != nil {
		t.Fatalf("watermill-kafka Subscribe: %v", err)
	}
	id := publish(t, b, core.RoomChannel("w"), 7)
	for i := 0; ; i++ { // the subscriber reads from the oldest: the first message, then ours
		select {
		case msg, ok := <-msgs:
			if !ok {
				t.Fatal("the subscription ended")
			}
			msg.Ack()
			d, err := broker.ParseMessage(msg)
			if err != nil {
				t.Fatalf("message %d read by watermill-kafka: %v", i, err)
			}
			if i == 0 {
				continue
			}
			if d.Channel != core.RoomChannel("w") || string(d.Envelope.Data) != "7" || msg.UUID == "" {
				t.Fatalf("watermill-kafka read %s %+v (uuid %q), want the broker's message %s", d.Channel, d.Envelope, msg.UUID, id)
			}
			return
		case <-ctx.Done():
			t.Fatalf("watermill-kafka's subscriber read %d messages within 20s, want 2", i)
		}
	}
}
