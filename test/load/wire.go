package main

import (
	"context"
	"net"
	"sync/atomic"
)

// shardedCounter adds up what a fleet's subscribers count from their
// reader goroutines: the bytes they read from their sockets (TCP payload
// as the kernel hands it over: WebSocket frames, compressed or not, HTTP
// framing, without IP and TCP headers), or the messages they read. The
// subscribers add to shards of their own so that they do not all hit one
// cache line.
type shardedCounter struct {
	shards [counterShards]struct {
		n atomic.Int64
		_ [56]byte
	}
}

const counterShards = 16

func (c *shardedCounter) add(shard int, n int) {
	c.shards[shard%counterShards].n.Add(int64(n))
}

// total is the sum counted so far.
func (c *shardedCounter) total() int64 {
	var t int64
	for i := range c.shards {
		t += c.shards[i].n.Load()
	}
	return t
}

// countingConn is a net.Conn whose reads are counted.
type countingConn struct {
	net.Conn
	c     *shardedCounter
	shard int
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	if n > 0 {
		cc.c.add(cc.shard, n)
	}
	return n, err
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// countingDial wraps dial so that what its connections read is counted
// in c, on shard.
func countingDial(dial dialFunc, c *shardedCounter, shard int) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, c: c, shard: shard}, nil
	}
}
