package memory_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// fuzzBroker is a started broker holding three messages in one room, so
// that History has something to return for a parseable since.
func fuzzBroker(f *testing.F) (b *memory.Broker, channel string, ids []string) {
	f.Helper()
	b, err := memory.New(memory.Config{}, quiet)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = b.Close(context.Background()) })
	ctx := context.Background()
	if err := b.Start(ctx, func(core.Delivery) {}); err != nil {
		f.Fatal(err)
	}
	channel = core.RoomChannel("fuzz")
	for i := 0; i < 3; i++ {
		id, err := publishTo(b, ctx, channel, &core.Envelope{V: 1, Type: core.TypeMessage, Room: "fuzz", Data: []byte(strconv.Itoa(i))})
		if err != nil {
			f.Fatal(err)
		}
		ids = append(ids, id)
	}
	return b, channel, ids
}

// FuzzResumeID feeds arbitrary since= / cursor values, which come
// straight from clients, to the in-memory broker: no panic, an id the
// broker cannot parse is never "recovered", and whatever History returns
// comes strictly after since. Ids of the current epoch are any decimal
// spelling of a sequence number (leading zeros are accepted, unlike the
// Redis, Kafka and NATS brokers): each must compare equal to the
// broker's own spelling.
func FuzzResumeID(f *testing.F) {
	b, channel, ids := fuzzBroker(f)
	epoch := b.Epoch()
	for _, id := range ids {
		f.Add(id)
	}
	for _, s := range []string{"", "-", "--", "garbage", epoch, epoch + "-", epoch + "-0", epoch + "-00", epoch + "-01", epoch + "-+1",
		epoch + "- 1", epoch + "-1 ", epoch + "-0x1", epoch + "-1_0", epoch + "-18446744073709551615", epoch + "-18446744073709551616",
		epoch + "-1-2", strings.ToUpper(epoch) + "-1", "x" + epoch + "-1", "-" + epoch + "-1", epoch + "-\x00", epoch + "-\xff"} {
		f.Add(s)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, since string) {
		res, err := b.History(ctx, core.HistoryRequest{Channels: []string{channel}, Since: since, Limit: 10})
		if err != nil {
			t.Fatalf("History(%q): %v", since, err)
		}
		_, ok := b.After(since, since)
		if !ok {
			if res.Recovered || len(res.Envelopes) > 0 {
				t.Fatalf("History(%q) of an unparseable id = %+v, want nothing and recovered:false", since, res)
			}
			return
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(since, epoch+"-"), 10, 64)
		if !strings.HasPrefix(since, epoch+"-") || err != nil {
			t.Fatalf("After accepted %q, which is not %q followed by a sequence number", since, epoch+"-")
		}
		canon := epoch + "-" + strconv.FormatUint(n, 10)
		if a, ok := b.After(since, canon); a || !ok {
			t.Fatalf("After(%q, %q) = %v, %v: one position, two orders", since, canon, a, ok)
		}
		if a, ok := b.After(canon, since); a || !ok {
			t.Fatalf("After(%q, %q) = %v, %v: one position, two orders", canon, since, a, ok)
		}
		if n <= uint64(len(ids)) != res.Recovered {
			t.Fatalf("History(%q).Recovered = %v with %d messages in the log", since, res.Recovered, len(ids))
		}
		for _, env := range res.Envelopes {
			if a, ok := b.After(env.ID, since); !a || !ok {
				t.Fatalf("History(%q) returned %s, not after since", since, env.ID)
			}
		}
	})
}

// FuzzResumeIDRoundTrip: every sequence number the broker may write
// parses back to the same position, in order with its neighbours.
func FuzzResumeIDRoundTrip(f *testing.F) {
	b, channel, ids := fuzzBroker(f)
	epoch := b.Epoch()
	for _, n := range []uint64{0, 1, 2, 3, 4, 1 << 32, math.MaxInt64, math.MaxUint64 - 1, math.MaxUint64} {
		f.Add(n)
	}
	ctx := context.Background()
	id := func(n uint64) string { return epoch + "-" + strconv.FormatUint(n, 10) }
	f.Fuzz(func(t *testing.T, n uint64) {
		if a, ok := b.After(id(n), id(n)); a || !ok {
			t.Fatalf("After(%q, itself) = %v, %v", id(n), a, ok)
		}
		if n < math.MaxUint64 {
			if a, ok := b.After(id(n+1), id(n)); !a || !ok {
				t.Fatalf("After(%q, %q) = %v, %v", id(n+1), id(n), a, ok)
			}
			if a, ok := b.After(id(n), id(n+1)); a || !ok {
				t.Fatalf("After(%q, %q) = %v, %v", id(n), id(n+1), a, ok)
			}
		}
		res, err := b.History(ctx, core.HistoryRequest{Channels: []string{channel}, Since: id(n), Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if n < uint64(len(ids)) {
			want = len(ids) - int(n)
		}
		if res.Recovered != (n <= uint64(len(ids))) || len(res.Envelopes) != want {
			t.Fatalf("History(%q) = %d envelopes, recovered %v; want %d of the %d in the log", id(n), len(res.Envelopes), res.Recovered, want, len(ids))
		}
	})
}
