package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "kfake" {
		// The suite's Kafka broker process (see runKfake).
		os.Exit(runKfake(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the suite's flags.
type options struct {
	brokers    []string
	messages   int64
	duration   time.Duration
	subs       int
	browsers   int
	rooms      int
	roomsPer   int
	publishers int
	faults     []string
	pause      time.Duration
	stall      time.Duration
	catchup    time.Duration
	out        string
	edgeBin    string
	natsBin    string
}

var allFaults = []string{"edge-kill", "edge-term", "broker-restart", "broker-pause", "partition", "retention", "stall"}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "redis,nats,postgres", "brokers to run on, comma-separated: redis, nats, postgres (Debian's postgresql), kafka (kfake in a process of its own: a restart loses its log)")
	faults := fs.String("faults", strings.Join(allFaults, ","), "faults to inject, in this order, spread over the publishing: "+strings.Join(allFaults, ", "))
	fs.Int64Var(&o.messages, "messages", 10000, "messages published per broker (the full run: 100000)")
	fs.DurationVar(&o.duration, "duration", 40*time.Second, "how long the publishing takes (the rate is messages/duration)")
	fs.IntVar(&o.subs, "subs", 10, "subscribers per transport (WebSocket, SSE, long-poll)")
	fs.IntVar(&o.browsers, "browsers", 3, "subscribers through the browser client in headless Chromium, round-robin over WebSocket, SSE, long-poll (0: none; needs chromium)")
	fs.IntVar(&o.rooms, "rooms", 20, "rooms published to")
	fs.IntVar(&o.roomsPer, "rooms-per-sub", 3, "rooms each subscriber is in")
	fs.IntVar(&o.publishers, "publishers", 16, "concurrent publishing backends")
	fs.DurationVar(&o.pause, "pause", 8*time.Second, "broker-pause, partition: how long the broker is stopped (SIGSTOP), or one edge cut from it")
	fs.DurationVar(&o.stall, "stall", 5*time.Second, "stall: how long stalled readers read nothing (longer while the stall's burst is published, until every policy acted)")
	fs.DurationVar(&o.catchup, "catchup", 90*time.Second, "after the last publish, how long every subscriber has to receive everything")
	fs.StringVar(&o.out, "out", "test/artifacts/chaos", "directory for the report (results.jsonl, report.md, timeline.html) and the processes' logs")
	fs.StringVar(&o.edgeBin, "edge-bin", "", "switchboard binary (default: built from ./edge)")
	fs.StringVar(&o.natsBin, "nats-bin", "", "nats-server binary (default: built from the module's nats-server version)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.brokers = splitList(*brokers)
	o.faults = splitList(*faults)
	for _, b := range o.brokers {
		if b != "redis" && b != "nats" && b != "kafka" && b != "postgres" {
			return o, fmt.Errorf("--brokers: %q is not one of redis, nats, postgres, kafka", b)
		}
	}
	for _, f := range o.faults {
		if !contains(allFaults, f) {
			return o, fmt.Errorf("--faults: %q is not one of %s", f, strings.Join(allFaults, ", "))
		}
	}
	switch {
	case len(o.brokers) == 0:
		return o, errors.New("--brokers: give at least one")
	case o.messages < 1:
		return o, errors.New("--messages: must be positive")
	case o.duration <= 0 || o.catchup <= 0 || o.pause <= 0 || o.stall <= 0:
		return o, errors.New("--duration, --catchup, --pause and --stall must be positive")
	case o.subs < 1 || o.rooms < 1 || o.roomsPer < 1 || o.roomsPer > o.rooms || o.publishers < 1:
		return o, errors.New("--subs, --rooms, --publishers must be positive and --rooms-per-sub between 1 and --rooms")
	case o.browsers < 0:
		return o, errors.New("--browsers: must be 0 (none) or more")
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	status := func(format string, a ...any) {
		fmt.Fprintf(stderr, "chaos %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	bins, cleanup, err := buildBins(ctx, o, status)
	defer cleanup()
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	var results []*result
	failed := false
	for _, b := range o.brokers {
		r, err := runBroker(ctx, o, b, bins, status)
		if err != nil {
			fmt.Fprintf(stderr, "chaos: %s: %v\n", b, err)
			failed = true
			if r == nil {
				continue
			}
		}
		results = append(results, r)
		if len(r.Failures) > 0 {
			failed = true
		}
	}
	if err := writeReports(o.out, results, stdout); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	if failed {
		fmt.Fprintln(stderr, "chaos: FAILED")
		return 1
	}
	fmt.Fprintln(stderr, "chaos: every target met")
	return 0
}

// bins are the binaries the suite runs.
type bins struct{ edge, nats, redis, chromium, self string }

// buildBins builds what was not given into a temporary directory.
func buildBins(ctx context.Context, o options, status func(string, ...any)) (bins, func(), error) {
	var b bins
	dir, err := os.MkdirTemp("", "switchboard-chaos-bin-")
	if err != nil {
		return b, func() {}, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	root, err := moduleRoot(ctx)
	if err != nil {
		return b, cleanup, err
	}
	build := func(out, pkg string) error {
		status("building %s", pkg)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
		return nil
	}
	if b.edge = o.edgeBin; b.edge == "" {
		b.edge = filepath.Join(dir, "switchboard")
		if err := build(b.edge, "./edge"); err != nil {
			return b, cleanup, err
		}
	}
	if contains(o.brokers, "nats") {
		if b.nats = o.natsBin; b.nats == "" {
			b.nats = filepath.Join(dir, "nats-server")
			// The version in go.mod: the one the embedded tests run.
			if err := build(b.nats, "github.com/nats-io/nats-server/v2"); err != nil {
				return b, cleanup, err
			}
		}
	}
	if o.browsers > 0 {
		if b.chromium, err = findChromium(); err != nil {
			return b, cleanup, err
		}
	}
	if contains(o.brokers, "kafka") {
		// kfake runs as this binary's own subcommand.
		if b.self, err = os.Executable(); err != nil {
			return b, cleanup, err
		}
	}
	if contains(o.brokers, "redis") {
		if b.redis, err = exec.LookPath("redis-server"); err != nil {
			return b, cleanup, fmt.Errorf("redis-server: %w (install it: apt-get install -y redis-server; .ci/run does)", err)
		}
	}
	return b, cleanup, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the suite inside the switchboard module (make chaos)")
	}
	return filepath.Dir(mod), nil
}

// waitReady polls an edge's /readyz (broker reachable) until 200.
func waitReady(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("edge %s: %w: %w", addr, errNotReady, ctx.Err())
		case <-tick.C:
		}
	}
}
