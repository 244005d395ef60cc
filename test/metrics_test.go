package test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

// scrape reads GET base/metrics into series → value ("name{labels}").
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsMoveWithTraffic: a scripted workload moves the Prometheus
// series it should, by the amounts it should.
func TestMetricsMoveWithTraffic(t *testing.T) {
	e := startEdge(t, func(c *config.Config) {
		c.Node.MaxMessageSize = 1024
		c.Dashboard = false // its samples are broker publishes of their own, one a second
	})
	base := "http://" + e.addr
	before := scrape(t, base)

	a, _ := connect(t, e.url(q("user", "a", "rooms", "r")))
	b, _ := connect(t, e.url(q("user", "b", "rooms", "r")))
	s := openSSE(t, e.sseURL(q("user", "s", "rooms", "r")), nil)
	s.welcome()
	for range 3 {
		a.send(`{"v":1,"type":"publish","room":"r","data":1}`)
		a.ackAnd(core.TypeMessage)
		b.expect(core.TypeMessage)
	}
	a.send(`{"v":1,"type":"made-up","ref":"u"}`)
	a.expectError(core.CodeUnknownType, "u")
	b.send(`{"v":1,"type":"ping","data":"` + strings.Repeat("x", 2000) + `"}`) // over 1 KiB: 4003
	if code := b.closed(); code != 4003 {
		t.Fatalf("oversize: close %d", code)
	}
	var mid map[string]float64
	eventually(t, "the 4003 counted", func() bool {
		mid = scrape(t, base)
		return mid[`switchboard_disconnects_total{code="4003"}`]-before[`switchboard_disconnects_total{code="4003"}`] == 1
	})
	delta := func(series string) float64 { return mid[series] - before[series] }
	checks := map[string]float64{
		`switchboard_connections{transport="websocket"}`:                      1,
		`switchboard_connections{transport="sse"}`:                            1,
		`switchboard_messages_in_total{transport="websocket",type="publish"}`: 3,
		`switchboard_messages_in_total{transport="websocket",type="unknown"}`: 1,
		// a: welcome, 3 × (ack, message), the unknown-type error; b:
		// welcome, 3 messages; the SSE member: welcome, 3 messages.
		`switchboard_messages_out_total{transport="websocket"}`:    12,
		`switchboard_messages_out_total{transport="sse"}`:          4,
		`switchboard_broker_malformed_total`:                       0,
		`switchboard_broker_deliveries_total`:                      3,
		`switchboard_delivery_latency_seconds_count`:               3,
		`switchboard_broker_publish_seconds_count`:                 3,
		`switchboard_connections_total`:                            3,
		`switchboard_resumes_total{recovered="true"}`:              0,
		`switchboard_presence_events_dropped_total`:                0,
		`switchboard_slow_consumer_actions_total{action="closed"}`: 0,
	}
	for series, want := range checks {
		if got := delta(series); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	for _, series := range []string{`switchboard_send_queue_envelopes`, `switchboard_send_queue_max_envelopes`} {
		if v, ok := mid[series]; !ok || v < 0 {
			t.Errorf("%s = %v (present %v), want a gauge >= 0", series, v, ok)
		}
	}
	if lag := mid[`switchboard_broker_lag_seconds`]; lag <= 0 || lag > 5 {
		t.Errorf("switchboard_broker_lag_seconds = %v right after 3 deliveries, want a small positive delay", lag)
	}
	if mid[`process_resident_memory_bytes`] <= 0 || mid[`go_goroutines`] <= 0 {
		t.Error("runtime and process metrics missing")
	}
}

// TestMetricsCardinalityBounded: 10,000 rooms and users add no series.
func TestMetricsCardinalityBounded(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.Node.MaxRoomsPerConn, c.Node.RateLimit = -1, -1 })
	base := "http://" + e.addr
	c, _ := connect(t, e.url(q("user", "many")))
	// 200 joins per frame, each batch's acks read before the next: the
	// acks share the connection's 256-envelope send queue.
	for batch := 0; batch < 10000; batch += 200 {
		var frame strings.Builder
		for i := batch; i < batch+200; i++ {
			frame.WriteString(`{"v":1,"type":"join","room":"room-` + strconv.Itoa(i) + `"}` + "\n")
		}
		c.send(frame.String())
		for range 200 {
			c.expect(core.TypeAck)
		}
	}
	for i := range 50 {
		other, _ := connect(t, e.url(q("user", "user-"+strconv.Itoa(i), "rooms", "room-"+strconv.Itoa(i))))
		_ = other
	}
	series := scrape(t, base)
	n := 0
	for k := range series {
		if strings.HasPrefix(k, "switchboard_") {
			n++
		}
		if strings.Contains(k, "room-") || strings.Contains(k, "user-") {
			t.Fatalf("a room or user in a label: %s", k)
		}
	}
	if n > 80 {
		t.Fatalf("%d switchboard series with 10,000 rooms; labels must stay bounded", n)
	}
	if series["switchboard_rooms"] < 10000 {
		t.Fatalf("switchboard_rooms = %v", series["switchboard_rooms"])
	}
}

// TestAdminListener: with --admin-addr, /metrics and /stats move off the
// public listener.
func TestAdminListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	// Registered before startEdge's cleanup, so it runs after the
	// shutdown that ends ServeAdmin.
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("admin: %v", err)
		}
	})
	e := startEdge(t, func(c *config.Config) { c.AdminAddr = ln.Addr().String() })
	go func() { done <- e.srv.ServeAdmin(ln) }()
	for _, p := range []string{"/metrics", "/stats"} {
		if code := statusOf("http://" + e.addr + p); code != 404 {
			t.Errorf("public %s: %d, want 404", p, code)
		}
		if code := statusOf("http://" + ln.Addr().String() + p); code != 200 {
			t.Errorf("admin %s: %d, want 200", p, code)
		}
	}
	scrape(t, "http://"+ln.Addr().String())
}

// TestMetricsDocumentedAndDashboarded: every switchboard_ series the edge
// exports is in docs/metrics.md, and every one the Grafana dashboard
// queries is documented there too (labelled series only appear once they
// have a value, so the documentation is the list both are held to).
func TestMetricsDocumentedAndDashboarded(t *testing.T) {
	name := regexp.MustCompile(`\b(switchboard_[a-z_]+)`)
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range name.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}

	e := startEdge(t, nil)
	c, _ := connect(t, e.url(q("user", "u", "rooms", "r")))
	c.send(`{"v":1,"type":"publish","room":"r","data":1}`)
	c.ackAnd(core.TypeMessage)
	for series := range scrape(t, "http://"+e.addr) {
		n, _, _ := strings.Cut(series, "{")
		if !strings.HasPrefix(n, "switchboard_") {
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && documented[b] {
				n = b
			}
		}
		if !documented[n] {
			t.Errorf("%s is exported but not in docs/metrics.md", n)
		}
	}

	raw, err := os.ReadFile("../docs/grafana/switchboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	queried := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllStringSubmatch(tg.Expr, -1) {
				queried++
				base := strings.TrimSuffix(m[1], "_bucket")
				if !documented[base] {
					t.Errorf("panel %q queries %s, which is not a documented metric", p.Title, m[1])
				}
			}
		}
	}
	if queried == 0 {
		t.Fatal("the dashboard queries no switchboard metric")
	}
}
