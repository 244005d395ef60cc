package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/edge/config"
)

// runTool parses args (plus --progress off) and runs the tool within a
// minute, returning its JSON lines and its Markdown.
func runTool(t *testing.T, args ...string) (*json.Decoder, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	o := defaultOptions()
	o.stdout, o.stderr = &stdout, &stderr
	if err := parseArgs(&o, append(args, "--progress", "off")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, o); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	return json.NewDecoder(&stdout), stderr.String()
}

// TestChurnSmoke runs two short storms of small waves against an
// in-process edge (whose pid is this test's, so RSS is read as well):
// every connect succeeds, and the server counts the connections it had
// before once the storm is over. Goroutines and memory are reported, not
// asserted: they depend on timing (fasthttp retires idle workers after
// about 10 s).
func TestChurnSmoke(t *testing.T) {
	cfg := config.Default()
	cfg.Node.RateLimit = -1
	ln := startEdge(t, cfg)
	for _, transport := range []string{"websocket", "sse"} {
		t.Run(transport, func(t *testing.T) {
			dec, md := runTool(t, "churn", "--url", "http://"+ln.Addr().String(), "--server-pid", strconv.Itoa(os.Getpid()),
				"--transport", transport, "--conns", "20", "--duration", "1s", "--max-waves", "4", "--settle", "5s",
				"--samples", "1", "--source-ips", "3", "--dial-concurrency", "8")
			var res churnResult
			if err := dec.Decode(&res); err != nil {
				t.Fatal(err)
			}
			if res.Scenario != "churn" || res.ServerName != "switchboard" || res.Transport != transport || res.Waves < 1 || res.Waves > 4 {
				t.Errorf("result %+v", res)
			}
			if res.Connects != int64(res.Waves)*20 || res.ConnectErrors != 0 || res.ConnectPerS <= 0 {
				t.Errorf("%d waves: %d connects, %d errors (%s), %.0f/s", res.Waves, res.Connects, res.ConnectErrors, res.ConnectError, res.ConnectPerS)
			}
			if res.Peak.Connections < res.Before.Connections || res.Before.RSS == 0 || len(res.WaveRSS) != res.Waves {
				t.Errorf("before %+v peak %+v, %d wave RSS readings", res.Before, res.Peak, len(res.WaveRSS))
			}
			// A WebSocket close is seen at once; a gone SSE client only at
			// its next heartbeat (25 s by default), after --settle.
			if transport == "websocket" && !res.ConnectionsReturned {
				t.Errorf("connections before %d, after %d", res.Before.Connections, res.After.Connections)
			}
			if !strings.Contains(md, "| churn | run | transport |") || !strings.Contains(md, "| switchboard | 1 | "+transport+" | 20 |") {
				t.Errorf("Markdown:\n%s", md)
			}
		})
	}
}

// TestResumeSmoke disconnects a few subscribers, publishes while they are
// away, and reconnects them with since=: each gets every message of its
// room exactly once, over WebSocket and SSE, with and without live
// traffic racing the replay.
func TestResumeSmoke(t *testing.T) {
	cfg := config.Default()
	cfg.Node.RateLimit = -1
	ln := startEdge(t, cfg)
	for _, c := range []struct {
		transport string
		rooms     int
		live      string
	}{
		{"websocket", 1, "0"},
		{"websocket", 3, "40"},
		{"sse", 2, "40"},
	} {
		t.Run(c.transport+"-"+strconv.Itoa(c.rooms)+"-live"+c.live, func(t *testing.T) {
			dec, md := runTool(t, "resume", "--url", "http://"+ln.Addr().String(), "--transport", c.transport,
				"--subs", "12", "--rooms", strconv.Itoa(c.rooms), "--messages", "30", "--live-rate", c.live, "--duration", "1s",
				"--drain", "10s", "--source-ips", "3")
			var res resumeResult
			if err := dec.Decode(&res); err != nil {
				t.Fatal(err)
			}
			perSub := int64(30 / c.rooms)
			if res.Replayed != 12*perSub {
				t.Errorf("replayed %d, want 12 × %d", res.Replayed, perSub)
			}
			if res.Lost != 0 || res.Duplicates != 0 || res.Delivered != res.Expected || res.Expected != 12*perSub+res.LivePublished*12/int64(c.rooms) {
				t.Errorf("expected %d (live %d), delivered %d, lost %d, duplicates %d", res.Expected, res.LivePublished, res.Delivered, res.Lost, res.Duplicates)
			}
			if c.live != "0" && res.LivePublished == 0 {
				t.Error("no live messages published")
			}
			if res.Recovered != 12 || res.NotRecovered != 0 || res.Disconnects != 0 {
				t.Errorf("recovered %d, not %d, disconnects %d (%s)", res.Recovered, res.NotRecovered, res.Disconnects, res.Disconnect)
			}
			if res.ReplayedPerS <= 0 || res.ReplaySeconds <= 0 || res.ReconnectSeconds <= 0 {
				t.Errorf("replayed/s %v over %v s, reconnect %v s", res.ReplayedPerS, res.ReplaySeconds, res.ReconnectSeconds)
			}
			if !strings.Contains(md, "| switchboard | 1 | "+c.transport+" | 12 |") {
				t.Errorf("Markdown:\n%s", md)
			}
		})
	}
}

// TestRunsSummaryOfFigures checks the medians of idle, churn and resume
// runs, and that they feed the comparison with a peer.
func TestRunsSummaryOfFigures(t *testing.T) {
	o := defaultOptions()
	o.scenario = "idle"
	s := summarizeFigures(o, "switchboard", []map[string]float64{
		{"rss_bytes_per_conn": 9000, "goroutines_per_conn": 1},
		{"rss_bytes_per_conn": 7000, "goroutines_per_conn": 1},
		{"rss_bytes_per_conn": 8000, "goroutines_per_conn": 1},
	})
	if s.Runs != 3 || s.Figures["rss_bytes_per_conn"] != (spread{8000, 7000, 9000}) {
		t.Fatalf("%+v", s)
	}
	peer := summarizeFigures(o, "fiber", []map[string]float64{{"rss_bytes_per_conn": 16000, "goroutines_per_conn": 2}})
	var md bytes.Buffer
	writeMarkdown(&md, []any{s, peer})
	for _, want := range []string{
		"**idle websocket: versus Switchboard**",
		"| switchboard | 8000 | 1.00 |",
		"| fiber | 16000 (2.00×) | 2.00 (2.00×) |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("no %q in:\n%s", want, md.String())
		}
	}
}

func TestLateGrowth(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		waves   []uint64
		bounded bool
	}{
		{[]uint64{20 * mib, 24 * mib, 25 * mib, 24 * mib}, true},                // plateau
		{[]uint64{20 * mib, 22 * mib, 26 * mib, 30 * mib}, false},               // keeps growing
		{[]uint64{110 * mib, 150 * mib, 150 * mib, 155 * mib, 158 * mib}, true}, // within 10% of 50 MiB
		{[]uint64{20 * mib, 21 * mib, 22 * mib}, false},                         // too few waves to judge
	} {
		if _, ok := lateGrowth(10*mib, c.waves); ok != c.bounded {
			t.Errorf("lateGrowth(%v) bounded = %v, want %v", c.waves, ok, c.bounded)
		}
	}
}

func TestParseResumeLine(t *testing.T) {
	payload := appendResumePayload(nil, 1795344139268123456, resumeOffline, 42, 128)
	if len(payload) != 128 || !json.Valid(payload) {
		t.Fatalf("payload %d bytes: %s", len(payload), payload)
	}
	line := []byte(`{"v":1,"id":"k3f9a-42","type":"message","room":"r","from":"p","ts":1795344139268,"data":` + string(payload) + `}`)
	id, step, seq, ok := parseResumeLine(line)
	if !ok || string(id) != "k3f9a-42" || step != resumeOffline || seq != 42 {
		t.Fatalf("parseResumeLine = %q, %d, %d, %v", id, step, seq, ok)
	}
	// A fanout payload (no sequence number), a welcome, an id-less line.
	for _, bad := range []string{
		`{"v":1,"id":"a-1","type":"message","data":` + string(appendPayload(nil, 1, 0, 100)) + `}`,
		`{"v":1,"type":"welcome","data":{"conn":"c","recovered":true}}`,
		`{"v":1,"type":"message","data":` + string(payload) + `}`,
	} {
		if _, _, _, ok := parseResumeLine([]byte(bad)); ok {
			t.Errorf("parseResumeLine(%s) = ok", bad)
		}
	}
	// Counting: a duplicate, and a frame of two lines.
	st := &resumeState{subs: make([]resumeSub, 1)}
	st.frame(0, append(append(line, '\n'), line...), 1)
	if st.unique.Load() != 1 || st.dups.Load() != 1 || st.replayed.Load() != 1 || st.subs[0].lastID != "k3f9a-42" {
		t.Errorf("unique %d dups %d replayed %d last %q", st.unique.Load(), st.dups.Load(), st.replayed.Load(), st.subs[0].lastID)
	}
}

func TestPeerOptions(t *testing.T) {
	bin := os.Args[0] // any existing file
	for _, c := range []struct {
		args []string
		err  string // "" if valid
	}{
		{[]string{"fanout", "--server-bin", bin, "--peer", "switchboard,fiber,centrifuge", "--peer-bin", "fiber=" + bin, "--peer-bin", "centrifuge=" + bin}, ""},
		{[]string{"idle", "--peer", "centrifuge", "--peer-bin", bin}, ""},
		{[]string{"fanout", "--url", "http://127.0.0.1:9", "--peer", "fiber"}, ""},
		{[]string{"fanout", "--peer", "nats"}, "use one or more of"},
		{[]string{"fanout", "--server-bin", bin, "--peer", "fiber,fiber"}, "listed twice"},
		{[]string{"fanout", "--server-bin", bin, "--peer", "switchboard,fiber", "--transport", "sse"}, "speaks only WebSocket"},
		{[]string{"fanout", "--peer", "fiber", "--publisher", "ws"}, "only --publisher http"},
		{[]string{"resume", "--peer", "centrifuge"}, "use --peer switchboard"},
		{[]string{"fanout", "--url", "http://127.0.0.1:9", "--peer", "switchboard,fiber"}, "--url targets one running server"},
		{[]string{"fanout", "--peer", "switchboard,fiber"}, "give --server-bin"},
		{[]string{"fanout", "--server-bin", bin, "--peer", "switchboard,fiber,centrifuge", "--peer-bin", bin}, "exactly one peer"},
		{[]string{"fanout", "--server-bin", bin, "--peer-bin", "fiber=" + bin}, "not a peer in --peer"},
		{[]string{"churn", "--url", "http://127.0.0.1:9", "--runs", "3"}, "fresh server per run"},
		{[]string{"resume", "--server-bin", bin, "--transport", "longpoll"}, "held connections"},
	} {
		o := defaultOptions()
		var stderr bytes.Buffer
		o.stdout, o.stderr = &stderr, &stderr
		err := parseArgs(&o, c.args)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one containing %q", c.args, err, c.err)
		}
	}
}

// TestJSONContract holds the JSON field names that test/load/matrix reads
// from the tool's lines (it decodes them by name, not with these types).
func TestJSONContract(t *testing.T) {
	yes := true
	check := func(v any, paths ...string) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			var cur any = m
			for _, k := range strings.Split(p, ".") {
				obj, ok := cur.(map[string]any)
				if !ok {
					cur = nil
					break
				}
				cur = obj[k]
			}
			if cur == nil {
				t.Errorf("%T: no %s in %s", v, p, b)
			}
		}
	}
	check(&fanoutResult{Server: &usage{}, Sustainable: &yes, Disturbed: true}, "scenario", "server_name", "run", "step", "rate_target",
		"delivered_per_s", "loss_pct", "latency_ms.p50", "latency_ms.p99", "latency_ms.p999", "server.cpu_cores", "sustainable", "disturbed")
	check(saturateSummary{}, "scenario", "server_name", "summary", "run", "max_sustainable_deliveries_per_s", "at_rate")
	check(idleResult{RSSPerConn: 1}, "scenario", "server_name", "rss_bytes_per_conn", "heap_bytes_per_conn", "goroutines_per_conn", "connects_per_s")
	check(churnResult{}, "scenario", "server_name", "connects_per_s", "cycles_per_s", "return_seconds", "rss_retained_pct", "waves", "connects",
		"connect_errors", "goroutine_growth", "connections_returned", "goroutines_returned", "memory_bounded")
	check(resumeResult{}, "scenario", "server_name", "replayed_per_s", "reconnect_seconds", "first_replay_ms", "replay_seconds", "lost",
		"duplicates", "loss_pct", "not_recovered", "subscribers", "messages")
	check(runsSummary{}, "runs_summary")
	check(figuresSummary{}, "runs_summary")
}

// TestHTMLPerServer: a saturate ramp of each server gets its own steps
// chart, and the servers' headline figures a comparison chart.
func TestHTMLPerServer(t *testing.T) {
	var results []any
	for _, srv := range []string{"switchboard", "fiber"} {
		for step, rate := range []float64{50, 75} {
			ok := true
			results = append(results, &fanoutResult{Scenario: "saturate", ServerName: srv, Transport: "websocket", Run: 1, Step: step,
				Subscribers: 10, Rooms: 1, RateTarget: rate, DeliveredPerS: rate * 10, Sustainable: &ok})
		}
		results = append(results, saturateSummary{Scenario: "saturate", ServerName: srv, Transport: "websocket", Summary: true, Run: 1,
			Subscribers: 10, Rooms: 1, MaxDeliveriesPerS: 750, AtRate: 75})
	}
	var b bytes.Buffer
	o := defaultOptions()
	o.scenario = "saturate"
	if err := writeHTML(&b, o, results); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{
		"Delivered/s and p99 per step, switchboard, run 1",
		"Delivered/s and p99 per step, fiber, run 1",
		"saturate websocket, 10 subs, 1 rooms: sustainable deliveries/s per server",
		"fiber, saturate run 1 step 2",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("no %q in the HTML report", want)
		}
	}
}
