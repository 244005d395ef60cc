package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-dev/switchboard/broker/engine"
	sbnats "github.com/switchboard-dev/switchboard/broker/nats"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
)

// entry is one message of the broker's log, in log order, as the suite
// reads it directly from the broker (not through an edge).
type entry struct {
	Room string
	Seq  int64  // data.s; -1 for messages that are not the suite's
	Key  string // the idempotency key, "" without one
	// Unplaced: accepted, then lost with the broker's log before the
	// suite read it, so its place in the log is unknown: checked for
	// loss, not for order.
	Unplaced bool
	// Pos is its position in the broker's own terms (a Redis entry ID, a
	// JetStream sequence, a Kafka offset), for trimming.
	Pos string
}

// logPayload is the part of a logged envelope the suite reads.
type logPayload struct {
	Room string          `json:"room"`
	Data json.RawMessage `json:"data"`
}

func parseEntry(raw []byte, key string) entry {
	var p logPayload
	e := entry{Seq: -1, Key: key}
	if json.Unmarshal(raw, &p) != nil {
		return e
	}
	e.Room = p.Room
	var d payload
	if json.Unmarshal(p.Data, &d) == nil && len(p.Data) > 0 && p.Data[0] == '{' {
		e.Seq = d.S
	}
	return e
}

// readRedisLog reads the whole Redis stream, oldest first.
func readRedisLog(ctx context.Context, addr string) ([]entry, error) {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	var codec redisstream.DefaultMarshallerUnmarshaller
	var out []entry
	from := "-"
	for {
		batch, err := rdb.XRangeN(ctx, sbredis.DefaultStream, from, "+", 5000).Result()
		if err != nil {
			return nil, fmt.Errorf("XRANGE: %w", err)
		}
		for _, x := range batch {
			msg, err := codec.Unmarshal(x.Values)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", x.ID, err)
			}
			e := parseEntry(msg.Payload, msg.Metadata.Get(engine.MetadataKey))
			e.Pos = x.ID
			out = append(out, e)
		}
		if len(batch) < 5000 {
			return out, nil
		}
		from = "(" + batch[len(batch)-1].ID
	}
}

// readNATSLog reads the whole JetStream stream, oldest first (Watermill
// metadata travels as headers, the payload as the data).
func readNATSLog(ctx context.Context, url string) ([]entry, error) {
	stream, closeConn, err := natsStream(ctx, url)
	if err != nil {
		return nil, err
	}
	defer closeConn()
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []entry
	for uint64(len(out)) < info.State.Msgs {
		batch, err := cons.Fetch(int(min(info.State.Msgs-uint64(len(out)), 500)), jetstream.FetchMaxWait(10e9))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			e := parseEntry(m.Data(), m.Headers().Get(engine.MetadataKey))
			if md, err := m.Metadata(); err == nil {
				e.Pos = strconv.FormatUint(md.Sequence.Stream, 10)
			}
			out = append(out, e)
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("read %d of %d messages of the stream", len(out), info.State.Msgs)
		}
	}
	return out, nil
}

// natsStream connects to url and returns the edges' JetStream stream,
// and what closes the connection.
func natsStream(ctx context.Context, url string) (jetstream.Stream, func(), error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		var stream jetstream.Stream
		if stream, err = js.Stream(ctx, sbnats.DefaultStream); err == nil {
			return stream, nc.Close, nil
		}
	}
	nc.Close()
	return nil, nil, err
}
