package ids

import (
	"math"
	"testing"
)

// FuzzFormatID complements FuzzParseID (ids_test.go, arbitrary strings):
// every id the broker can write (any positive stream creation time, any
// sequence from 1) parses back to the same position.
func FuzzFormatID(f *testing.F) {
	f.Add(int64(1795344139268000000), uint64(1))
	f.Add(int64(1), uint64(math.MaxUint64))
	f.Add(int64(math.MaxInt64), uint64(42))
	f.Fuzz(func(t *testing.T, created int64, seq uint64) {
		if created <= 0 || seq == 0 {
			return // epochs are positive Unix nanoseconds, sequences start at 1
		}
		id := Format(Epoch(created), seq)
		p, ok := Parse(id)
		if !ok || p.Epoch != Epoch(created) || p.Seq != seq {
			t.Fatalf("Parse(Format(%d, %d) = %q) = %+v, %v", created, seq, id, p, ok)
		}
	})
}
