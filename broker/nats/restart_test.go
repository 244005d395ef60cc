package nats_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/nats/natstest"
	"github.com/switchboard-dev/switchboard/core"
)

// TestRestartBeforeTheStreamIsLoaded: a server restarted on its data
// that answers "stream not found" until it has loaded the stream (what
// a cluster replaying its metadata, or a server recovering its store,
// answers) is unavailable, not a lost log: History and HistoryPage fail
// with ErrUnavailable (the client retries with the same position), no
// node creates a stream of a new epoch meanwhile, and once the stream is
// back the same calls recover everything and the reader goes on where it
// was, skipping and repeating nothing.
func TestRestartBeforeTheStreamIsLoaded(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "NOTLOADED")
	a := newBroker(t, cfg)
	recA := brokertest.Listen(t, a)
	room := core.RoomChannel("r")
	var want []string
	for i := range 5 {
		want = append(want, publish(t, a, room, i))
	}
	recA.WaitFor(t, want[len(want)-1], waitTime)
	b := newBroker(t, cfg) // its index starts at the head: history before it reads the stream
	brokertest.Listen(t, b)
	epoch := a.Epoch()

	srv.Shutdown()
	srv.HideStream(cfg.Stream)
	srv.Restart()

	// Once a history connection is back, JetStream answers that the
	// stream is not found: every call until then fails too, with the
	// connection down.
	for _, n := range []*engine.Broker{a, b} {
		if p, err := untilServerAnswers(t, n, want[0]); !errors.Is(err, broker.ErrUnavailable) {
			t.Errorf("HistoryPage while the stream is not loaded = recovered %v %v (next %s), %v; want an error wrapping ErrUnavailable",
				p.Recovered, ids(p.Envelopes), p.Next, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		h, err := n.History(ctx, core.HistoryRequest{Channels: []string{room}, Since: want[1]})
		cancel()
		if !errors.Is(err, broker.ErrUnavailable) {
			t.Errorf("History while the stream is not loaded = recovered %v %v, %v; want an error wrapping ErrUnavailable", h.Recovered, ids(h.Envelopes), err)
		}
		if n.Epoch() != epoch {
			t.Errorf("epoch %s while the stream is not loaded, want %s still", n.Epoch(), epoch)
		}
	}

	srv.Shutdown()
	srv.ShowStream(cfg.Stream) // fails if anyone created the stream anew meanwhile
	srv.Restart()
	for _, n := range []*engine.Broker{a, b} {
		waitHealthy(t, n)
		h := historyWhenBack(t, n, want[0], room)
		if !h.Recovered || !slices.Equal(ids(h.Envelopes), want[1:]) {
			t.Errorf("History after the stream is back: recovered %v %v, want true %v", h.Recovered, ids(h.Envelopes), want[1:])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := n.HistoryPage(ctx, core.HistoryRequest{Channels: []string{room}, Since: want[0], Limit: 10})
		cancel()
		if err != nil || !p.Recovered || !slices.Equal(ids(p.Envelopes), want[1:]) {
			t.Errorf("HistoryPage after the stream is back: recovered %v %v, %v; want true %v", p.Recovered, ids(p.Envelopes), err, want[1:])
		}
		if n.Epoch() != epoch {
			t.Errorf("epoch %s after the stream is back, want %s", n.Epoch(), epoch)
		}
	}
	want = append(want, publish(t, a, room, 5))
	if got := ids(recA.WaitFor(t, want[len(want)-1], waitTime)); !slices.Equal(got, want) {
		t.Errorf("the reader delivered %v across the restart, want %v", got, want)
	}
}

// untilServerAnswers calls HistoryPage since `since` while it fails with
// the outage's errors (a connection down or lost: the driver reconnects
// every ReconnectWait) and returns the first answer that is not one: a
// page, or the server's "stream not found".
func untilServerAnswers(t *testing.T, b *engine.Broker, since string) (core.HistoryPage, error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := b.HistoryPage(ctx, core.HistoryRequest{Channels: []string{core.RoomChannel("r")}, Since: since, Limit: 10})
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
			return p, err
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the restarted server within 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the connection's state, not an event: poll it
	}
}

// waitHealthy waits until b's reader reads the stream again.
func waitHealthy(t *testing.T, b *engine.Broker) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for b.Healthy() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not healthy 20s after the restart: %v", b.Healthy())
		}
		time.Sleep(10 * time.Millisecond) // Healthy is state, not an event: poll it
	}
}

// historyWhenBack is History since `since`, asked again while it fails
// with ErrUnavailable (a connection of b may notice the restart after
// its reader is healthy again).
func historyWhenBack(t *testing.T, b *engine.Broker, since, channel string) core.HistoryResult {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		h, err := b.History(ctx, core.HistoryRequest{Channels: []string{channel}, Since: since})
		cancel()
		if err == nil {
			return h
		}
		if !errors.Is(err, broker.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("History since %s after the restart: %v", since, err)
		}
		time.Sleep(20 * time.Millisecond) // the connections' state, not an event: poll it
	}
}
