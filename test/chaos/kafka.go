package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard-dev/switchboard/broker/engine"
	sbkafka "github.com/switchboard-dev/switchboard/broker/kafka"
)

// runKfake is the suite's Kafka broker: kfake (franz-go's in-memory
// cluster, which speaks the real wire protocol) in a process of its own,
// `chaos kfake --addr host:port`, so that the suite can SIGKILL, SIGSTOP
// and restart it like the other brokers. It keeps its log in memory: a
// restart loses everything, which is the point of running it here (the
// clients must be told).
func runKfake(args []string) int {
	fs := flag.NewFlagSet("chaos kfake", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	host, p, err := net.SplitHostPort(*addr)
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil {
		fmt.Fprintf(os.Stderr, "chaos kfake: --addr %q: want host:port\n", *addr)
		return 2
	}
	listen := func(network, a string) (net.Listener, error) {
		_, p, _ := net.SplitHostPort(a)
		return net.Listen(network, net.JoinHostPort(host, p))
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.ListenFn(listen), kfake.AllowAutoTopicCreation())
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos kfake:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintln(os.Stderr, "chaos kfake: listening on", c.ListenAddrs())
	<-ctx.Done()
	c.Close()
	return 0
}

// readKafkaLog reads the whole topic, oldest first (one partition: the
// engine's Kafka driver writes one).
func readKafkaLog(ctx context.Context, addr string) ([]entry, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{sbkafka.DefaultTopic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	end, err := kafkaEnd(ctx, cl)
	if err != nil {
		return nil, err
	}
	var out []entry
	next := int64(0)
	for next < end {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return nil, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			key := ""
			for _, h := range r.Headers {
				if h.Key == engine.MetadataKey {
					key = string(h.Value)
				}
			}
			e := parseEntry(r.Value, key)
			e.Pos = strconv.FormatInt(r.Offset, 10)
			out = append(out, e)
			next = r.Offset + 1
		})
	}
	return out, nil
}

// kafkaEnd is the topic's end offset on partition 0 (0 when it does
// not exist yet).
func kafkaEnd(ctx context.Context, cl *kgo.Client) (int64, error) {
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, sbkafka.DefaultTopic)
	if err != nil {
		return 0, err
	}
	o, ok := offs.Lookup(sbkafka.DefaultTopic, 0)
	if !ok || errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
		return 0, nil // no topic yet: an empty log
	}
	if o.Err != nil {
		return 0, o.Err
	}
	return o.Offset, nil
}
