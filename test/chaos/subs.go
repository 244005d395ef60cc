package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// The subscribers are written to docs/protocol.md, not to the server's
// code: each keeps the id of the last message it received and, after
// every disconnect, resumes on the next edge with it (since= on
// WebSocket and SSE, cursor= on long-poll), with a short backoff.

// got is one message a subscriber received.
type got struct {
	ID   string
	Room string
	Seq  int64
	At   time.Time
}

// notice is a "you may have missed something" a subscriber was told:
// welcome recovered:false, a gap envelope, or a poll's recovered:false.
// After is how many messages it had received when told.
type notice struct {
	At    time.Time
	After int
	Kind  string
}

// subscriber is one client of the suite.
type subscriber struct {
	name      string
	transport string // websocket, sse, longpoll; browser-websocket, browser-sse, browser-longpoll
	user      string
	rooms     []string
	edges     []string // edge addresses, tried in turn

	// stall, when a channel arrives, stops reading until that channel
	// is closed (WebSocket and SSE): a stalled reader (slow: one that may
	// be stalled; it is in every room, so that the stall's burst, more
	// than the kernel's socket buffers hold, lands on its edge's send
	// queue).
	stall chan (<-chan struct{})
	slow  bool
	// leave, when a request arrives, ends the connection (or poll) at
	// once and keeps the subscriber away until the request's back is
	// closed; it then resumes on the request's edge (the retention
	// fault: a client away while the log is trimmed under it).
	leave chan leaveReq
	away  bool // the retention fault sends it away

	mu         sync.Mutex
	got        []got
	signals    []notice
	reconnects []time.Time // when a connection ended (or a poll failed)
	lastID     string
	errs       map[string]int // what ended a connection (or went wrong otherwise), counted
	ready      chan struct{}  // closed at the first welcome (or cursor, or a browser client's open)
	readyOnce  sync.Once
}

func newSubscriber(name, transport string, rooms, edges []string) *subscriber {
	return &subscriber{
		name: name, transport: transport, user: name, rooms: rooms, edges: edges,
		stall: make(chan (<-chan struct{}), 1), leave: make(chan leaveReq, 1), errs: map[string]int{}, ready: make(chan struct{}),
	}
}

// leaveReq asks a subscriber to go away: left is closed once it has,
// and it comes back on edges[edge] once back is closed.
type leaveReq struct {
	left chan struct{}
	back <-chan struct{}
	edge int
}

// envelope is the part of a server envelope the subscribers read.
type envelope struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Room string          `json:"room"`
	Data json.RawMessage `json:"data"`
}

// payload is what the suite's publishers put in data.
type payload struct {
	S int64 `json:"s"`
}

// handle records one envelope; it reports whether the subscriber is now
// welcomed.
func (s *subscriber) handle(raw []byte) error {
	var e envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("undecodable envelope %.200q: %w", raw, err)
	}
	now := time.Now()
	switch e.Type {
	case "welcome":
		var w struct {
			Recovered *bool `json:"recovered"`
		}
		_ = json.Unmarshal(e.Data, &w)
		if w.Recovered != nil && !*w.Recovered {
			s.signal("welcome")
		}
		s.markReady()
	case "gap":
		s.signal("gap")
	case "message":
		var p payload
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return fmt.Errorf("message data %.200q: %w", e.Data, err)
		}
		s.mu.Lock()
		s.got = append(s.got, got{ID: e.ID, Room: e.Room, Seq: p.S, At: now})
		if e.ID != "" {
			s.lastID = e.ID
		}
		s.mu.Unlock()
	}
	return nil
}

// run connects, reads until the connection ends, and resumes on the
// next edge, until ctx ends.
func (s *subscriber) run(ctx context.Context, start int) {
	backoff := 50 * time.Millisecond
	for i := start; ctx.Err() == nil; i++ {
		edge := s.edges[i%len(s.edges)]
		var welcomed bool
		var err error
		connCtx, cancel := context.WithCancel(ctx)
		leaving := make(chan leaveReq, 1)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case r := <-s.leave:
				leaving <- r
				cancel()
			case <-connCtx.Done():
			}
		}()
		switch s.transport {
		case "websocket":
			welcomed, err = s.runWS(connCtx, edge)
		case "sse":
			welcomed, err = s.runSSE(connCtx, edge)
		case "longpoll":
			welcomed, err = s.runPoll(connCtx, edge)
		}
		cancel()
		<-watched
		if ctx.Err() != nil {
			return
		}
		select {
		case r := <-leaving:
			close(r.left)
			select {
			case <-r.back:
			case <-ctx.Done():
				return
			}
			i = r.edge - 1 // the loop's i++ makes it r.edge
			continue
		default:
		}
		s.reconnected(err)
		if welcomed {
			backoff = 50 * time.Millisecond
		} else {
			backoff = min(2*backoff, time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// errKind shortens an error for counting: its first 60 bytes, without
// addresses.
func errKind(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "127.0.0.1:"); i >= 0 {
		j := i + len("127.0.0.1:")
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		s = s[:i] + "edge" + s[j:]
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func (s *subscriber) query(since string) string {
	q := url.Values{"user": {s.user}, "rooms": {strings.Join(s.rooms, ",")}}
	if since != "" {
		q.Set("since", since)
	}
	return q.Encode()
}

func (s *subscriber) since() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

// maybeStall blocks for a requested stall, until it is released.
func (s *subscriber) maybeStall(ctx context.Context) {
	select {
	case release := <-s.stall:
		select {
		case <-ctx.Done():
		case <-release:
		}
	default:
	}
}

var wsDialer = &websocket.Dialer{HandshakeTimeout: 5 * time.Second}

func (s *subscriber) runWS(ctx context.Context, edge string) (bool, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, resp, err := wsDialer.DialContext(dctx, "ws://"+edge+"/ws?"+s.query(s.since()), nil)
	cancel()
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// The server pings every --heartbeat-interval (25 s): a connection
	// silent for a minute, pings included, is dead.
	const silence = time.Minute
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(silence))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	welcomed := false
	for {
		s.maybeStall(ctx)
		_ = conn.SetReadDeadline(time.Now().Add(silence))
		_, msg, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return welcomed, fmt.Errorf("close %d", ce.Code)
			}
			return welcomed, fmt.Errorf("read: %w", err)
		}
		// Several envelopes may share a frame, one per line.
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if bytes.Contains(line, []byte(`"type":"welcome"`)) {
				welcomed = true
			}
			if err := s.handle(line); err != nil {
				return welcomed, err
			}
		}
	}
}

// sseClient has no overall timeout: a stream lasts.
var sseClient = &http.Client{Transport: &http.Transport{DisableCompression: true, ResponseHeaderTimeout: 10 * time.Second}}

func (s *subscriber) runSSE(ctx context.Context, edge string) (bool, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+edge+"/sse?"+s.query(""), nil)
	if id := s.since(); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	resp, err := sseClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return false, fmt.Errorf("HTTP %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	// A dead stream shows as silence longer than the heartbeat.
	watchdog := time.AfterFunc(time.Minute, cancel)
	defer watchdog.Stop()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	welcomed := false
	var event string
	var data []byte
	for {
		s.maybeStall(ctx)
		line, err := br.ReadSlice('\n')
		if err != nil {
			return welcomed, fmt.Errorf("read: %w", err)
		}
		watchdog.Reset(time.Minute)
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0: // end of an event
			if event == "close" {
				var c struct {
					Code int `json:"code"`
				}
				_ = json.Unmarshal(data, &c)
				return welcomed, fmt.Errorf("close %d", c.Code)
			}
			if len(data) > 0 {
				if bytes.Contains(data, []byte(`"type":"welcome"`)) {
					welcomed = true
				}
				if err := s.handle(data); err != nil {
					return welcomed, err
				}
			}
			event, data = "", data[:0]
		case bytes.HasPrefix(line, []byte("data:")):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		case bytes.HasPrefix(line, []byte("event:")):
			event = string(bytes.TrimSpace(line[len("event:"):]))
		}
	}
}

// pollClient bounds a poll: wait plus a margin.
var pollClient = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// pollAnswer is GET /poll's JSON answer.
type pollAnswer struct {
	Messages  []json.RawMessage `json:"messages"`
	Cursor    string            `json:"cursor"`
	Recovered bool              `json:"recovered"`
}

// runPoll polls one edge until it fails: a poll client has no
// connection to lose, so "resuming on another edge" is the next poll
// there with the same cursor.
func (s *subscriber) runPoll(ctx context.Context, edge string) (bool, error) {
	answered := false
	for ctx.Err() == nil {
		q := url.Values{"user": {s.user}, "rooms": {strings.Join(s.rooms, ",")}, "wait": {"5s"}}
		cursor := s.since()
		fresh := !answered && cursor == "" && !s.isReady()
		if fresh {
			q.Set("wait", "0")
		} else {
			q.Set("cursor", cursor)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+edge+"/poll?"+q.Encode(), nil)
		resp, err := pollClient.Do(req)
		if err != nil {
			return answered, fmt.Errorf("poll: %w", err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return answered, fmt.Errorf("poll read: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return answered, fmt.Errorf("poll HTTP %d %.100s", resp.StatusCode, bytes.TrimSpace(b))
		}
		var a pollAnswer
		if err := json.Unmarshal(b, &a); err != nil {
			return answered, fmt.Errorf("poll answer %.200q: %w", b, err)
		}
		answered = true
		if !a.Recovered && !fresh {
			s.signal("poll")
		}
		for _, m := range a.Messages {
			if err := s.handle(m); err != nil {
				return answered, err
			}
		}
		// The cursor is the only state: the answer's, always.
		s.mu.Lock()
		s.lastID = a.Cursor
		s.mu.Unlock()
		s.markReady()
	}
	return answered, nil
}

// signal records a notice of kind, after what has been received so far.
func (s *subscriber) signal(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signals = append(s.signals, notice{At: time.Now(), After: len(s.got), Kind: kind})
}

// reconnected records that a connection ended (or an attempt failed),
// and what ended it when err is not nil.
func (s *subscriber) reconnected(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reconnects = append(s.reconnects, time.Now())
	if err != nil {
		s.errs[errKind(err)]++
	}
}

// failed counts an error that ended no connection (a browser
// subscriber's page or client reporting trouble).
func (s *subscriber) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[errKind(err)]++
}

// markReady closes ready, once.
func (s *subscriber) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// errSummary lists the errors counted so far, for a message.
func (s *subscriber) errSummary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) == 0 {
		return "no error recorded"
	}
	var parts []string
	for k, v := range s.errs {
		parts = append(parts, fmt.Sprintf("%dx %s", v, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func (s *subscriber) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// snapshot copies what the subscriber has recorded.
func (s *subscriber) snapshot() (gots []got, sigs []notice, reconnects []time.Time, errs map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs = make(map[string]int, len(s.errs))
	for k, v := range s.errs {
		errs[k] = v
	}
	return append([]got(nil), s.got...), append([]notice(nil), s.signals...), append([]time.Time(nil), s.reconnects...), errs
}

// gotFrom copies what the subscriber received from receipt i on.
func (s *subscriber) gotFrom(i int) []got {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.got) {
		return nil
	}
	return append([]got(nil), s.got[i:]...)
}
