package ids

import (
	"math"
	"strconv"
	"testing"
	"time"
)

// FuzzEpoch: every creation time a stream can have spells an epoch the
// engine accepts in ids (1 to 32 characters of [0-9a-z]), one spelling
// per time that reads back as that time (so distinct streams spell
// distinct epochs).
func FuzzEpoch(f *testing.F) {
	f.Add(int64(1795344139268000000))
	f.Add(int64(1_000_000_000))
	f.Add(int64(999_999_999))
	f.Add(int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, nanos int64) {
		created := time.Unix(0, nanos)
		e, ok := EpochOf(created)
		if !ok {
			if nanos >= int64(time.Second) {
				t.Fatalf("EpochOf(%v) refused a time after 1970", created)
			}
			return
		}
		s := e.String()
		if len(s) == 0 || len(s) > 13 {
			t.Fatalf("epoch of %d spelt %q: want 1 to 13 characters", nanos, s)
		}
		for _, c := range []byte(s) {
			if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
				t.Fatalf("epoch of %d spelt %q: want [0-9a-z]", nanos, s)
			}
		}
		if n, err := strconv.ParseInt(s, 36, 64); err != nil || n != nanos {
			t.Fatalf("epoch %q reads back as %d, %v; want %d", s, n, err, nanos)
		}
	})
}
