package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// httpPublisher publishes through the stateless POST /send (the default,
// --publisher http; a peer's POST /publish): it is not a member of any
// room, so nothing comes back to it but the acks. A pacer hands batches (a first sequence number
// and a count) to a few workers, each a keep-alive HTTP connection; a
// worker stamps the payloads when it builds the body, so the measured
// latency starts when the request is written. A batch is several
// envelopes separated by '\n' in one body, answered by an array of acks.
type httpPublisher struct {
	client  *http.Client
	base    string // http://host/send?user=load-publisher&rooms=
	kind    *serverKind
	rooms   []string
	payload payloadSpec

	batches chan pubBatch
	wg      sync.WaitGroup

	acks, errs atomic.Int64
	firstErr   atomic.Pointer[string]
	closeOnce  sync.Once
}

// pubBatch is n messages starting at sequence number seq (message k goes
// to room k mod len(rooms)), for step.
type pubBatch struct {
	seq  int64
	n    int64
	step int
}

func newHTTPPublisher(ctx context.Context, t target, rooms []string, payload payloadSpec, workers int) (publisher, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	tr := &http.Transport{
		DialContext: d.DialContext, DisableCompression: true,
		MaxIdleConns: workers, MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers,
		IdleConnTimeout: time.Minute, ResponseHeaderTimeout: 10 * time.Second,
	}
	kind := t.server()
	p := &httpPublisher{
		client:  &http.Client{Transport: tr, Timeout: 30 * time.Second},
		base:    fmt.Sprintf("http://%s%s?user=load-publisher&rooms=", t.host, kind.publishPath),
		kind:    kind,
		rooms:   rooms,
		payload: payload,
		batches: make(chan pubBatch),
	}
	// One probe (a ping for Switchboard) checks that the endpoint answers
	// before the run starts.
	resp, err := p.post(ctx, kind.probe, url.QueryEscape(rooms[0]))
	if err != nil {
		return nil, fmt.Errorf("publisher: POST %s: %w", kind.publishPath, err)
	}
	if !kind.probeOK(resp) {
		return nil, fmt.Errorf("publisher: POST %s probe answered %.300s", kind.publishPath, resp)
	}
	seed := uint64(time.Now().UnixNano())
	for i := range workers {
		p.wg.Add(1)
		go p.work(newPayloadGen(payload, seed+uint64(i)))
	}
	return p, nil
}

// post sends body and returns the reply; an HTTP status other than 200
// with no envelope in the reply is an error.
func (p *httpPublisher) post(ctx context.Context, body []byte, rooms string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+rooms, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && !bytes.Contains(b, []byte(`"type":"`)) {
		return nil, fmt.Errorf("HTTP %s: %.300s", resp.Status, b)
	}
	return b, nil
}

// work posts the batches it is handed, its payloads made by gen.
func (p *httpPublisher) work(gen *payloadGen) {
	defer p.wg.Done()
	body := make([]byte, 0, batchOf(p.payload)*int64(p.payload.maxSize()+160))
	var rooms strings.Builder
	for b := range p.batches {
		body = body[:0]
		rooms.Reset()
		nr := int64(len(p.rooms))
		for k := range b.n {
			room := p.rooms[(b.seq+k)%nr]
			if k > 0 {
				body = append(body, '\n')
			}
			if k < nr { // the batch's distinct rooms: the first min(n, rooms)
				if k > 0 {
					rooms.WriteByte(',')
				}
				rooms.WriteString(url.QueryEscape(room))
			}
			body = append(body, `{"v":1,"type":"publish","room":"`...)
			body = append(body, room...)
			body = append(body, `","data":`...)
			body = gen.append(body, time.Now().UnixNano(), b.step)
			body = append(body, '}')
		}
		// Not the run's context: a batch handed over is answered, so that
		// the drain can count its acks.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := p.post(ctx, body, rooms.String())
		cancel()
		if err != nil {
			p.errs.Add(b.n)
			s := err.Error()
			p.firstErr.CompareAndSwap(nil, &s)
			continue
		}
		acks, errs, msg := p.kind.replies(resp, b.n)
		p.acks.Add(acks)
		p.errs.Add(errs)
		if msg != "" {
			p.firstErr.CompareAndSwap(nil, &msg)
		}
	}
}

// run paces like the WebSocket publisher: every millisecond it catches up
// with rate×elapsed, handing out batches of at most batchOf to the next
// free worker. If every worker is busy the pacer waits, and the next batch
// is larger; a rate the workers cannot meet shows as published/s below the
// target.
func (p *httpPublisher) run(ctx context.Context, step int, rate float64, d time.Duration, progress func(elapsed time.Duration, sent int64)) (pubCounts, error) {
	c := pubCounts{perRoom: make([]int64, len(p.rooms)), series: make([]int64, int(d/time.Second)+1)}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	lastReport := start
	nr := int64(len(p.rooms))
	for {
		now := time.Now()
		el := now.Sub(start)
		if el >= d {
			return c, nil
		}
		if progress != nil && now.Sub(lastReport) >= 200*time.Millisecond {
			progress(el, c.sent)
			lastReport = now
		}
		if want := int64(rate * el.Seconds()); c.sent < want {
			n := min(want-c.sent, batchOf(p.payload))
			select {
			case p.batches <- pubBatch{seq: c.sent, n: n, step: step}:
			case <-ctx.Done():
				return c, ctx.Err()
			}
			for k := range n {
				c.perRoom[(c.sent+k)%nr]++
			}
			c.sent += n
			c.series[min(int(el/time.Second), len(c.series)-1)] += n
			continue
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-tick.C:
		}
	}
}

func (p *httpPublisher) replies() (int64, int64) { return p.acks.Load(), p.errs.Load() }

func (p *httpPublisher) firstError() string {
	if s := p.firstErr.Load(); s != nil {
		return *s
	}
	return ""
}

// close waits (bounded by the workers' request timeout) for the batches
// in flight and closes the idle connections.
func (p *httpPublisher) close() {
	p.closeOnce.Do(func() {
		close(p.batches)
		p.wg.Wait()
		p.client.CloseIdleConnections()
	})
}
