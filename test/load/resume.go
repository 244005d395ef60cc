package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

// The resume scenario, against a Switchboard edge:
//
//  1. S subscribers connect (rooms round-robin) and receive one anchor
//     message per room; the anchor's id is the last id each one saw.
//  2. They all disconnect, and the tool waits (at most 5 s) until /stats
//     counts them gone.
//  3. M messages are published through POST /send, all acknowledged, so
//     they are in the rooms' history.
//  4. All S reconnect at once (--dial-concurrency dials in flight) with
//     since=<the anchor's id>; with --live-rate, live messages are
//     published to the same rooms for --duration from that moment, racing
//     the replay.
//  5. The tool waits (at most --drain after the last publish) until every
//     subscriber has every message of its room after the anchor.
//
// Every payload carries its room's sequence number ("lq", the anchor is
// 0), so each subscriber counts what it got: a sequence number never seen
// is lost, one seen twice is a duplicate. Replay throughput is the
// replayed messages (the M published while away, times their rooms'
// subscribers) delivered per second, from the first dial of the storm to
// the last of them arriving.

// resumeResult is the resume scenario's JSON line.
type resumeResult struct {
	Scenario    string `json:"scenario"`
	ServerName  string `json:"server_name"`
	Run         int    `json:"run"`
	Transport   string `json:"transport"`
	Subscribers int    `json:"subscribers"`
	Rooms       int    `json:"rooms"`
	Messages    int    `json:"messages"` // published while away
	// LivePublished were published during the storm (--live-rate).
	LivePublished int64 `json:"live_published"`
	// Stale is how many of the first connections the server still
	// counted when the messages were published (SSE: until a heartbeat).
	Stale int `json:"stale_sessions"`
	// Expected is, over all subscribers, every message of their room
	// after the anchor; Delivered the distinct ones that arrived.
	Expected     int64   `json:"expected"`
	Delivered    int64   `json:"delivered"`
	Lost         int64   `json:"lost"`
	LossPct      float64 `json:"loss_pct"`
	Duplicates   int64   `json:"duplicates"`
	Recovered    int     `json:"recovered"`     // welcomes with recovered:true
	NotRecovered int     `json:"not_recovered"` // recovered:false or absent
	// ReconnectSeconds: from the storm's first dial until every welcome.
	ReconnectSeconds float64 `json:"reconnect_seconds"`
	// FirstReplayMS and ReplaySeconds: from the storm's first dial until
	// the first and the last replayed message arrived.
	FirstReplayMS float64 `json:"first_replay_ms"`
	ReplaySeconds float64 `json:"replay_seconds"`
	Replayed      int64   `json:"replayed"` // replayed messages delivered
	ReplayedPerS  float64 `json:"replayed_per_s"`
	Disconnects   int64   `json:"disconnects"`
	Disconnect    string  `json:"disconnect,omitempty"`
	Server        *usage  `json:"server,omitempty"` // over the storm and replay; nil without a pid
	Generator     usage   `json:"generator"`
}

func (r resumeResult) figures() map[string]float64 {
	return map[string]float64{
		"replayed_per_s": r.ReplayedPerS, "replay_seconds": r.ReplaySeconds, "reconnect_seconds": r.ReconnectSeconds,
		"first_replay_ms": r.FirstReplayMS, "loss_pct": r.LossPct, "lost": float64(r.Lost),
		"duplicates": float64(r.Duplicates), "not_recovered": float64(r.NotRecovered),
	}
}

// resumeServerFlags give a started edge enough history for the run: every
// message of a room after the anchor must still be there, and one
// subscriber may be replayed all of them.
func resumeServerFlags(o options) []string {
	perRoom := (o.messages+o.rooms-1)/o.rooms + int(o.liveRate*o.duration.Seconds())/o.rooms + 64
	n := strconv.Itoa(max(1000, perRoom))
	return []string{"--history-size", n, "--history-limit", n}
}

// resumeSub is what one subscriber saw, across both connections.
type resumeSub struct {
	mu        sync.Mutex
	lastID    string
	seen      []uint8 // by sequence number: times received (saturating)
	recovered bool
}

// resumeState counts the scenario's deliveries. frame is the fleets'
// sink, called concurrently by the readers (shard is the subscriber).
type resumeState struct {
	subs          []resumeSub
	anchors       atomic.Int64 // distinct anchors received
	unique        atomic.Int64 // distinct messages after the anchor
	dups          atomic.Int64
	replayed      atomic.Int64 // distinct messages published while away (step 1)
	firstReplayNS atomic.Int64
	lastReplayNS  atomic.Int64
	other         atomic.Int64
}

// Steps of the resume payloads (their "ls").
const (
	resumeAnchor  = 0
	resumeOffline = 1
	resumeLive    = 2
)

func (s *resumeState) frame(shard int, frame []byte, nowNS int64) {
	for line := range lines(frame) {
		id, step, seq, ok := parseResumeLine(line)
		if !ok {
			s.other.Add(1)
			continue
		}
		sub := &s.subs[shard]
		sub.mu.Lock()
		for len(sub.seen) <= seq {
			sub.seen = append(sub.seen, 0)
		}
		n := sub.seen[seq]
		if n < 255 {
			sub.seen[seq] = n + 1
		}
		if string(id) != sub.lastID {
			sub.lastID = string(id)
		}
		sub.mu.Unlock()
		switch {
		case n > 0:
			s.dups.Add(1)
		case step == resumeAnchor:
			s.anchors.Add(1)
		default:
			s.unique.Add(1)
			if step == resumeOffline {
				s.replayed.Add(1)
				s.firstReplayNS.CompareAndSwap(0, nowNS)
				for {
					l := s.lastReplayNS.Load()
					if nowNS <= l || s.lastReplayNS.CompareAndSwap(l, nowNS) {
						break
					}
				}
			}
		}
	}
}

func (s *resumeState) welcome(shard int, msg []byte) {
	if i := indexNL(msg); i >= 0 {
		msg = msg[:i]
	}
	s.subs[shard].mu.Lock()
	s.subs[shard].recovered = bytes.Contains(msg, []byte(`"recovered":true`))
	s.subs[shard].mu.Unlock()
}

var (
	markID  = []byte(`"id":"`)
	markSeq = []byte(`,"lq":`)
)

// parseResumeLine returns the envelope id, step and sequence number of a
// resume message line; ok is false for any other line.
func parseResumeLine(line []byte) (id []byte, step, seq int, ok bool) {
	_, step, ok = parseLine(line)
	if !ok {
		return nil, 0, 0, false
	}
	i := bytes.Index(line, markSeq)
	if i < 0 {
		return nil, 0, 0, false
	}
	q, n := parseUint(line[i+len(markSeq):])
	if n == 0 {
		return nil, 0, 0, false
	}
	j := bytes.Index(line, markID)
	if j < 0 {
		return nil, 0, 0, false
	}
	rest := line[j+len(markID):]
	k := bytes.IndexByte(rest, '"')
	if k <= 0 {
		return nil, 0, 0, false
	}
	return rest[:k], step, int(q), true
}

// appendResumePayload is appendPayload with the room's sequence number.
func appendResumePayload(b []byte, sentNS int64, step int, seq int64, size int) []byte {
	start := len(b)
	b = append(b, `{"lt":`...)
	b = appendInt(b, sentNS)
	b = append(b, `,"ls":`...)
	b = appendInt(b, int64(step))
	b = append(b, `,"lq":`...)
	b = appendInt(b, seq)
	b = append(b, `,"p":"`...)
	for pad := size - (len(b) - start) - 2; pad > 0; pad-- {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// resumePublisher posts numbered messages through POST /send, round-robin
// over the rooms, and waits for each batch's acks. Not for concurrent use.
type resumePublisher struct {
	client  *http.Client
	base    string
	rooms   []string
	next    []int64 // next sequence number per room
	rr      int     // next room
	payload int
}

func newResumePublisher(t target, rooms []string, payload int) *resumePublisher {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	tr := &http.Transport{DialContext: d.DialContext, DisableCompression: true, MaxIdleConnsPerHost: 2}
	return &resumePublisher{
		client:  &http.Client{Transport: tr, Timeout: 30 * time.Second},
		base:    fmt.Sprintf("http://%s/send?user=load-publisher&rooms=", t.host),
		rooms:   rooms,
		next:    make([]int64, len(rooms)),
		payload: payload,
	}
}

// publish sends n messages of step and returns an error unless every one
// was acknowledged.
func (p *resumePublisher) publish(ctx context.Context, step, n int) error {
	body := make([]byte, 0, maxBatch*(p.payload+128))
	for n > 0 {
		k := min(n, maxBatch)
		body = body[:0]
		var rooms []string
		for j := range k {
			r := p.rr
			p.rr = (p.rr + 1) % len(p.rooms)
			if j > 0 {
				body = append(body, '\n')
			}
			if j < len(p.rooms) {
				rooms = append(rooms, url.QueryEscape(p.rooms[r]))
			}
			body = append(body, `{"v":1,"type":"publish","room":"`...)
			body = append(body, p.rooms[r]...)
			body = append(body, `","data":`...)
			body = appendResumePayload(body, time.Now().UnixNano(), step, p.next[r], p.payload)
			body = append(body, '}')
			p.next[r]++
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+strings.Join(rooms, ","), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := p.client.Do(req)
		if err != nil {
			return fmt.Errorf("POST /send: %w", err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("POST /send: %w", err)
		}
		if acks, _, msg := switchboardReplies(b, int64(k)); acks != int64(k) {
			return fmt.Errorf("POST /send: %d of %d acknowledged (HTTP %s): %.300s", acks, k, resp.Status, msg+string(b))
		}
		n -= k
	}
	return nil
}

// live publishes rate msg/s for d (bounded by ctx) and returns how many.
func (p *resumePublisher) live(ctx context.Context, rate float64, d time.Duration) (int64, error) {
	start := time.Now()
	var sent int64
	for {
		el := time.Since(start)
		if el >= d || ctx.Err() != nil {
			return sent, ctx.Err()
		}
		if want := int64(rate * el.Seconds()); want > sent {
			if err := p.publish(ctx, resumeLive, int(want-sent)); err != nil {
				return sent, err
			}
			sent = want
			continue
		}
		edgeproc.Sleep(ctx, 5*time.Millisecond)
	}
}

func (p *resumePublisher) close() { p.client.CloseIdleConnections() }

func runResume(ctx context.Context, o options, t *edgeTarget, out *output, run int) (map[string]float64, error) {
	if err := edgeproc.RaiseNoFile(uint64(o.subs) + 512); err != nil {
		return nil, err
	}
	base := t.httpBase()
	prefix := runPrefix(o, t, run)
	sub := t.server().subscribe[o.transport]
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	rooms := make([]string, o.rooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("load-r%s-%d", runID, i)
	}
	state := &resumeState{subs: make([]resumeSub, o.subs)}
	req := func(i int) subReq {
		r := subReq{rooms: rooms[i%len(rooms)], user: fmt.Sprintf("load-r%s-%d", runID, i), src: sourceIP(i, o.sourceIPs), shard: i}
		state.subs[i].mu.Lock()
		r.since = state.subs[i].lastID
		state.subs[i].mu.Unlock()
		return r
	}
	stats0, err := edgeproc.GetStats(ctx, base)
	if err != nil {
		return nil, err
	}
	pub := newResumePublisher(t.target, rooms, o.payload)
	defer pub.close()

	// 1. Connect, and see the anchors.
	f1 := &fleet{rec: &recorder{}, sink: state.frame}
	defer f1.closeAll()
	bar := out.progress(fmt.Sprintf("%sresume: connecting %d %s subscribers", prefix, o.subs, o.transport), int64(o.subs))
	err = openFleetWith(ctx, f1, sub, t.target, o.subs, o.dialConcurrency, req, bar.add1)
	bar.done()
	if err != nil {
		return nil, err
	}
	if err := pub.publish(ctx, resumeAnchor, len(rooms)); err != nil {
		return nil, fmt.Errorf("anchor: %w", err)
	}
	if err := waitCount(ctx, &state.anchors, int64(o.subs), 10*time.Second); err != nil {
		return nil, fmt.Errorf("anchors: %d of %d subscribers got theirs: %w", state.anchors.Load(), o.subs, err)
	}
	// 2. Disconnect, and give the server a moment to see it. A WebSocket
	// close is seen at once; a gone SSE client only when a write to it
	// fails (its next heartbeat), so the wait is bounded and the sessions
	// the server still counts are reported.
	f1.closeAll()
	stale := 0
	for deadline := time.Now().Add(5 * time.Second); ; {
		st, err := edgeproc.GetStats(ctx, base)
		if err != nil {
			return nil, err
		}
		stale = st.Connections - stats0.Connections
		if stale <= 0 || !time.Now().Before(deadline) {
			break
		}
		edgeproc.Sleep(ctx, 20*time.Millisecond)
	}
	// 3. Publish while they are away.
	out.note(fmt.Sprintf("%sresume: %d subscribers away; publishing %d messages", prefix, o.subs, o.messages))
	if err := pub.publish(ctx, resumeOffline, o.messages); err != nil {
		return nil, fmt.Errorf("publish while away: %w", err)
	}

	// 4. Reconnect storm, with live traffic if asked.
	self0, srv0, err := readProcs(t.pid)
	if err != nil {
		return nil, err
	}
	f2 := &fleet{rec: &recorder{}, sink: state.frame, welcome: state.welcome}
	defer f2.closeAll()
	type liveDone struct {
		n   int64
		err error
	}
	liveCh := make(chan liveDone, 1)
	start := time.Now()
	if o.liveRate > 0 {
		go func() {
			n, err := pub.live(ctx, o.liveRate, o.duration)
			liveCh <- liveDone{n, err}
		}()
	} else {
		liveCh <- liveDone{}
	}
	bar = out.progress(fmt.Sprintf("%sresume: reconnecting %d subscribers with since=", prefix, o.subs), int64(o.subs))
	err = openFleetWith(ctx, f2, sub, t.target, o.subs, o.dialConcurrency, req, bar.add1)
	bar.done()
	reconnected := time.Since(start)
	live := <-liveCh // bounded by --duration
	if err != nil {
		return nil, err
	}
	if live.err != nil {
		return nil, fmt.Errorf("live publishing: %w", live.err)
	}

	// 5. Wait for every message after the anchor.
	var expected int64
	for i := range o.subs {
		expected += pub.next[i%len(rooms)] - 1
	}
	_ = waitCount(ctx, &state.unique, expected, o.drain)
	end := time.Now()
	wall := end.Sub(start).Seconds()
	self1, err := edgeproc.ReadProc(0)
	if err != nil {
		return nil, err
	}
	lost, why := f2.lost()
	res := resumeResult{
		Scenario: "resume", ServerName: t.server().name, Run: run, Transport: o.transport,
		Subscribers: o.subs, Rooms: o.rooms, Messages: o.messages, LivePublished: live.n, Stale: max(0, stale),
		Expected: expected, Delivered: state.unique.Load(), Duplicates: state.dups.Load(),
		ReconnectSeconds: reconnected.Seconds(), Replayed: state.replayed.Load(),
		Disconnects: lost, Disconnect: why,
		Generator: usage{CPUCores: (self1.CPU - self0.CPU).Seconds() / wall, RSSBytes: self1.RSS, Threads: self1.Threads},
	}
	res.Lost = max(0, res.Expected-res.Delivered)
	if res.Expected > 0 {
		res.LossPct = float64(res.Lost) / float64(res.Expected) * 100
	}
	for i := range state.subs {
		if state.subs[i].recovered {
			res.Recovered++
		}
	}
	res.NotRecovered = o.subs - res.Recovered
	if first := state.firstReplayNS.Load(); first > 0 {
		res.FirstReplayMS = float64(first-start.UnixNano()) / 1e6
		last := state.lastReplayNS.Load()
		res.ReplaySeconds = float64(last-start.UnixNano()) / 1e9
		if res.ReplaySeconds > 0 {
			res.ReplayedPerS = float64(res.Replayed) / res.ReplaySeconds
		}
	}
	if t.pid > 0 {
		srv1, err := edgeproc.ReadProc(t.pid)
		if err != nil {
			return nil, err
		}
		res.Server = &usage{CPUCores: (srv1.CPU - srv0.CPU).Seconds() / wall, RSSBytes: srv1.RSS, Threads: srv1.Threads}
	}
	out.result(res)
	return res.figures(), nil
}

// waitCount polls c until it reaches want, ctx ends or d passes.
func waitCount(ctx context.Context, c *atomic.Int64, want int64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for c.Load() < want {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%d of %d after %s", c.Load(), want, d)
		}
		edgeproc.Sleep(ctx, 5*time.Millisecond)
	}
	return nil
}
