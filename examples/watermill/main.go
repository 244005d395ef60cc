// Command watermill is a plain Watermill application working with
// Switchboard through its log, on the Redis Streams broker: it publishes
// into the stream Switchboard's nodes read (each node delivers the message
// to the room's clients, with an id), and it reads what Switchboard
// publishes. It imports nothing of Switchboard's: the contract is the
// wire format, and this is all of it.
//
//	go run ./examples/watermill publish -redis redis://127.0.0.1:6379/0 -room lobby -data '{"text":"hi"}'
//	go run ./examples/watermill tail -redis redis://127.0.0.1:6379/0
//
// Stream: one Redis stream carries every channel, the broker's
// Config.Stream ("switchboard" by default). Entries are in
// watermill-redisstream's default format (_watermill_message_uuid,
// metadata, payload), so its Publisher and Subscriber work unchanged.
//
// Metadata "switchboard_channel" (required): "room:<name>" for a room,
// "user:<id>" for a user's direct messages. A node skips an entry without
// it, with an error log line, and counts it (broker.Malformed). The log
// also carries Switchboard's own channels (the others, e.g. "control"):
// readers skip what they do not know; producers never write to them.
// Optional: "switchboard_trace_<name>" carries trace context (e.g.
// switchboard_trace_traceparent); "switchboard_key" is an idempotency key
// (every node delivers only the first entry with a key within the
// deduplication window, --idempotency-ttl).
//
// Payload: the envelope JSON (docs/protocol.md). For a room,
//
//	{"v":1,"type":"message","room":"<name>","data":<any JSON>}
//
// and for a user's direct channel {"v":1,"type":"direct","to":"<id>",
// "data":…}. v must be 1 (a node skips other versions), room (or to) the
// channel's, and data compact JSON (json.Marshal's output; no raw
// newline). "from" and "ts" (unix ms) are optional; clients see them as
// written, so whoever can write to the stream can publish anywhere as
// anyone: guard it like the nodes' credentials. There is no "id": a
// message's id is its position in the log, "<epoch>-<entry ID>", which
// every node assigns when it reads the entry; an id in the payload is
// ignored.
//
// Reading: messages published through Switchboard carry the same
// metadata and payload, without an id (watermill-redisstream does not
// expose entry IDs). Read in fan-out mode (no consumer group: every
// reader gets every message) and pin the start: the subscriber's default
// start, "$", is resolved by its first XREAD, which runs after Subscribe
// returns, so messages published in between are lost. subscribe starts
// after the stream's last entry as of the call.
//
// Retention: a Watermill publisher does not trim the stream unless told
// to; give it the nodes' MaxLen (-maxlen) so its appends keep the same
// resume window.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
)

const (
	// metadataChannel is the metadata key holding the channel
	// (broker.MetadataChannel).
	metadataChannel = "switchboard_channel"
	// defaultStream is the stream Switchboard uses by default
	// (broker/redis Config.Stream).
	defaultStream = "switchboard"
	// defaultMaxLen is Switchboard's default retention (Config.MaxLen).
	defaultMaxLen = 100_000
)

// envelope is the part of Switchboard's envelope (core.Envelope) a
// producer writes or a reader needs.
type envelope struct {
	V    int             `json:"v"`
	ID   string          `json:"id,omitempty"` // set by nodes on delivery, never in the log
	Type string          `json:"type"`
	Room string          `json:"room,omitempty"`
	To   string          `json:"to,omitempty"`
	From string          `json:"from,omitempty"`
	TS   int64           `json:"ts,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// roomMessage is a Watermill message that Switchboard delivers to room's
// clients as {"v":1,"id":…,"type":"message","room":room,"data":data}.
func roomMessage(room string, data any) (*message.Message, error) {
	raw, err := json.Marshal(data) // compact: no raw newline
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	payload, err := json.Marshal(envelope{V: 1, Type: "message", Room: room, Data: raw})
	if err != nil {
		return nil, err
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(metadataChannel, "room:"+room)
	return msg, nil
}

// newClient connects to Redis at url (redis://host:port/db).
func newClient(url string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	return goredis.NewClient(opt), nil
}

// newPublisher is watermill-redisstream's Publisher, trimming the stream
// to maxLen (approximately, as Switchboard does; 0 never trims). Closing
// it closes its Redis client.
func newPublisher(url string, maxLen int64, logger watermill.LoggerAdapter) (*redisstream.Publisher, error) {
	client, err := newClient(url)
	if err != nil {
		return nil, err
	}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: client, DefaultMaxlen: maxLen}, logger)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return pub, nil
}

// subscribe reads stream in fan-out mode, starting after the entry from
// (an entry ID; "" means the stream's last entry as of this call, so
// nothing published after subscribe returns is missed; "0" reads the
// whole stream). Ack each message to receive the next. Closing the
// subscriber ends the channel and closes its Redis client.
func subscribe(ctx context.Context, url, stream, from string, logger watermill.LoggerAdapter) (*redisstream.Subscriber, <-chan *message.Message, error) {
	client, err := newClient(url)
	if err != nil {
		return nil, nil, err
	}
	if from == "" {
		if from, err = lastEntryID(ctx, client, stream); err != nil {
			_ = client.Close()
			return nil, nil, err
		}
	}
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:         client,
		FanOutOldestId: from, // never "$" (see the package comment)
		// Block for BlockTime (100 ms), not forever, on the first read
		// too, so Close does not wait on an idle stream.
		DisableIndefiniteInitialBlock: true,
	}, logger)
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	msgs, err := sub.Subscribe(ctx, stream)
	if err != nil {
		_ = sub.Close()
		return nil, nil, err
	}
	return sub, msgs, nil
}

// lastEntryID is the ID of the newest entry ever added to stream (which
// trimming does not change), or "0-0" when there is no stream yet.
func lastEntryID(ctx context.Context, client *goredis.Client, stream string) (string, error) {
	info, err := client.XInfoStream(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return "0-0", nil
		}
		return "", fmt.Errorf("XINFO STREAM %s: %w", stream, err)
	}
	return info.LastGeneratedID, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "watermill:", err)
		os.Exit(1)
	}
}

const usage = "usage: watermill publish|tail [flags] (-h for each command's flags)"

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	url := fs.String("redis", "redis://127.0.0.1:6379/0", "Redis URL of Switchboard's broker")
	stream := fs.String("stream", defaultStream, "Switchboard's stream")
	logger := watermill.NewSlogLoggerWithLevelMapping(slog.Default(),
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	switch cmd {
	case "publish":
		room := fs.String("room", "lobby", "room to publish to")
		data := fs.String("data", `"hello from Watermill"`, "message data, JSON")
		maxLen := fs.Int64("maxlen", defaultMaxLen, "trim the stream to about this many entries, as the nodes do (0: never)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		msg, err := roomMessage(*room, json.RawMessage(*data)) // validated and compacted
		if err != nil {
			return err
		}
		pub, err := newPublisher(*url, *maxLen, logger)
		if err != nil {
			return err
		}
		msg.SetContext(ctx)
		return errors.Join(pub.Publish(*stream, msg), pub.Close())
	case "tail":
		from := fs.String("from", "", `start after this entry ID ("0": the whole stream; default: now)`)
		if err := fs.Parse(args); err != nil {
			return err
		}
		sub, msgs, err := subscribe(ctx, *url, *stream, *from, logger)
		if err != nil {
			return err
		}
		defer sub.Close()
		for msg := range msgs { // until ctx ends
			fmt.Fprintf(stdout, "%s %s\n", msg.Metadata.Get(metadataChannel), msg.Payload)
			msg.Ack()
		}
		return ctx.Err()
	default:
		return errors.New(usage)
	}
}
