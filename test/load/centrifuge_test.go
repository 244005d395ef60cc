package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

func TestParseCentrifugeLine(t *testing.T) {
	pub := `{"push":{"channel":"load-x-0","pub":{"data":` + string(appendPayload(nil, 1795344139268123456, 3, 128)) + `}}}`
	for _, c := range []struct {
		line string
		kind cfKind
		id   int64
	}{
		{`{}`, cfPing, 0},
		{" {}\r", cfPing, 0},
		{pub, cfPub, 0},
		{`{"push":{"channel":"a","join":{"info":{"user":"u","client":"c"}}}}`, cfOther, 0},
		{`{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}`, cfDisconnect, 0},
		{`{"id":1,"connect":{"client":"c1","version":"","subs":{"a":{}},"ping":25,"pong":true}}`, cfReply, 1},
		{`{"id":27,"error":{"code":100,"message":"internal server error"}}`, cfReply, 27},
		{`{"id":"x"}`, cfOther, 0},
		{``, cfOther, 0},
		{`{"v":1,"type":"welcome"}`, cfOther, 0},
	} {
		kind, id := parseCentrifugeLine([]byte(c.line))
		if kind != c.kind || id != c.id {
			t.Errorf("parseCentrifugeLine(%s) = %d, %d; want %d, %d", c.line, kind, id, c.kind, c.id)
		}
	}

	// A publication's data is embedded raw, so the recorder finds the
	// payload; several pushes in one frame, newline-separated.
	rec := &recorder{steps: make([]atomicStep, 4)}
	st := newStepStats(2)
	rec.steps[3].Store(st)
	f := &fleet{rec: rec}
	c := &centrifugeConn{}
	frame := []byte(pub + "\n" + pub + "\n" + pub)
	if err := c.lines(f, 0, frame, 1795344139268123456+int64(2*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if st.delivered.Load() != 3 {
		t.Fatalf("delivered %d of 3 pushes", st.delivered.Load())
	}
	if q := st.snapshot().quantile(0.5); q != 2*time.Millisecond {
		t.Errorf("latency %v, want 2ms", q)
	}
	if err := c.lines(f, 0, []byte(`{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}`), 0); err == nil {
		t.Error("a disconnect push did not end the reader")
	}
}

func TestCentrifugeConnect(t *testing.T) {
	cmd := appendCentrifugeConnect(nil, []string{"a", `b"c`}, nil)
	var v struct {
		ID      int                           `json:"id"`
		Connect struct{ Subs map[string]any } `json:"connect"`
	}
	if err := json.Unmarshal(cmd, &v); err != nil || v.ID != 1 || len(v.Connect.Subs) != 2 || v.Connect.Subs[`b"c`] == nil {
		t.Fatalf("connect command %s: %+v, %v", cmd, v, err)
	}
	ok := `{"id":1,"connect":{"client":"c1","subs":{"a":{},"b":{"recoverable":false}},"ping":25,"pong":true}}`
	if err := checkCentrifugeConnect([]byte(ok), []string{"a", "b"}); err != nil {
		t.Error(err)
	}
	for line, want := range map[string]string{
		ok: `subscription to "z"`,
		`{"id":1,"error":{"code":101,"message":"unauthorized"}}`: "connect refused: 101 unauthorized",
		`{"id":1}`:    "without a connect result",
		`{"id":1,"co`: "connect reply",
	} {
		err := checkCentrifugeConnect([]byte(line), []string{"a", "z"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkCentrifugeConnect(%s) = %v, want %q", line, err, want)
		}
	}
}

func TestPeerReplies(t *testing.T) {
	for _, c := range []struct {
		resp       string
		sent       int64
		acks, errs int64
		msg        bool
	}{
		{`{"published":5}`, 5, 5, 0, false},
		{`{"published":2,"error":"line 3: want {…}"}`, 5, 2, 3, true},
		{`<html>bad gateway</html>`, 4, 0, 4, true},
		{`{"published":0}`, 0, 0, 0, false},
	} {
		acks, errs, msg := peerReplies([]byte(c.resp), c.sent)
		if acks != c.acks || errs != c.errs || (msg != "") != c.msg {
			t.Errorf("peerReplies(%s, %d) = %d, %d, %q", c.resp, c.sent, acks, errs, msg)
		}
	}
}

// fakeCentrifuge speaks just enough of Centrifuge's JSON protocol to test
// the tool's subscriber and peer publisher without the centrifuge module
// (which only the nested peer module depends on): connect with
// server-side subs, pushes packed several per frame, a ping after the
// connect reply (in the same frame) that must be answered.
//
// A client that offers permessage-deflate gets it, for every frame (as
// Centrifuge with --compression does for frames over 256 bytes). A
// client that asks for cf_ws_frame_ping_pong=true gets WebSocket ping
// frames instead of {}: one after the connect reply and one after each
// publication's frame, so that they come between compressed frames.
type fakeCentrifuge struct {
	mu      sync.Mutex
	subs    map[string][]*fakeClient
	clients []*fakeClient
	conns   atomic.Int64
	pongs   atomic.Int64
}

type fakeClient struct {
	conn      *websocket.Conn
	mu        sync.Mutex
	framePing bool         // WebSocket ping frames instead of {}
	pongs     atomic.Int64 // WebSocket pong frames, with framePing
}

// ping sends a WebSocket ping frame.
func (fc *fakeClient) ping() {
	_ = fc.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second))
}

func (fc *fakeClient) write(b []byte) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	_ = fc.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = fc.conn.WriteMessage(websocket.TextMessage, b)
}

func (s *fakeCentrifuge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		_, _ = io.WriteString(w, "ok")
	case "/stats":
		fmt.Fprintf(w, `{"connections":%d,"goroutines":1,"heap_bytes":1,"sys_bytes":1}`, s.conns.Load())
	case "/publish":
		body, _ := io.ReadAll(r.Body)
		s.publish(w, body)
	case "/connection/websocket":
		s.serveWS(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *fakeCentrifuge) publish(w http.ResponseWriter, body []byte) {
	frames := map[*fakeClient][]byte{} // one frame per client for the whole body
	n := 0
	s.mu.Lock()
	for _, line := range bytes.Split(body, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var p struct {
			Room string          `json:"room"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(line, &p); err != nil {
			s.mu.Unlock()
			fmt.Fprintf(w, `{"published":%d,"error":%q}`, n, err.Error())
			return
		}
		push := fmt.Sprintf(`{"push":{"channel":%q,"pub":{"data":%s}}}`, p.Room, p.Data)
		for _, c := range s.subs[p.Room] {
			if len(frames[c]) > 0 {
				frames[c] = append(frames[c], '\n')
			}
			frames[c] = append(frames[c], push...)
		}
		n++
	}
	s.mu.Unlock()
	for c, f := range frames {
		c.write(f)
		if c.framePing {
			c.ping()
		}
	}
	fmt.Fprintf(w, `{"published":%d}`, n)
}

func (s *fakeCentrifuge) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := (&websocket.Upgrader{EnableCompression: true}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	var cmd struct {
		ID      int `json:"id"`
		Connect struct {
			Subs map[string]json.RawMessage `json:"subs"`
		} `json:"connect"`
	}
	_, msg, err := conn.ReadMessage()
	if err != nil || json.Unmarshal(msg, &cmd) != nil || cmd.ID != 1 {
		return
	}
	c := &fakeClient{conn: conn, framePing: r.URL.Query().Get("cf_ws_frame_ping_pong") == "true"}
	if c.framePing {
		conn.SetPongHandler(func(string) error { c.pongs.Add(1); return nil })
	}
	subs := map[string]struct{}{}
	s.mu.Lock()
	s.clients = append(s.clients, c)
	for ch := range cmd.Connect.Subs {
		s.subs[ch] = append(s.subs[ch], c)
		subs[ch] = struct{}{}
	}
	s.mu.Unlock()
	// Centrifuge writes a reply's id first (json.Marshal would sort it
	// after "connect").
	subsJSON, _ := json.Marshal(subs)
	if c.framePing {
		c.write([]byte(`{"id":1,"connect":{"client":"c","subs":` + string(subsJSON) + `}}`))
		c.ping()
	} else {
		c.write([]byte(`{"id":1,"connect":{"client":"c","subs":` + string(subsJSON) + `,"ping":25,"pong":true}}` + "\n{}"))
	}
	s.conns.Add(1)
	defer s.conns.Add(-1)
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for ch := range subs {
			list := s.subs[ch]
			for i, x := range list {
				if x == c {
					s.subs[ch] = append(list[:i:i], list[i+1:]...)
					break
				}
			}
		}
	}()
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if string(msg) == "{}" {
			s.pongs.Add(1)
		}
	}
}

// startFakeCentrifuge serves a fakeCentrifuge on a free loopback port
// until the test ends.
func startFakeCentrifuge(t *testing.T) (*fakeCentrifuge, net.Listener) {
	t.Helper()
	fake := &fakeCentrifuge{subs: map[string][]*fakeClient{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close() // hijacked connections are closed by the tool
		<-served
	})
	return fake, ln
}

// TestCentrifugePeerSmoke runs fanout with --peer centrifuge against the
// fake server: every push is delivered and every ping answered.
func TestCentrifugePeerSmoke(t *testing.T) {
	fake, ln := startFakeCentrifuge(t)
	dec, md := runTool(t, "fanout", "--url", "http://"+ln.Addr().String(), "--peer", "centrifuge",
		"--subs", "12", "--rooms", "2", "--rate", "60", "--duration", "1s", "--drain", "5s", "--source-ips", "2")
	var res fanoutResult
	if err := dec.Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res.ServerName != "centrifuge" || res.Published == 0 || res.LossPct != 0 || res.Delivered != res.Published*6 ||
		res.Acked != res.Published || res.PublishErrors != 0 || res.Disconnects != 0 {
		t.Errorf("published %d, acked %d, errors %d (%s), delivered %d, loss %v%%, disconnects %d (%s)",
			res.Published, res.Acked, res.PublishErrors, res.PublishError, res.Delivered, res.LossPct, res.Disconnects, res.Disconnect)
	}
	// Each subscriber answered the ping that came with its connect reply,
	// long before the run ended; allow the fake's readers to catch up.
	for deadline := time.Now().Add(5 * time.Second); fake.pongs.Load() < 12 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := fake.pongs.Load(); n != 12 {
		t.Errorf("%d pongs, want one per subscriber", n)
	}
	if !strings.Contains(md, "| fanout | centrifuge | 1 | 1 | websocket | http | 12 | 2 |") {
		t.Errorf("Markdown:\n%s", md)
	}
}

// TestCentrifugeSampledSmoke runs fanout with --peer centrifuge, the
// deflate offer and an inflation sample of 4 of 12 subscribers against
// the fake server, which compresses every frame: the sample receives
// every push, the others drop as many compressed frames as the sample
// reads and read as many bytes, and every subscriber, in the sample or
// not, asked for WebSocket ping frames and answered those that came
// between the compressed frames.
func TestCentrifugeSampledSmoke(t *testing.T) {
	fake, ln := startFakeCentrifuge(t)
	dec, md := runTool(t, "fanout", "--url", "http://"+ln.Addr().String(), "--peer", "centrifuge", "--compress", "--payload", "market",
		"--inflate-sample", "4", "--subs", "12", "--rooms", "2", "--rate", "60", "--duration", "1s", "--drain", "5s", "--source-ips", "2")
	var res fanoutResult
	if err := dec.Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res.Published == 0 || res.Delivered != res.Published*2 || res.LossPct != 0 || res.Disconnects != 0 || res.DeflatedSubs != 12 {
		t.Errorf("published %d, delivered %d (want 2 per message: the sample's members per room), loss %v%%, disconnects %d (%s), deflated %d",
			res.Published, res.Delivered, res.LossPct, res.Disconnects, res.Disconnect, res.DeflatedSubs)
	}
	s := res.Sample
	if !res.Extrapolated || s == nil {
		t.Fatalf("extrapolated %v, sample %+v", res.Extrapolated, s)
	}
	t.Logf("sample %+v", *s)
	if s.Subscribers != 4 || s.Others != 8 || s.Scale != 3 || res.DeliveredPerS != s.DeliveredPerS*3 {
		t.Errorf("sample %+v, delivered/s %v", s, res.DeliveredPerS)
	}
	if s.FramesPerSub <= 0 || math.Abs(s.OthersDroppedPerSub-s.FramesPerSub) > 0.5 || s.OthersPassedPerSub != 0 {
		t.Errorf("frames per sampled subscriber %.2f, dropped per other %.2f, passed %.2f", s.FramesPerSub, s.OthersDroppedPerSub, s.OthersPassedPerSub)
	}
	if s.OthersWireRatio < 0.95 || s.OthersWireRatio > 1.05 || s.OthersWireRatioMin < 0.9 {
		t.Errorf("others' bytes over the sample's: %.3f (least %.3f)", s.OthersWireRatio, s.OthersWireRatioMin)
	}
	fake.mu.Lock()
	clients := slices.Clone(fake.clients)
	fake.mu.Unlock()
	if len(clients) != 12 {
		t.Fatalf("%d clients, want 12", len(clients))
	}
	// Each client was sent a ping after its connect reply and after
	// each of the run's frames; wait for at least two answers from each.
	for _, c := range clients {
		if !c.framePing {
			t.Fatal("a subscriber of a sampled fleet did not ask for WebSocket ping frames")
		}
		for deadline := time.Now().Add(5 * time.Second); c.pongs.Load() < 2 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if n := c.pongs.Load(); n < 2 {
			t.Errorf("a subscriber answered %d pings, want at least 2", n)
		}
	}
	if !strings.Contains(md, "| 4/12 (×3.00) |") {
		t.Errorf("no sample in the Markdown:\n%s", md)
	}
}
