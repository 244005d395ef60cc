// Command matrix runs issue #7's standard load matrix with test/load and
// rewrites the block between <!-- bench:begin --> and <!-- bench:end -->
// in docs/performance.md with the date, commit, machine and a table of
// medians. `make bench` runs it; `BENCH_QUICK=1 make bench` runs the
// reduced form (--quick), which prints the block without touching the doc.
//
//	go -C test/load run ./matrix --doc "$PWD/docs/performance.md" --out "$PWD/test/artifacts/bench"
//	go -C test/load run ./matrix --quick --only ws-fanout-1k,resume
//	go -C test/load run ./matrix --list
//
// (from the repository root: the matrix lives in the load tool's own
// module, and go -C runs it with test/load as the working directory, so
// paths given to it are absolute or relative to test/load). It builds the
// edge (in the repository root), the load tool (test/load) and the peers
// (test/load/peers, with go build in each module) into --out, then runs
// each entry of the matrix as its own load tool process with the server
// pinned to --server-cpu and the tool to the other CPUs, writing
// <entry>.jsonl and <entry>.html into --out. Medians are computed here
// from each run's JSON line. The whole run is bounded by --budget: an
// entry that would start with too little time left is skipped and shown
// as not measured, and each entry's own --timeout ends with the budget.
// It finds the repository root from the working directory, so it runs
// anywhere inside the repository; run it after `ulimit -n 20000` (the
// idle entry holds 19,000 connections).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// entry is one load tool invocation of the matrix.
type entry struct {
	name     string
	scenario string
	args     []string      // after the scenario; without targets and outputs
	peers    bool          // also the fiber and centrifuge peers
	estimate time.Duration // typical wall time, for the budget
}

// entries returns the matrix, most important first (the budget cuts from
// the end). quick is the reduced form: one run each and small counts.
func entries(quick bool) []entry {
	runs := "3"
	subs1k, subs5k, fanDur, satDur, satSteps := "1000", "5000", "10s", "3s", "20"
	rooms, roomsRate := "100", "10000" // the deliveries/s of 1 room × subs at 100 msg/s
	idleName, idleConns, idleSettle := "idle-19k", "19000", "20s"
	churnConns, churnDur, resumeSubs, resumeMsgs := "2000", "15s", "1000", "500"
	// est picks the full or the quick estimate.
	est := func(full, small int) time.Duration { return time.Duration(full) * time.Second }
	if quick {
		runs = "1"
		subs1k, subs5k, fanDur, satDur, satSteps = "200", "300", "3s", "2s", "4"
		rooms, roomsRate = "20", "2000"
		idleName, idleConns, idleSettle = "idle-2k", "2000", "5s"
		churnConns, churnDur, resumeSubs, resumeMsgs = "200", "3s", "200", "200"
		est = func(full, small int) time.Duration { return time.Duration(small) * time.Second }
	}
	sat := func(transport string) []string {
		return []string{"--transport", transport, "--subs", subs1k, "--rate-start", "50", "--rate-factor", "1.5", "--duration", satDur, "--max-steps", satSteps, "--runs", runs}
	}
	fan := func(transport, subs string) []string {
		return []string{"--transport", transport, "--subs", subs, "--rate", "100", "--duration", fanDur, "--runs", runs}
	}
	return []entry{
		{name: "ws-fanout-1k", scenario: "fanout", args: fan("websocket", subs1k), peers: true, estimate: est(150, 20)},
		{name: "ws-saturate-1k", scenario: "saturate", args: sat("websocket"), peers: true, estimate: est(270, 40)},
		{name: idleName, scenario: "idle", args: []string{"--conns", idleConns, "--source-ips", "16", "--settle", idleSettle, "--samples", "3", "--runs", runs}, peers: true, estimate: est(330, 45)},
		{name: "ws-fanout-5k", scenario: "fanout", args: fan("websocket", subs5k), estimate: est(60, 8)},
		{name: "rooms", scenario: "fanout", args: []string{"--subs", subs1k, "--rooms", rooms, "--rate", roomsRate, "--duration", fanDur, "--runs", runs}, estimate: est(50, 8)},
		{name: "sse-fanout-1k", scenario: "fanout", args: fan("sse", subs1k), estimate: est(50, 8)},
		{name: "sse-saturate-1k", scenario: "saturate", args: sat("sse"), estimate: est(100, 15)},
		{name: "longpoll-fanout-1k", scenario: "fanout", args: fan("longpoll", subs1k), estimate: est(50, 8)},
		{name: "longpoll-saturate-1k", scenario: "saturate", args: sat("longpoll"), estimate: est(100, 15)},
		{name: "churn", scenario: "churn", args: []string{"--conns", churnConns, "--duration", churnDur, "--settle", "25s", "--samples", "3", "--source-ips", "16", "--runs", runs}, estimate: est(120, 30)},
		{name: "resume", scenario: "resume", args: []string{"--subs", resumeSubs, "--messages", resumeMsgs, "--live-rate", "100", "--duration", "3s", "--dial-concurrency", "256", "--runs", runs}, estimate: est(45, 10)},
	}
}

type config struct {
	quick     bool
	doc       string
	out       string
	only      []string
	budget    time.Duration
	serverCPU int
	list      bool
}

func main() {
	var c config
	flag.BoolVar(&c.quick, "quick", false, "the reduced matrix: one run each, small counts, a few minutes (also BENCH_QUICK=1)")
	flag.StringVar(&c.doc, "doc", "", "rewrite the bench block of this file (docs/performance.md); empty: only print it")
	flag.StringVar(&c.out, "out", "", "directory for binaries, JSON lines and HTML reports (default: a new temporary directory)")
	flag.Func("only", "run only these entries, comma-separated (see --list)", func(s string) error {
		c.only = strings.Split(s, ",")
		return nil
	})
	flag.DurationVar(&c.budget, "budget", 0, "bound on the whole matrix (default 25m, --quick 8m)")
	flag.IntVar(&c.serverCPU, "server-cpu", 0, "pin the servers to this CPU and the load tool to the others; negative: no pinning")
	flag.BoolVar(&c.list, "list", false, "list the entries and their estimated durations, and exit")
	flag.Parse()
	if os.Getenv("BENCH_QUICK") != "" && os.Getenv("BENCH_QUICK") != "0" {
		c.quick = true
	}
	if c.budget == 0 {
		c.budget = 25 * time.Minute
		if c.quick {
			c.budget = 8 * time.Minute
		}
	}
	if c.list {
		var total time.Duration
		for _, e := range entries(c.quick) {
			fmt.Printf("%-22s %-8s ~%-5s %s\n", e.name, e.scenario, e.estimate, strings.Join(e.args, " "))
			total += e.estimate
		}
		fmt.Printf("total ~%s (budget %s)\n", total, c.budget)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "matrix: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	started := time.Now()
	ctx, cancel := context.WithDeadline(ctx, started.Add(c.budget))
	defer cancel()
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := repoRoot(wd)
	if err != nil {
		return err
	}
	list := entries(c.quick)
	for _, name := range c.only {
		if !slices.ContainsFunc(list, func(e entry) bool { return e.name == name }) {
			return fmt.Errorf("--only %q: no such entry (see --list)", name)
		}
	}
	selected := func(e entry) bool { return len(c.only) == 0 || slices.Contains(c.only, e.name) }
	if err := checkNoFile(slices.DeleteFunc(slices.Clone(list), func(e entry) bool { return !selected(e) })); err != nil {
		return err
	}
	if c.out == "" {
		d, err := os.MkdirTemp("", "switchboard-bench-")
		if err != nil {
			return err
		}
		c.out = d
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	out, err := filepath.Abs(c.out)
	if err != nil {
		return err
	}
	logf("results go to %s", out)

	bins := map[string]string{
		"switchboard": filepath.Join(out, "switchboard"), "load": filepath.Join(out, "load"),
		"fiber": filepath.Join(out, "peer-fiber"), "centrifuge": filepath.Join(out, "peer-centrifuge"),
	}
	loadDir := filepath.Join(root, "test", "load")
	for _, b := range []struct{ dir, pkg, bin string }{
		{root, "./edge", bins["switchboard"]},
		{loadDir, ".", bins["load"]},
		{filepath.Join(loadDir, "peers", "fiber"), ".", bins["fiber"]},
		{filepath.Join(loadDir, "peers", "centrifuge"), ".", bins["centrifuge"]},
	} {
		logf("go build -o %s %s (in %s)", b.bin, b.pkg, b.dir)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, b.pkg)
		cmd.Dir = b.dir
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s in %s: %w\n%s", b.pkg, b.dir, err, o)
		}
	}

	var results []entryResult
	for _, e := range list {
		res := entryResult{entry: e}
		if !selected(e) {
			res.skipped = notSelected
			results = append(results, res)
			continue
		}
		left := time.Until(started.Add(c.budget))
		if left < e.estimate/2 || left < 20*time.Second {
			res.skipped = fmt.Sprintf("not measured: %s left of the %s budget", left.Round(time.Second), c.budget)
			logf("%s: %s", e.name, res.skipped)
			results = append(results, res)
			continue
		}
		res.lines, res.wall, res.err = runEntry(ctx, c, e, bins, out, left)
		if res.err != nil {
			logf("%s: %v", e.name, res.err)
		}
		results = append(results, res)
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ctx.Err() // interrupted
		}
	}

	block := render(results, meta(c, time.Since(started)))
	if err := os.WriteFile(filepath.Join(out, "block.md"), []byte(block), 0o644); err != nil {
		return err
	}
	fmt.Print(block)
	if c.doc != "" {
		if err := rewriteDoc(c.doc, block); err != nil {
			return err
		}
		logf("rewrote the bench block of %s", c.doc)
	}
	return nil
}

// repoRoot is the repository holding the load tool's module: from dir
// upwards, the first directory with test/load/go.mod. The edge is built
// there, the load tool and the peers in their modules under it.
func repoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "test", "load", "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no test/load/go.mod in %s or above: run inside the repository", dir)
		}
	}
}

// checkNoFile fails early when the idle entry cannot hold its
// connections: the tool raises its soft limit to the hard one.
func checkNoFile(list []entry) error {
	need := uint64(0)
	for _, e := range list {
		if i := slices.Index(e.args, "--conns"); i >= 0 && e.scenario == "idle" {
			n, _ := strconv.ParseUint(e.args[i+1], 10, 64)
			need = max(need, n+512)
		}
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Max < need {
		return fmt.Errorf("the open-file limit is %d and the idle entry needs %d: run `ulimit -n 20000` first", lim.Max, need)
	}
	return nil
}

// runEntry runs one entry's load tool process and returns its JSON lines.
func runEntry(ctx context.Context, c config, e entry, bins map[string]string, out string, left time.Duration) ([]obj, time.Duration, error) {
	jsonPath := filepath.Join(out, e.name+".jsonl")
	args := append([]string{e.scenario}, e.args...)
	args = append(args, "--server-bin", bins["switchboard"], "--json", jsonPath, "--html", filepath.Join(out, e.name+".html"),
		"--progress", "plain", "--timeout", left.Round(time.Second).String())
	if e.peers {
		args = append(args, "--peer", "switchboard,fiber,centrifuge", "--peer-bin", "fiber="+bins["fiber"], "--peer-bin", "centrifuge="+bins["centrifuge"])
	}
	if c.serverCPU >= 0 && runtime.NumCPU() > 1 {
		args = append(args, "--server-cpu", strconv.Itoa(c.serverCPU))
	}
	logf("%s: load %s", e.name, strings.Join(args, " "))
	start := time.Now()
	cmd := exec.CommandContext(ctx, bins["load"], args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // the Markdown summary and progress
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	runErr := cmd.Run()
	wall := time.Since(start)
	lines, err := readLines(jsonPath)
	if runErr != nil {
		return lines, wall, fmt.Errorf("load tool: %w", runErr)
	}
	return lines, wall, err
}

func readLines(path string) ([]obj, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseLines(bytes.NewReader(b))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "matrix: "+format+"\n", args...)
}

// machineInfo describes where and when the matrix ran.
type machineInfo struct {
	when      time.Time
	commit    string
	cpus      int
	model     string
	kernel    string
	memory    string
	goVersion string
	noFile    uint64
	pinned    string
	quick     bool
	took      time.Duration
	budget    time.Duration
}

func meta(c config, took time.Duration) machineInfo {
	m := machineInfo{when: time.Now().UTC(), cpus: runtime.NumCPU(), goVersion: runtime.Version(), quick: c.quick, took: took, budget: c.budget}
	m.commit = "unknown"
	if b, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		m.commit = strings.TrimSpace(string(b))
		if b, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(b)) > 0 {
			m.commit += " with uncommitted changes"
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.model = cpuModel(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.memory = memTotal(string(b))
	}
	if b, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.goVersion = strings.TrimSpace(string(b))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		m.noFile = lim.Max
	}
	if c.serverCPU >= 0 && runtime.NumCPU() > 1 {
		m.pinned = fmt.Sprintf("servers pinned to CPU %d, the load tool to the others (taskset)", c.serverCPU)
	} else {
		m.pinned = "no CPU pinning"
	}
	return m
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// memTotal is MemTotal of /proc/meminfo in GiB.
func memTotal(meminfo string) string {
	for _, line := range strings.Split(meminfo, "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return ""
}

// notSelected marks the entries --only left out.
const notSelected = "not run (--only)"

const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

// rewriteDoc replaces what lies between the markers in path with block.
func rewriteDoc(path, block string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := replaceBlock(string(b), block)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

func replaceBlock(doc, block string) (string, error) {
	i := strings.Index(doc, beginMarker)
	j := strings.Index(doc, endMarker)
	if i < 0 || j < 0 || j < i || strings.Count(doc, beginMarker) != 1 || strings.Count(doc, endMarker) != 1 {
		return "", fmt.Errorf("want exactly one %s followed by one %s", beginMarker, endMarker)
	}
	return doc[:i+len(beginMarker)] + "\n" + strings.TrimSpace(block) + "\n" + doc[j:], nil
}
