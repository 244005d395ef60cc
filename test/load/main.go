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
//	churn     a bounded connect/disconnect storm: waves of C connections
//	          opened and closed for --duration; connect rate, and whether
//	          the server's connections, goroutines and memory return to
//	          their baseline
//	resume    S subscribers see one message, disconnect, M messages are
//	          published, and all reconnect at once with since=<the last id
//	          they saw>: replay throughput, loss and duplicates
//	storm     two nodes on a broker of their own (redis-server, or
//	          nats-server with --broker nats); S subscribers on node A, a
//	          backend publishing through B; A is SIGKILLed and everyone
//	          resumes on B while publishing goes on: recovered:false,
//	          loss, duplicates, time until all caught up, B's publish
//	          rate and extra CPU (storm.go)
//	pubcluster  the same two nodes and C concurrent backends publishing
//	          through both: accepted/s, latency, node CPU per publish
//	          (pubcluster.go)
//
// fanout and saturate also take --payload chat or market (realistic chat
// messages, ~2 KB market-data snapshots of random figures; default pad,
// padded constant text) and --compress (WebSocket subscribers offer
// permessage-deflate; --compress=both measures each server without and
// with the offer in every run). With the offer, only a sample of about
// --inflate-sample subscribers (default 10) inflates and is measured; the
// others read every byte but drop compressed messages unread, and
// deliveries/s are extrapolated (sample.go). Every fanout step reports
// the bytes the subscribers read from their sockets per delivery, next
// to the mean envelope and the envelope deflated on its own (the floor
// of compressing each message once without context takeover), and the
// server's and the tool's CPU time per delivery.
//
// Peers in the same run (--peer switchboard,fiber,centrifuge): the same
// scenario, payload and measurement against a raw Fiber broadcast server
// and Centrifuge's core library (storm and pubcluster: on its Redis
// broker), each a nested module under test/load/peers that the tool
// builds with go build (or --peer-bin).
// Servers are measured in turn within each run, and every result names
// its server, so the Markdown and HTML reports show ratios to Switchboard.
//
// The tool is a module of its own (test/load, with the peers nested in
// it as modules of their own), so that nothing it uses reaches a program
// that imports Switchboard. Run it
// from the repository root with go -C, against a built binary that the
// tool starts and stops:
//
//	go build -o /tmp/sb ./edge
//	go -C test/load run . fanout --server-bin /tmp/sb --subs 1000 --rate 100 --duration 10s
//	go -C test/load run . saturate --server-bin /tmp/sb --server-cpu 0 --subs 1000
//	go -C test/load run . idle --server-bin /tmp/sb --conns 10000
//	go -C test/load run . fanout --server-bin /tmp/sb --peer switchboard,fiber,centrifuge --runs 3
//	go -C test/load run . fanout --server-bin /tmp/sb --server-cpu 0 --peer switchboard,centrifuge --payload market --compress=both --runs 3
//	go -C test/load run . churn --server-bin /tmp/sb --conns 2000 --duration 15s
//	go -C test/load run . resume --server-bin /tmp/sb --subs 1000 --messages 500 --live-rate 100
//	go -C test/load run . storm --server-bin /tmp/sb --peer switchboard,centrifuge --runs 3
//	go -C test/load run . pubcluster --server-bin /tmp/sb --peer switchboard,centrifuge --publishers 64
//
// The standard matrix of all of these, with medians written into
// docs/performance.md, is test/load/matrix (make bench).
//
// or against a running edge (--url http://127.0.0.1:8080, optionally
// --server-pid to read its RSS and CPU time from /proc). Subscribers use
// --transport websocket, sse or longpoll (peers: websocket). --runs N
// repeats the scenario and adds a line with the median (and min–max) of
// each figure; idle, churn and resume start a fresh server for each run.
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
)

var scenarios = []string{"fanout", "saturate", "idle", "churn", "resume", "storm", "pubcluster"}

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
	publishURL string
	serverBin  string
	serverArgs []string
	serverCPU  int
	serverPID  int
	peers      []string          // server kinds, in the order measured
	peerBins   map[string]string // --peer-bin name=path
	peersDir   string

	subs     int
	rooms    int
	rate     float64
	duration time.Duration
	payload  int    // pad: bytes of data
	payloadK string // --payload kind: pad, chat or market
	compress compressMode
	// inflateSample: with the deflate offer, only about this many
	// subscribers inflate and are measured (sample.go); 0: all.
	inflateSample int
	drain         time.Duration

	rateStart   float64
	rateFactor  float64
	maxSteps    int
	minDelivery float64
	maxP99      time.Duration

	conns   int
	settle  time.Duration
	samples int

	maxWaves int     // churn
	messages int     // resume
	liveRate float64 // resume

	pubRooms   int           // storm
	warmup     time.Duration // storm, pubcluster
	catchup    time.Duration // storm
	publishers int           // pubcluster
	broker     string        // storm, pubcluster: Switchboard's broker
	redisBin   string
	natsBin    string

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
		subs: 1000, rooms: 1, rate: 100, duration: 10 * time.Second, payload: 128, payloadK: "pad", inflateSample: defaultInflateSample, drain: 5 * time.Second,
		rateStart: 50, rateFactor: 1.5, maxSteps: 20, minDelivery: 99, maxP99: 250 * time.Millisecond,
		conns: 10000, settle: 20 * time.Second, samples: 5,
		maxWaves: 1000, messages: 500, pubRooms: 5000, warmup: 10 * time.Second, catchup: 30 * time.Second,
		publishers: 64, broker: "redis", redisBin: "redis-server", peers: []string{"switchboard"}, peerBins: map[string]string{},
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
	fs.IntVar(&o.publishWorkers, "publish-workers", o.publishWorkers, "--publisher http: concurrent keep-alive POST /send connections; storm: publishes in flight through node B (default 64)")
	fs.Float64Var(&o.maxOther, "max-other-cpu", o.maxOther, "fanout, saturate (with a known server pid): a step during which other processes used more CPU cores than this is run again, up to 3 times, and marked disturbed if it stays so; negative: never")
	fs.IntVar(&o.runs, "runs", o.runs, "repeat the scenario this many times and report the median of each figure with min–max (fanout, saturate: fresh subscribers and rooms on the same server; idle, churn, resume: a fresh server each run; storm, pubcluster: a fresh broker and nodes each run, the servers interleaved)")
	fs.StringVar(&o.url, "url", o.url, "target a running edge at this http://127.x.x.x:port instead of starting one")
	fs.StringVar(&o.publishURL, "publish-url", o.publishURL, "fanout, saturate with --url: publish through this other edge (http://127.x.x.x:port) of the same cluster, so messages cross the broker between nodes")
	fs.StringVar(&o.serverBin, "server-bin", o.serverBin, "start this built edge binary (go build -o /tmp/sb ./edge) on a free 127.0.0.1 port, with "+strings.Join(serverFlags, " "))
	fs.Func("server-arg", "extra flag for the started edge (not the peers), repeatable (e.g. --server-arg=--send-queue=1024)", func(s string) error {
		o.serverArgs = append(o.serverArgs, s)
		return nil
	})
	fs.IntVar(&o.serverCPU, "server-cpu", o.serverCPU, "pin the started edge to this CPU (taskset -c) and this tool to the others; negative: no pinning")
	fs.IntVar(&o.serverPID, "server-pid", o.serverPID, "with --url: the edge's pid, to read its RSS and CPU time from /proc")
	fs.Func("peer", "servers to load, comma-separated, measured in turn in each run: "+strings.Join(serverKindNames(), ", ")+" (default switchboard); peers are built from test/load/peers/<name> unless --peer-bin names a binary", func(s string) error {
		p, err := parsePeers(s)
		o.peers = p
		return err
	})
	fs.Func("peer-bin", "a built peer binary as name=path (e.g. fiber=/tmp/fiber), repeatable; a bare path when --peer names one peer", func(s string) error {
		name, path, ok := strings.Cut(s, "=")
		if !ok {
			name, path = "", s
		}
		o.peerBins[name] = path
		return nil
	})
	fs.StringVar(&o.peersDir, "peers-dir", o.peersDir, "directory holding the peers' modules (default: test/load/peers found from the working directory upwards)")
	fs.IntVar(&o.subs, "subs", o.subs, "fanout, saturate, resume, storm: subscribers (storm default 2000)")
	fs.IntVar(&o.rooms, "rooms", o.rooms, "fanout, saturate, resume: rooms; subscriber i joins room i mod N, the publisher publishes to them round-robin; storm: subscribed rooms (default 500); pubcluster: rooms published to (default 1000)")
	fs.Float64Var(&o.rate, "rate", o.rate, "fanout, storm: messages published per second (in total over all rooms; storm default 1300)")
	fs.DurationVar(&o.duration, "duration", o.duration, "fanout: how long to publish; saturate: how long each step publishes; churn: how long the storm lasts; resume: how long --live-rate publishes; storm: how long publishing goes on after node A is killed; pubcluster: how long is measured")
	fs.Func("payload", "data of each message (it carries the send time): pad (default: padded to 128 bytes; a number N pads to N bytes, 64 to 32768), or, for fanout and saturate, chat (chat messages of 150–300 bytes) or market (market-data snapshots of about 2 KB, 20 quotes of random figures)", func(s string) error {
		spec := payloadSpec{kind: "pad", size: o.payload}
		if err := parsePayload(s, &spec); err != nil {
			return err
		}
		o.payloadK, o.payload = spec.kind, spec.size
		return nil
	})
	fs.Var(&o.compress, "compress", "fanout, saturate with --transport websocket: the subscribers offer permessage-deflate (a started centrifuge peer gets --compression); --compress=both measures each server twice per run, without and with the offer; the fiber peer never accepts it")
	fs.IntVar(&o.inflateSample, "inflate-sample", o.inflateSample, "with the deflate offer (--compress): only about this many subscribers, spread over the rooms, inflate every message and are measured (loss, latency, wire bytes); the others read every byte but drop compressed messages unread, and deliveries/s are the sample's scaled up to all subscribers (marked extrapolated); 0, or at least --subs: all inflate")
	fs.DurationVar(&o.drain, "drain", o.drain, "after publishing, wait at most this long for the last deliveries")
	fs.Float64Var(&o.rateStart, "rate-start", o.rateStart, "saturate: rate of the first step, msg/s")
	fs.Float64Var(&o.rateFactor, "rate-factor", o.rateFactor, "saturate: each step multiplies the rate by this")
	fs.IntVar(&o.maxSteps, "max-steps", o.maxSteps, "saturate: at most this many steps")
	fs.Float64Var(&o.minDelivery, "min-delivery", o.minDelivery, "saturate: a step is sustainable if at least this % is delivered…")
	fs.DurationVar(&o.maxP99, "max-p99", o.maxP99, "saturate: …with p99 latency at most this")
	fs.IntVar(&o.conns, "conns", o.conns, "idle: connections to open; churn: connections per wave")
	fs.DurationVar(&o.settle, "settle", o.settle, "idle: wait this long after connecting before sampling (GC and fasthttp's idle workers settle); churn: wait at most this long for the server to return to its baseline")
	fs.IntVar(&o.maxWaves, "max-waves", o.maxWaves, "churn: at most this many waves (the storm also ends after --duration)")
	fs.IntVar(&o.messages, "messages", o.messages, "resume: messages published (in total over the rooms) while the subscribers are away (a started edge gets --history-size and --history-limit to keep them; with --url the edge must)")
	fs.Float64Var(&o.liveRate, "live-rate", o.liveRate, "resume: also publish this many msg/s for --duration from the moment they reconnect (live traffic racing the replay); 0: none")
	fs.IntVar(&o.pubRooms, "pub-rooms", o.pubRooms, "storm: rooms the publisher publishes to, round-robin; the --rooms subscribed rooms are spread among them")
	fs.DurationVar(&o.warmup, "warmup", o.warmup, "storm: publish this long before node A is killed; pubcluster: publish this long before measuring (pubcluster default 2s)")
	fs.DurationVar(&o.catchup, "catchup", o.catchup, "storm: after publishing stops, wait at most this long for every subscriber to have every message")
	fs.IntVar(&o.publishers, "publishers", o.publishers, "pubcluster: concurrent HTTP publishers (one message per request)")
	fs.StringVar(&o.broker, "broker", o.broker, "storm, pubcluster: the broker the Switchboard nodes use, redis or nats (the centrifuge peer always uses redis)")
	fs.StringVar(&o.redisBin, "redis-server-bin", o.redisBin, "storm, pubcluster: the redis-server binary")
	fs.StringVar(&o.natsBin, "nats-server-bin", o.natsBin, "storm, pubcluster with --broker nats: a nats-server binary (default: nats-server on PATH, else built with go install "+natsServerModule+")")
	fs.IntVar(&o.samples, "samples", o.samples, "idle: readings one second apart per measurement; the median is reported")
	fs.IntVar(&o.dialConcurrency, "dial-concurrency", o.dialConcurrency, "connections opened in parallel (storm: also the reconnects to node B in flight; default 256)")
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
		fmt.Fprintf(o.stderr, "Usage: go -C test/load run . [fanout|saturate|idle|churn|resume|storm|pubcluster] [flags]\n\n"+
			"  fanout    S subscribers, one publisher (POST /send) at --rate for --duration: delivered/s, loss, latency\n"+
			"  saturate  fanout, rate raised by --rate-factor per step until < --min-delivery %% or p99 > --max-p99\n"+
			"  idle      --conns idle WebSocket connections: server RSS and goroutines per connection, connect rate\n"+
			"  churn     waves of --conns connections opened and closed for --duration: connect rate, return to baseline\n"+
			"  resume    --subs subscribers away while --messages are published, then all reconnect with since=:\n"+
			"            replay throughput, loss, duplicates\n"+
			"  storm     two nodes on a broker; --subs on A, --rate msg/s through B; A is SIGKILLed and all resume\n"+
			"            on B: recovered:false, loss, duplicates, catch-up time, B's publish rate and extra CPU\n"+
			"  pubcluster  two nodes on a broker, --publishers backends publishing through both: accepted/s,\n"+
			"            latency, node CPU per publish\n\n"+
			"Target: --server-bin (started and stopped by the tool) or --url (a running edge).\n"+
			"Peers: --peer switchboard,fiber,centrifuge measures each in turn (fanout, saturate, idle, churn;\n"+
			"storm and pubcluster: switchboard, centrifuge).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	o.commandLine = strings.Join(append([]string{"go -C test/load run ."}, args...), " ")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.scenario, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	applyScenarioDefaults(o, set)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o.validate()
}

func (o *options) validate() error {
	switch {
	case !contains(scenarios, o.scenario):
		return fmt.Errorf("unknown scenario %q: use %s", o.scenario, strings.Join(scenarios, ", "))
	case !contains(transportNames, o.transport):
		return fmt.Errorf("--transport %q: use websocket, sse or longpoll", o.transport)
	case (o.scenario == "idle" || o.scenario == "churn" || o.scenario == "resume") && o.transport == "longpoll":
		return fmt.Errorf("%s needs held connections: use --transport websocket or sse", o.scenario)
	case publishers[o.publisher] == nil:
		return fmt.Errorf("--publisher %q: use http or ws", o.publisher)
	case o.publishWorkers < 1 || o.publishWorkers > 256:
		return fmt.Errorf("--publish-workers %d: use 1 to 256", o.publishWorkers)
	case o.runs < 1 || o.runs > 100:
		return fmt.Errorf("--runs %d: use 1 to 100", o.runs)
	case o.url != "" && o.serverBin != "":
		return errors.New("give one of --server-bin (start an edge) and --url (target a running server)")
	case o.url != "" && len(o.peers) > 1:
		return errors.New("--url targets one running server: --peer names one kind with it")
	case o.url == "" && o.serverBin == "" && contains(o.peers, "switchboard"):
		return errors.New("give --server-bin (start an edge) or --url (target a running one)")
	case o.serverCPU >= 0 && o.serverBin == "":
		return errors.New("--server-cpu needs --server-bin")
	case o.serverPID != 0 && o.url == "":
		return errors.New("--server-pid goes with --url")
	case o.scenario != "pubcluster" && (o.subs < 1 || o.rooms < 1 || o.rooms > o.subs):
		return fmt.Errorf("--subs %d, --rooms %d: need 1 <= rooms <= subs", o.subs, o.rooms)
	case o.rate <= 0 || o.rateStart <= 0 || o.rateFactor <= 1:
		return errors.New("--rate and --rate-start must be positive and --rate-factor above 1")
	case o.duration < time.Second || o.drain < 0:
		return errors.New("--duration must be at least 1s and --drain not negative")
	case o.payload < 64 || o.payload > 32<<10:
		return fmt.Errorf("--payload %d: use 64 to 32768 bytes", o.payload)
	case o.payloadK != "pad" && o.scenario != "fanout" && o.scenario != "saturate":
		return fmt.Errorf("--payload %s: only fanout and saturate; %s uses pad payloads", o.payloadK, o.scenario)
	case o.compress != compressOff && (o.scenario != "fanout" && o.scenario != "saturate" || o.transport != "websocket"):
		return errors.New("--compress goes with fanout or saturate and --transport websocket")
	case o.inflateSample < 0:
		return fmt.Errorf("--inflate-sample %d: use 0 (all inflate) or more", o.inflateSample)
	case o.maxSteps < 1 || o.maxSteps > 100:
		return fmt.Errorf("--max-steps %d: use 1 to 100", o.maxSteps)
	case o.conns < 1 || o.samples < 1 || o.settle < 0:
		return errors.New("--conns and --samples must be positive, --settle not negative")
	case o.maxWaves < 1 || o.messages < 1 || o.liveRate < 0:
		return errors.New("--max-waves and --messages must be positive, --live-rate not negative")
	case o.runs > 1 && o.url != "" && (o.scenario == "idle" || o.scenario == "churn"):
		return fmt.Errorf("%s --runs above 1 starts a fresh server per run: use --server-bin", o.scenario)
	case o.dialConcurrency < 1 || o.sourceIPs < 1 || o.sourceIPs > 253:
		return errors.New("--dial-concurrency must be positive and --source-ips 1 to 253")
	case !contains([]string{"auto", "bar", "plain", "off"}, o.progress):
		return fmt.Errorf("--progress %q: use auto, bar, plain or off", o.progress)
	}
	if err := o.validatePeers(); err != nil {
		return err
	}
	if err := o.validateCluster(); err != nil {
		return err
	}
	if o.publishURL != "" {
		if o.url == "" || (o.scenario != "fanout" && o.scenario != "saturate") {
			return errors.New("--publish-url goes with --url, for fanout or saturate")
		}
		if _, err := loopbackHost("--publish-url", o.publishURL); err != nil {
			return err
		}
	}
	if o.url != "" {
		if _, err := loopbackHost("--url", o.url); err != nil {
			return err
		}
	} else if o.serverBin != "" {
		if _, err := os.Stat(o.serverBin); err != nil {
			return fmt.Errorf("--server-bin: %w", err)
		}
	}
	return nil
}

// loopbackHost returns the host:port of an http://127.x.x.x:port URL.
func loopbackHost(flag, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return "", fmt.Errorf("%s %q: want http://127.x.x.x:port", flag, raw)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return "", fmt.Errorf("%s %q: only 127.0.0.0/8 targets are allowed", flag, raw)
	}
	return u.Host, nil
}

// validatePeers checks --peer against the scenario, transport and
// publisher, and resolves a bare --peer-bin.
func (o *options) validatePeers() error {
	var peers []string
	for _, name := range o.peers {
		if kindByName(name).peer {
			peers = append(peers, name)
		}
	}
	if path, ok := o.peerBins[""]; ok {
		if len(peers) != 1 {
			return errors.New("--peer-bin without name= needs exactly one peer in --peer")
		}
		delete(o.peerBins, "")
		o.peerBins[peers[0]] = path
	}
	for name, path := range o.peerBins {
		if !contains(peers, name) {
			return fmt.Errorf("--peer-bin %s=…: %s is not a peer in --peer", name, name)
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("--peer-bin: %w", err)
		}
	}
	for _, name := range o.peers {
		k := kindByName(name)
		if k.subscribe[o.transport] == nil {
			return fmt.Errorf("--peer %s speaks only WebSocket: use --transport websocket", name)
		}
		if k.peer && o.publisher != "http" {
			return fmt.Errorf("--peer %s: only --publisher http", name)
		}
		if k.peer && o.scenario == "resume" {
			return errors.New("resume measures Switchboard's since=: use --peer switchboard")
		}
	}
	return nil
}

// compressMode is --compress: whether the WebSocket subscribers offer
// permessage-deflate. A bare --compress means on.
type compressMode string

const (
	compressOff  compressMode = ""
	compressOn   compressMode = "on"
	compressBoth compressMode = "both"
)

func (m *compressMode) String() string {
	if m == nil || *m == compressOff {
		return "false"
	}
	return string(*m)
}

func (m *compressMode) Set(s string) error {
	switch s {
	case "true", "on", "1":
		*m = compressOn
	case "false", "off", "0":
		*m = compressOff
	case "both":
		*m = compressBoth
	default:
		return fmt.Errorf("%q: use true (offer it), false or both (each server measured without and with the offer)", s)
	}
	return nil
}

func (m *compressMode) IsBoolFlag() bool { return true }

// offers are the variants of a run: whether the subscribers offer
// permessage-deflate, in the order measured.
func (m compressMode) offers() []bool {
	switch m {
	case compressOn:
		return []bool{true}
	case compressBoth:
		return []bool{false, true}
	}
	return []bool{false}
}

func (o options) payloadSpec() payloadSpec { return payloadSpec{kind: o.payloadK, size: o.payload} }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
	if o.serverCPU >= 0 {
		if err := pinSelf(o.serverCPU); err != nil {
			return err
		}
	}
	specs, cleanup, err := resolveServers(ctx, o, out.note)
	if err != nil {
		return err
	}
	defer cleanup()
	switch o.scenario {
	case "fanout", "saturate":
		err = runFanout(ctx, o, specs, out)
	case "storm", "pubcluster":
		err = runCluster(ctx, o, specs, out)
	default:
		err = runEach(ctx, o, specs, out)
	}
	return errors.Join(err, out.finish(o))
}

// runEach runs idle, churn or resume --runs times against each server in
// turn, each run on a freshly started server (or the running one with
// --url), and ends with the medians of the runs' figures per server.
func runEach(ctx context.Context, o options, specs []serverSpec, out *output) error {
	figures := make([][]map[string]float64, len(specs))
	for run := 1; run <= o.runs; run++ {
		for i, spec := range specs {
			var extra []string
			if o.scenario == "resume" {
				extra = resumeServerFlags(o)
			}
			t, err := startServer(ctx, o, spec, extra...)
			if err != nil {
				return err
			}
			var fig map[string]float64
			switch o.scenario {
			case "idle":
				fig, err = runIdle(ctx, o, t, out, run)
			case "churn":
				fig, err = runChurn(ctx, o, t, out, run)
			case "resume":
				fig, err = runResume(ctx, o, t, out, run)
			}
			err = t.withLog(err)
			t.stop()
			if err != nil {
				if o.runs > 1 || len(specs) > 1 {
					err = fmt.Errorf("%s, run %d of %d: %w", spec.kind.name, run, o.runs, err)
				}
				return err
			}
			figures[i] = append(figures[i], fig)
		}
	}
	if o.runs > 1 {
		for i, spec := range specs {
			out.result(summarizeFigures(o, spec.kind.name, figures[i]))
		}
	}
	return nil
}
