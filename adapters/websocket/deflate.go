package websocket

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/switchboard-dev/switchboard/adapters/internal/request"
)

// permessage-deflate (RFC 7692), without context takeover in either
// direction: every message is compressed on its own, so one compressed
// form of an envelope serves every connection it goes to, and neither
// side keeps a compressor or a window between messages. An idle
// connection holds no compression state at all.
//
// Sending: a batch whose frames are all shorter than the threshold goes
// as a plain text frame. Otherwise it goes as one compressed message
// (RSV1) made of segments that are each a complete, byte-aligned run of
// deflate blocks, which a decoder reads as one stream: a frame at least
// the threshold long is its compressed form, taken from a cache shared by
// the handler's connections (compressed once for all of them), ending in
// a sync flush; a shorter one, and the '\n' between envelopes, a stored
// block. The message then ends without the sync flush's last four bytes,
// which the receiver puts back (RFC 7692 section 7.2.1).
//
// Receiving: a message with RSV1 is inflated once whole, into at most
// the node's MaxMessageSize (beyond it 4003, whatever the compressed size
// was: no decompression bomb); deflate data that does not decode closes
// with 1007.

// extensionResponse is the answer to a permessage-deflate offer, the one
// the Fiber upgrade (fasthttp/websocket) sends.
const extensionResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// offersDeflate reports whether r offers permessage-deflate, by the rule
// the Fiber upgrade accepts an offer with, so both front ends agree.
func offersDeflate(r request.Request) bool {
	for ext := range strings.SplitSeq(r.Header("Sec-WebSocket-Extensions"), ",") {
		if strings.HasPrefix(strings.TrimSpace(ext), "permessage-deflate") {
			return true
		}
	}
	return false
}

// syncTail ends every sync-flushed deflate segment; a message is sent
// without it.
var syncTail = []byte{0, 0, 0xff, 0xff}

// deflater compresses frames for one handler's connections, each frame
// once: the compressed forms are cached by the frame's memory. Frames are
// immutable and shared by every connection core writes them to
// (core.Transport.WriteMany), and a cached entry keeps its frame alive, so
// the same memory cannot hold other bytes while it is cached.
type deflater struct {
	level     int
	threshold int
	writers   sync.Pool // *flateWriter
	shards    [cacheShards]cacheShard

	compressions atomic.Uint64 // frames compressed, for tests and stats
}

const (
	cacheShards = 64
	cacheSlots  = 32 // per shard: the frames of the last moments of traffic
)

type cacheShard struct {
	mu   sync.Mutex
	m    map[*byte]*deflated
	ring [cacheSlots]*deflated // insertion order: the oldest is evicted
	next int
}

// deflated is one frame's compressed form.
type deflated struct {
	src   []byte        // the frame: keeps its memory from being reused while cached
	ready chan struct{} // closed once out is set
	out   []byte        // the compressed frame, ending in syncTail
}

type flateWriter struct {
	w   *flate.Writer
	buf bytes.Buffer
}

func newDeflater(level, threshold int) *deflater {
	d := &deflater{level: level, threshold: threshold}
	d.writers.New = func() any {
		w, _ := flate.NewWriter(nil, level) // level is validated by configDefault
		return &flateWriter{w: w}
	}
	for i := range d.shards {
		d.shards[i].m = make(map[*byte]*deflated, cacheSlots)
	}
	return d
}

// compressed returns frame compressed, ending in a sync flush. Every
// connection asking for the same frame gets the same bytes, compressed
// once; they must not be modified.
func (d *deflater) compressed(frame []byte) []byte {
	p := unsafe.SliceData(frame)
	sh := &d.shards[(uintptr(unsafe.Pointer(p))*0x9E3779B97F4A7C15)>>(64-6)%cacheShards]
	sh.mu.Lock()
	if e := sh.m[p]; e != nil && len(e.src) == len(frame) {
		sh.mu.Unlock()
		<-e.ready // another connection is compressing it
		return e.out
	}
	e := &deflated{src: frame, ready: make(chan struct{})}
	if old := sh.ring[sh.next]; old != nil && sh.m[unsafe.SliceData(old.src)] == old {
		delete(sh.m, unsafe.SliceData(old.src))
	}
	sh.ring[sh.next] = e
	sh.next = (sh.next + 1) % cacheSlots
	sh.m[p] = e
	sh.mu.Unlock()
	e.out = d.compress(frame)
	close(e.ready)
	return e.out
}

// compress deflates frame on its own and sync-flushes.
func (d *deflater) compress(frame []byte) []byte {
	fw := d.writers.Get().(*flateWriter)
	fw.buf.Reset()
	fw.w.Reset(&fw.buf)
	_, _ = fw.w.Write(frame) // writes to a bytes.Buffer do not fail
	_ = fw.w.Flush()
	out := bytes.Clone(fw.buf.Bytes())
	if fw.buf.Cap() > 64<<10 {
		fw.buf = bytes.Buffer{} // a rare large frame: do not pin its buffer
	}
	d.writers.Put(fw)
	d.compressions.Add(1)
	return out
}

// worthIt reports whether a batch goes compressed: one of its frames
// reaches the threshold.
func (d *deflater) worthIt(frames [][]byte) bool {
	for _, f := range frames {
		if len(f) >= d.threshold {
			return true
		}
	}
	return false
}

// appendMessage appends the payload of one compressed message carrying
// frames joined by '\n'.
func (d *deflater) appendMessage(b []byte, frames [][]byte) []byte {
	synced := false // b ends in a sync flush
	for i, f := range frames {
		if len(f) < d.threshold {
			nl := i > 0
			b = appendStored(b, nl, f)
			synced = false
			continue
		}
		if i > 0 {
			b = appendStored(b, true, nil)
		}
		b = append(b, d.compressed(f)...)
		synced = true
	}
	if synced {
		return b[:len(b)-len(syncTail)]
	}
	// An empty stored block's first byte: the receiver's syncTail
	// completes it.
	return append(b, 0)
}

// appendStored appends p, after a '\n' if nl, as stored (uncompressed)
// deflate blocks of at most 65,535 bytes each.
func appendStored(b []byte, nl bool, p []byte) []byte {
	n := len(p)
	if nl {
		n++
	}
	for first := true; first || len(p) > 0; first = false {
		size := min(n, 0xFFFF)
		b = append(b, 0, byte(size), byte(size>>8), ^byte(size), ^byte(size>>8))
		if nl {
			b = append(b, '\n')
			nl = false
			size--
		}
		b = append(b, p[:size]...)
		p = p[size:]
		n = len(p)
	}
	return b
}

// errTooLarge is an inflated message over the limit.
var errTooLarge = errors.New("inflated message over the size limit")

// errBadDeflate is a compressed message that does not decode.
const errBadDeflate = errInvalidData("invalid deflate data")

type flateReader struct {
	r   io.ReadCloser
	src tailReader
}

var readers = sync.Pool{New: func() any {
	fr := &flateReader{}
	fr.r = flate.NewReader(&fr.src)
	return fr
}}

// tailReader reads p, then syncTail.
type tailReader struct {
	p    []byte
	tail int // bytes of syncTail read
}

func (t *tailReader) Read(b []byte) (int, error) {
	if len(t.p) > 0 {
		n := copy(b, t.p)
		t.p = t.p[n:]
		return n, nil
	}
	if t.tail == len(syncTail) {
		return 0, io.EOF
	}
	n := copy(b, syncTail[t.tail:])
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

// inflate decompresses a message's payload p into buf (reused, grown up
// to limit bytes), failing with errTooLarge beyond limit and errBadDeflate
// for data that does not decode. It never holds more than limit+1 bytes
// of output.
func inflate(buf, p []byte, limit int) ([]byte, error) {
	fr := readers.Get().(*flateReader)
	defer readers.Put(fr)
	fr.src = tailReader{p: p}
	if err := fr.r.(flate.Resetter).Reset(&fr.src, nil); err != nil {
		return buf, errBadDeflate
	}
	out := buf[:0]
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				return out, errTooLarge
			}
			out = append(out, 0)[:len(out)] // grow
		}
		room := out[len(out):min(cap(out), limit+1)]
		n, err := fr.r.Read(room)
		out = out[:len(out)+n]
		if len(out) > limit {
			return out, errTooLarge
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			// The stream ends at the restored sync flush, without a final
			// block: the end of the message.
			return out, nil
		default:
			return out, errBadDeflate
		}
	}
}
