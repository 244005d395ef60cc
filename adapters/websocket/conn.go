package websocket

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/switchboard-dev/switchboard/adapters/internal/deflate"
	"github.com/switchboard-dev/switchboard/core"
)

// conn is one WebSocket connection after the upgrade: the core.Transport
// its session writes to, and the reader of the client's frames.
//
// It reads in one of two ways:
//   - detached (plain TCP, Linux, and the Fiber server keeps hijacked
//     connections): the upgrade handler returns and the socket is watched
//     by the poller; each time it is readable a short-lived goroutine reads
//     what arrived into a pooled buffer. An idle connection then holds no
//     goroutine, no stack and no buffer, only this struct, its socket and
//     its session.
//   - blocking (TLS, other systems, or a server that closes hijacked
//     connections when the handler returns): the handler goroutine loops
//     on Read for the connection's life.
//
// Both feed the same frame parser. Writes (batches, pings, the close frame
// and the pong answering a client's ping) are serialised by wmu; each has
// a deadline.
type conn struct {
	nc           net.Conn // the socket; closed by closeSocket
	sess         *core.Session
	log          *slog.Logger
	limit        int       // largest message accepted, inflated (core's MaxMessageSize)
	deflate      *deflater // permessage-deflate was negotiated; nil otherwise
	writeTimeout time.Duration
	closeGrace   time.Duration

	// detached mode only
	raw    syscall.RawConn
	poll   *poller
	gen    uint32       // registration generation, set by the poller
	wfd    atomic.Int32 // raw's fd + 1 once registered, 0 before: TryWriteMany writes to it under mu while !closed
	readFn func()       // c.readable, bound once so starting it does not allocate

	wmu       sync.Mutex
	wdeadline int64 // unix nanos of the write deadline currently set on nc
	closeSent bool
	werr      error    // the first write error: the stream may hold a partial frame, nothing more is written
	rest      []byte   // the unwritten end of a frame TryWriteMany began: written before anything else
	held      [][]byte // frames TryWriteMany could not begin (blocking mode), for FlushPending

	mu       sync.Mutex
	closed   bool        // the socket is closed
	peerDone bool        // the client closed: close frame, EOF or read error
	ending   bool        // Close was called: the session wrote its last frame
	timer    *time.Timer // CloseGrace: drops a client that never answers the close frame

	// Reader state, used by one reading goroutine at a time.
	pending []byte // the start of a frame that has not fully arrived
	frag    []byte // an unfinished fragmented message
	checked int    // bytes of frag found to be UTF-8 so far (a text message)
	skip    int64  // payload bytes still to discard (a refused frame)
	inMsg   bool   // a fragmented message is in progress
	text    bool   // ... and it is text: each fragment is checked for UTF-8 as it comes
	packed  bool   // ... and it is compressed: checked once inflated
	closing bool   // the reader ended the session: only the client's close frame matters now
	drain   bool   // the client closed or the stream cannot be parsed: discard all input
}

var (
	_ core.Transport = (*conn)(nil)
	_ core.Pinger    = (*conn)(nil)
	_ core.Aborter   = (*conn)(nil)
	_ core.TryWriter = (*conn)(nil)
)

// errCloseSent refuses writes after the close frame.
var errCloseSent = errors.New("websocket: close frame already sent")

// Buffers shared by all connections: a read takes one for the length of a
// read, a write for the length of a write.
const bufSize = 16 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(bp *[]byte, b []byte) {
	if cap(b) > 256<<10 {
		return // a rare large batch: let it go rather than pin it in the pool
	}
	*bp = b[:cap(b)]
	bufPool.Put(bp)
}

func (c *conn) Name() string         { return "websocket" }
func (c *conn) Unidirectional() bool { return false }

// WriteMany writes the envelopes as one text frame, '\n'-separated, in one
// write call; compressed when permessage-deflate was negotiated and one
// of them reaches the threshold (see deflate.go).
func (c *conn) WriteMany(frames [][]byte) error {
	if len(frames) == 0 {
		return nil
	}
	bp := getBuf()
	b, start := c.appendFrame((*bp)[:0], frames)
	err := c.write(b[start:])
	putBuf(bp, b)
	return err
}

// appendFrame appends the frame carrying frames to b (empty): one text
// frame, compressed or not, at b[start:]. The payload is built after room
// for the longest header, which then goes just before it.
func (c *conn) appendFrame(b []byte, frames [][]byte) (_ []byte, start int) {
	b = b[:maxServerHeader]
	op := byte(opText)
	if c.deflate != nil && c.deflate.worthIt(frames) {
		b = c.deflate.appendMessage(b, frames)
		op |= rsv1Bit
	} else {
		for i, f := range frames {
			if i > 0 {
				b = append(b, '\n')
			}
			b = append(b, f...)
		}
	}
	n := len(b) - maxServerHeader
	start = maxServerHeader - headerLen(n)
	appendHeader(b[start:start], op, n)
	return b, start
}

// TryWriteMany writes the frame for frames if the socket takes it at once
// (core.TryWriter): a non-blocking write on the detached socket. What
// the socket does not take waits in rest for FlushPending, and any other
// write first writes it. A connection read by a goroutine (TLS, other
// systems) holds the frames for FlushPending instead, as does one whose
// write lock is busy (the reader answering a ping).
//
// The write goes straight to the socket's fd under c.mu: closeSocket
// marks the connection closed under c.mu before closing the socket, so
// the fd cannot be closed (and its number reused) during the write.
// Holding c.mu costs less than the runtime's own fd reference (RawConn),
// and a non-blocking write holds it only for as long as the kernel takes.
func (c *conn) TryWriteMany(frames [][]byte) (bool, error) {
	wfd := c.wfd.Load()
	if wfd == 0 || !c.wmu.TryLock() {
		c.held = append(c.held[:0], frames...)
		return false, nil
	}
	defer c.wmu.Unlock()
	switch {
	case c.closeSent:
		return false, errCloseSent
	case c.werr != nil:
		return false, c.werr
	case len(c.rest) > 0: // FlushPending is due first: keep the order
		c.held = append(c.held[:0], frames...)
		return false, nil
	}
	bp := getBuf()
	buf, start := c.appendFrame((*bp)[:0], frames)
	b := buf[start:]
	n, err := 0, net.ErrClosed
	c.mu.Lock()
	if !c.closed {
		n, err = tryWrite(int(wfd-1), b)
	}
	c.mu.Unlock()
	if err == nil && n < len(b) {
		c.rest = append([]byte(nil), b[n:]...)
	}
	putBuf(bp, buf)
	if err != nil {
		c.werr = err
		go c.closeSocket() // not under wmu: the poller's removal takes c.mu
		return false, err
	}
	return len(c.rest) == 0, nil
}

// FlushPending writes what TryWriteMany left: the rest of a frame, or
// the frames it held.
func (c *conn) FlushPending() error {
	held := c.held
	c.held = nil
	if len(held) > 0 {
		err := c.WriteMany(held) // writes rest first, if any
		clear(held)
		return err
	}
	return c.write(nil)
}

// maxServerHeader is the longest header of a server frame (no mask key).
const maxServerHeader = 10

var pingFrame = []byte{0x80 | opPing, 0}

func (c *conn) Ping() error { return c.write(pingFrame) }

// Close sends the close frame for d (none for DisconnectGoingAway: the
// client is gone) and closes the socket once the client answers or
// CloseGrace passes: closing at once could reset the connection before
// the client reads the code.
func (c *conn) Close(d core.Disconnect) error {
	var err error
	sent := false
	if d.Code != core.DisconnectGoingAway.Code {
		sent, err = c.writeClose(d.Code, d.Reason)
	}
	c.mu.Lock()
	c.ending = true
	now := c.peerDone || !sent || err != nil
	if !now && !c.closed && c.timer == nil {
		c.timer = time.AfterFunc(c.closeGrace, c.closeSocket)
	}
	c.mu.Unlock()
	if now {
		c.closeSocket()
	}
	return err
}

// Abort closes the socket at once, failing a write blocked on a stalled
// client. Safe from any goroutine.
func (c *conn) Abort() { c.closeSocket() }

// write writes one whole frame under the write lock, refreshing the write
// deadline only when less than half of WriteTimeout is left: setting it
// costs a timer update, and a blocked write still fails within
// WriteTimeout (after at least half of it).
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	if c.closeSent {
		c.wmu.Unlock()
		return errCloseSent
	}
	err := c.writeLocked(b)
	c.wmu.Unlock()
	if err != nil {
		// A failed write may have left part of a frame on the wire:
		// nothing can follow it, so the connection ends here.
		c.closeSocket()
	}
	return err
}

// writeLocked writes b, unless an earlier write failed, after the rest
// of a frame TryWriteMany began. The first failure is kept: a timeout may
// have sent part of a frame.
func (c *conn) writeLocked(b []byte) error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.rest) > 0 {
		if err := c.writeDeadlined(c.rest); err != nil {
			c.werr = err
			return err
		}
		c.rest = nil
	}
	if len(b) == 0 {
		return nil
	}
	err := c.writeDeadlined(b)
	if err != nil {
		c.werr = err
	}
	return err
}

func (c *conn) writeDeadlined(b []byte) error {
	now := time.Now().UnixNano()
	if now+int64(c.writeTimeout/2) > c.wdeadline {
		d := now + int64(c.writeTimeout)
		if err := c.nc.SetWriteDeadline(time.Unix(0, d)); err != nil {
			return err
		}
		c.wdeadline = d
	}
	_, err := c.nc.Write(b)
	return err
}

// writeClose sends a close frame unless one was sent; code closeNoStatus
// sends an empty one.
func (c *conn) writeClose(code uint16, reason string) (sent bool, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return true, nil
	}
	c.closeSent = true
	var buf [maxHeader + maxControlPayload]byte
	var b []byte
	if code == closeNoStatus {
		b = appendHeader(buf[:0], opClose, 0)
	} else {
		b = appendClose(buf[:0], code, reason)
	}
	return true, c.writeLocked(b)
}

// pong answers a client's ping with its payload.
func (c *conn) pong(p []byte) {
	var buf [maxHeader + maxControlPayload]byte
	b := append(appendHeader(buf[:0], opPong, len(p)), p...)
	_ = c.write(b) // a failed write closes the socket: the reader then ends the session
}

// closeSocket closes the socket once, first taking it out of the poller.
func (c *conn) closeSocket() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.poll != nil {
		_ = c.raw.Control(func(fd uintptr) { c.poll.remove(c, int(fd)) })
	}
	c.mu.Unlock()
	_ = c.nc.Close()
}

// peerGone records that the client will send nothing more; the socket
// closes now if the session has finished writing, else when it does.
func (c *conn) peerGone() {
	c.mu.Lock()
	c.peerDone = true
	ending := c.ending
	c.mu.Unlock()
	if ending {
		c.closeSocket()
	}
}

// end ends the session for a reason found by the reader. Reading goes on
// only for the client's answering close frame, until CloseGrace.
func (c *conn) end(d core.Disconnect) {
	if c.closing {
		return
	}
	c.closing = true
	c.inMsg, c.frag = false, nil
	if c.sess != nil {
		c.sess.Close(d)
	} else {
		_ = c.Close(d)
	}
}

// eof handles the end of input: the client dropped the connection.
func (c *conn) eof() {
	c.drain = true
	c.peerGone()
	if c.sess != nil {
		c.sess.Close(core.DisconnectGoingAway) // no-op if the server ended it first
	}
}

// input parses the bytes read and keeps the start of an incomplete frame
// for the next read. data may be a pooled buffer: nothing retains it.
func (c *conn) input(data []byte) {
	if c.drain {
		c.pending = nil
		return
	}
	if len(c.pending) > 0 {
		c.pending = append(c.pending, data...)
		data = c.pending
	}
	rest := c.consume(data)
	switch {
	case c.drain || len(rest) == 0:
		c.pending = nil
	case len(c.pending) > 0 && cap(c.pending) <= 4*len(rest)+(4<<10):
		c.pending = append(c.pending[:0], rest...) // overlapping: copy moves it down
	case len(c.pending) > 0:
		c.pending = append(make([]byte, 0, 2*len(rest)), rest...) // let a large buffer go
	default:
		// Room for what arrived and as much again (at least 4 KiB), up to
		// the declared frame: a client that announces a large frame and
		// sends a byte costs little, one that sends it grows the buffer
		// as the bytes come.
		size := max(2*len(rest), 4<<10)
		if h, ok, _ := parseHeader(rest); ok && h.length <= int64(c.limit) {
			size = int(min(int64(size), int64(h.size)+h.length))
		}
		c.pending = append(make([]byte, 0, size), rest...)
	}
}

// consume handles every complete frame at the start of data and returns
// what is left.
func (c *conn) consume(data []byte) []byte {
	for !c.drain {
		if c.skip > 0 {
			n := min(c.skip, int64(len(data)))
			data, c.skip = data[n:], c.skip-n
			if c.skip > 0 {
				return nil
			}
		}
		h, ok, err := parseHeader(data)
		if !ok {
			if err != nil { // not even a length to skip
				c.end(protocolDisconnect(err))
				c.drain = true
				return nil
			}
			return data
		}
		if err == nil && h.rsv1 && c.deflate == nil {
			err = errProtocol("RSV1 set: permessage-deflate was not negotiated")
		}
		refuse := err != nil || (!h.control() && h.length > int64(c.limit-len(c.frag)))
		if refuse {
			// Skip the frame without buffering it, then keep reading
			// for the client's close frame.
			if err != nil {
				c.end(protocolDisconnect(err))
			} else {
				c.end(core.DisconnectMessageTooLarge)
			}
			data, c.skip = data[h.size:], h.length
			continue
		}
		if int64(len(data)-h.size) < h.length {
			return data
		}
		end := h.size + int(h.length)
		p := data[h.size:end]
		unmask(p, h.mask, 0)
		data = data[end:]
		c.frame(h, p)
	}
	return nil
}

// frame handles one complete, unmasked frame.
func (c *conn) frame(h header, p []byte) {
	switch h.op {
	case opPing:
		if c.sess != nil {
			c.sess.Activity()
		}
		c.pong(p)
	case opPong:
		if c.sess != nil {
			c.sess.Activity()
		}
	case opClose:
		code, err := parseClose(p)
		if err != nil {
			c.end(protocolDisconnect(err))
			c.drain = true
			c.peerGone() // the client has closed, if badly: nothing more will come
			return
		}
		c.drain = true
		_, _ = c.writeClose(code, "") // echo the code, unless the server closed first
		c.peerGone()
		if c.sess != nil {
			c.sess.Close(core.Disconnect{Code: code, Reason: "closed by client"})
		}
	case opText, opBinary:
		if c.closing {
			return
		}
		if c.inMsg {
			c.end(protocolDisconnect(errProtocol("new message inside a fragmented one")))
			return
		}
		if !h.fin {
			c.inMsg, c.text, c.packed, c.checked = true, h.op == opText, h.rsv1, 0
			c.frag = append(c.frag[:0], p...)
			if !c.fragUTF8(false) {
				c.end(protocolDisconnect(errTextUTF8))
			}
			return
		}
		c.message(h.op == opText, h.rsv1, p)
	case opContinuation:
		if c.closing {
			return
		}
		if !c.inMsg {
			c.end(protocolDisconnect(errProtocol("continuation frame outside a message")))
			return
		}
		c.frag = append(c.frag, p...)
		if !c.fragUTF8(h.fin) {
			c.end(protocolDisconnect(errTextUTF8))
			return
		}
		if h.fin {
			c.message(c.text, c.packed, c.frag)
			c.inMsg, c.frag = false, nil
		}
	}
}

// message hands a whole message to the session: inflated first when
// compressed (at most limit bytes: beyond, 4003), and checked for UTF-8
// when text, unless its fragments were already.
func (c *conn) message(text, packed bool, p []byte) {
	check := text
	if packed {
		bp := getBuf()
		defer func() { putBuf(bp, *bp) }()
		out, err := deflate.Inflate(*bp, p, c.limit)
		*bp = out
		switch {
		case errors.Is(err, deflate.ErrTooLarge):
			c.end(core.DisconnectMessageTooLarge)
			return
		case err != nil:
			c.end(protocolDisconnect(errBadDeflate))
			return
		}
		p = out
	} else if c.inMsg {
		check = false // fragUTF8 checked it
	}
	if check && !utf8.Valid(p) {
		c.end(protocolDisconnect(errTextUTF8))
		return
	}
	if c.sess != nil {
		c.sess.HandleFrame(p)
	}
}

// fragUTF8 checks the bytes of a fragmented text message that arrived
// since the last check (nothing for binary), failing as soon as they
// cannot be UTF-8 whatever follows. A sequence cut by the end of a
// fragment is checked again with the next; at the final fragment
// (final) none may be left unfinished.
func (c *conn) fragUTF8(final bool) bool {
	if !c.text || c.packed {
		return true // compressed: checked once inflated
	}
	rest := c.frag[c.checked:]
	if final {
		return utf8.Valid(rest)
	}
	n, ok := utf8Prefix(rest)
	c.checked += n
	return ok
}

// protocolDisconnect is the close for a protocol violation: 1002 naming
// the fault, or 1007 for a payload that is not UTF-8 (a text message or a
// close reason).
func protocolDisconnect(err error) core.Disconnect {
	var bad errInvalidData
	if errors.As(err, &bad) {
		d := core.DisconnectInvalidData
		d.Reason = string(bad)
		return d
	}
	d := core.DisconnectProtocolError
	d.Reason = err.Error()
	return d
}

// readLoop reads with a goroutine until the socket fails (blocking mode).
// r is the hijacked connection, which first returns any bytes the HTTP
// server had buffered past the upgrade request.
func (c *conn) readLoop(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.input(buf[:n])
		}
		if err != nil {
			c.eof()
			return
		}
		c.mu.Lock()
		done := c.peerDone
		c.mu.Unlock()
		if done {
			return
		}
	}
}

// detach hands the connection to the poller. Bytes the HTTP server read
// past the upgrade request (a client that did not wait for the 101) are
// taken first with buffered, while the handler still owns the server's
// buffer. It reports false if the connection must instead be read by the
// handler goroutine.
func (c *conn) detach(buffered func(fn func([]byte)) error, tc *net.TCPConn, p *poller) bool {
	if p == nil {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	if err := buffered(c.input); err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return true // ended during the handshake: nothing left to read
	}
	c.raw, c.poll, c.readFn = rc, p, c.readable
	var aerr error
	var wfd int32
	if err := rc.Control(func(fd uintptr) { wfd, aerr = int32(fd)+1, p.add(c, int(fd)) }); err != nil || aerr != nil {
		c.raw, c.poll, c.readFn = nil, nil, nil
		return false
	}
	c.wfd.Store(wfd)
	return true
}
