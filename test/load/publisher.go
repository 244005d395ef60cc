package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// maxBatch is the most envelopes the publisher puts in one frame when it
// is behind its schedule (the server batches up to 64 the other way).
const maxBatch = 64

// maxBatchBytes keeps a batch under the edge's default largest inbound
// frame or body (--max-message-size, 64 KiB), which refuses the whole
// batch beyond it (too_large): batches of large payloads are shorter.
const maxBatchBytes = 60 << 10

// batchOf is how many envelopes of spec's payloads go in one batch.
func batchOf(spec payloadSpec) int64 {
	return int64(max(1, min(maxBatch, maxBatchBytes/(spec.maxSize()+160))))
}

// publisher sends the load messages of one run: rate messages per second
// for a step, round-robin over the rooms, each payload stamped with its send
// time and step. Acks and errors are counted as they come back.
type publisher interface {
	// run publishes rate msg/s for d, tagged with step, and returns what
	// it sent. progress, if not nil, is called every 200 ms or so.
	run(ctx context.Context, step int, rate float64, d time.Duration, progress func(elapsed time.Duration, sent int64)) (pubCounts, error)
	// replies returns the acks and errors received so far.
	replies() (acks, errs int64)
	// firstError is the first error envelope (or HTTP failure), or "".
	firstError() string
	close()
}

var publishers = map[string]func(ctx context.Context, t target, rooms []string, payload payloadSpec, workers int) (publisher, error){
	"http": newHTTPPublisher,
	"ws":   newWSPublisher,
}

// wsPublisher is the old way (--publisher ws): one WebSocket connection
// that has joined every load room and publishes to them round-robin. It is
// a member of its rooms, so it receives its own copies, and above about
// 1,000 msg/s they overflow its send queue (4008). A reader goroutine
// counts the acks and errors and drops those copies.
type wsPublisher struct {
	conn    *websocket.Conn
	rooms   []string
	payload *payloadGen
	maxSize int
	batch   int64 // batchOf

	acks, errs atomic.Int64
	firstErr   atomic.Pointer[string]
	done       chan struct{} // closed when the reader ends
	readErr    error         // valid after done
	closing    atomic.Bool
	closeOnce  sync.Once
}

func newWSPublisher(ctx context.Context, t target, rooms []string, payload payloadSpec, _ int) (publisher, error) {
	r := subReq{rooms: strings.Join(rooms, ","), user: "load-publisher", src: net.IPv4(127, 0, 0, 1)}
	conn, _, _, err := dialWS(ctx, wsDialer(r.src), t, r)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	p := &wsPublisher{conn: conn, rooms: rooms, payload: newPayloadGen(payload, uint64(time.Now().UnixNano())), maxSize: payload.maxSize(), batch: batchOf(payload), done: make(chan struct{})}
	go p.read()
	return p, nil
}

func (p *wsPublisher) read() {
	defer close(p.done)
	buf := make([]byte, 0, 4096)
	for {
		_, r, err := p.conn.NextReader()
		if err == nil {
			buf, err = readAll(r, buf[:0])
		}
		if err != nil {
			if !p.closing.Load() {
				p.readErr = err
			}
			return
		}
		for frame := buf; len(frame) > 0; {
			line := frame
			if i := indexNL(frame); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			switch {
			case bytes.Contains(line, []byte(`"type":"ack"`)):
				p.acks.Add(1)
			case bytes.Contains(line, []byte(`"type":"error"`)):
				p.errs.Add(1)
				s := string(line)
				p.firstErr.CompareAndSwap(nil, &s)
			}
		}
	}
}

// pubCounts is what one publishing step sent.
type pubCounts struct {
	sent    int64
	perRoom []int64
	series  []int64 // messages sent per second
}

// run publishes rate messages per second for d, tagged with step, and
// returns what it sent. It paces by catching up with rate×elapsed every
// millisecond, batching when behind.
func (p *wsPublisher) run(ctx context.Context, step int, rate float64, d time.Duration, progress func(elapsed time.Duration, sent int64)) (pubCounts, error) {
	c := pubCounts{perRoom: make([]int64, len(p.rooms)), series: make([]int64, int(d/time.Second)+1)}
	frame := make([]byte, 0, p.batch*int64(p.maxSize+160))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	lastReport := start
	for {
		now := time.Now()
		el := now.Sub(start)
		if el >= d {
			return c, nil
		}
		want := int64(rate * el.Seconds())
		for c.sent < want {
			frame = frame[:0]
			n := min(want-c.sent, p.batch)
			for k := range n {
				room := int((c.sent + k) % int64(len(p.rooms)))
				if k > 0 {
					frame = append(frame, '\n')
				}
				frame = append(frame, `{"v":1,"type":"publish","room":"`...)
				frame = append(frame, p.rooms[room]...)
				frame = append(frame, `","data":`...)
				frame = p.payload.append(frame, time.Now().UnixNano(), step)
				frame = append(frame, '}')
				c.perRoom[room]++
			}
			_ = p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := p.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				return c, fmt.Errorf("publish: %w", err)
			}
			c.sent += n
			c.series[min(int(el/time.Second), len(c.series)-1)] += n
		}
		if progress != nil && now.Sub(lastReport) >= 200*time.Millisecond {
			progress(el, c.sent)
			lastReport = now
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-p.done:
			return c, fmt.Errorf("publisher connection ended: %v", p.readErr)
		case <-tick.C:
		}
	}
}

func (p *wsPublisher) replies() (int64, int64) { return p.acks.Load(), p.errs.Load() }

func (p *wsPublisher) firstError() string {
	if s := p.firstErr.Load(); s != nil {
		return *s
	}
	return ""
}

func (p *wsPublisher) close() {
	p.closeOnce.Do(func() {
		p.closing.Store(true)
		_ = p.conn.Close()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	})
}
