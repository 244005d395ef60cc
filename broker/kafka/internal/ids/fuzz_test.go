package ids_test

import (
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/kafka/internal/ids"
)

// FuzzParseID feeds arbitrary since= / cursor values, which come straight
// from clients, through what the Kafka driver does with one:
// engine.ParseID, then Next. No panic; an accepted id has exactly one
// spelling; a position the driver reads after maps to a non-negative
// offset.
func FuzzParseID(f *testing.F) {
	var e ids.Epoch
	for i := range e {
		e[i] = byte(i * 17)
	}
	es := e.String()
	for _, s := range []string{engine.FormatID(es, engine.Pos{Lo: ids.Lo(0)}), engine.FormatID(es, engine.Pos{Lo: ids.Lo(41)}),
		engine.FormatID(es, engine.Pos{Lo: ids.Lo(1<<63 - 1)}), "", "-", "--", es, es + "-", es + "--1", es + "-01", es + "-+1",
		es + "-0", es + "-1-2", es + "-9223372036854775808", es + "-18446744073709551616", strings.ToUpper(es) + "-1",
		strings.Repeat("v", 33) + "-1", es + "-1\x00", es + "- 1", "k3q9f1c2-42"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		epoch, pos, ok := engine.ParseID(id)
		if !ok {
			return
		}
		if got := engine.FormatID(epoch, pos); got != id {
			t.Fatalf("ParseID(%q) = %q %v, which formats as %q", id, epoch, pos, got)
		}
		if next, ok := ids.Next(pos.Lo); ok && (next < 0 || uint64(next) != pos.Lo) {
			t.Fatalf("position %v of %q: next offset %d", pos, id, next)
		}
	})
}

// FuzzFormatID: every id the driver can issue (any topic ID, any offset
// from 0) parses back to its epoch and the offset after its record, and
// is URL-safe.
func FuzzFormatID(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), int64(0))
	f.Add(make([]byte, 16), int64(1<<63-2))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, int64(7))
	f.Fuzz(func(t *testing.T, raw []byte, offset int64) {
		if len(raw) != 16 || offset < 0 || offset == 1<<63-1 {
			return // topic IDs are 16 bytes; offsets start at 0 and stay below the largest int64
		}
		var e ids.Epoch
		copy(e[:], raw)
		id := engine.FormatID(e.String(), engine.Pos{Lo: ids.Lo(offset)})
		epoch, pos, ok := engine.ParseID(id)
		if !ok || epoch != e.String() || pos.Hi != 0 {
			t.Fatalf("ParseID(%q) = %q, %v, %v", id, epoch, pos, ok)
		}
		if next, ok := ids.Next(pos.Lo); !ok || next != offset+1 {
			t.Fatalf("id %q of offset %d: next offset %d, %v", id, offset, next, ok)
		}
		if strings.Trim(id, "0123456789abcdefghijklmnopqrstuv-") != "" {
			t.Fatalf("id %q is not URL-safe [0-9a-v-]", id)
		}
	})
}
