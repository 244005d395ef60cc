package kafka_test

import (
	"testing"

	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/core"
)

// BenchmarkPublishDeliver measures publish→deliver through Kafka (kfake in
// the same process, over loopback); see brokertest.BenchPublishDeliver and
// docs/brokers.md.
func BenchmarkPublishDeliver(b *testing.B) {
	b.Run("kafka", func(b *testing.B) {
		brokertest.BenchPublishDeliver(b, func(b *testing.B) core.Broker {
			return newBroker(b, config(newCluster(b).ListenAddrs(), "bench"))
		})
	})
}
