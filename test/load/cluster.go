package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

// A cluster is what storm and pubcluster run against: a broker process
// of their own (redis-server, or nats-server for Switchboard with
// --broker nats) and two server nodes on it, A and B, all on 127.0.0.1
// and started afresh for every run and server. Switchboard nodes are the
// built edge (--server-bin) with --broker and an API key, so a backend
// publishes through POST /api/v1/publish; centrifuge nodes are the peer
// with --redis-url (Centrifuge's Redis broker, stream history, recovery),
// publishing through its POST /publish. The centrifuge peer has no NATS
// broker: it always runs on Redis.

// clusterAPIKey is the API key a started Switchboard node accepts.
const clusterAPIKey = "load-tool-api-key-0123456789"

// natsServerModule is what --broker nats builds when no nats-server is
// given or on PATH.
const natsServerModule = "github.com/nats-io/nats-server/v2@v2.15.2"

// brokerProc is a redis-server or nats-server started for one run.
type brokerProc struct {
	kind   string // redis or nats
	url    string // redis://127.0.0.1:P/0 or nats://127.0.0.1:P
	dir    string // its data directory, removed by stop
	cmd    *exec.Cmd
	exited chan struct{}

	mu   sync.Mutex
	tail []string
}

// brokerReadyLine is what each broker logs once it accepts clients.
var brokerReadyLine = map[string]string{
	"redis": "Ready to accept connections",
	"nats":  "Server is ready",
}

// startBroker runs bin (redis-server or nats-server) on a free 127.0.0.1
// port with a fresh data directory and no persistence beyond it, in its
// own process group that dies with this process, and waits (at most 10 s)
// until it logs that it is ready.
func startBroker(ctx context.Context, kind, bin string) (*brokerProc, error) {
	addr, err := edgeproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	dir, err := os.MkdirTemp("", "switchboard-load-"+kind+"-")
	if err != nil {
		return nil, err
	}
	b := &brokerProc{kind: kind, dir: dir, exited: make(chan struct{})}
	var args []string
	switch kind {
	case "redis":
		b.url = "redis://" + addr + "/0"
		args = []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	case "nats":
		b.url = "nats://" + addr
		args = []string{"-js", "-sd", dir, "-a", "127.0.0.1", "-p", port}
	default:
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("unknown broker %q", kind)
	}
	b.cmd = exec.Command(bin, args...)
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	b.cmd.Stderr = b.cmd.Stdout
	if err := b.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	ready := make(chan struct{})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			b.mu.Lock()
			if len(b.tail) == 20 {
				b.tail = b.tail[1:]
			}
			b.tail = append(b.tail, line)
			b.mu.Unlock()
			if strings.Contains(line, brokerReadyLine[kind]) {
				once.Do(func() { close(ready) })
			}
		}
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-ready:
		return b, nil
	case <-b.exited:
		err = fmt.Errorf("%s exited before it was ready", bin)
	case <-t.C:
		err = fmt.Errorf("%s not ready after 10 s", bin)
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.stop()
	return nil, fmt.Errorf("%w\n%s log:\n%s", err, kind, b.logTail())
}

func (b *brokerProc) pid() int { return b.cmd.Process.Pid }

func (b *brokerProc) logTail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.tail, "\n")
}

// stop ends the broker (SIGTERM, SIGKILL to its group after 5 s) and
// removes its data directory.
func (b *brokerProc) stop() {
	select {
	case <-b.exited:
	default:
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(5 * time.Second)
		select {
		case <-b.exited:
		case <-t.C:
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.exited
		}
		t.Stop()
	}
	_ = os.RemoveAll(b.dir)
}

// brokerBins are the broker binaries of a storm or pubcluster run.
type brokerBins struct {
	redis, nats string
}

// clusterBroker is the broker a kind of server runs on in these
// scenarios: Switchboard on --broker, the centrifuge peer on Redis.
func clusterBroker(o options, k *serverKind) string {
	if k == switchboard {
		return o.broker
	}
	return "redis"
}

// resolveBrokerBins finds redis-server (--redis-server-bin or PATH) and,
// when Switchboard runs on NATS, nats-server (--nats-server-bin, PATH, or
// built with go install into a temporary directory removed by cleanup).
func resolveBrokerBins(ctx context.Context, o options, specs []serverSpec, status func(string)) (bins brokerBins, cleanup func(), err error) {
	cleanup = func() {}
	need := map[string]bool{}
	for _, s := range specs {
		need[clusterBroker(o, s.kind)] = true
	}
	if need["redis"] {
		if bins.redis, err = exec.LookPath(o.redisBin); err != nil {
			return bins, cleanup, fmt.Errorf("redis-server (--redis-server-bin %q): %w; install it (apt-get install redis-server)", o.redisBin, err)
		}
	}
	if !need["nats"] {
		return bins, cleanup, nil
	}
	if o.natsBin != "" {
		bins.nats, err = exec.LookPath(o.natsBin)
		return bins, cleanup, err
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		bins.nats = p
		return bins, cleanup, nil
	}
	dir, err := os.MkdirTemp("", "switchboard-load-nats-bin-")
	if err != nil {
		return bins, cleanup, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	status("building nats-server (" + natsServerModule + ")")
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "install", natsServerModule)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return bins, func() {}, fmt.Errorf("go install %s: %w\n%s", natsServerModule, err, b)
	}
	bins.nats = filepath.Join(dir, "nats-server")
	return bins, cleanup, nil
}

// cluster is one run's broker and its two nodes.
type cluster struct {
	broker *brokerProc
	nodes  [2]*edgeTarget // A, B
}

// startCluster starts the broker for spec's kind and nodes A and B on it.
func startCluster(ctx context.Context, o options, spec serverSpec, bins brokerBins) (*cluster, error) {
	kind := clusterBroker(o, spec.kind)
	bin := bins.redis
	if kind == "nats" {
		bin = bins.nats
	}
	b, err := startBroker(ctx, kind, bin)
	if err != nil {
		return nil, err
	}
	c := &cluster{broker: b}
	for i, name := range []string{"A", "B"} {
		var args []string
		switch spec.kind {
		case switchboard:
			args = append(append(args, serverFlags...), "--broker", kind, "--broker-url", b.url, "--api-keys", clusterAPIKey)
			args = append(args, o.serverArgs...)
		case centrifugePeer:
			args = []string{"--redis-url", b.url, "--node-name", name}
		}
		// The fiber peer (pubcluster only) takes no broker: each node
		// answers alone, which is the floor of a publish over HTTP.
		p, addr, err := edgeproc.Start(edgeproc.Options{Bin: spec.bin, Args: args, CPU: -1})
		if err != nil {
			c.stop()
			return nil, err
		}
		t := &edgeTarget{target: target{host: addr, kind: spec.kind}, pid: p.PID(), proc: p}
		c.nodes[i] = t
		if err := edgeproc.WaitHealthy(ctx, t.httpBase(), p.Exited()); err != nil {
			c.stop()
			return nil, fmt.Errorf("%s node %s: %w\nlog:\n%s", spec.kind.name, name, err, p.LogTail())
		}
		if spec.kind == switchboard {
			if err := waitReady(ctx, t.httpBase(), p.Exited()); err != nil {
				c.stop()
				return nil, fmt.Errorf("%s node %s: %w\nlog:\n%s", spec.kind.name, name, err, p.LogTail())
			}
		}
	}
	return c, nil
}

// waitReady polls a Switchboard node's /readyz (broker reachable) for at
// most 10 s.
func waitReady(ctx context.Context, base string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s %s", resp.Status, b)
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			return errors.New("node exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready at %s/readyz: %w (last: %s)", base, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop stops both nodes and the broker.
func (c *cluster) stop() {
	for _, t := range c.nodes {
		if t != nil {
			t.stop()
		}
	}
	c.broker.stop()
}

// withLogs adds the nodes' and the broker's last log lines to err.
func (c *cluster) withLogs(err error) error {
	if err == nil {
		return nil
	}
	for i, t := range c.nodes {
		if t != nil && t.proc != nil {
			if tail := t.proc.LogTail(); tail != "" {
				err = fmt.Errorf("%w\nnode %c log (last lines):\n%s", err, 'A'+i, tail)
			}
		}
	}
	if tail := c.broker.logTail(); tail != "" {
		err = fmt.Errorf("%w\n%s log (last lines):\n%s", err, c.broker.kind, tail)
	}
	return err
}

// runCluster runs storm or pubcluster --runs times against every server,
// interleaved (run 1 of each, then run 2 of each, …), each on a fresh
// cluster, and ends with the medians of the runs' figures per server.
func runCluster(ctx context.Context, o options, specs []serverSpec, out *output) error {
	bins, cleanup, err := resolveBrokerBins(ctx, o, specs, out.note)
	if err != nil {
		return err
	}
	defer cleanup()
	figures := make([][]map[string]float64, len(specs))
	for run := 1; run <= o.runs; run++ {
		for i, spec := range specs {
			c, err := startCluster(ctx, o, spec, bins)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", spec.kind.name, run, err)
			}
			var fig map[string]float64
			switch o.scenario {
			case "storm":
				fig, err = runStorm(ctx, o, c, out, run)
			case "pubcluster":
				fig, err = runPubCluster(ctx, o, c, out, run)
			}
			err = c.withLogs(err)
			c.stop()
			if err != nil {
				return fmt.Errorf("%s, run %d of %d: %w", spec.kind.name, run, o.runs, err)
			}
			figures[i] = append(figures[i], fig)
		}
	}
	if o.runs > 1 {
		for i, spec := range specs {
			sum := summarizeFigures(o, spec.kind.name, figures[i])
			if o.scenario == "pubcluster" {
				sum.Transport = pubclusterKey
			}
			out.result(sum)
		}
	}
	return nil
}

// pubOutcome is how a server answered one publish.
type pubOutcome uint32

const (
	pubNone        pubOutcome = iota // not sent, or no answer yet
	pubAccepted                      // 200 with an id ({"published":1} from a peer)
	pubUnconfirmed                   // Switchboard 202 publish_unconfirmed: appended, not confirmed
	pubFailed                        // anything else
)

// apiPublisher publishes one message per request, as a backend does:
// Switchboard's POST /api/v1/publish with the API key, the centrifuge
// peer's POST /publish. Safe for concurrent use.
type apiPublisher struct {
	client *http.Client
	kind   *serverKind
	urls   []string // per node
}

func newAPIPublisher(kind *serverKind, nodes []*edgeTarget, conns int) *apiPublisher {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	tr := &http.Transport{
		DialContext: d.DialContext, DisableCompression: true,
		MaxIdleConns: conns * len(nodes), MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		IdleConnTimeout: time.Minute, ResponseHeaderTimeout: 30 * time.Second,
	}
	p := &apiPublisher{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, kind: kind}
	for _, n := range nodes {
		path := "/publish"
		if kind == switchboard {
			path = "/api/v1/publish"
		}
		p.urls = append(p.urls, n.httpBase()+path)
	}
	return p
}

// appendPublishBody appends {"room":…,"data":payload}, the body both
// servers take.
func appendPublishBody(b []byte, room string, payload []byte) []byte {
	b = append(b, `{"room":"`...)
	b = append(b, room...)
	b = append(b, `","data":`...)
	b = append(b, payload...)
	return append(b, '}')
}

// publish posts body to node and classifies the answer; msg describes a
// failure.
func (p *apiPublisher) publish(ctx context.Context, node int, body []byte) (pubOutcome, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.urls[node], bytes.NewReader(body))
	if err != nil {
		return pubFailed, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	if p.kind == switchboard {
		req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return pubFailed, err.Error()
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return pubFailed, err.Error()
	}
	return classifyPublish(p.kind, resp.StatusCode, b)
}

// classifyPublish reads a publish answer: Switchboard's 200 {"id":…} is
// accepted and 202 publish_unconfirmed unconfirmed; the peer's 200
// {"published":1} is accepted. Everything else failed.
func classifyPublish(kind *serverKind, status int, body []byte) (pubOutcome, string) {
	fail := func() (pubOutcome, string) {
		return pubFailed, fmt.Sprintf("HTTP %d: %.300s", status, bytes.TrimSpace(body))
	}
	if kind == switchboard {
		switch {
		case status == http.StatusOK && bytes.Contains(body, []byte(`"id":"`)):
			return pubAccepted, ""
		case status == http.StatusAccepted:
			return pubUnconfirmed, ""
		}
		return fail()
	}
	if status == http.StatusOK && bytes.Contains(body, []byte(`"published":1`)) && !bytes.Contains(body, []byte(`"error"`)) {
		return pubAccepted, ""
	}
	return fail()
}

func (p *apiPublisher) close() { p.client.CloseIdleConnections() }

// scenarioDefaults are the defaults of storm and pubcluster where they
// differ from the other scenarios', by flag name.
var scenarioDefaults = map[string]map[string]func(o *options){
	"storm": {
		"subs":             func(o *options) { o.subs = 2000 },
		"rooms":            func(o *options) { o.rooms = 500 },
		"rate":             func(o *options) { o.rate = 1300 },
		"dial-concurrency": func(o *options) { o.dialConcurrency = 256 },
		"publish-workers":  func(o *options) { o.publishWorkers = 64 },
	},
	"pubcluster": {
		"rooms":  func(o *options) { o.rooms = 1000 },
		"warmup": func(o *options) { o.warmup = 2 * time.Second },
	},
}

// applyScenarioDefaults gives the scenario its own defaults for the flags
// not set on the command line (set: the names of those that were).
func applyScenarioDefaults(o *options, set map[string]bool) {
	for name, apply := range scenarioDefaults[o.scenario] {
		if !set[name] {
			apply(o)
		}
	}
}

// validateCluster checks the options of storm and pubcluster.
func (o *options) validateCluster() error {
	if o.scenario != "storm" && o.scenario != "pubcluster" {
		return nil
	}
	switch {
	case o.url != "":
		return fmt.Errorf("%s starts its own broker and two nodes: use --server-bin (and --peer), not --url", o.scenario)
	case o.serverCPU >= 0:
		return fmt.Errorf("%s runs three server processes: --server-cpu is not supported", o.scenario)
	case o.transport != "websocket":
		return fmt.Errorf("%s: only --transport websocket", o.scenario)
	case o.broker != "redis" && o.broker != "nats":
		return fmt.Errorf("--broker %q: use redis or nats", o.broker)
	case o.warmup < 0:
		return errors.New("--warmup must not be negative")
	}
	if o.scenario == "pubcluster" {
		for _, name := range o.peers {
			if name != "switchboard" && name != "centrifuge" && name != "fiber" {
				return fmt.Errorf("pubcluster: --peer switchboard, centrifuge or fiber (the floor: raw Fiber answering alone, no broker), not %s", name)
			}
		}
		if o.publishers < 1 || o.publishers > 1024 || o.rooms < 1 {
			return fmt.Errorf("--publishers %d, --rooms %d: need 1 to 1024 publishers and at least one room", o.publishers, o.rooms)
		}
		return nil
	}
	for _, name := range o.peers {
		if name != "switchboard" && name != "centrifuge" {
			return fmt.Errorf("storm needs a server on a shared broker: --peer switchboard, centrifuge (not %s)", name)
		}
	}
	switch {
	case o.pubRooms < o.rooms:
		return fmt.Errorf("--pub-rooms %d is below --rooms %d: the subscribed rooms are among the published ones", o.pubRooms, o.rooms)
	case o.warmup.Seconds()*o.rate < float64(o.pubRooms):
		return fmt.Errorf("--warmup %s at --rate %.0f publishes %.0f messages, fewer than --pub-rooms %d: every room needs one before node A is killed, so that every subscriber has a position",
			o.warmup, o.rate, o.warmup.Seconds()*o.rate, o.pubRooms)
	case o.catchup <= 0:
		return errors.New("--catchup must be positive")
	}
	return nil
}
