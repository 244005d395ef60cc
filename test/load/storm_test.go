package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestClusterOptions(t *testing.T) {
	bin := os.Args[0] // any existing file
	parse := func(args ...string) (options, error) {
		o := defaultOptions()
		var stderr bytes.Buffer
		o.stdout, o.stderr = &stderr, &stderr
		err := parseArgs(&o, args)
		return o, err
	}
	o, err := parse("storm", "--server-bin", bin, "--peer", "switchboard,centrifuge", "--peer-bin", "centrifuge="+bin)
	if err != nil {
		t.Fatal(err)
	}
	if o.subs != 2000 || o.rooms != 500 || o.rate != 1300 || o.pubRooms != 5000 || o.dialConcurrency != 256 ||
		o.publishWorkers != 64 || o.warmup != 10*time.Second || o.catchup != 30*time.Second || o.broker != "redis" {
		t.Errorf("storm defaults: %+v", o)
	}
	o, err = parse("storm", "--server-bin", bin, "--subs", "400", "--rooms", "100", "--rate", "300", "--pub-rooms", "1000", "--dial-concurrency", "32")
	if err != nil {
		t.Fatal(err)
	}
	if o.subs != 400 || o.rooms != 100 || o.rate != 300 || o.pubRooms != 1000 || o.dialConcurrency != 32 || o.publishWorkers != 64 {
		t.Errorf("explicit flags lost: %+v", o)
	}
	o, err = parse("pubcluster", "--server-bin", bin, "--publishers", "16", "--broker", "nats")
	if err != nil {
		t.Fatal(err)
	}
	if o.rooms != 1000 || o.warmup != 2*time.Second || o.publishers != 16 || o.subs != 1000 || o.broker != "nats" {
		t.Errorf("pubcluster defaults: %+v", o)
	}
	if o, _ := parse("fanout", "--server-bin", bin); o.rooms != 1 || o.warmup != 10*time.Second || o.dialConcurrency != 64 {
		t.Errorf("fanout got another scenario's defaults: %+v", o)
	}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"pubcluster", "--server-bin", bin, "--rooms", "5000", "--subs", "10"}, ""},
		{[]string{"storm", "--url", "http://127.0.0.1:9"}, "not --url"},
		{[]string{"storm", "--server-bin", bin, "--peer", "switchboard,fiber"}, "not fiber"},
		{[]string{"pubcluster", "--server-bin", bin, "--peer", "switchboard,fiber,centrifuge", "--peer-bin", "fiber=" + bin, "--peer-bin", "centrifuge=" + bin}, ""},
		{[]string{"storm", "--server-bin", bin, "--transport", "sse"}, "only --transport websocket"},
		{[]string{"storm", "--server-bin", bin, "--broker", "kafka"}, "use redis or nats"},
		{[]string{"storm", "--server-bin", bin, "--server-cpu", "1"}, "not supported"},
		{[]string{"storm", "--server-bin", bin, "--pub-rooms", "100"}, "below --rooms"},
		{[]string{"storm", "--server-bin", bin, "--warmup", "2s"}, "fewer than --pub-rooms"},
		{[]string{"storm", "--server-bin", bin, "--catchup", "0s"}, "--catchup"},
		{[]string{"storm", "--server-bin", bin, "--subs", "10"}, "need 1 <= rooms <= subs"},
		{[]string{"pubcluster", "--server-bin", bin, "--publishers", "0"}, "1 to 1024 publishers"},
	} {
		_, err := parse(c.args...)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one containing %q", c.args, err, c.err)
		}
	}
}

// Lines as the centrifuge peer (--redis-url) writes them, taken from a run.
const (
	cfReplyA = `{"id":1,"connect":{"client":"42f4ccaf","subs":{"room-a":{"recoverable":true,"epoch":"CGFiJxRs","positioned":true}},"ping":25,"pong":true}}`
	cfReplyB = `{"id":1,"connect":{"client":"aeff9634","subs":{"room-a":{"recoverable":true,"epoch":"CGFiJxRs","publications":[` +
		`{"data":{"lt":11,"ls":1,"lq":3,"p":"x"},"offset":4},{"data":{"lt":12,"ls":1,"lq":4,"p":"x"},"offset":5}],` +
		`"recovered":true,"offset":3,"positioned":true,"was_recovering":true}},"ping":25,"pong":true}}`
	cfPush1 = `{"push":{"channel":"room-a","pub":{"data":{"lt":5,"ls":0,"lq":0,"p":"x"},"offset":1,"epoch":"CGFiJxRs"}}}`
	cfPush2 = `{"push":{"channel":"room-a","pub":{"data":{"lt":6,"ls":0,"lq":1,"p":"x"},"offset":2}}}`
)

func TestCentrifugeRecovery(t *testing.T) {
	cmd := appendCentrifugeConnect(nil, []string{"room-a", "room-b"}, map[string]cfPosition{"room-a": {Epoch: `e"1`, Offset: 41}})
	var v struct {
		ID      int `json:"id"`
		Connect struct {
			Subs map[string]struct {
				Recover bool   `json:"recover"`
				Epoch   string `json:"epoch"`
				Offset  uint64 `json:"offset"`
			} `json:"subs"`
		} `json:"connect"`
	}
	if err := json.Unmarshal(cmd, &v); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if a, b := v.Connect.Subs["room-a"], v.Connect.Subs["room-b"]; !a.Recover || a.Epoch != `e"1` || a.Offset != 41 || b.Recover || len(v.Connect.Subs) != 2 {
		t.Errorf("connect %s", cmd)
	}

	subs, err := parseCentrifugeConnect([]byte(cfReplyB), []string{"room-a"})
	if err != nil {
		t.Fatal(err)
	}
	r := subs["room-a"]
	if !r.Recovered || !r.WasRecovering || !r.Recoverable || r.Epoch != "CGFiJxRs" || r.Offset != 3 || len(r.Publications) != 2 ||
		r.Publications[1].Offset != 5 || !bytes.Contains(r.Publications[1].Data, []byte(`"lq":4`)) {
		t.Errorf("reply B: %+v", r)
	}
	if subs, err := parseCentrifugeConnect([]byte(cfReplyA), []string{"room-a"}); err != nil || subs["room-a"].Epoch != "CGFiJxRs" || subs["room-a"].Offset != 0 {
		t.Errorf("reply A: %+v, %v", subs, err)
	}
	for line, want := range map[string]uint64{cfPush1: 1, cfPush2: 2} {
		if off, ok := centrifugePubOffset([]byte(line)); !ok || off != want {
			t.Errorf("offset of %s = %d, %v", line, off, ok)
		}
	}
	if _, ok := centrifugePubOffset([]byte(`{"push":{"channel":"a","pub":{"data":{"lt":1,"ls":0,"p":"x"}}}}`)); ok {
		t.Error("an offset in a push without one")
	}
}

// testStormPublisher is a publisher that sent n messages over rooms with
// the given outcomes (by message number; missing ones accepted), k <
// killAt before the storm.
func testStormPublisher(rooms, n, killAt int, outcomes map[int]pubOutcome) *stormPublisher {
	p := &stormPublisher{rooms: make([]string, rooms), status: make([]atomic.Uint32, n)}
	for k := range n {
		st := uint32(pubAccepted)
		if o, ok := outcomes[k]; ok {
			st = uint32(o)
		}
		if k >= killAt {
			st |= stormDuringBit
		}
		p.status[k].Store(st)
	}
	p.handed.Store(int64(n))
	return p
}

func TestStormStateCentrifuge(t *testing.T) {
	s := newStormState(centrifugePeer, []string{"room-a"})
	s.welcome(0, []byte(cfReplyA), false)
	if r := s.resumeReq(subReq{rooms: "room-a"}); r.cfRecover["room-a"] != (cfPosition{Epoch: "CGFiJxRs"}) {
		t.Errorf("resume before any publication: %+v", r.cfRecover)
	}
	s.sink(0, []byte(cfPush1), 100)
	s.sink(0, []byte(cfPush2), 100)
	s.sink(0, []byte(`{"push":{"channel":"room-a","join":{"info":{}}}}`), 100)
	if r := s.resumeReq(subReq{rooms: "room-a"}); r.cfRecover["room-a"] != (cfPosition{Epoch: "CGFiJxRs", Offset: 2}) || r.since != "" {
		t.Errorf("resume after offset 2: %+v", r)
	}
	if s.positioned.Load() != 1 || s.other.Load() != 1 {
		t.Errorf("positioned %d, other %d", s.positioned.Load(), s.other.Load())
	}
	// Message 2 was lost, 3 and 4 are recovered in the reply, 4 then
	// arrives again live.
	s.welcome(0, []byte(cfReplyB), true)
	s.sink(0, []byte(`{"push":{"channel":"room-a","pub":{"data":{"lt":12,"ls":1,"lq":4,"p":"x"},"offset":5}}}`), time.Now().UnixNano())
	sub := &s.subs[0]
	if !sub.onB || !sub.recovered || sub.offset != 5 || s.replayed.Load() != 2 || s.dups.Load() != 1 {
		t.Errorf("after B: onB %v recovered %v offset %d replayed %d dups %d", sub.onB, sub.recovered, sub.offset, s.replayed.Load(), s.dups.Load())
	}
	c := s.count(testStormPublisher(1, 6, 3, map[int]pubOutcome{5: pubFailed}), func(int) int { return 0 })
	if c.expected != 5 || c.lost != 1 || c.lostBefore != 1 || !c.missing[0] || c.back != 1 {
		t.Errorf("count %+v", c)
	}
}

func TestStormStateSwitchboard(t *testing.T) {
	s := newStormState(switchboard, []string{"r0", "r1"})
	line := func(id string, seq int64, sentNS int64) string {
		return `{"v":1,"id":"` + id + `","type":"message","room":"r","ts":1,"data":` + string(appendResumePayload(nil, sentNS, 0, seq, 100)) + `}`
	}
	s.welcome(0, []byte(`{"v":1,"type":"welcome","data":{"conn":"c","user":"u","rooms":["r0"]}}`), false)
	s.sink(0, []byte(`{"v":1,"type":"welcome","data":{}}`+"\n"+line("e-1", 0, 1)+"\n"+line("e-3", 1, 2)), 10)
	if r := s.resumeReq(subReq{rooms: "r0", shard: 0}); r.since != "e-3" || r.cfRecover != nil {
		t.Errorf("resume: %+v", r)
	}
	if r := s.resumeReq(subReq{rooms: "r1", shard: 1}); r.since != "" {
		t.Errorf("a subscriber that saw nothing resumes from %q", r.since)
	}
	s.welcome(0, []byte(`{"v":1,"type":"welcome","data":{"conn":"c2","user":"u","rooms":["r0"],"recovered":true}}`+"\n"+line("e-9", 2, 3)), true)
	s.welcome(1, []byte(`{"v":1,"type":"welcome","data":{"conn":"c3","user":"u","rooms":["r1"],"recovered":false}}`), true)
	back := s.subs[0].backNS
	s.sink(0, []byte(line("e-9", 2, 3)), back+5) // sent before it was back: replayed
	s.sink(0, []byte(line("e-12", 3, back+1)), back+7)
	sub := &s.subs[0]
	if !sub.recovered || s.subs[1].recovered || sub.catchNS != back+5 || s.replayed.Load() != 1 || s.dups.Load() != 0 || sub.lastID != "e-12" {
		t.Errorf("recovered %v/%v catch %d (back %d) replayed %d dups %d last %q",
			sub.recovered, s.subs[1].recovered, sub.catchNS, back, s.replayed.Load(), s.dups.Load(), sub.lastID)
	}
	// Two rooms: messages 0, 2, 4, 6 to room 0 (seq 0-3), 1, 3, 5 to room 1.
	c := s.count(testStormPublisher(2, 7, 7, map[int]pubOutcome{3: pubUnconfirmed}), func(i int) int { return i })
	if c.expected != 6 || c.lost != 2 || c.lostBefore != 2 || c.missing[0] || !c.missing[1] || c.back != 2 {
		t.Errorf("count %+v", c)
	}
}

func TestStormPublisherRate(t *testing.T) {
	p := &stormPublisher{started: time.Unix(100, 0), acceptedAt: make([]atomic.Int64, 50)}
	for i := 10; i < 20; i++ {
		p.acceptedAt[i].Store(30) // 300/s from 1 s to 2 s
	}
	p.acceptedAt[20].Store(5)
	if r := p.acceptedRate(time.Unix(101, 0), time.Unix(102, 0)); r != 300 {
		t.Errorf("rate %v, want 300", r)
	}
	if r := p.acceptedRate(time.Unix(102, 0), time.Unix(102, 0)); r != 0 {
		t.Errorf("empty window: %v", r)
	}
	if r := p.acceptedRate(time.Unix(102, 0), time.Unix(110, 0)); r != 5.0/8 {
		t.Errorf("window past the slots: %v", r)
	}
}

func TestClassifyPublish(t *testing.T) {
	for _, c := range []struct {
		kind   *serverKind
		status int
		body   string
		want   pubOutcome
	}{
		{switchboard, 200, `{"id":"k3-42"}`, pubAccepted},
		{switchboard, 202, `{"error":{"code":"publish_unconfirmed","message":"…"}}`, pubUnconfirmed},
		{switchboard, 503, `{"error":{"code":"broker_unavailable","message":"…"}}`, pubFailed},
		{switchboard, 200, `{}`, pubFailed},
		{centrifugePeer, 200, `{"published":1}` + "\n", pubAccepted},
		{centrifugePeer, 503, `{"error":"publish failed","published":0}`, pubFailed},
		{centrifugePeer, 200, `{"published":0}`, pubFailed},
	} {
		got, msg := classifyPublish(c.kind, c.status, []byte(c.body))
		if got != c.want || (got == pubFailed) != (msg != "") {
			t.Errorf("%s %d %s: %d %q, want %d", c.kind.name, c.status, c.body, got, msg, c.want)
		}
	}
}

func TestNodeCounters(t *testing.T) {
	metrics := func(resumes, read float64) []byte {
		return []byte(strings.Join([]string{
			`# HELP switchboard_resumes_total Connects that resumed.`,
			`# TYPE switchboard_resumes_total counter`,
			`switchboard_resumes_total{recovered="true"} ` + ftoa(resumes),
			`switchboard_resumes_total{recovered="false"} 1`,
			`switchboard_history_log_entries_read_total ` + ftoa(read),
			`switchboard_resume_index_entries 17000`,
			`switchboard_connections{transport="websocket"} 400`,
		}, "\n"))
	}
	before := parsePromCounters(metrics(10, 100))
	after := parsePromCounters(metrics(410, 900))
	delta, epr := counterDeltas(before, after)
	if epr == nil || *epr != 2 || delta[`switchboard_resumes_total{recovered="true"}`] != 400 || len(delta) != 2 {
		t.Errorf("delta %v, entries per resume %v", delta, epr)
	}
	// Every resume from the index: 0 entries read, not "unknown".
	if _, epr := counterDeltas(before, parsePromCounters(metrics(410, 100))); epr == nil || *epr != 0 {
		t.Errorf("no log reads: %v", epr)
	}
	// A node without the counter (before the log engine): unknown.
	only := map[string]float64{`switchboard_resumes_total{recovered="true"}`: 3}
	if delta, epr := counterDeltas(map[string]float64{}, only); epr != nil || delta[`switchboard_resumes_total{recovered="true"}`] != 3 {
		t.Errorf("delta %v, entries per resume %v", delta, epr)
	}
	if delta, epr := counterDeltas(nil, nil); delta != nil || epr != nil {
		t.Errorf("a peer: %v %v", delta, epr)
	}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestClusterMarkdown(t *testing.T) {
	epr := 3.5
	var results []any
	for _, srv := range []string{"switchboard", "centrifuge"} {
		results = append(results,
			stormResult{Scenario: "storm", ServerName: srv, Run: 1, Broker: "redis", Transport: "websocket", Subscribers: 400, Rooms: 100,
				PubRooms: 1000, RateTarget: 300, Back: 400, AllCaughtUp: true, CaughtUp: 400, CaughtUpAllS: 2, CaughtUpP50S: 1,
				RateBefore: 300, RateDuring: 290, ExtraCPUB: 1.5, EntriesPerResume: &epr},
			pubclusterResult{Scenario: "pubcluster", ServerName: srv, Run: 1, Broker: "redis", Publishers: 64, Rooms: 1000, DurationS: 5,
				Accepted: 5000, AcceptedPerS: 1000, NodeCPUPerPublishUS: 100, Nodes: []usage{{CPUCores: 0.5}, {CPUCores: 0.5}}})
	}
	var md bytes.Buffer
	writeMarkdown(&md, results)
	for _, want := range []string{
		"| switchboard | 1 | redis | 400 | 100 | 1000 | 300 | 400 | 0 | 0 (0) | 0 | 0 | 400 | 2.00 | 1.00 | 0.00 | 300 → 290 |",
		"| 1.50 | 0.00 | 3.5 |",
		"| centrifuge | 1 | redis | 64 | 1000 | 5.0 | 5000 | 1000 | 0 | 0 |",
		"**storm websocket: versus Switchboard**",
		"| centrifuge | 2.00 (1.00×) | 1.00 (1.00×) |",
		"**pubcluster http publish: versus Switchboard**",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("no %q in:\n%s", want, md.String())
		}
	}
}

// TestStartBroker starts a real redis-server as the scenarios do, and
// stops it.
func TestStartBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := startBroker(ctx, "redis", "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(b.url, "redis://"), "/0")
	conn, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		b.stop()
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Write([]byte("PING\r\n"))
	buf := make([]byte, 7)
	if err == nil {
		_, err = conn.Read(buf)
	}
	conn.Close()
	if err != nil || string(buf) != "+PONG\r\n" {
		t.Errorf("PING: %q, %v", buf, err)
	}
	dir := b.dir
	b.stop()
	select {
	case <-b.exited:
	default:
		t.Error("redis-server still running after stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data directory %s left behind: %v", dir, err)
	}
	if _, err := http.Get("http://" + host); err == nil {
		t.Error("the port still answers")
	}
}
