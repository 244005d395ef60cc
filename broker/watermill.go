package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchboard-dev/switchboard/core"
)

// MetadataChannel is the Watermill metadata key holding a message's
// Switchboard channel ("room:…" or "user:…").
const MetadataChannel = "switchboard_channel"

// ErrMalformed marks a Watermill message that is not a Switchboard envelope.
var ErrMalformed = errors.New("switchboard/broker: malformed message")

// ErrClosed is returned by a broker used after Close.
var ErrClosed = errors.New("switchboard/broker: closed")

// NewMessage wraps env (whose ID the driver has set, or will set) for
// publication on channel.
func NewMessage(channel string, env *core.Envelope) *message.Message {
	msg := message.NewMessage(watermill.NewUUID(), env.Encode())
	msg.Metadata.Set(MetadataChannel, channel)
	return msg
}

// ParseMessage turns a Watermill message back into a delivery.
func ParseMessage(msg *message.Message) (core.Delivery, error) {
	ch := msg.Metadata.Get(MetadataChannel)
	if ch == "" {
		return core.Delivery{}, fmt.Errorf("%w: no %s metadata (uuid %s)", ErrMalformed, MetadataChannel, msg.UUID)
	}
	env, err := core.UnmarshalEnvelope(msg.Payload)
	if err != nil {
		return core.Delivery{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return core.Delivery{Channel: ch, Envelope: env}, nil
}

// Consumer drains one Watermill subscription into a delivery callback. It
// acks every message after delivering it; a malformed message is logged,
// acked and skipped, so one bad publisher cannot wedge a node.
type Consumer struct {
	wg   sync.WaitGroup
	stop context.CancelFunc
}

// Consume subscribes to topic and starts delivering until Close or ctx
// ends.
func Consume(ctx context.Context, sub message.Subscriber, topic string, deliver func(core.Delivery), log *slog.Logger) (*Consumer, error) {
	ctx, cancel := context.WithCancel(ctx)
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("switchboard/broker: subscribe %q: %w", topic, err)
	}
	c := &Consumer{stop: cancel}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for msg := range msgs {
			d, err := ParseMessage(msg)
			if err != nil {
				log.Error("dropping malformed broker message", "topic", topic, "err", err)
			} else {
				deliver(d)
			}
			msg.Ack()
		}
	}()
	return c, nil
}

// Close stops the subscription and waits for the delivery goroutine.
func (c *Consumer) Close() {
	c.stop()
	c.wg.Wait()
}

// WatermillLogger adapts slog for Watermill, demoting its chatty info
// lines to debug.
func WatermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
}
