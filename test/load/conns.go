package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// sourceIP returns the i-th local address connections are spread over:
// 127.0.0.2 … 127.0.0.(1+n). Linux routes all of 127/8 to loopback, and
// distinct source addresses keep one client address from running out of
// ephemeral ports or hitting a per-IP connection cap.
func sourceIP(i, n int) net.IP {
	return net.IPv4(127, 0, 0, byte(2+i%n))
}

// fleet is a set of subscriber connections. Each has a reader goroutine
// that feeds the recorder (or sink) and records an unexpected end.
type fleet struct {
	rec *recorder
	// sink, if set, receives every frame (WebSocket) or data line (SSE)
	// instead of rec. Called from the readers, concurrently.
	sink func(shard int, frame []byte, nowNS int64)
	// welcome, if set, receives each subscriber's welcome (or connect
	// reply) before its reader starts.
	welcome func(shard int, msg []byte)
	// graceful makes closeAll end each connection the polite way (a
	// WebSocket close frame) rather than by closing the socket.
	graceful bool
	// onEnd, if set, is told which subscriber's connection ended on its
	// own (not by closeAll), from its reader goroutine.
	onEnd func(shard int, err error)
	// offerDeflate makes WebSocket subscribers offer permessage-deflate
	// (--compress); deflated counts those whose server accepted it.
	offerDeflate bool
	deflated     atomic.Int64
	// rx counts the bytes the subscribers read from their sockets.
	rx shardedCounter
	// sample, if set, is the inflation sample (pickSample): with
	// offerDeflate, a subscriber outside it reads through a frameFilter
	// that drops compressed messages unread (registered in filters) and
	// records nothing. nil: every subscriber reads in full.
	sample []bool
	// frames counts the messages the subscribers that read in full read
	// after their welcome.
	frames shardedCounter

	mu      sync.Mutex
	closers []io.Closer
	filters []*frameFilter // of the subscribers outside the sample
	closing atomic.Bool
	ended   atomic.Int64
	first   atomic.Pointer[error]
	readers sync.WaitGroup
}

// frame hands a received frame to the sink or the recorder.
func (f *fleet) frame(shard int, b []byte, nowNS int64) {
	if f.sink != nil {
		f.sink(shard, b, nowNS)
		return
	}
	f.rec.frame(shard, b, nowNS)
}

func (f *fleet) welcomed(shard int, msg []byte) {
	if f.welcome != nil {
		f.welcome(shard, msg)
	}
}

// inSample reports whether subscriber shard reads and records in full.
func (f *fleet) inSample(shard int) bool {
	return f.sample == nil || !f.offerDeflate || f.sample[shard]
}

// skim is the reader of a subscriber outside the sample: it reads what
// its frameFilter lets through (uncompressed messages; the library answers
// pings and sees the close), records nothing, and hands each message to
// handle if set, until the connection ends. filter is armed first: from
// the next message on, compressed ones are dropped.
func (f *fleet) skim(conn *websocket.Conn, filter *frameFilter, shard int, handle func([]byte) error) {
	filter.arm()
	f.mu.Lock()
	f.filters = append(f.filters, filter)
	f.mu.Unlock()
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		buf := make([]byte, 0, 512)
		for {
			_, rd, err := conn.NextReader() // answers pings while reading
			if err == nil {
				buf, err = readAll(rd, buf[:0])
			}
			if err == nil && handle != nil {
				err = handle(buf)
			}
			if err != nil {
				f.end(shard, err)
				return
			}
		}
	}()
}

// gracefulCloser is a connection that can say goodbye before closing.
type gracefulCloser interface {
	closeGracefully() error
}

func (f *fleet) add(c io.Closer) {
	f.mu.Lock()
	f.closers = append(f.closers, c)
	f.mu.Unlock()
}

func (f *fleet) end(shard int, err error) {
	if f.closing.Load() {
		return
	}
	f.ended.Add(1)
	f.first.CompareAndSwap(nil, &err)
	if f.onEnd != nil {
		f.onEnd(shard, err)
	}
}

// lost reports how many connections ended on their own, and the first
// reason.
func (f *fleet) lost() (int64, string) {
	if p := f.first.Load(); p != nil {
		return f.ended.Load(), (*p).Error()
	}
	return f.ended.Load(), ""
}

// closeAll closes every connection and waits (bounded) for the readers.
func (f *fleet) closeAll() {
	f.closing.Store(true)
	f.mu.Lock()
	for _, c := range f.closers {
		if g, ok := c.(gracefulCloser); ok && f.graceful {
			_ = g.closeGracefully()
			continue
		}
		_ = c.Close()
	}
	f.closers = nil
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// target is the server under load.
type target struct {
	host string      // host:port, always on 127/8
	kind *serverKind // switchboard, or a peer; nil means switchboard
}

func (t target) server() *serverKind {
	if t.kind == nil {
		return switchboard
	}
	return t.kind
}

func (t target) httpBase() string { return "http://" + t.host }

// subReq is one subscriber to open.
type subReq struct {
	rooms string // comma-separated
	user  string
	since string // resume from this message id; "" for live only
	// cfRecover: the centrifuge peer recovers these channels from these
	// positions (its resume); nil for live only.
	cfRecover map[string]cfPosition
	src       net.IP // source address
	shard     int    // the subscriber's index, for the recorder's shards and sinks
}

// query is the switchboard query string of r.
func (r subReq) query() string {
	q := "rooms=" + url.QueryEscape(r.rooms) + "&user=" + url.QueryEscape(r.user)
	if r.since != "" {
		q += "&since=" + url.QueryEscape(r.since)
	}
	return q
}

// subscribeFunc opens one subscriber and starts its reader. It returns
// once the subscription is live (welcome read, or the stream answered).
type subscribeFunc func(ctx context.Context, f *fleet, t target, r subReq) error

var transportNames = []string{"websocket", "sse", "longpoll"}

func wsDialer(src net.IP) *websocket.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	return &websocket.Dialer{
		NetDialContext:   d.DialContext,
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferSize:  1024,
	}
}

// wsDialer is the dialer of subscriber r: its reads are counted in f.rx,
// and it offers permessage-deflate if f.offerDeflate. For a subscriber
// outside the sample it also returns the frameFilter its reads go
// through (to be armed by skim once the subscription is live); nil for
// one that reads in full.
func (f *fleet) wsDialer(r subReq) (*websocket.Dialer, *frameFilter) {
	d := wsDialer(r.src)
	d.NetDialContext = countingDial(d.NetDialContext, &f.rx, r.shard)
	d.EnableCompression = f.offerDeflate
	var filter *frameFilter
	if !f.inSample(r.shard) {
		filter = &frameFilter{}
		d.NetDialContext = filteringDial(d.NetDialContext, filter)
	}
	return d, filter
}

// dialDeflated notes whether the server accepted permessage-deflate in
// its handshake answer.
func (f *fleet) dialDeflated(resp *http.Response) {
	if resp != nil && strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		f.deflated.Add(1)
	}
}

// countedDial is the dial of subscriber r's HTTP transport (SSE, long
// poll): its reads are counted in f.rx.
func (f *fleet) countedDial(r subReq) dialFunc {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: r.src}}
	return countingDial(d.DialContext, &f.rx, r.shard)
}

// dialWS opens a switchboard (or fiber peer) WebSocket with d and returns
// it with the handshake answer and its first frame, which holds the
// welcome (and, on a resume, possibly the first replayed messages after
// it).
func dialWS(ctx context.Context, d *websocket.Dialer, t target, r subReq) (*websocket.Conn, *http.Response, []byte, error) {
	u := fmt.Sprintf("ws://%s/ws?%s", t.host, r.query())
	conn, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w (HTTP %s)", u, err, resp.Status)
		}
		return nil, nil, nil, fmt.Errorf("%s: %w", u, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("%s: read welcome: %w", u, err)
	}
	if !bytes.Contains(msg, []byte(`"type":"welcome"`)) {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("%s: first envelope is not a welcome: %.200s", u, msg)
	}
	if bytes.Contains(msg, []byte(`"type":"error"`)) {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("%s: the server refused a room: %.300s", u, msg)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, resp, msg, nil
}

func subscribeWS(ctx context.Context, f *fleet, t target, r subReq) error {
	d, filter := f.wsDialer(r)
	conn, resp, first, err := dialWS(ctx, d, t, r)
	if err != nil {
		return err
	}
	f.dialDeflated(resp)
	f.welcomed(r.shard, first)
	f.add(wsCloser{conn})
	if filter != nil {
		f.skim(conn, filter, r.shard, nil)
		return nil
	}
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		// The welcome frame may carry replayed messages after the welcome.
		f.frame(r.shard, first, time.Now().UnixNano())
		buf := make([]byte, 0, 4096)
		for {
			_, rd, err := conn.NextReader() // answers pings while reading
			if err == nil {
				buf, err = readAll(rd, buf[:0])
			}
			if err != nil {
				f.end(r.shard, err)
				return
			}
			f.frames.add(r.shard, 1)
			f.frame(r.shard, buf, time.Now().UnixNano())
		}
	}()
	return nil
}

// wsCloser closes a WebSocket: abruptly (Close) or with a close frame
// first (closeGracefully).
type wsCloser struct{ conn *websocket.Conn }

func (c wsCloser) Close() error { return c.conn.Close() }

func (c wsCloser) closeGracefully() error {
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.conn.Close()
}

// readAll reads r to EOF into buf, reusing its capacity.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// subscribeSSE opens GET /sse and reads "data:" lines. Each connection has
// its own http.Transport so that it dials from its own source address.
func subscribeSSE(ctx context.Context, f *fleet, t target, r subReq) error {
	tr := &http.Transport{DialContext: f.countedDial(r), DisableCompression: true, ResponseHeaderTimeout: 10 * time.Second}
	u := fmt.Sprintf("http://%s/sse?%s", t.host, r.query())
	// The stream outlives ctx (the dial phase): it ends at closeAll.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, u, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		return fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return fmt.Errorf("%s: HTTP %s", u, resp.Status)
	}
	br := bufio.NewReaderSize(resp.Body, 16<<10)
	// The welcome is the first event: wait for it so the rooms are joined.
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			resp.Body.Close()
			cancel()
			return fmt.Errorf("%s: read welcome: %w", u, err)
		}
		if bytes.Contains(line, []byte(`"type":"welcome"`)) {
			f.welcomed(r.shard, line)
			break
		}
	}
	f.add(closerFunc(func() error { cancel(); return resp.Body.Close() }))
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		defer tr.CloseIdleConnections()
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				if !errors.Is(err, bufio.ErrBufferFull) {
					f.end(r.shard, err)
					return
				}
				continue // a line longer than the buffer is not a load message
			}
			if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				f.frame(r.shard, bytes.TrimRight(data, "\r\n"), time.Now().UnixNano())
			}
		}
	}()
	return nil
}

type closerFunc func() error

func (c closerFunc) Close() error { return c() }

// openFleet opens n subscribers with concurrency dials in flight;
// subscriber i joins rooms[i%len(rooms)]. It stops at the first error.
func openFleet(ctx context.Context, f *fleet, sub subscribeFunc, t target, n, concurrency, sources int, rooms []string, user string, onOpen func()) error {
	return openFleetWith(ctx, f, sub, t, n, concurrency, func(i int) subReq {
		return subReq{rooms: rooms[i%len(rooms)], user: fmt.Sprintf("%s%d", user, i), src: sourceIP(i, sources), shard: i}
	}, onOpen)
}

// openFleetWith opens n subscribers described by req(i), with concurrency
// dials in flight. It stops at the first error.
func openFleetWith(ctx context.Context, f *fleet, sub subscribeFunc, t target, n, concurrency int, req func(i int) subReq, onOpen func()) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := sub(ctx, f, t, req(i))
				if err != nil {
					cancel(err)
					return
				}
				if onOpen != nil {
					onOpen()
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("open subscriber: %w", err)
	}
	return nil
}
