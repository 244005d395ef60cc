package redis_test

import (
	"context"
	"testing"

	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/memory"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
)

// BenchmarkPublishDeliver measures publish→deliver through the in-memory
// broker and through Redis Streams (a local redis-server); see
// brokertest.BenchPublishDeliver and docs/brokers.md.
func BenchmarkPublishDeliver(b *testing.B) {
	srv := redistest.Start(b)
	b.Run("memory", func(b *testing.B) {
		brokertest.BenchPublishDeliver(b, func(b *testing.B) core.Broker {
			m, err := memory.New(memory.Config{}, quiet)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { m.Close(context.Background()) })
			return m
		})
	})
	b.Run("redis", func(b *testing.B) {
		brokertest.BenchPublishDeliver(b, func(b *testing.B) core.Broker {
			return newBroker(b, sbredis.Config{URL: srv.URL, Stream: streamFor(b)})
		})
	})
}
