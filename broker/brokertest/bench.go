package brokertest

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// BenchPublishDeliver measures publish→deliver on one node: the latency
// from the Publish call to the delivery callback (p50-µs, p99-µs) and the
// throughput (msgs/s), with one publisher ("serial") and with 8 per
// GOMAXPROCS ("parallel"). newBroker returns an unstarted broker, fresh for
// each sub-benchmark. Every driver's BenchmarkPublishDeliver calls it, so
// the rows of docs/brokers.md measure the same thing.
func BenchPublishDeliver(b *testing.B, newBroker func(b *testing.B) core.Broker) {
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) { benchPublishDeliver(b, newBroker(b), parallel) })
	}
}

func benchPublishDeliver(b *testing.B, br core.Broker, parallel bool) {
	var (
		mu        sync.Mutex
		lat       = make([]time.Duration, 0, b.N)
		got, want atomic.Int64
		allDone   = make(chan struct{})
	)
	want.Store(-1) // set once the publishers are done
	deliver := func(d core.Delivery) {
		if d.Gap {
			return
		}
		sent, err := strconv.ParseInt(d.Envelope.Ref, 10, 64)
		if err != nil {
			return
		}
		l := time.Duration(time.Now().UnixNano() - sent)
		mu.Lock()
		lat = append(lat, l)
		mu.Unlock()
		if n := got.Add(1); n == want.Load() {
			close(allDone)
		}
	}
	if err := br.Start(context.Background(), deliver); err != nil {
		b.Fatal(err)
	}
	ch := core.RoomChannel("bench")
	publish := func() error {
		env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "bench", From: "bench",
			Ref:  strconv.FormatInt(time.Now().UnixNano(), 10),
			Data: []byte(`{"text":"hello, world","n":42,"tags":["a","b"]}`)}
		_, err := br.Publish(context.Background(), core.Publication{Channel: ch, Envelope: env})
		return err
	}
	var published atomic.Int64
	b.ResetTimer()
	began := time.Now()
	if parallel {
		b.SetParallelism(8)
		var failed atomic.Pointer[error]
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := publish(); err != nil {
					failed.Store(&err)
					return
				}
				published.Add(1)
			}
		})
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
	} else {
		for range b.N {
			if err := publish(); err != nil {
				b.Fatal(err)
			}
			published.Add(1)
		}
	}
	// Publish returns after this node delivered, so this rarely waits.
	if want.Store(published.Load()); got.Load() < published.Load() {
		select {
		case <-allDone:
		case <-time.After(30 * time.Second):
			b.Fatalf("%d of %d delivered", got.Load(), published.Load())
		}
	}
	elapsed := time.Since(began)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(published.Load())/elapsed.Seconds(), "msgs/s")
}
