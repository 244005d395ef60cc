// Command idlecost measures what an idle WebSocket connection costs a
// switchboard server: resident memory and goroutines per connection.
//
// It starts a built switchboard binary as a child process on a free
// 127.0.0.1 port (heartbeat defaults), samples the server's RSS
// (/proc/PID/status VmRSS) and /stats, opens --conns WebSocket clients that
// each join one room and read their welcome, waits until /stats counts them
// all, lets the server settle (--settle), samples again and prints the
// difference per connection. Every sample is the median of --samples
// readings one second apart. The clients answer the server's pings, so no
// connection times out while it is measured.
//
//	go build -o /tmp/sb ./edge
//	go run ./test/cmd/idlecost --server-bin /tmp/sb --conns 10000
//
// The server runs in its own process group and is killed when idlecost
// exits, including when idlecost itself is killed (Pdeathsig).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
)

type options struct {
	serverBin   string
	serverArgs  []string
	conns       int
	settle      time.Duration
	samples     int
	concurrency int
	timeout     time.Duration
	jsonOut     bool
}

func main() {
	var o options
	flag.StringVar(&o.serverBin, "server-bin", "", "path to a built switchboard binary (go build -o /tmp/sb ./edge); required")
	flag.Func("server-arg", "extra flag for the server, repeatable (e.g. --server-arg=--send-queue=64)", func(s string) error {
		o.serverArgs = append(o.serverArgs, s)
		return nil
	})
	flag.IntVar(&o.conns, "conns", 10000, "idle WebSocket connections to open")
	flag.DurationVar(&o.settle, "settle", 20*time.Second, "wait this long after connecting before sampling: the server's GC settles and fasthttp retires the worker goroutines of the connect burst (idle > 10s, checked every 10s)")
	flag.IntVar(&o.samples, "samples", 5, "readings per measurement, one second apart; the median is reported")
	flag.IntVar(&o.concurrency, "dial-concurrency", 64, "connections opened in parallel")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "bound on the whole run")
	flag.BoolVar(&o.jsonOut, "json", false, "print the result as one JSON object")
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "idlecost: %v\n", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	res, err := run(ctx, o)
	stop()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "idlecost: %v\n", err)
		os.Exit(1)
	}
	if o.jsonOut {
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	res.print(os.Stdout)
}

func (o options) validate() error {
	switch {
	case o.serverBin == "":
		return errors.New("--server-bin is required (build one with: go build -o /tmp/sb ./edge)")
	case o.conns < 1:
		return fmt.Errorf("--conns %d: must be at least 1", o.conns)
	case o.samples < 1:
		return fmt.Errorf("--samples %d: must be at least 1", o.samples)
	case o.concurrency < 1:
		return fmt.Errorf("--dial-concurrency %d: must be at least 1", o.concurrency)
	case o.settle < 0 || o.timeout <= 0:
		return errors.New("--settle and --timeout must be positive")
	}
	if _, err := os.Stat(o.serverBin); err != nil {
		return fmt.Errorf("--server-bin: %w", err)
	}
	return nil
}

// sample is one measurement of the server, each field the median of
// several readings.
type sample struct {
	RSS         uint64 `json:"rss_bytes"`   // /proc/PID/status VmRSS
	HeapBytes   uint64 `json:"heap_bytes"`  // /stats heap_bytes (Go heap in use)
	SysBytes    uint64 `json:"sys_bytes"`   // /stats sys_bytes (memory obtained from the OS)
	Goroutines  int    `json:"goroutines"`  // /stats goroutines
	Connections int    `json:"connections"` // /stats connections
}

type result struct {
	Conns       int     `json:"conns"`
	ConnectSecs float64 `json:"connect_seconds"`
	Before      sample  `json:"before"`
	After       sample  `json:"after"`
	RSSPerConn  float64 `json:"rss_bytes_per_conn"`
	HeapPerConn float64 `json:"heap_bytes_per_conn"`
	SysPerConn  float64 `json:"sys_bytes_per_conn"`
	GorPerConn  float64 `json:"goroutines_per_conn"`
}

func (r result) print(w io.Writer) {
	fmt.Fprintf(w, "%d idle WebSocket connections (opened in %.1fs)\n", r.Conns, r.ConnectSecs)
	fmt.Fprintf(w, "%-12s %14s %14s %14s %14s\n", "", "before", "after", "delta", "per conn")
	mem := func(name string, b, a uint64, per float64) {
		fmt.Fprintf(w, "%-12s %14s %14s %14s %14s\n", name, mib(b), mib(a), mib(a-b), fmt.Sprintf("%.0f B", per))
	}
	mem("RSS", r.Before.RSS, r.After.RSS, r.RSSPerConn)
	mem("Go heap", r.Before.HeapBytes, r.After.HeapBytes, r.HeapPerConn)
	mem("Go sys", r.Before.SysBytes, r.After.SysBytes, r.SysPerConn)
	fmt.Fprintf(w, "%-12s %14d %14d %14d %14.2f\n", "goroutines", r.Before.Goroutines, r.After.Goroutines,
		r.After.Goroutines-r.Before.Goroutines, r.GorPerConn)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func run(ctx context.Context, o options) (result, error) {
	if err := raiseNoFile(uint64(o.conns) + 256); err != nil {
		return result{}, err
	}
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	srv, err := startServer(o.serverBin, addr, o.serverArgs)
	if err != nil {
		return result{}, err
	}
	defer srv.stop()
	res, err := measureServer(ctx, o, srv, addr)
	if err != nil {
		if tail := srv.logTail(); tail != "" {
			err = fmt.Errorf("%w\nserver log (last lines):\n%s", err, tail)
		}
	}
	return res, err
}

// measureServer samples the running server, opens the connections and
// samples it again.
func measureServer(ctx context.Context, o options, srv *server, addr string) (result, error) {
	base := "http://" + addr
	if err := waitHealthy(ctx, base, srv); err != nil {
		return result{}, err
	}

	sleep(ctx, 2*time.Second) // an idle server has nothing to settle
	before, err := measure(ctx, base, srv.pid(), o.samples)
	if err != nil {
		return result{}, fmt.Errorf("before: %w", err)
	}

	start := time.Now()
	clients, err := openClients(ctx, "ws://"+addr, o.conns, o.concurrency)
	defer clients.closeAll()
	if err != nil {
		return result{}, err
	}
	if err := waitConnections(ctx, base, o.conns); err != nil {
		return result{}, err
	}
	connectSecs := time.Since(start).Seconds()

	sleep(ctx, o.settle)
	after, err := measure(ctx, base, srv.pid(), o.samples)
	if err != nil {
		return result{}, fmt.Errorf("after: %w", err)
	}
	if n, err := clients.lost(); n > 0 {
		return result{}, fmt.Errorf("%d connections ended during the measurement (first: %v)", n, err)
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	n := float64(o.conns)
	return result{
		Conns:       o.conns,
		ConnectSecs: connectSecs,
		Before:      before,
		After:       after,
		RSSPerConn:  (float64(after.RSS) - float64(before.RSS)) / n,
		HeapPerConn: (float64(after.HeapBytes) - float64(before.HeapBytes)) / n,
		SysPerConn:  (float64(after.SysBytes) - float64(before.SysBytes)) / n,
		GorPerConn:  float64(after.Goroutines-before.Goroutines) / n,
	}, nil
}

// raiseNoFile lifts the soft open-file limit to the hard one. Setting it
// explicitly (rather than relying on the runtime's own raise at start-up)
// also makes os/exec pass the raised limit on to the server process.
func raiseNoFile(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	if lim.Cur < need {
		return fmt.Errorf("open-file limit %d is below the %d needed: raise the hard limit (ulimit -Hn) or lower --conns", lim.Cur, need)
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

type server struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // valid after exited

	mu   sync.Mutex
	tail []string // the server's last log lines, for error reports
}

// startServer runs bin on addr with its defaults (heartbeats, log level)
// plus extra flags. Its log goes to a short in-memory tail, not to the
// terminal: at the default level it logs every connection.
func startServer(bin, addr string, extra []string) (*server, error) {
	args := append([]string{"--addr", addr}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			if len(s.tail) == 20 {
				s.tail = s.tail[1:]
			}
			s.tail = append(s.tail, sc.Text())
			s.mu.Unlock()
		}
		s.err = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// logTail returns the server's last log lines.
func (s *server) logTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop asks the server to drain (SIGTERM) and kills its process group if
// it is still running two seconds later.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func waitHealthy(ctx context.Context, base string, srv *server) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		resp, err := httpClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-srv.exited:
			return fmt.Errorf("server exited before it was healthy: %v", srv.err)
		case <-ctx.Done():
			return fmt.Errorf("server not healthy at %s/healthz: %w (last error: %v)", base, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type stats struct {
	Connections int    `json:"connections"`
	Goroutines  int    `json:"goroutines"`
	HeapBytes   uint64 `json:"heap_bytes"`
	SysBytes    uint64 `json:"sys_bytes"`
}

func getStats(ctx context.Context, base string) (stats, error) {
	var st stats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stats", nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("GET /stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("GET /stats: %w", err)
	}
	return st, nil
}

func waitConnections(ctx context.Context, base string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last stats
	for {
		st, err := getStats(ctx, base)
		if err == nil {
			last = st
			if st.Connections == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("/stats shows %d connections, want %d: %w", last.Connections, want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// measure takes n readings one second apart and returns the median of
// each field.
func measure(ctx context.Context, base string, pid, n int) (sample, error) {
	var rss, heap, sys []uint64
	var gor, conns []int
	for i := range n {
		if i > 0 {
			sleep(ctx, time.Second)
		}
		if err := ctx.Err(); err != nil {
			return sample{}, err
		}
		r, err := readRSS(pid)
		if err != nil {
			return sample{}, err
		}
		st, err := getStats(ctx, base)
		if err != nil {
			return sample{}, err
		}
		rss, heap, sys = append(rss, r), append(heap, st.HeapBytes), append(sys, st.SysBytes)
		gor, conns = append(gor, st.Goroutines), append(conns, st.Connections)
	}
	return sample{
		RSS: median(rss), HeapBytes: median(heap), SysBytes: median(sys),
		Goroutines: median(gor), Connections: median(conns),
	}, nil
}

func median[T int | uint64](v []T) T {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// readRSS returns VmRSS of pid in bytes.
func readRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read server RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// clients holds the open connections. Each has a reader goroutine, which
// answers the server's pings (the library replies while reading) and
// records an unexpected end.
type clients struct {
	mu       sync.Mutex
	conns    []*websocket.Conn
	closing  atomic.Bool
	ended    atomic.Int64
	firstErr atomic.Pointer[error]
	readers  sync.WaitGroup
}

func openClients(ctx context.Context, base string, n, concurrency int) (*clients, error) {
	cs := &clients{conns: make([]*websocket.Conn, 0, n)}
	dialer := &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  256,
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := cs.open(ctx, dialer, base, int(i)); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return cs, fmt.Errorf("open connection: %w", err)
	}
	return cs, nil
}

func (cs *clients) open(ctx context.Context, d *websocket.Dialer, base string, i int) error {
	url := fmt.Sprintf("%s/ws?rooms=idle&user=u%d", base, i)
	conn, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("%s: %w (HTTP %s)", url, err, resp.Status)
		}
		return fmt.Errorf("%s: %w", url, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return fmt.Errorf("%s: read welcome: %w", url, err)
	}
	var env struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(msg, &env); err != nil || env.Type != "welcome" {
		conn.Close()
		return fmt.Errorf("%s: first envelope is not a welcome: %.200s", url, msg)
	}
	_ = conn.SetReadDeadline(time.Time{})
	cs.mu.Lock()
	cs.conns = append(cs.conns, conn)
	cs.mu.Unlock()
	cs.readers.Add(1)
	go cs.read(conn)
	return nil
}

func (cs *clients) read(conn *websocket.Conn) {
	defer cs.readers.Done()
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			if !cs.closing.Load() {
				cs.ended.Add(1)
				cs.firstErr.CompareAndSwap(nil, &err)
			}
			return
		}
	}
}

// lost reports how many connections ended before closeAll, and the first
// error seen.
func (cs *clients) lost() (int64, error) {
	var err error
	if p := cs.firstErr.Load(); p != nil {
		err = *p
	}
	return cs.ended.Load(), err
}

func (cs *clients) closeAll() {
	if cs == nil {
		return
	}
	cs.closing.Store(true)
	cs.mu.Lock()
	for _, c := range cs.conns {
		_ = c.Close()
	}
	cs.conns = nil
	cs.mu.Unlock()
	done := make(chan struct{})
	go func() { cs.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
