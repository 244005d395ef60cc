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
// that feeds the recorder and records an unexpected end.
type fleet struct {
	rec     *recorder
	mu      sync.Mutex
	closers []io.Closer
	closing atomic.Bool
	ended   atomic.Int64
	first   atomic.Pointer[error]
	readers sync.WaitGroup
}

func (f *fleet) add(c io.Closer) {
	f.mu.Lock()
	f.closers = append(f.closers, c)
	f.mu.Unlock()
}

func (f *fleet) end(err error) {
	if f.closing.Load() {
		return
	}
	f.ended.Add(1)
	f.first.CompareAndSwap(nil, &err)
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

// target is the edge under load.
type target struct {
	host string // host:port, always on 127/8
}

func (t target) httpBase() string { return "http://" + t.host }

// subscribe opens one subscriber of the given transport with rooms and
// user, from source address src, and starts its reader. It returns once
// the subscription is live (welcome read, or the stream answered).
type subscribeFunc func(ctx context.Context, f *fleet, t target, rooms, user string, src net.IP, shard int) error

var transports = map[string]subscribeFunc{
	"websocket": subscribeWS,
	"sse":       subscribeSSE,
	"longpoll":  subscribePoll,
}

func wsDialer(src net.IP) *websocket.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	return &websocket.Dialer{
		NetDialContext:   d.DialContext,
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferSize:  1024,
	}
}

func dialWS(ctx context.Context, t target, rooms, user string, src net.IP) (*websocket.Conn, error) {
	u := fmt.Sprintf("ws://%s/ws?rooms=%s&user=%s", t.host, url.QueryEscape(rooms), url.QueryEscape(user))
	conn, resp, err := wsDialer(src).DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%s: %w (HTTP %s)", u, err, resp.Status)
		}
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: read welcome: %w", u, err)
	}
	if !bytes.Contains(msg, []byte(`"type":"welcome"`)) {
		conn.Close()
		return nil, fmt.Errorf("%s: first envelope is not a welcome: %.200s", u, msg)
	}
	if bytes.Contains(msg, []byte(`"type":"error"`)) {
		conn.Close()
		return nil, fmt.Errorf("%s: the server refused a room: %.300s", u, msg)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

func subscribeWS(ctx context.Context, f *fleet, t target, rooms, user string, src net.IP, shard int) error {
	conn, err := dialWS(ctx, t, rooms, user, src)
	if err != nil {
		return err
	}
	f.add(conn)
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		buf := make([]byte, 0, 4096)
		for {
			_, r, err := conn.NextReader() // answers pings while reading
			if err == nil {
				buf, err = readAll(r, buf[:0])
			}
			if err != nil {
				f.end(err)
				return
			}
			f.rec.frame(shard, buf, time.Now().UnixNano())
		}
	}()
	return nil
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
func subscribeSSE(ctx context.Context, f *fleet, t target, rooms, user string, src net.IP, shard int) error {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	tr := &http.Transport{DialContext: d.DialContext, DisableCompression: true, ResponseHeaderTimeout: 10 * time.Second}
	u := fmt.Sprintf("http://%s/sse?rooms=%s&user=%s", t.host, url.QueryEscape(rooms), url.QueryEscape(user))
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
					f.end(err)
					return
				}
				continue // a line longer than the buffer is not a load message
			}
			if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				f.rec.frame(shard, bytes.TrimRight(data, "\r\n"), time.Now().UnixNano())
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
				err := sub(ctx, f, t, rooms[i%len(rooms)], fmt.Sprintf("%s%d", user, i), sourceIP(i, sources), i)
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
