package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	sbkafka "github.com/switchboard-dev/switchboard/broker/kafka"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
)

// trimLog removes every record of the log but the newest keep, as the
// broker's own retention would (XTRIM MINID, a JetStream purge up to a
// sequence, Kafka DeleteRecords, a DELETE of the table's oldest rows),
// and returns what it removed, oldest
// first. Records appended meanwhile are newer than what it removes.
func trimLog(ctx context.Context, broker, addr, url string, keep int) ([]entry, error) {
	log, err := readLog(ctx, broker, addr, url)
	if err != nil {
		return nil, fmt.Errorf("reading the log: %w", err)
	}
	if len(log) <= keep {
		return nil, nil
	}
	cut := len(log) - keep // the oldest record kept
	from := log[cut].Pos
	switch broker {
	case "redis":
		rdb := goredis.NewClient(&goredis.Options{Addr: addr})
		defer rdb.Close()
		if err := rdb.XTrimMinID(ctx, sbredis.DefaultStream, from).Err(); err != nil {
			return nil, fmt.Errorf("XTRIM MINID %s: %w", from, err)
		}
	case "nats":
		seq, err := strconv.ParseUint(from, 10, 64)
		if err != nil {
			return nil, err
		}
		stream, closeConn, err := natsStream(ctx, url)
		if err != nil {
			return nil, err
		}
		defer closeConn()
		if err := stream.Purge(ctx, jetstream.WithPurgeSequence(seq)); err != nil {
			return nil, fmt.Errorf("purge below %d: %w", seq, err)
		}
	case "kafka":
		off, err := strconv.ParseInt(from, 10, 64)
		if err != nil {
			return nil, err
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		var offs kadm.Offsets
		offs.Add(kadm.Offset{Topic: sbkafka.DefaultTopic, Partition: 0, At: off})
		res, err := kadm.NewClient(cl).DeleteRecords(ctx, offs)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("DeleteRecords below %d: %w", off, err)
		}
	case "postgres":
		if err := trimPostgres(ctx, url, from); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("trim: unknown broker %q", broker)
	}
	return log[:cut], nil
}
