// Command load puts a switchboard edge under load and reports what it
// delivers (issue #7). Scenarios:
//
//	fanout    S subscribers in one room (or --rooms N rooms of S/N each), one
//	          publisher (POST /send, in no room; --publisher ws for a
//	          WebSocket member) publishing --rate msg/s for --duration;
//	          delivered/s, loss and publish→deliver latency percentiles
//	saturate  fanout with the rate raised in steps until less than 99% is
//	          delivered or p99 exceeds 250 ms; the highest sustainable
//	          deliveries/s
//	idle      C idle connections from many 127.0.0.x addresses: the
//	          server's RSS and goroutines per connection, and connect rate
//
// Run against a built binary that the tool starts and stops:
//
//	go build -o /tmp/sb ./edge
//	go run ./test/load fanout --server-bin /tmp/sb --subs 1000 --rate 100 --duration 10s
//	go run ./test/load saturate --server-bin /tmp/sb --server-cpu 0 --subs 1000
//	go run ./test/load idle --server-bin /tmp/sb --conns 10000
//
// or against a running edge (--url http://127.0.0.1:8080, optionally
// --server-pid to read its RSS and CPU time from /proc). Subscribers use
// --transport websocket, sse or longpoll. --runs N repeats fanout or
// saturate and adds a line with the median (and min–max) of each figure.
// All traffic stays on 127.0.0.0/8; every phase is bounded by a duration
// or a count and the whole run by --timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

var scenarios = []string{"fanout", "saturate", "idle"}

// options are the command-line settings. The zero value is not useful;
// defaultOptions fills in the defaults.
type options struct {
	scenario       string
	transport      string
	publisher      string
	publishWorkers int
	runs           int
	maxOther       float64

	url        string
	serverBin  string
	serverArgs []string
	serverCPU  int
	serverPID  int

	subs     int
	rooms    int
	rate     float64
	duration time.Duration
	payload  int
	drain    time.Duration

	rateStart   float64
	rateFactor  float64
	maxSteps    int
	minDelivery float64
	maxP99      time.Duration

	conns   int
	settle  time.Duration
	samples int

	dialConcurrency int
	sourceIPs       int
	jsonPath        string
	htmlPath        string
	timeout         time.Duration
	progress        string
	commandLine     string // for the HTML report

	stdout, stderr io.Writer
}

func defaultOptions() options {
	return options{
		scenario: "fanout", transport: "websocket", publisher: "http", publishWorkers: 8, runs: 1, maxOther: 0.25, serverCPU: -1,
		subs: 1000, rooms: 1, rate: 100, duration: 10 * time.Second, payload: 128, drain: 5 * time.Second,
		rateStart: 50, rateFactor: 1.5, maxSteps: 20, minDelivery: 99, maxP99: 250 * time.Millisecond,
		conns: 10000, settle: 20 * time.Second, samples: 5,
		dialConcurrency: 64, sourceIPs: 250, timeout: 15 * time.Minute, progress: "auto",
		stdout: os.Stdout, stderr: os.Stderr,
	}
}

// serverFlags are passed to a started edge so that the load itself is not
// refused: no inbound rate limit (the publisher sends far more than 50
// frames/s), no cap on the publisher's rooms, and warn-level logs (info
// logs every connection).
var serverFlags = []string{"--rate-limit", "-1", "--max-rooms", "-1", "--log-level", "warn"}

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&o.scenario, "scenario", o.scenario, "scenario: "+strings.Join(scenarios, ", ")+" (or give it as the first argument)")
	fs.StringVar(&o.transport, "transport", o.transport, "subscriber transport: websocket, sse or longpoll")
	fs.StringVar(&o.publisher, "publisher", o.publisher, "fanout, saturate: http publishes through POST /send and is in no room; ws is one WebSocket connection that joins the rooms (and receives its own copies)")
	fs.IntVar(&o.publishWorkers, "publish-workers", o.publishWorkers, "--publisher http: concurrent keep-alive POST /send connections")
	fs.Float64Var(&o.maxOther, "max-other-cpu", o.maxOther, "fanout, saturate (with a known server pid): a step during which other processes used more CPU cores than this is run again, up to 3 times, and marked disturbed if it stays so; negative: never")
	fs.IntVar(&o.runs, "runs", o.runs, "fanout, saturate: repeat the scenario this many times (fresh subscribers and rooms, same server) and report the median of each figure with min–max")
	fs.StringVar(&o.url, "url", o.url, "target a running edge at this http://127.x.x.x:port instead of starting one")
	fs.StringVar(&o.serverBin, "server-bin", o.serverBin, "start this built edge binary (go build -o /tmp/sb ./edge) on a free 127.0.0.1 port, with "+strings.Join(serverFlags, " "))
	fs.Func("server-arg", "extra flag for the started edge, repeatable (e.g. --server-arg=--send-queue=1024)", func(s string) error {
		o.serverArgs = append(o.serverArgs, s)
		return nil
	})
	fs.IntVar(&o.serverCPU, "server-cpu", o.serverCPU, "pin the started edge to this CPU (taskset -c) and this tool to the others; negative: no pinning")
	fs.IntVar(&o.serverPID, "server-pid", o.serverPID, "with --url: the edge's pid, to read its RSS and CPU time from /proc")
	fs.IntVar(&o.subs, "subs", o.subs, "fanout, saturate: subscribers")
	fs.IntVar(&o.rooms, "rooms", o.rooms, "fanout, saturate: rooms; subscriber i joins room i mod N, the publisher publishes to them round-robin")
	fs.Float64Var(&o.rate, "rate", o.rate, "fanout: messages published per second (in total over all rooms)")
	fs.DurationVar(&o.duration, "duration", o.duration, "fanout: how long to publish; saturate: how long each step publishes")
	fs.IntVar(&o.payload, "payload", o.payload, "bytes of JSON data per message (it carries the send time)")
	fs.DurationVar(&o.drain, "drain", o.drain, "after publishing, wait at most this long for the last deliveries")
	fs.Float64Var(&o.rateStart, "rate-start", o.rateStart, "saturate: rate of the first step, msg/s")
	fs.Float64Var(&o.rateFactor, "rate-factor", o.rateFactor, "saturate: each step multiplies the rate by this")
	fs.IntVar(&o.maxSteps, "max-steps", o.maxSteps, "saturate: at most this many steps")
	fs.Float64Var(&o.minDelivery, "min-delivery", o.minDelivery, "saturate: a step is sustainable if at least this % is delivered…")
	fs.DurationVar(&o.maxP99, "max-p99", o.maxP99, "saturate: …with p99 latency at most this")
	fs.IntVar(&o.conns, "conns", o.conns, "idle: connections to open")
	fs.DurationVar(&o.settle, "settle", o.settle, "idle: wait this long after connecting before sampling (GC and fasthttp's idle workers settle)")
	fs.IntVar(&o.samples, "samples", o.samples, "idle: readings one second apart per measurement; the median is reported")
	fs.IntVar(&o.dialConcurrency, "dial-concurrency", o.dialConcurrency, "connections opened in parallel")
	fs.IntVar(&o.sourceIPs, "source-ips", o.sourceIPs, "spread connections over this many source addresses 127.0.0.2…")
	fs.StringVar(&o.jsonPath, "json", o.jsonPath, "write results as JSON lines to this file (default: stdout, and the Markdown summary to stderr)")
	fs.StringVar(&o.htmlPath, "html", o.htmlPath, "write an HTML report with inline SVG charts to this file")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "bound on the whole run")
	fs.StringVar(&o.progress, "progress", o.progress, "progress display: auto (a bar on a terminal, plain lines otherwise), bar, plain or off")
	return fs
}

func main() {
	o := defaultOptions()
	if err := parseArgs(&o, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

func parseArgs(o *options, args []string) error {
	fs := newFlagSet(o)
	fs.SetOutput(o.stderr)
	fs.Usage = func() {
		fmt.Fprintf(o.stderr, "Usage: go run ./test/load [fanout|saturate|idle] [flags]\n\n"+
			"  fanout    S subscribers, one publisher (POST /send) at --rate for --duration: delivered/s, loss, latency\n"+
			"  saturate  fanout, rate raised by --rate-factor per step until < --min-delivery %% or p99 > --max-p99\n"+
			"  idle      --conns idle WebSocket connections: server RSS and goroutines per connection, connect rate\n\n"+
			"Target: --server-bin (started and stopped by the tool) or --url (a running edge).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	o.commandLine = strings.Join(append([]string{"go run ./test/load"}, args...), " ")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.scenario, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o.validate()
}

func (o *options) validate() error {
	switch {
	case !contains(scenarios, o.scenario):
		return fmt.Errorf("unknown scenario %q: use %s", o.scenario, strings.Join(scenarios, ", "))
	case transports[o.transport] == nil:
		return fmt.Errorf("--transport %q: use websocket, sse or longpoll", o.transport)
	case o.scenario == "idle" && o.transport == "longpoll":
		return errors.New("idle measures held connections: use --transport websocket or sse")
	case publishers[o.publisher] == nil:
		return fmt.Errorf("--publisher %q: use http or ws", o.publisher)
	case o.publishWorkers < 1 || o.publishWorkers > 256:
		return fmt.Errorf("--publish-workers %d: use 1 to 256", o.publishWorkers)
	case o.runs < 1 || o.runs > 100:
		return fmt.Errorf("--runs %d: use 1 to 100", o.runs)
	case (o.url == "") == (o.serverBin == ""):
		return errors.New("give exactly one of --server-bin (start an edge) and --url (target a running one)")
	case o.serverCPU >= 0 && o.serverBin == "":
		return errors.New("--server-cpu needs --server-bin")
	case o.serverPID != 0 && o.url == "":
		return errors.New("--server-pid goes with --url")
	case o.subs < 1 || o.rooms < 1 || o.rooms > o.subs:
		return fmt.Errorf("--subs %d, --rooms %d: need 1 <= rooms <= subs", o.subs, o.rooms)
	case o.rate <= 0 || o.rateStart <= 0 || o.rateFactor <= 1:
		return errors.New("--rate and --rate-start must be positive and --rate-factor above 1")
	case o.duration < time.Second || o.drain < 0:
		return errors.New("--duration must be at least 1s and --drain not negative")
	case o.payload < 64 || o.payload > 32<<10:
		return fmt.Errorf("--payload %d: use 64 to 32768 bytes", o.payload)
	case o.maxSteps < 1 || o.maxSteps > 100:
		return fmt.Errorf("--max-steps %d: use 1 to 100", o.maxSteps)
	case o.conns < 1 || o.samples < 1 || o.settle < 0:
		return errors.New("--conns and --samples must be positive, --settle not negative")
	case o.dialConcurrency < 1 || o.sourceIPs < 1 || o.sourceIPs > 253:
		return errors.New("--dial-concurrency must be positive and --source-ips 1 to 253")
	case !contains([]string{"auto", "bar", "plain", "off"}, o.progress):
		return fmt.Errorf("--progress %q: use auto, bar, plain or off", o.progress)
	}
	if o.url != "" {
		u, err := url.Parse(o.url)
		if err != nil || u.Scheme != "http" || u.Port() == "" {
			return fmt.Errorf("--url %q: want http://127.x.x.x:port", o.url)
		}
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			return fmt.Errorf("--url %q: only 127.0.0.0/8 targets are allowed", o.url)
		}
	} else if _, err := os.Stat(o.serverBin); err != nil {
		return fmt.Errorf("--server-bin: %w", err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// edgeTarget is the edge a run loads, and how to observe and stop it.
type edgeTarget struct {
	target
	pid  int // 0: unknown (no /proc readings)
	proc *edgeproc.Process
}

// startTarget starts the edge (or checks the running one) and pins CPUs.
func startTarget(ctx context.Context, o options) (*edgeTarget, error) {
	if o.url != "" {
		u, _ := url.Parse(o.url)
		t := &edgeTarget{target: target{host: u.Host}, pid: o.serverPID}
		if err := edgeproc.WaitHealthy(ctx, t.httpBase(), nil); err != nil {
			return nil, err
		}
		return t, nil
	}
	if o.serverCPU >= 0 {
		if err := pinSelf(o.serverCPU); err != nil {
			return nil, err
		}
	}
	args := append(append([]string{}, serverFlags...), o.serverArgs...)
	p, addr, err := edgeproc.Start(edgeproc.Options{Bin: o.serverBin, Args: args, CPU: o.serverCPU})
	if err != nil {
		return nil, err
	}
	t := &edgeTarget{target: target{host: addr}, pid: p.PID(), proc: p}
	if err := edgeproc.WaitHealthy(ctx, t.httpBase(), p.Exited()); err != nil {
		t.stop()
		return nil, fmt.Errorf("%w\nserver log:\n%s", err, p.LogTail())
	}
	return t, nil
}

func (t *edgeTarget) stop() {
	if t.proc != nil {
		t.proc.Stop(5 * time.Second)
	}
}

// pinSelf moves every thread of this process off serverCPU (taskset -a -p)
// and sets GOMAXPROCS to the CPUs left. Threads the runtime starts later
// inherit the mask.
func pinSelf(serverCPU int) error {
	n := runtime.NumCPU()
	if serverCPU >= n {
		return fmt.Errorf("--server-cpu %d: this process sees CPUs 0-%d", serverCPU, n-1)
	}
	if n < 2 {
		return errors.New("--server-cpu needs at least 2 CPUs (one for the server, the rest for the load)")
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("--server-cpu needs taskset (util-linux): %w", err)
	}
	var cpus []string
	for i := range n {
		if i != serverCPU {
			cpus = append(cpus, strconv.Itoa(i))
		}
	}
	list := strings.Join(cpus, ",")
	if out, err := exec.Command(ts, "-a", "-p", "-c", list, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset -a -p -c %s %d: %w: %s", list, os.Getpid(), err, out)
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

func run(ctx context.Context, o options) error {
	out, err := newOutput(o)
	if err != nil {
		return err
	}
	defer out.close()
	t, err := startTarget(ctx, o)
	if err != nil {
		return err
	}
	defer t.stop()
	switch o.scenario {
	case "idle":
		err = runIdle(ctx, o, t, out)
	default:
		err = runFanout(ctx, o, t, out)
	}
	if err != nil && t.proc != nil {
		if tail := t.proc.LogTail(); tail != "" {
			err = fmt.Errorf("%w\nserver log (last lines):\n%s", err, tail)
		}
	}
	return errors.Join(err, out.finish(o))
}
