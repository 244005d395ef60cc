package redis

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/engine"
)

// TestSince: the position before every entry of t's millisecond (an
// entry ID is <ms>-<seq> of the server's clock), no round trip.
func TestSince(t *testing.T) {
	for _, c := range []struct {
		at   time.Time
		want engine.Pos
	}{
		{time.UnixMilli(1_800_000_000_123), engine.Pos{Hi: 1_800_000_000_122, Lo: math.MaxUint64}},
		{time.UnixMilli(1), engine.Pos{Hi: 0, Lo: math.MaxUint64}},
		{time.UnixMilli(0), engine.Pos{}},
		{time.Unix(-5, 0), engine.Pos{}},
	} {
		got, err := (&driver{}).Since(context.Background(), c.at)
		if err != nil || got != c.want {
			t.Errorf("Since(%v) = %v, %v; want %v", c.at, got, err, c.want)
		}
		// Every entry of that millisecond or later comes after it.
		if ms := c.at.UnixMilli(); ms > 0 && !got.Less(engine.Pos{Hi: uint64(ms)}) {
			t.Errorf("Since(%v) = %v is not before entry %d-0", c.at, got, ms)
		}
	}
}
