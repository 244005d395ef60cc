package deflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Defaults of the adapters' compression settings.
const (
	DefaultLevel     = 6   // flate's default: the cost is paid once per envelope, not per connection
	DefaultThreshold = 256 // bytes: below it deflate gains little
)

// SyncTail ends every sync-flushed deflate run: the empty stored block's
// length fields. A WebSocket message is sent without it (RFC 7692
// section 7.2.1).
var SyncTail = []byte{0, 0, 0xff, 0xff}

// Cache compresses frames at one level, each once: the compressed forms
// are kept by the frame's memory, a bounded number of the most recent.
// An entry keeps its frame alive, so that memory cannot hold other bytes
// while it is cached.
type Cache struct {
	level   int
	writers sync.Pool // *flateWriter
	shards  [cacheShards]cacheShard

	compressions atomic.Uint64
}

const (
	cacheShards = 64
	cacheSlots  = 32 // per shard: the frames of the last moments of traffic
)

type cacheShard struct {
	mu   sync.Mutex
	m    map[*byte]*entry
	ring [cacheSlots]*entry // insertion order: the oldest is evicted
	next int
}

// entry is one frame's compressed form.
type entry struct {
	src   []byte        // the frame
	ready chan struct{} // closed once out is set
	out   []byte        // the frame compressed, ending in a sync flush
}

type flateWriter struct {
	w   *flate.Writer
	buf bytes.Buffer
}

// NewCache returns a Cache compressing at level, from flate.BestSpeed to
// flate.BestCompression.
func NewCache(level int) (*Cache, error) {
	if level < flate.BestSpeed || level > flate.BestCompression {
		return nil, fmt.Errorf("switchboard/adapters/deflate: level %d is not 1 to 9", level)
	}
	c := &Cache{level: level}
	c.writers.New = func() any {
		w, _ := flate.NewWriter(nil, level) // level checked above
		return &flateWriter{w: w}
	}
	for i := range c.shards {
		c.shards[i].m = make(map[*byte]*entry, cacheSlots)
	}
	return c, nil
}

// Compressions is how many frames the cache has compressed.
func (c *Cache) Compressions() uint64 { return c.compressions.Load() }

// Compressed returns frame (not empty) deflated on its own and
// sync-flushed. Every caller asking for the same frame gets the same
// bytes, compressed once; they must not be modified.
func (c *Cache) Compressed(frame []byte) []byte {
	p := unsafe.SliceData(frame)
	sh := &c.shards[shardOf(p)]
	sh.mu.Lock()
	if e := sh.m[p]; e != nil && len(e.src) == len(frame) {
		sh.mu.Unlock()
		<-e.ready // another connection may be compressing it
		return e.out
	}
	e := &entry{src: frame, ready: make(chan struct{})}
	if old := sh.ring[sh.next]; old != nil && sh.m[unsafe.SliceData(old.src)] == old {
		delete(sh.m, unsafe.SliceData(old.src))
	}
	sh.ring[sh.next] = e
	sh.next = (sh.next + 1) % cacheSlots
	sh.m[p] = e
	sh.mu.Unlock()
	e.out = c.compress(frame)
	close(e.ready)
	return e.out
}

// shardOf spreads frames over the shards by their address.
func shardOf(p *byte) int {
	return int((uintptr(unsafe.Pointer(p)) * 0x9E3779B97F4A7C15) >> (64 - 6) % cacheShards)
}

func (c *Cache) compress(frame []byte) []byte {
	fw := c.writers.Get().(*flateWriter)
	fw.buf.Reset()
	fw.w.Reset(&fw.buf)
	_, _ = fw.w.Write(frame) // writes to a bytes.Buffer do not fail
	_ = fw.w.Flush()
	out := bytes.Clone(fw.buf.Bytes())
	if fw.buf.Cap() > 64<<10 {
		fw.buf = bytes.Buffer{} // a rare large frame: do not pin its buffer
	}
	c.writers.Put(fw)
	c.compressions.Add(1)
	return out
}

// Worth reports whether frames are worth compressing: one of them is at
// least threshold bytes (smaller ones gain little on their own).
func Worth[F ~[]byte](frames []F, threshold int) bool {
	for _, f := range frames {
		if len(f) >= threshold {
			return true
		}
	}
	return false
}

// Segments appends a raw deflate stream to B, one byte-aligned run after
// another.
type Segments struct {
	B      []byte
	synced bool // B ends in a sync flush
	crc    uint32
	size   uint32
	sum    bool // keep the CRC-32 and size of what was written (gzip)
}

// Stored appends parts, uncompressed, as stored blocks of at most 65,535
// bytes.
func (s *Segments) Stored(parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
		s.add(p)
	}
	i, off := 0, 0 // the next byte to copy: parts[i][off]
	for n > 0 {
		size := min(n, 0xFFFF)
		s.B = append(s.B, 0, byte(size), byte(size>>8), ^byte(size), ^byte(size>>8))
		for left := size; left > 0; {
			k := min(left, len(parts[i])-off)
			s.B = append(s.B, parts[i][off:off+k]...)
			off += k
			left -= k
			if off == len(parts[i]) {
				i, off = i+1, 0
			}
		}
		n -= size
		s.synced = false
	}
}

// Frame appends frame's compressed form from c.
func (s *Segments) Frame(c *Cache, frame []byte) {
	if len(frame) == 0 {
		return
	}
	s.add(frame)
	s.B = append(s.B, c.Compressed(frame)...)
	s.synced = true
}

func (s *Segments) add(p []byte) {
	if s.sum {
		s.crc = crc32.Update(s.crc, crc32.IEEETable, p)
		s.size += uint32(len(p))
	}
}

// EndMessage ends a WebSocket message: without the sync flush's tail,
// which the receiver restores (RFC 7692 section 7.2.1).
func (s *Segments) EndMessage() {
	if s.synced {
		s.B = s.B[:len(s.B)-len(SyncTail)]
		return
	}
	s.B = append(s.B, 0) // an empty stored block, less the tail
}

// gzipHeader: deflate, no name or time, unknown OS (RFC 1952).
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// StartGzip begins a gzip member in B; the CRC-32 and size of what the
// segments carry are kept for EndGzip.
func (s *Segments) StartGzip() {
	s.B = append(s.B, gzipHeader...)
	s.sum, s.crc, s.size = true, 0, 0
}

// EndGzip ends the deflate stream with a final empty block and the gzip
// trailer.
func (s *Segments) EndGzip() {
	s.B = append(s.B, 1, 0, 0, 0xff, 0xff)
	s.B = append(s.B, byte(s.crc), byte(s.crc>>8), byte(s.crc>>16), byte(s.crc>>24),
		byte(s.size), byte(s.size>>8), byte(s.size>>16), byte(s.size>>24))
}

// ErrTooLarge is a message that inflates past the limit.
var ErrTooLarge = errors.New("switchboard/adapters/deflate: inflated message over the size limit")

// ErrBadData is deflate data that does not decode.
var ErrBadData = errors.New("switchboard/adapters/deflate: invalid deflate data")

type flateReader struct {
	r   io.ReadCloser
	src tailReader
}

var readers = sync.Pool{New: func() any {
	fr := &flateReader{}
	fr.r = flate.NewReader(&fr.src)
	return fr
}}

// tailReader reads p, then SyncTail.
type tailReader struct {
	p    []byte
	tail int // bytes of SyncTail read
}

func (t *tailReader) Read(b []byte) (int, error) {
	if len(t.p) > 0 {
		n := copy(b, t.p)
		t.p = t.p[n:]
		return n, nil
	}
	if t.tail == len(SyncTail) {
		return 0, io.EOF
	}
	n := copy(b, SyncTail[t.tail:])
	t.tail += n
	return n, nil
}

func (t *tailReader) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := t.Read(b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// Inflate decompresses a WebSocket message's payload p (sent without its
// sync tail) into buf, reused and grown up to limit bytes. It fails with
// ErrTooLarge beyond limit, holding at most limit+1 bytes of output
// whatever p expands to, and with ErrBadData for data that does not
// decode.
func Inflate(buf, p []byte, limit int) ([]byte, error) {
	fr := readers.Get().(*flateReader)
	defer readers.Put(fr)
	fr.src = tailReader{p: p}
	if err := fr.r.(flate.Resetter).Reset(&fr.src, nil); err != nil {
		return buf, ErrBadData
	}
	out := buf[:0]
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)] // grow
		}
		n, err := fr.r.Read(out[len(out):min(cap(out), limit+1)])
		out = out[:len(out)+n]
		if len(out) > limit {
			return out, ErrTooLarge
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			// The stream ends at the restored sync flush, without a final
			// block: the end of the message.
			return out, nil
		default:
			return out, ErrBadData
		}
	}
}
