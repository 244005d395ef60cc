package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// padding makes a message about 400 bytes on the wire, so that a
// stalled reader's backlog outgrows the kernel's socket buffers.
var padding = strings.Repeat("x", 300)

// apiKey is the edges' --api-keys in the suite.
const apiKey = "chaos-suite-api-key-0123456789"

// publisher publishes messages 0..n-1 through POST /api/v1/publish, each
// with its own idempotency key, paced at rate per second, as a careful
// backend does: after a failure, a timeout or a refused connection it
// retries the same key on the next edge until the answer is 200.
// Message i goes to room i mod len(rooms) with data {"s":i}. Every
// tenth is also hedged: sent through two edges at once.
type publisher struct {
	run        string // makes keys unique per run
	rooms      []string
	burstRooms []string // the burst's rooms, in turn
	edges      []string
	n          int64
	rate       float64

	next       atomic.Int64
	accepted   atomic.Int64
	retries    atomic.Int64
	mu         sync.Mutex
	acceptAt   []time.Time // by message, zero until accepted
	failures   map[string]int
	lastAccept time.Time
}

var pubClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

func newPublisher(run string, rooms, burst, edges []string, n int64, rate float64) *publisher {
	return &publisher{run: run, rooms: rooms, burstRooms: burst, edges: edges, n: n, rate: rate, acceptAt: make([]time.Time, n+burstSize), failures: map[string]int{}}
}

// body is message i's request body: the paced messages go round the
// rooms; the burst's (i ≥ n) are large and go round the burst's rooms.
func (p *publisher) body(i int64) []byte {
	room, pad := p.room(i), padding
	if i >= p.n {
		pad = burstPadding
	}
	return fmt.Appendf(nil, `{"room":%q,"data":{"s":%d,"pad":%q},"idempotency_key":"%s-%d"}`, room, i, pad, p.run, i)
}

// room is the room of message i.
func (p *publisher) room(i int64) string {
	if i >= p.n {
		return p.burstRooms[(i-p.n)%int64(len(p.burstRooms))]
	}
	return p.rooms[i%int64(len(p.rooms))]
}

// burstPadding makes a burst message about 8 KB: a burst of burstSize
// is more than the kernel's socket buffers hold for a stalled reader.
var burstPadding = strings.Repeat("y", 8000)

// burstSize is how many messages the stall fault's burst publishes.
const burstSize = 1500

// burst publishes messages n..n+burstSize-1 (after the paced ones'
// numbers) as fast as workers can; it returns when all are accepted or
// ctx ends.
func (p *publisher) burst(ctx context.Context, workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := p.n + next.Add(1) - 1
				if i >= p.n+burstSize || !p.publishOne(ctx, i) {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// post sends one attempt; 0 means no answer.
func post(ctx context.Context, edge string, body []byte) (int, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+edge+"/api/v1/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := pubClient.Do(req)
	if err != nil {
		return 0, errKind(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp.StatusCode, string(bytes.TrimSpace(b))
}

// publishAll runs workers until every message is accepted or ctx ends.
func (p *publisher) publishAll(ctx context.Context, workers int) error {
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := p.next.Add(1) - 1
				if i >= p.n {
					return
				}
				// Paced: message i is due at start + i/rate.
				if d := time.Until(start.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
				if !p.publishOne(ctx, i) {
					return
				}
			}
		}()
	}
	wg.Wait()
	if a := p.accepted.Load(); a < p.n {
		return fmt.Errorf("%d of %d messages accepted before the deadline", a, p.n)
	}
	return nil
}

// publishOne retries message i until it is accepted; false if ctx ended.
func (p *publisher) publishOne(ctx context.Context, i int64) bool {
	body := p.body(i)
	if i%10 == 0 {
		// Hedged: the same key through another edge at the same time,
		// so that two appends race; its answer does not matter.
		go post(ctx, p.edges[(i+1)%int64(len(p.edges))], body)
	}
	pause := 20 * time.Millisecond
	for attempt := int64(0); ; attempt++ {
		status, msg := post(ctx, p.edges[(i+attempt)%int64(len(p.edges))], body)
		if status == http.StatusOK {
			now := time.Now()
			p.mu.Lock()
			p.acceptAt[i] = now
			if now.After(p.lastAccept) {
				p.lastAccept = now
			}
			p.mu.Unlock()
			p.accepted.Add(1)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		p.retries.Add(1)
		p.mu.Lock()
		p.failures[fmt.Sprintf("%d %.60s", status, msg)]++
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}
