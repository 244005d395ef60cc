package memory_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// publishSized publishes a message of about size bytes on channel.
func publishSized(t *testing.T, b *memory.Broker, channel string, size int) string {
	t.Helper()
	env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: strings.TrimPrefix(channel, "room:"),
		Data: json.RawMessage(`"` + strings.Repeat("x", size) + `"`)}
	id, err := publishTo(b, context.Background(), channel, env)
	if err != nil {
		t.Fatalf("Publish(%s): %v", channel, err)
	}
	return id
}

// TestHistoryMaxBytes: over budget, whole histories go, least recently
// published first, and a resume across a dropped one is unrecoverable.
func TestHistoryMaxBytes(t *testing.T) {
	t.Parallel()
	const kib = 1 << 10
	// Four 4 KiB messages plus bookkeeping fit in 20 KiB; five do not.
	b := newBroker(t, memory.Config{HistoryMaxBytes: 20 * kib, HistoryTTL: -1})
	a, bb, c, d := core.RoomChannel("a"), core.RoomChannel("b"), core.RoomChannel("c"), core.RoomChannel("d")
	a0 := publishSized(t, b, a, 4*kib)
	b0 := publishSized(t, b, bb, 4*kib)
	publishSized(t, b, c, 4*kib)
	publishSized(t, b, a, 4*kib) // a is now the most recently published
	for _, ch := range []string{a, bb, c} {
		if res := history(t, b, a0, ch); !res.Recovered {
			t.Fatalf("%s within budget: recovered false", ch)
		}
	}

	publishSized(t, b, d, 4*kib) // over budget: b goes, not a
	if res := history(t, b, a0, bb); res.Recovered || len(res.Envelopes) != 0 {
		t.Errorf("evicted b: recovered %v with %d messages, want false and none", res.Recovered, len(res.Envelopes))
	}
	if res := history(t, b, a0, a, c); !res.Recovered || len(res.Envelopes) != 2 {
		t.Errorf("retained a and c: recovered %v with %d messages, want true with 2", res.Recovered, len(res.Envelopes))
	}
	if res := history(t, b, a0, a, bb); res.Recovered {
		t.Error("a resume spanning the evicted channel reported recovered")
	}
	// A client that saw b's newest message lost nothing in b.
	if res := history(t, b, b0, bb); !res.Recovered {
		t.Error("resume from the evicted channel's newest message: recovered false, want true")
	}

	publishSized(t, b, bb, 4*kib) // b again: c is now least recently published
	if res := history(t, b, a0, c); res.Recovered {
		t.Error("c should have been evicted next")
	}
	if res := history(t, b, a0, a); !res.Recovered {
		t.Error("a should have been kept")
	}
}

// TestHistoryMaxBytesOneChannel: a channel over budget on its own keeps
// its newest messages.
func TestHistoryMaxBytesOneChannel(t *testing.T) {
	t.Parallel()
	const kib = 1 << 10
	b := newBroker(t, memory.Config{HistoryMaxBytes: 20 * kib, HistoryTTL: -1})
	ch := core.RoomChannel("big")
	var ids []string
	for range 10 {
		ids = append(ids, publishSized(t, b, ch, 4*kib))
	}
	if res := history(t, b, ids[0], ch); res.Recovered || len(res.Envelopes) == 0 {
		t.Errorf("since the first: recovered %v with %d messages, want false with the newest", res.Recovered, len(res.Envelopes))
	}
	if res := history(t, b, ids[7], ch); !res.Recovered || len(res.Envelopes) != 2 {
		t.Errorf("since the 8th: recovered %v with %d messages, want true with 2", res.Recovered, len(res.Envelopes))
	}
	// Even a budget smaller than one message keeps the newest.
	tiny := newBroker(t, memory.Config{HistoryMaxBytes: 1, HistoryTTL: -1})
	t0 := publishSized(t, tiny, ch, 100)
	t1 := publishSized(t, tiny, ch, 100)
	publishSized(t, tiny, ch, 100)
	if res := history(t, tiny, t0, ch); res.Recovered {
		t.Error("tiny budget: since the first of three reported recovered")
	}
	if res := history(t, tiny, t1, ch); !res.Recovered || len(res.Envelopes) != 1 {
		t.Errorf("tiny budget: since the second: recovered %v with %d, want true with 1", res.Recovered, len(res.Envelopes))
	}
}

// TestHistoryMaxBytesDisabled: the same publications that overflow a
// budget drop nothing when the bound is disabled.
func TestHistoryMaxBytesDisabled(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		max     int64
		dropped bool
	}{{16 << 10, true}, {-1, false}} {
		b := newBroker(t, memory.Config{HistoryMaxBytes: tt.max, HistoryTTL: -1})
		first := publishSized(t, b, core.RoomChannel("first"), 1)
		for i := range 100 {
			publishSized(t, b, core.RoomChannel("c"+strconv.Itoa(i)), 1<<10)
		}
		if res := history(t, b, first, core.RoomChannel("first")); res.Recovered == tt.dropped {
			t.Errorf("HistoryMaxBytes %d: oldest channel recovered %v, want %v", tt.max, res.Recovered, !tt.dropped)
		}
	}
}

// TestHistoryTTLOrder: the sweep drops exactly the channels idle for
// longer than the TTL, however they are interleaved.
func TestHistoryTTLOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, memory.Config{HistoryTTL: time.Minute})
		x, y, z := core.RoomChannel("x"), core.RoomChannel("y"), core.RoomChannel("z")
		x0 := publish(t, b, x)
		publish(t, b, y)
		publish(t, b, z)
		time.Sleep(40 * time.Second)
		publish(t, b, x) // x is fresh again; y and z are not
		time.Sleep(30 * time.Second)
		publish(t, b, core.RoomChannel("tick"))
		if res := history(t, b, x0, x); !res.Recovered || len(res.Envelopes) != 1 {
			t.Errorf("republished x: recovered %v with %d, want true with 1", res.Recovered, len(res.Envelopes))
		}
		for _, ch := range []string{y, z} {
			if res := history(t, b, x0, ch); res.Recovered {
				t.Errorf("%s idle for 70s with a 1m TTL: still recovered", ch)
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  memory.Config
		ok   bool
	}{
		{"zero", memory.Config{}, true},
		{"disabled bounds", memory.Config{HistorySize: -1, HistoryTTL: -1, HistoryMaxBytes: -1, DeliveryBuffer: -1}, true},
		{"largest history", memory.Config{HistorySize: memory.MaxHistorySize}, true},
		{"history too large", memory.Config{HistorySize: memory.MaxHistorySize + 1}, false},
		{"largest buffer", memory.Config{DeliveryBuffer: memory.MaxDeliveryBuffer}, true},
		{"buffer too large", memory.Config{DeliveryBuffer: memory.MaxDeliveryBuffer + 1}, false},
		{"both too large", memory.Config{HistorySize: 1 << 30, DeliveryBuffer: 1 << 30}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, memory.ErrInvalidConfig)) {
				t.Fatalf("Validate() = %v, want ok %v (errors wrapping ErrInvalidConfig)", err, tt.ok)
			}
			b, err := memory.New(tt.cfg, quiet)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, memory.ErrInvalidConfig)) {
				t.Fatalf("New() = %v, want ok %v (errors wrapping ErrInvalidConfig)", err, tt.ok)
			}
			if b != nil {
				_ = b.Close(context.Background())
			}
		})
	}
}
