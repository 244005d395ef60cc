package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReplaceBlock(t *testing.T) {
	doc := "# Performance\n\n## Machine\n\ntext\n\n" + beginMarker + "\nold\nlines\n" + endMarker + "\n\n## Benchmarks\n"
	got, err := replaceBlock(doc, "\n## Standard matrix\n\nnew\n\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Performance\n\n## Machine\n\ntext\n\n" + beginMarker + "\n## Standard matrix\n\nnew\n" + endMarker + "\n\n## Benchmarks\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// Idempotent: rewriting with the same block changes nothing.
	again, err := replaceBlock(got, "## Standard matrix\n\nnew")
	if err != nil || again != got {
		t.Errorf("second rewrite differs (%v):\n%s", err, again)
	}
	for _, bad := range []string{
		"no markers",
		endMarker + "\n" + beginMarker,
		beginMarker + beginMarker + endMarker,
		beginMarker + "\n",
	} {
		if _, err := replaceBlock(bad, "x"); err == nil {
			t.Errorf("replaceBlock(%q): no error", bad)
		}
	}
}

func TestFmtNum(t *testing.T) {
	for _, c := range []struct {
		v    float64
		prec int
		want string
	}{
		{0, 0, "0"}, {999, 0, "999"}, {1000, 0, "1,000"}, {854365.4, 0, "854,365"}, {1234567.891, 2, "1,234,567.89"},
		{-12345, 0, "-12,345"}, {0.125, 3, "0.125"}, {math.NaN(), 2, "–"}, {math.Inf(1), 0, "–"},
	} {
		if got := fmtNum(c.v, c.prec); got != c.want {
			t.Errorf("fmtNum(%v, %d) = %q, want %q", c.v, c.prec, got, c.want)
		}
	}
}

func TestMachineParsing(t *testing.T) {
	cpuinfo := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n"
	if got := cpuModel(cpuinfo); got != "AMD EPYC 9R14 96-Core Processor" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel("processor : 0\n"); got != "unknown CPU" {
		t.Errorf("cpuModel without a model = %q", got)
	}
	if got := memTotal("MemTotal:       24609072 kB\nMemFree: 1 kB\n"); got != "23 GiB" {
		t.Errorf("memTotal = %q", got)
	}
}

// lines builds an entry's JSON lines from Go literals, as the load tool
// writes them.
func lines(t *testing.T, s ...string) []obj {
	t.Helper()
	out, err := parseLines(strings.NewReader(strings.Join(s, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fanoutLine(server string, run int, delivered, p50, p99, cpu float64) string {
	return fmt.Sprintf(`{"scenario":"fanout","server_name":%q,"run":%d,"step":0,"rate_target":100,"delivered_per_s":%g,"loss_pct":0,`+
		`"latency_ms":{"p50":%g,"p99":%g,"p999":%g,"max":50},"server":{"cpu_cores":%g},"latency_histogram":[{"lo_ns":1,"hi_ns":2,"n":3}]}`,
		server, run, delivered, p50, p99, p99*1.5, cpu)
}

func TestRender(t *testing.T) {
	all := entries(false)
	get := func(name string) entry {
		for _, e := range all {
			if e.name == name {
				return e
			}
		}
		t.Fatalf("no entry %s", name)
		return entry{}
	}
	var fan []string
	for run := 1; run <= 3; run++ {
		fan = append(fan,
			fanoutLine("switchboard", run, 99800+float64(run), 1+float64(run), 8+float64(run), 0.5),
			fanoutLine("fiber", run, 99000, 4, 20+float64(run), 1),
			fanoutLine("centrifuge", run, 99500, 2, 16+float64(run), 0.7))
	}
	fan = append(fan, `{"scenario":"fanout","server_name":"switchboard","runs_summary":true,"runs":3}`) // ignored
	sat := []string{
		// Run 1: the best step was at 569 msg/s; run 2 had none; run 3 at 854.
		`{"scenario":"saturate","server_name":"switchboard","run":1,"step":6,"rate_target":569,"delivered_per_s":569000,"sustainable":true,"latency_ms":{"p99":40},"server":{"cpu_cores":0.9}}`,
		`{"scenario":"saturate","server_name":"switchboard","run":1,"step":7,"rate_target":854,"delivered_per_s":700000,"sustainable":false,"latency_ms":{"p99":400},"server":{"cpu_cores":1}}`,
		`{"scenario":"saturate","server_name":"switchboard","summary":true,"run":1,"max_sustainable_deliveries_per_s":569000,"at_rate":569}`,
		`{"scenario":"saturate","server_name":"switchboard","summary":true,"run":2,"max_sustainable_deliveries_per_s":0,"reason":"…"}`,
		`{"scenario":"saturate","server_name":"switchboard","run":3,"step":7,"rate_target":854,"delivered_per_s":853000,"sustainable":true,"disturbed":true,"latency_ms":{"p99":90},"server":{"cpu_cores":0.95}}`,
		`{"scenario":"saturate","server_name":"switchboard","summary":true,"run":3,"max_sustainable_deliveries_per_s":853000,"at_rate":854}`,
		`{"scenario":"saturate","server_name":"fiber","summary":true,"run":1,"max_sustainable_deliveries_per_s":101000,"at_rate":101}`,
	}
	idle := []string{
		`{"scenario":"idle","server_name":"switchboard","run":1,"rss_bytes_per_conn":8000,"heap_bytes_per_conn":5000,"goroutines_per_conn":1,"connects_per_s":5000}`,
		`{"scenario":"idle","server_name":"fiber","run":1,"rss_bytes_per_conn":16000,"heap_bytes_per_conn":9000,"goroutines_per_conn":1,"connects_per_s":6000}`,
	}
	churn := []string{
		`{"scenario":"churn","server_name":"switchboard","run":1,"connects_per_s":4000,"cycles_per_s":3500,"connects":52000,"waves":26,"connect_errors":0,"return_seconds":12.5,` +
			`"connections_returned":true,"goroutines_returned":true,"memory_bounded":true,"rss_retained_pct":60,"goroutine_growth":0}`,
	}
	resume := []string{
		`{"scenario":"resume","server_name":"switchboard","run":1,"subscribers":1000,"messages":500,"replayed_per_s":420000,"replay_seconds":1.19,"first_replay_ms":12,` +
			`"reconnect_seconds":0.8,"lost":0,"duplicates":0,"loss_pct":0,"not_recovered":0}`,
	}
	results := []entryResult{
		{entry: get("ws-fanout-1k"), lines: lines(t, fan...)},
		{entry: get("ws-saturate-1k"), lines: lines(t, sat...)},
		{entry: get("idle-19k"), lines: lines(t, idle...)},
		{entry: get("ws-fanout-5k"), skipped: "not measured: 10s left of the 25m0s budget"},
		{entry: get("rooms"), err: fmt.Errorf("load tool: exit status 1\nmore")},
		{entry: get("sse-fanout-1k"), skipped: notSelected},
		{entry: get("churn"), lines: lines(t, churn...)},
		{entry: get("resume"), lines: lines(t, resume...)},
	}
	m := machineInfo{when: time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC), commit: "abc123def456", cpus: 2, model: "AMD EPYC", kernel: "6.18.1",
		memory: "23 GiB", goVersion: "go1.26.8", noFile: 20000, pinned: "no CPU pinning", took: 21 * time.Minute, budget: 25 * time.Minute}
	out := render(results, m)
	for _, want := range []string{
		"Measured 2026-11-23 09:30 UTC at commit `abc123def456`: medians of 3 runs, the whole matrix in 21m0s",
		"Machine: 2 CPUs (AMD EPYC), 23 GiB, Linux 6.18.1, go1.26.8, `ulimit -n` 20000",
		"| WebSocket, 1 room × 1,000 subscribers, 100 msg/s | 99,802 | 0.000 | 3.00 | 10.00 | 15.00 | 5.01 |",
		"| WebSocket, 1 room × 5,000 subscribers, 100 msg/s | not measured: 10s left of the 25m0s budget | | | | | |",
		"| WebSocket, 100 rooms × 10 subscribers, 10,000 msg/s in total | failed (see notes) |",
		"| SSE, 1 room × 1,000 subscribers, 100 msg/s | not run (--only) |",
		// Saturate: the median of 569,000 and 853,000; p99 of the best steps.
		"| WebSocket, 1 room × 1,000 subscribers | 711,000 | 712 | 65.00 | 1.35 | 1 of 3 |",
		"| switchboard | 8,000 B | 5,000 B | 1.00 | 5,000 | 0.7 GiB | 7.5 GiB |",
		"| centrifuge | no result |",
		"| fan-out p99 ms | 10.00 | 22.00 (2.20×) | 18.00 (1.80×) |",
		"| sustainable deliveries/s (1,000 subs) | 711,000 | 101,000 (0.14×) | – |",
		"| idle RSS bytes per connection | 8,000 | 16,000 (2.00×) | – |",
		"4,000 connects/s while connecting",
		"back at their baseline in 1 of 1 runs (median 12.5 s after the storm)",
		"420,000 replayed messages/s",
		"- `ws-fanout-5k`: not measured: 10s left of the 25m0s budget.",
		"- `rooms` failed after 0s: load tool: exit status 1.",
		"- `ws-saturate-1k` switchboard: 1 figure(s) measured while other processes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sse-fanout-1k`: not run") {
		t.Error("an entry left out by --only is listed in the notes")
	}
	// The quick form says so.
	m.quick = true
	if out := render(nil, m); !strings.Contains(out, "reduced form") {
		t.Errorf("quick block:\n%s", out)
	}
}

func TestEntriesBounded(t *testing.T) {
	for _, quick := range []bool{false, true} {
		var total time.Duration
		for _, e := range entries(quick) {
			total += e.estimate
			if !strings.Contains(strings.Join(e.args, " "), "--runs") {
				t.Errorf("%s: no --runs", e.name)
			}
		}
		budget := 25 * time.Minute
		if quick {
			budget = 8 * time.Minute
		}
		if total > budget-2*time.Minute {
			t.Errorf("quick=%v: estimates add up to %s, too close to the %s budget", quick, total, budget)
		}
	}
}

// TestRepoRoot finds the repository from anywhere inside it, so the
// matrix runs from the root or from its own module (test/load, where
// `go -C test/load run ./matrix` starts it).
func TestRepoRoot(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{"edge", filepath.Join("test", "load", "peers", "fiber")} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"go.mod", filepath.Join("test", "load", "go.mod")} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("module x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, from := range []string{".", "test", filepath.Join("test", "load"), filepath.Join("test", "load", "peers", "fiber")} {
		got, err := repoRoot(filepath.Join(root, from))
		if err != nil || got != root {
			t.Errorf("repoRoot from %s = %q, %v; want %q", from, got, err, root)
		}
	}
	if got, err := repoRoot(t.TempDir()); err == nil {
		t.Errorf("repoRoot outside a repository = %q, want an error", got)
	}
}
