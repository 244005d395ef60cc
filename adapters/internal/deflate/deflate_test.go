package deflate

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// frame is ~2 KB of market-data JSON, distinct per seq.
func frame(seq int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"v":1,"type":"message","room":"ticker","id":"%d","data":{"quotes":[`, seq)
	for i := range 20 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sym":"SYM%02d","bid":%d.%03d,"ask":%d.%03d}`, i, 100+i*7+seq%13, (seq*37+i*11)%1000, 100+i*7+seq%13, (seq*41+i*17)%1000)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

func newCache(t testing.TB) *Cache {
	c, err := NewCache(6)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deflateStd compresses p as a WebSocket client does: one sync-flushed
// run, without the tail.
func deflateStd(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), SyncTail)
}

// TestCompressedOnce: a frame asked for by many connections at once is
// compressed once, and every one gets the same bytes; a copy in other
// memory is another frame.
func TestCompressedOnce(t *testing.T) {
	c := newCache(t)
	frames := [][]byte{frame(1), frame(2), frame(3)}
	var wg sync.WaitGroup
	outs := make([][]byte, 64)
	for i := range outs {
		wg.Go(func() {
			for _, f := range frames {
				outs[i] = c.Compressed(f)
			}
		})
	}
	wg.Wait()
	if n := c.Compressions(); n != uint64(len(frames)) {
		t.Fatalf("%d compressions for %d frames asked for by 64 connections, want one each", n, len(frames))
	}
	for i := range outs {
		if &outs[i][0] != &outs[0][0] {
			t.Fatal("connections got different copies of one compressed frame")
		}
	}
	_ = c.Compressed(bytes.Clone(frames[0]))
	if n := c.Compressions(); n != uint64(len(frames))+1 {
		t.Fatalf("%d compressions, want the copy compressed on its own", n)
	}
	if _, err := NewCache(10); err == nil {
		t.Fatal("NewCache(10): no error")
	}
}

// TestCacheEvicts: the cache keeps a bounded number of frames; an evicted
// one is compressed again when asked for, correctly.
func TestCacheEvicts(t *testing.T) {
	c := newCache(t)
	first := frame(0)
	want := bytes.Clone(c.Compressed(first))
	// Fill first's shard with other frames (frames of other shards are
	// not compressed: only where they would go is looked at).
	home, others := shardOf(unsafe.SliceData(first)), 0
	for i := 0; others < cacheSlots; i++ {
		f := fmt.Appendf(nil, "frame %d", i)
		if shardOf(unsafe.SliceData(f)) == home {
			c.Compressed(f)
			others++
		}
	}
	n := c.Compressions()
	if got := c.Compressed(first); !bytes.Equal(got, want) || c.Compressions() != n+1 {
		t.Fatalf("after %d other frames: compressions %d → %d, same bytes %v; want it compressed again, identically", others, n, c.Compressions(), bytes.Equal(got, want))
	}
	if n := len(c.shards[home].m); n > cacheSlots {
		t.Fatalf("%d frames cached in a shard, want at most %d", n, cacheSlots)
	}
}

// TestSegments: runs of compressed frames and stored blocks, in any order
// and of any size, make one stream that a standard decoder reads whole:
// as a WebSocket message (the tail restored) and as a gzip member
// (checked against its CRC-32 and size by compress/gzip).
func TestSegments(t *testing.T) {
	c := newCache(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // over one stored block
	cases := []struct {
		name string
		ops  []func(s *Segments) []byte // each appends and returns what it carries
	}{
		{"compressed only", []func(*Segments) []byte{comp(c, frame(1))}},
		{"stored only", []func(*Segments) []byte{stored([]byte("a"), []byte("bc"))}},
		{"compressed then stored", []func(*Segments) []byte{comp(c, frame(1)), stored([]byte("\n"), []byte(`{"x":1}`))}},
		{"stored, compressed, stored, compressed", []func(*Segments) []byte{stored([]byte("[")), comp(c, frame(2)), stored([]byte(",")), comp(c, frame(3))}},
		{"a stored part over 65,535 bytes", []func(*Segments) []byte{stored([]byte("["), big, []byte("]")), comp(c, frame(4))}},
		{"nothing", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []byte
			ws, gz := Segments{}, Segments{}
			gz.StartGzip()
			for _, op := range tc.ops {
				want = append(want, op(&ws)...)
				op(&gz)
			}
			ws.EndMessage()
			gz.EndGzip()
			got, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(ws.B), bytes.NewReader(SyncTail))))
			if !errors.Is(err, io.ErrUnexpectedEOF) && err != nil || !bytes.Equal(got, want) {
				t.Fatalf("message: %v, %d bytes; want %d", err, len(got), len(want))
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz.B))
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("gzip: %v, %d bytes; want %d", err, len(got), len(want))
			}
		})
	}
}

func comp(c *Cache, f []byte) func(*Segments) []byte {
	return func(s *Segments) []byte { s.Frame(c, f); return f }
}

func stored(parts ...[]byte) func(*Segments) []byte {
	return func(s *Segments) []byte { s.Stored(parts...); return bytes.Join(parts, nil) }
}

// TestInflate: a compressed message inflates; one that inflates past the
// limit fails once the limit is passed, holding no more than about it;
// data that is not deflate fails.
func TestInflate(t *testing.T) {
	msg := frame(7)
	out, err := Inflate(nil, deflateStd(msg), 4096)
	if err != nil || !bytes.Equal(out, msg) {
		t.Fatalf("Inflate = %.60q, %v; want the message", out, err)
	}
	bomb := deflateStd(make([]byte, 50<<20)) // 50 MB of zeros in about 50 KB
	out, err = Inflate(nil, bomb, 64<<10)
	if !errors.Is(err, ErrTooLarge) || cap(out) > 2*(64<<10)+1 {
		t.Fatalf("bomb: %v with %d bytes of buffer; want ErrTooLarge within about the limit", err, cap(out))
	}
	if _, err := Inflate(nil, []byte{0xff, 0xff, 0xff, 0xff}, 4096); !errors.Is(err, ErrBadData) {
		t.Fatalf("garbage: %v, want ErrBadData", err)
	}
}

// FuzzInflate: any payload inflates to at most the limit or fails with
// ErrTooLarge or ErrBadData, without panicking; what deflate wrote comes
// back whole.
func FuzzInflate(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"ping"}`), true, 64)
	f.Add(make([]byte, 5000), true, 1024)
	f.Add([]byte{0xff, 0x00, 0x01}, false, 16)
	f.Add([]byte{0, 0, 0, 0xff, 0xff}, false, 0)
	f.Fuzz(func(t *testing.T, p []byte, compress bool, limit int) {
		limit = min(max(limit, 0), 1<<20)
		src := p
		if compress {
			src = deflateStd(p)
		}
		out, err := Inflate(nil, src, limit)
		switch {
		case err == nil && len(out) > limit:
			t.Fatalf("%d bytes out, over the limit %d", len(out), limit)
		case err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadData):
			t.Fatalf("unexpected error %v", err)
		case compress && len(p) <= limit && (err != nil || !bytes.Equal(out, p)):
			t.Fatalf("round trip of %d bytes: %v", len(p), err)
		case compress && len(p) > limit && !errors.Is(err, ErrTooLarge):
			t.Fatalf("%d bytes under a limit of %d: %v, want ErrTooLarge", len(p), limit, err)
		}
	})
}

func BenchmarkCompress(b *testing.B) {
	for _, level := range []int{1, 6} {
		b.Run(fmt.Sprint("level", level), func(b *testing.B) {
			c, _ := NewCache(level)
			f := frame(1)
			b.SetBytes(int64(len(f)))
			for b.Loop() {
				c.compress(f)
			}
			b.ReportMetric(float64(len(c.compress(f))), "bytes-out")
		})
	}
}
