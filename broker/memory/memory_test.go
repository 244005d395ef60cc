package memory_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"log/slog"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a broker leaves its Watermill goroutines
// behind after Close.
func TestMain(m *testing.M) { coretest.VerifyNone(m) }

var quiet = slog.New(slog.DiscardHandler)

// TestConformance leaves Features.Outage nil: an embedded broker has no
// backend to stop, so the suite's Outage subtest checks instead that one
// node closing leaves another working.
func TestConformance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  memory.Config
		f    brokertest.Features
	}{
		{"default", memory.Config{}, brokertest.Features{HistorySize: 1000, GlobalOrder: true}},
		{"small history", memory.Config{HistorySize: 8}, brokertest.Features{HistorySize: 8, GlobalOrder: true}},
		{"no history", memory.Config{HistorySize: -1}, brokertest.Features{HistorySize: -1, GlobalOrder: true}},
		{"history kept forever", memory.Config{HistorySize: 100, HistoryTTL: -1}, brokertest.Features{HistorySize: 100, GlobalOrder: true}},
		{"tiny delivery buffer", memory.Config{DeliveryBuffer: 1}, brokertest.Features{HistorySize: 1000, GlobalOrder: true}},
		{"unbuffered delivery", memory.Config{DeliveryBuffer: -1}, brokertest.Features{HistorySize: 1000, GlobalOrder: true}},
		{"no byte bound", memory.Config{HistoryMaxBytes: -1}, brokertest.Features{HistorySize: 1000, GlobalOrder: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			brokertest.Run(t, tt.f, func(t *testing.T) core.Broker { return newBroker(t, tt.cfg) })
		})
	}
}

func newBroker(t *testing.T, cfg memory.Config) *memory.Broker {
	t.Helper()
	b, err := memory.New(cfg, quiet)
	if err != nil {
		t.Fatalf("memory.New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func publish(t *testing.T, b *memory.Broker, channel string) string {
	t.Helper()
	room := strings.TrimPrefix(channel, "room:")
	id, err := publishTo(b, context.Background(), channel, &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: room})
	if err != nil {
		t.Fatalf("Publish(%s): %v", channel, err)
	}
	return id
}

func history(t *testing.T, b *memory.Broker, since string, channels ...string) core.HistoryResult {
	t.Helper()
	res, err := b.History(context.Background(), core.HistoryRequest{Channels: channels, Since: since, Limit: 100})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	return res
}

// TestHistoryTTL runs in a bubble so the TTL elapses in fake time: the
// history of a channel idle for longer than HistoryTTL is dropped on a
// later publication, and positions in it become unrecoverable.
func TestHistoryTTL(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		b := newBroker(t, memory.Config{HistoryTTL: ttl})
		idle, busy := core.RoomChannel("idle"), core.RoomChannel("busy")
		i0 := publish(t, b, idle)
		publish(t, b, idle)
		b0 := publish(t, b, busy)

		if res := history(t, b, i0, idle); !res.Recovered || len(res.Envelopes) != 1 {
			t.Fatalf("before the TTL: recovered %v with %d messages, want true with 1", res.Recovered, len(res.Envelopes))
		}

		// Keep busy alive past the TTL; idle gets nothing.
		for range 4 {
			time.Sleep(ttl / 2)
			publish(t, b, busy)
		}
		if res := history(t, b, i0, idle); res.Recovered || len(res.Envelopes) != 0 {
			t.Errorf("idle channel after the TTL: recovered %v with %d messages, want false and none", res.Recovered, len(res.Envelopes))
		}
		if res := history(t, b, b0, busy); !res.Recovered || len(res.Envelopes) != 4 {
			t.Errorf("busy channel: recovered %v with %d messages, want true with 4", res.Recovered, len(res.Envelopes))
		}
		// The sweep only loses what is older than the swept channel's
		// newest message: a resume from after it is still whole, one from
		// before it is not, whichever other channels it spans.
		if res := history(t, b, b0, busy, idle); !res.Recovered || len(res.Envelopes) != 4 {
			t.Errorf("resume from after the swept range: recovered %v with %d messages, want true with 4", res.Recovered, len(res.Envelopes))
		}
		if res := history(t, b, i0, busy, idle); res.Recovered {
			t.Error("resume from inside the swept range reported recovered")
		}
		// A new publication on the swept channel starts a new history
		// that does not pretend to cover the dropped range.
		i2 := publish(t, b, idle)
		if res := history(t, b, i0, idle); res.Recovered {
			t.Error("old position on a recreated channel reported recovered")
		}
		publish(t, b, idle)
		if res := history(t, b, i2, idle); !res.Recovered || len(res.Envelopes) != 1 {
			t.Errorf("new position on a recreated channel: recovered %v with %d, want true with 1", res.Recovered, len(res.Envelopes))
		}
	})
}

func TestHistoryTTLDisabled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, memory.Config{HistoryTTL: -1})
		idle, busy := core.RoomChannel("idle"), core.RoomChannel("busy")
		i0 := publish(t, b, idle)
		publish(t, b, idle)
		time.Sleep(24 * time.Hour)
		publish(t, b, busy)
		if res := history(t, b, i0, idle); !res.Recovered || len(res.Envelopes) != 1 {
			t.Errorf("recovered %v with %d messages, want true with 1", res.Recovered, len(res.Envelopes))
		}
	})
}

func TestEpochs(t *testing.T) {
	t.Parallel()
	b1, b2 := newBroker(t, memory.Config{}), newBroker(t, memory.Config{})
	if b1.Epoch() == "" || b1.Epoch() == b2.Epoch() {
		t.Fatalf("epochs %q and %q: want distinct, non-empty", b1.Epoch(), b2.Epoch())
	}
	ch := core.RoomChannel("r")
	id := publish(t, b1, ch)
	if !strings.HasPrefix(id, b1.Epoch()+"-") {
		t.Fatalf("id %q does not carry epoch %q", id, b1.Epoch())
	}
	publish(t, b2, ch)
	publish(t, b2, ch)
	if res := history(t, b2, id, ch); res.Recovered || len(res.Envelopes) != 0 {
		t.Errorf("another epoch's id: recovered %v with %d messages, want false and none", res.Recovered, len(res.Envelopes))
	}
	// Same epoch, a sequence number not issued yet: a position from the
	// future (a log that was reset under the same epoch cannot exist, but a
	// forged id can).
	future := b1.Epoch() + "-" + strconv.Itoa(1000)
	if res := history(t, b1, future, ch); res.Recovered {
		t.Error("a position beyond the newest id reported recovered")
	}
	// The zero position of this epoch covers everything retained.
	if res := history(t, b1, b1.Epoch()+"-0", ch); !res.Recovered || len(res.Envelopes) != 1 {
		t.Errorf("since %s-0: recovered %v with %d messages, want true with 1", b1.Epoch(), res.Recovered, len(res.Envelopes))
	}
}

func TestPublishAfterClose(t *testing.T) {
	t.Parallel()
	b := newBroker(t, memory.Config{})
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := publishTo(b, context.Background(), core.RoomChannel("r"), &core.Envelope{V: 1, Type: core.TypeMessage})
	if !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	b := newBroker(t, memory.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := &core.Envelope{V: 1, Type: core.TypeMessage}
	if _, err := publishTo(b, ctx, core.RoomChannel("r"), env); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context = %v, want context.Canceled", err)
	}
	if env.ID != "" {
		t.Errorf("a refused publication got id %q", env.ID)
	}
	if _, err := b.History(ctx, core.HistoryRequest{Channels: []string{core.RoomChannel("r")}, Since: b.Epoch() + "-0"}); !errors.Is(err, context.Canceled) {
		t.Errorf("History with a cancelled context = %v, want context.Canceled", err)
	}
}

// publishTo publishes env on channel through b, without a key.
func publishTo(b core.Broker, ctx context.Context, channel string, env *core.Envelope) (string, error) {
	res, err := b.Publish(ctx, core.Publication{Channel: channel, Envelope: env})
	return res.ID, err
}
