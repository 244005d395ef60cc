package postgres_test

import (
	"context"
	"testing"

	"github.com/switchboard-dev/switchboard/broker/brokertest"
	sbpg "github.com/switchboard-dev/switchboard/broker/postgres"
	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
)

// BenchmarkPublishDeliver measures publish→deliver through PostgreSQL (a
// local server of pgtest's: fsync off, as a test's) and, as the peer in
// the same run, Redis Streams; see brokertest.BenchPublishDeliver and
// docs/brokers.md.
func BenchmarkPublishDeliver(b *testing.B) {
	pg := pgtest.Start(b)
	rs := redistest.Start(b)
	b.Run("postgres", func(b *testing.B) {
		brokertest.BenchPublishDeliver(b, func(b *testing.B) core.Broker {
			return newBroker(b, sbpg.Config{URL: pg.URL, Table: tableFor(b)})
		})
	})
	b.Run("redis", func(b *testing.B) {
		brokertest.BenchPublishDeliver(b, func(b *testing.B) core.Broker {
			r, err := sbredis.New(context.Background(), sbredis.Config{URL: rs.URL, Stream: tableFor(b)}, quiet)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { r.Close(context.Background()) })
			return r
		})
	})
}
