package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/nats/natstest"
)

// TestAbsence: a stream reported missing is gone at once when its
// deletion advisory arrived or it was on memory storage, after
// streamLostAfter of answers without a long quiet spell otherwise, and
// never while it may be a file-storage stream not loaded yet.
func TestAbsence(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	every := func(step time.Duration, n int) []time.Duration { // n answers, step apart
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i) * step
		}
		return out
	}
	for _, c := range []struct {
		name    string
		memory  bool
		deleted bool
		missing []time.Duration // "not found" answers, after t0
		found   bool            // found again before the last answer
		gone    bool            // at the last answer
	}{
		{name: "file, first answer", missing: every(0, 1)},
		{name: "file, missing just under the bound", missing: every(5*time.Second, 12)},
		{name: "file, missing for the bound", missing: every(5*time.Second, 13), gone: true},
		{name: "file, two blips far apart", missing: []time.Duration{0, 2 * time.Hour}},
		{name: "file, found in between", missing: every(10*time.Second, 10), found: true},
		{name: "file, deletion advisory", deleted: true, missing: every(0, 1), gone: true},
		{name: "memory, first answer", memory: true, missing: every(0, 1), gone: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var a absence
			a.found(c.memory)
			if c.deleted {
				a.markDeleted()
			}
			var why string
			var gone bool
			for i, at := range c.missing {
				if c.found && i == len(c.missing)-1 {
					a.found(c.memory)
				}
				why, gone = a.gone(t0.Add(at))
			}
			if gone != c.gone {
				t.Errorf("gone = %v (%s), want %v", gone, why, c.gone)
			}
		})
	}
}

// TestUnavailableWraps: every failure of a JetStream request the driver
// passes on (the stream not found included) wraps broker.ErrUnavailable and
// its cause, on one line.
func TestUnavailableWraps(t *testing.T) {
	t.Parallel()
	d := &driver{addrs: "127.0.0.1:4222"}
	lost, cancel := context.WithCancelCause(context.Background())
	cancel(fmt.Errorf("%w: the history connection", errLost))
	for _, c := range []struct {
		name string
		err  error
		is   error
	}{
		{"stream not found", jetstream.ErrStreamNotFound, jetstream.ErrStreamNotFound},
		{"jetstream not enabled", jetstream.ErrJetStreamNotEnabled, jetstream.ErrJetStreamNotEnabled},
		{"not enabled for the account", jetstream.ErrJetStreamNotEnabledForAccount, jetstream.ErrJetStreamNotEnabledForAccount},
		{"no responders", natsio.ErrNoResponders, natsio.ErrNoResponders},
		{"timeout", natsio.ErrTimeout, natsio.ErrTimeout},
		{"deadline", context.DeadlineExceeded, context.DeadlineExceeded},
		{"connection lost", cause(lost, context.Canceled), errLost},
	} {
		err := d.unavailable("history: create consumer", c.err)
		if !errors.Is(err, broker.ErrUnavailable) || !errors.Is(err, c.is) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line wrapping broker.ErrUnavailable and %v", c.name, err, c.is)
		}
	}
}

// TestRangeAndHeadWhenTheStreamIsMissing: on a real server, what Range
// and Head answer for each way the stream can be missing or replaced:
// unavailable (the engine retries; no epoch ends) unless the stream is
// known to be gone or was replaced, and a new epoch only then.
func TestRangeAndHeadWhenTheStreamIsMissing(t *testing.T) {
	t.Parallel()
	type outcome int
	const (
		unavailable outcome = iota // an error wrapping broker.ErrUnavailable
		same                       // the epoch before
		fresh                      // a new epoch
	)
	for _, c := range []struct {
		name         string
		memory       bool
		down         bool  // the server stays down: ask at once
		restart      bool  // the server restarts: ask once the driver is back
		cause        error // what the unavailable errors wrap too
		do           func(t *testing.T, srv *natstest.Server, js jetstream.JetStream, stream string)
		range1       outcome // Range, before any Head
		head, range2 outcome
	}{
		{name: "server down", down: true, range1: unavailable, head: unavailable, range2: unavailable,
			do: func(t *testing.T, srv *natstest.Server, _ jetstream.JetStream, _ string) { srv.Shutdown() }},
		{name: "restarted, stream not loaded yet", cause: jetstream.ErrStreamNotFound, restart: true,
			range1: unavailable, head: unavailable, range2: unavailable,
			do: func(t *testing.T, srv *natstest.Server, _ jetstream.JetStream, stream string) {
				srv.Shutdown()
				srv.HideStream(stream)
				srv.Restart()
			}},
		{name: "restarted on its data", restart: true, range1: same, head: same, range2: same,
			do: func(t *testing.T, srv *natstest.Server, _ jetstream.JetStream, _ string) {
				srv.Shutdown()
				srv.Restart()
			}},
		{name: "memory storage lost with a restart", memory: true, restart: true, range1: unavailable, head: fresh, range2: fresh,
			do: func(t *testing.T, srv *natstest.Server, _ jetstream.JetStream, _ string) {
				srv.Shutdown()
				srv.Restart()
			}},
		{name: "deleted", cause: jetstream.ErrStreamNotFound, range1: unavailable, head: fresh, range2: fresh,
			do: func(t *testing.T, _ *natstest.Server, js jetstream.JetStream, stream string) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := js.DeleteStream(ctx, stream); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "deleted and recreated", range1: fresh, head: fresh, range2: fresh,
			do: func(t *testing.T, _ *natstest.Server, js jetstream.JetStream, stream string) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := js.DeleteStream(ctx, stream); err != nil {
					t.Fatal(err)
				}
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"sb.x.>"}}); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.Start(t)
			d, js := testDriver(t, srv.URL, c.memory)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			epoch, head, err := d.Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			before := reconnects(d)
			c.do(t, srv, js, d.cfg.Stream)
			if c.restart {
				waitReconnected(t, d, before) // asked once the driver is back, not while it reconnects
			}
			if c.name == "deleted" {
				waitDeleted(t, d) // the advisory comes apart from the delete's answer
			}
			check := func(what string, e string, err error, want outcome) {
				t.Helper()
				switch want {
				case unavailable:
					if !errors.Is(err, broker.ErrUnavailable) || (c.cause != nil && !errors.Is(err, c.cause)) {
						t.Errorf("%s = epoch %q, %v; want an error wrapping broker.ErrUnavailable and %v", what, e, err, c.cause)
					}
				case same, fresh:
					if err != nil || (e == epoch) != (want == same) {
						t.Errorf("%s = epoch %q, %v; want the epoch before (%s): %v", what, e, err, epoch, want == same)
					}
				}
			}
			chunk, err := d.Range(ctx, engine.Pos{}, 10)
			check("Range before Head", chunk.Epoch, err, c.range1)
			e, _, err := d.Head(ctx)
			check("Head", e, err, c.head)
			chunk, err = d.Range(ctx, engine.Pos{}, 10)
			check("Range after Head", chunk.Epoch, err, c.range2)
			if c.range2 == same && (len(chunk.Records) != int(head.Lo) || chunk.Trimmed) {
				t.Errorf("Range after the restart: %d records, trimmed %v; want %d", len(chunk.Records), chunk.Trimmed, head.Lo)
			}
		})
	}
}

// testDriver is a driver on url with two records in its stream, closed
// when the test ends, with a plain JetStream client beside it.
func testDriver(t *testing.T, url string, memory bool) (*driver, jetstream.JetStream) {
	t.Helper()
	cfg := Config{URL: url, Stream: "MISSING", Subject: "sb.x", RequestTimeout: 10 * time.Second, ReconnectWait: 20 * time.Millisecond}
	if memory {
		cfg.Storage = "memory"
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.setDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := newDriver(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	nc, err := natsio.Connect(url, natsio.MaxReconnects(-1), natsio.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := js.Publish(ctx, fmt.Sprintf("sb.x.r%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	return d, js
}

// waitDeleted waits until the driver has the stream's deletion advisory.
func waitDeleted(t *testing.T, d *driver) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d.absent.mu.Lock()
		deleted := d.absent.deleted
		d.absent.mu.Unlock()
		if deleted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no deletion advisory within 20s")
		}
		time.Sleep(10 * time.Millisecond) // state set by the advisory's handler: poll it
	}
}

// reconnects counts the reconnections of each of the driver's connections.
func reconnects(d *driver) []uint64 {
	var out []uint64
	for _, c := range []*conn{d.pub, d.rd, d.hist} {
		out = append(out, c.Stats().Reconnects)
	}
	return out
}

// waitReconnected waits until each of the driver's connections has
// reconnected since before, and is connected.
func waitReconnected(t *testing.T, d *driver, before []uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		back := true
		for i, c := range []*conn{d.pub, d.rd, d.hist} {
			back = back && c.Stats().Reconnects > before[i] && c.IsConnected()
		}
		if back {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reconnected within 20s: %v", d.connected("test"))
		}
		time.Sleep(10 * time.Millisecond) // the connections' state, not an event: poll it
	}
}
