// Command idlecost measures what an idle WebSocket connection costs a
// switchboard server: resident memory and goroutines per connection.
//
// It starts a built switchboard binary as a child process on a free
// 127.0.0.1 port (heartbeat defaults) with test/load/edgeproc, samples the
// server's RSS (/proc/PID/status VmRSS) and /stats, opens --conns
// WebSocket clients from --source-ips loopback addresses that each join
// one room and read their welcome, waits until /stats counts them all,
// lets the server settle (--settle), samples again and prints the
// difference per connection. Every sample is the median of --samples
// readings one second apart. The clients answer the server's pings, so no
// connection times out while it is measured.
//
//	go build -o /tmp/sb ./edge
//	go -C test/load run ./idlecost --server-bin /tmp/sb --conns 10000
//
// The server runs in its own process group and is killed when idlecost
// exits, including when idlecost itself is killed (Pdeathsig).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

type options struct {
	serverBin   string
	serverArgs  []string
	conns       int
	settle      time.Duration
	samples     int
	concurrency int
	sourceIPs   int
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
	flag.IntVar(&o.sourceIPs, "source-ips", 250, "spread connections over this many source addresses 127.0.0.2…, as test/load does (one address runs out of ephemeral ports near 28,000 connections)")
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
	case o.sourceIPs < 1 || o.sourceIPs > 253:
		return fmt.Errorf("--source-ips %d: use 1 to 253", o.sourceIPs)
	case o.settle < 0 || o.timeout <= 0:
		return errors.New("--settle and --timeout must be positive")
	}
	if _, err := os.Stat(o.serverBin); err != nil {
		return fmt.Errorf("--server-bin: %w", err)
	}
	return nil
}

type result struct {
	Conns       int             `json:"conns"`
	ConnectSecs float64         `json:"connect_seconds"`
	Before      edgeproc.Sample `json:"before"`
	After       edgeproc.Sample `json:"after"`
	RSSPerConn  float64         `json:"rss_bytes_per_conn"`
	HeapPerConn float64         `json:"heap_bytes_per_conn"`
	SysPerConn  float64         `json:"sys_bytes_per_conn"`
	GorPerConn  float64         `json:"goroutines_per_conn"`
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
	if err := edgeproc.RaiseNoFile(uint64(o.conns) + 256); err != nil {
		return result{}, err
	}
	// The server's defaults (heartbeats, log level) plus --server-arg. Its
	// log goes to a short in-memory tail, not to the terminal: at the
	// default level it logs every connection.
	srv, addr, err := edgeproc.Start(edgeproc.Options{Bin: o.serverBin, Args: o.serverArgs, CPU: -1})
	if err != nil {
		return result{}, err
	}
	defer srv.Stop(2 * time.Second)
	res, err := measureServer(ctx, o, srv, addr)
	if err != nil {
		if tail := srv.LogTail(); tail != "" {
			err = fmt.Errorf("%w\nserver log (last lines):\n%s", err, tail)
		}
	}
	return res, err
}

// measureServer samples the running server, opens the connections and
// samples it again.
func measureServer(ctx context.Context, o options, srv *edgeproc.Process, addr string) (result, error) {
	base := "http://" + addr
	if err := edgeproc.WaitHealthy(ctx, base, srv.Exited()); err != nil {
		return result{}, err
	}

	edgeproc.Sleep(ctx, 2*time.Second) // an idle server has nothing to settle
	before, err := edgeproc.Measure(ctx, base, srv.PID(), o.samples)
	if err != nil {
		return result{}, fmt.Errorf("before: %w", err)
	}

	start := time.Now()
	clients, err := openClients(ctx, "ws://"+addr, o.conns, o.concurrency, o.sourceIPs)
	defer clients.closeAll()
	if err != nil {
		return result{}, err
	}
	if err := edgeproc.WaitConnections(ctx, base, o.conns); err != nil {
		return result{}, err
	}
	connectSecs := time.Since(start).Seconds()

	edgeproc.Sleep(ctx, o.settle)
	after, err := edgeproc.Measure(ctx, base, srv.PID(), o.samples)
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

// openClients opens n connections, concurrency at a time; connection i
// dials from 127.0.0.(2 + i mod sources). Linux routes all of 127/8 to
// loopback, and distinct source addresses keep one client address from
// running out of ephemeral ports.
func openClients(ctx context.Context, base string, n, concurrency, sources int) (*clients, error) {
	cs := &clients{conns: make([]*websocket.Conn, 0, n)}
	dialers := make([]*websocket.Dialer, sources)
	for i := range dialers {
		nd := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}}
		dialers[i] = &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   1024,
			WriteBufferSize:  256,
		}
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
				if err := cs.open(ctx, dialers[int(i)%sources], base, int(i)); err != nil {
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
