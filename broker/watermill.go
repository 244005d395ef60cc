package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

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
	md := make(message.Metadata, 1+len(env.Trace))
	md[MetadataChannel] = channel
	for k, v := range env.Trace {
		md[MetadataTracePrefix+k] = v
	}
	return LogMessage(watermill.NewUUID(), md, env.Encode())
}

// LogMessage is a Watermill message that goes into a log or was read from
// one: message.NewMessage without the acknowledgement channels, which
// nobody uses on that path (two allocations per message per node saved).
// Do not Ack or Nack it.
func LogMessage(uuid string, md message.Metadata, payload []byte) *message.Message {
	return &message.Message{UUID: uuid, Metadata: md, Payload: payload}
}

// MetadataTracePrefix marks the Watermill metadata keys that carry an
// envelope's trace context (core.Envelope.Trace): "switchboard_trace_traceparent".
const MetadataTracePrefix = "switchboard_trace_"

// malformed counts ParseMessage failures in this process.
var malformed atomic.Uint64

// Malformed returns how many broker messages ParseMessage refused in this
// process (every driver drops them with a log line): a foreign producer
// on the topic, or a version mismatch between nodes.
func Malformed() uint64 { return malformed.Load() }

// ParseMessage turns a Watermill message back into a delivery.
func ParseMessage(msg *message.Message) (core.Delivery, error) {
	ch := msg.Metadata.Get(MetadataChannel)
	if ch == "" {
		malformed.Add(1)
		return core.Delivery{}, fmt.Errorf("%w: no %s metadata (uuid %s)", ErrMalformed, MetadataChannel, msg.UUID)
	}
	env, err := core.UnmarshalEnvelope(msg.Payload)
	if err != nil {
		malformed.Add(1)
		return core.Delivery{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for k, v := range msg.Metadata {
		if name, ok := strings.CutPrefix(k, MetadataTracePrefix); ok {
			if env.Trace == nil {
				env.Trace = make(map[string]string, 2)
			}
			env.Trace[name] = v
		}
	}
	return core.Delivery{Channel: ch, Envelope: env}, nil
}

// ConsumeOptions tunes a Consumer.
type ConsumeOptions struct {
	// Buffer is how many messages wait, in order, between the subscription
	// and the delivery callback. A message is acked as soon as it is
	// buffered, so a publisher that waits for acks (GoChannel's
	// BlockPublishUntilSubscriberAck) waits for a slow callback only while
	// the buffer is full: backpressure, never a drop. Negative disables the
	// buffer: each message is acked after deliver returns.
	// Optional. Default: 1024.
	Buffer int
}

// DefaultConsumeBuffer is ConsumeOptions.Buffer's default.
const DefaultConsumeBuffer = 1024

// Consumer drains one Watermill subscription into a delivery callback, one
// message at a time in subscription order. A reader goroutine parses and
// acks each message once it is in a bounded FIFO (ConsumeOptions.Buffer),
// and a delivery goroutine drains the FIFO into the callback; with a
// negative Buffer one goroutine delivers, then acks. A malformed message is
// logged, acked and skipped, so one bad publisher cannot wedge a node.
type Consumer struct {
	wg   sync.WaitGroup
	stop context.CancelFunc
	done chan struct{}
}

// Consume subscribes to topic and starts delivering until Close or ctx
// ends. deliver is called from one goroutine at a time, in order.
func Consume(ctx context.Context, sub message.Subscriber, topic string, deliver func(core.Delivery), log *slog.Logger, opts ConsumeOptions) (*Consumer, error) {
	if log == nil {
		log = slog.Default()
	}
	if opts.Buffer == 0 {
		opts.Buffer = DefaultConsumeBuffer
	}
	ctx, cancel := context.WithCancel(ctx)
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("switchboard/broker: subscribe %q: %w", topic, err)
	}
	c := &Consumer{stop: cancel, done: make(chan struct{})}
	parse := func(msg *message.Message) (core.Delivery, bool) {
		d, err := ParseMessage(msg)
		if err != nil {
			log.Error("dropping malformed broker message", "topic", topic, "err", err)
			msg.Ack()
			return d, false
		}
		return d, true
	}
	if opts.Buffer < 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for msg := range msgs {
				if d, ok := parse(msg); ok {
					deliver(d)
					msg.Ack()
				}
			}
		}()
	} else {
		queue := make(chan core.Delivery, opts.Buffer)
		c.wg.Add(2)
		go func() { // reader: buffer, then ack
			defer c.wg.Done()
			for msg := range msgs {
				d, ok := parse(msg)
				if !ok {
					continue
				}
				select {
				case queue <- d:
					msg.Ack()
				case <-ctx.Done():
					return // the subscription is closing: msgs ends too
				}
			}
		}()
		go func() { // deliverer: drain in order until Close
			defer c.wg.Done()
			for {
				select {
				case d := <-queue:
					if ctx.Err() != nil {
						return // closed: drop what is buffered
					}
					deliver(d)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		c.wg.Wait()
		close(c.done)
	}()
	return c, nil
}

// Close stops the subscription and waits for the consumer's goroutines,
// including a deliver call in progress. Messages still buffered are
// dropped, not delivered: a consumer is closed when its node goes away
// (core's Node.Shutdown closes the broker after every session ended), so
// nobody is left to deliver to. Close is idempotent.
func (c *Consumer) Close() {
	c.stop()
	<-c.done
}

// Done is closed once the consumer has stopped delivering: after Close, or
// after the context given to Consume ended and its goroutines returned.
func (c *Consumer) Done() <-chan struct{} { return c.done }

// WatermillLogger adapts slog for Watermill, demoting its chatty info
// lines to debug.
func WatermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
}
