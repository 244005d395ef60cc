package core_test

import (
	"context"
	"log/slog"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// benchEnvelope is a typical room publication as the hub sees it.
var benchEnvelope = &core.Envelope{
	V:    core.Version,
	ID:   "k3q9f1c2-000000000042",
	Type: core.TypeMessage,
	Room: "lobby",
	From: "alice",
	TS:   1732262400000,
	Data: []byte(`{"text":"hello, world","n":42,"tags":["a","b"]}`),
}

// benchFrame is a typical client publish frame.
var benchFrame = []byte(`{"v":1,"type":"publish","room":"lobby","ref":"r-17","data":{"text":"hello, world","n":42,"tags":["a","b"]}}`)

func BenchmarkEncodeEnvelope(b *testing.B) {
	b.Run("Append", func(b *testing.B) { // into a reused buffer: no allocation
		b.ReportAllocs()
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf = core.AppendEnvelope(buf[:0], benchEnvelope)
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("Encode", func(b *testing.B) { // what the hub does once per broadcast
		b.ReportAllocs()
		var out []byte
		for b.Loop() {
			out = benchEnvelope.Encode()
		}
		b.SetBytes(int64(len(out)))
	})
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchFrame)))
	for b.Loop() {
		if _, err := core.DecodeEnvelope(benchFrame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFanout10k measures one room publication delivered to 10,000
// local members: broker callback, encode once, enqueue to every session,
// and every session's writer handing the frame to its transport. An
// iteration ends when all 10,000 transports have received the frame.
//
// allocs/op must stay a small constant: compare with BenchmarkFanout1k.
// Extra metrics: writes/op counts Transport.WriteMany calls; goroutines/op
// counts goroutines created (runtime/metrics), i.e. session writers
// started on demand; enqueue-ns/op is the part of ns/op spent inside
// Publish (encode + the hub's enqueue loop), the rest is the writers
// draining their queues.
func BenchmarkFanout10k(b *testing.B) { benchFanout(b, 10_000) }

// BenchmarkFanout1k is BenchmarkFanout10k with 1,000 members, to show
// that allocs/op does not grow with the number of recipients.
func BenchmarkFanout1k(b *testing.B) { benchFanout(b, 1_000) }

func benchFanout(b *testing.B, members int) {
	br := &syncBroker{}
	node, err := core.NewNode(core.Config{
		HeartbeatInterval: -1, // no timers: measure the fan-out only
		RateLimit:         -1,
	}, br, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	}()

	sink := &discardSink{}
	ctx := context.Background()
	sink.pending.Add(members) // the welcomes
	for i := range members {
		t := &discardTransport{sink: sink}
		_, err := node.Accept(ctx, t, core.ConnectRequest{
			Credentials: core.Credentials{User: "u" + strconv.Itoa(i)},
			Rooms:       []string{"bench"},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	sink.pending.Wait()
	if got := node.Hub().Members(core.RoomChannel("bench")); got != members {
		b.Fatalf("room has %d members, want %d", got, members)
	}

	growGoroutinePool(members)

	channel := core.RoomChannel("bench")
	env := *benchEnvelope
	env.Room = "bench"
	writes0, gor0 := sink.writes.Load(), goroutinesCreated()
	var enqueue time.Duration
	b.ReportAllocs()
	for b.Loop() {
		sink.pending.Add(members)
		start := time.Now()
		if _, err := node.Publish(ctx, channel, &env); err != nil {
			b.Fatal(err)
		}
		enqueue += time.Since(start)
		sink.pending.Wait()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(sink.writes.Load()-writes0)/n, "writes/op")
	b.ReportMetric(float64(goroutinesCreated()-gor0)/n, "goroutines/op")
	b.ReportMetric(float64(enqueue.Nanoseconds())/n, "enqueue-ns/op")
	if got := node.Stats().Connections; got != members {
		b.Fatalf("%d sessions left after the run, want %d (slow-consumer closes?)", got, members)
	}
}

// syncBroker is a core.Broker that delivers every publication to its own
// node synchronously, inside Publish, so the benchmark measures the hub
// and the sessions rather than a broker's goroutines and channels.
type syncBroker struct {
	deliver func(core.Delivery)
}

var _ core.Broker = (*syncBroker)(nil)

func (b *syncBroker) Start(_ context.Context, deliver func(core.Delivery)) error {
	b.deliver = deliver
	return nil
}

func (b *syncBroker) Publish(_ context.Context, p core.Publication) (core.Published, error) {
	// Keep the envelope's id: minting one would measure strconv, not the hub.
	b.deliver(core.Delivery{Channel: p.Channel, Envelope: p.Envelope})
	return core.Published{ID: p.Envelope.ID}, nil
}

func (b *syncBroker) History(context.Context, core.HistoryRequest) (core.HistoryResult, error) {
	return core.HistoryResult{Recovered: true}, nil
}

func (b *syncBroker) HistoryPage(_ context.Context, req core.HistoryRequest) (core.HistoryPage, error) {
	return core.HistoryPage{Recovered: true, Next: req.Since}, nil
}

// The ids are the benchmark's, not positions: syncBroker names no head
// and compares no ids. Delivery happens inside Publish, so it never lags.
func (b *syncBroker) Head(context.Context) (string, error)        { return "", nil }
func (b *syncBroker) After(string, string) (after, ok bool)       { return false, false }
func (b *syncBroker) WaitDelivered(context.Context, string) error { return nil }
func (b *syncBroker) Healthy() error                              { return nil }
func (b *syncBroker) Close(context.Context) error                 { return nil }

// discardSink counts what every discardTransport of a run received.
type discardSink struct {
	pending sync.WaitGroup // one Done per frame written
	writes  atomic.Uint64  // WriteMany calls
}

// discardTransport counts frames and throws them away. Core calls it from
// one writer goroutine at a time, so its own fields need no locking.
type discardTransport struct {
	sink *discardSink
}

var _ core.Transport = (*discardTransport)(nil)

func (t *discardTransport) Name() string         { return "discard" }
func (t *discardTransport) Unidirectional() bool { return false }

func (t *discardTransport) WriteMany(frames [][]byte) error {
	t.sink.writes.Add(1)
	for range frames {
		t.sink.pending.Done()
	}
	return nil
}

func (t *discardTransport) Close(core.Disconnect) error { return nil }

// growGoroutinePool runs n goroutines at once and lets them exit, so the
// runtime's pool of dead goroutine descriptors holds at least n. The
// runtime reuses a dead descriptor for every new goroutine and allocates
// one (runtime.malg, a few hundred bytes) only when more goroutines are
// alive than ever before. A server reaches that high-water mark in its
// first broadcasts; without this warm-up the benchmark would charge those
// one-time allocations to the first b.N messages and allocs/op would
// depend on b.N.
func growGoroutinePool(n int) {
	var started, exited sync.WaitGroup
	release := make(chan struct{})
	started.Add(n)
	exited.Add(n)
	for range n {
		go func() {
			defer exited.Done()
			started.Done()
			<-release
		}()
	}
	started.Wait()
	close(release)
	exited.Wait()
}

// goroutinesCreated reads the runtime's count of goroutines ever started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
