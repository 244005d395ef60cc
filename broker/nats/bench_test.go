package nats_test

import (
	"testing"

	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/nats/natstest"
	"github.com/switchboard-dev/switchboard/core"
)

// BenchmarkPublishDeliver measures publish→deliver through NATS JetStream
// (an embedded nats-server with file storage, over loopback); see
// brokertest.BenchPublishDeliver and docs/brokers.md.
func BenchmarkPublishDeliver(b *testing.B) {
	b.Run("nats", func(b *testing.B) {
		brokertest.BenchPublishDeliver(b, func(b *testing.B) core.Broker {
			return newBroker(b, config(natstest.Start(b).URL, "BENCH"))
		})
	})
}
