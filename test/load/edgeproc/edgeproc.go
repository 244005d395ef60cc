// Package edgeproc runs and observes a switchboard edge process for load
// tools: start a built binary on a loopback address (optionally pinned to a
// CPU with taskset), wait for /healthz, read /stats, read a process's RSS
// and CPU time from /proc, and stop it (SIGTERM, then SIGKILL after a
// grace period, or at once with SIGKILL).
//
// It holds what test/load/idlecost and the load tool (test/load) share, so
// that idlecost can import it instead of keeping its own copy.
//
// Concurrency: a *Process is safe for concurrent use; Stop may be called
// more than once.
package edgeproc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is an edge started by Start.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // valid after exited

	mu   sync.Mutex
	tail []string // the last log lines, for error reports
}

// Options configure Start.
type Options struct {
	// Bin is the path to a built switchboard binary. Required.
	Bin string
	// Addr is the listen address. Optional. Default: a free 127.0.0.1 port.
	Addr string
	// Args are extra flags for the server.
	Args []string
	// CPU pins the server to this CPU with taskset -c. Negative: not pinned.
	CPU int
}

// Start runs the binary as a child in its own process group that dies with
// this process (Pdeathsig). Its output goes to a short in-memory tail.
func Start(o Options) (*Process, string, error) {
	addr := o.Addr
	if addr == "" {
		a, err := FreeAddr()
		if err != nil {
			return nil, "", err
		}
		addr = a
	}
	name, args := o.Bin, append([]string{"--addr", addr}, o.Args...)
	if o.CPU >= 0 {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, "", fmt.Errorf("pinning the server to CPU %d needs taskset (util-linux): %w", o.CPU, err)
		}
		name, args = ts, append([]string{"-c", strconv.Itoa(o.CPU), o.Bin}, args...)
	}
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", o.Bin, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			if len(p.tail) == 20 {
				p.tail = p.tail[1:]
			}
			p.tail = append(p.tail, sc.Text())
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, addr, nil
}

// PID is the server's process id (taskset execs the binary in place).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// LogTail returns the server's last log lines.
func (p *Process) LogTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// Stop asks the server to drain (SIGTERM) and kills its process group if it
// is still running after grace.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// Kill ends the server at once (SIGKILL to its process group, as a crash
// would) and waits for it to exit.
func (p *Process) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// FreeAddr returns a currently free 127.0.0.1 address.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// WaitHealthy polls base+"/healthz" until it answers 200, exited is closed
// (nil: not watched) or 10 s pass.
func WaitHealthy(ctx context.Context, base string, exited <-chan struct{}) error {
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
		case <-exited:
			return errors.New("server exited before it was healthy")
		case <-ctx.Done():
			return fmt.Errorf("server not healthy at %s/healthz: %w (last error: %v)", base, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stats is the part of the edge's /stats the load tools read.
type Stats struct {
	Connections int    `json:"connections"`
	Goroutines  int    `json:"goroutines"`
	HeapBytes   uint64 `json:"heap_bytes"`
	SysBytes    uint64 `json:"sys_bytes"`
	MessagesOut uint64 `json:"messages_out"`
	Published   uint64 `json:"published"`
	Dropped     uint64 `json:"dropped"`
	SlowClosed  uint64 `json:"slow_closed"`
	Refused     uint64 `json:"refused"`
}

// GetStats reads base+"/stats".
func GetStats(ctx context.Context, base string) (Stats, error) {
	var st Stats
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

// WaitConnections polls /stats until it counts want connections or 60 s
// pass.
func WaitConnections(ctx context.Context, base string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last Stats
	for {
		st, err := GetStats(ctx, base)
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

// ProcStat is what /proc says about a process.
type ProcStat struct {
	RSS     uint64        // VmRSS from /proc/PID/status
	CPU     time.Duration // utime + stime from /proc/PID/stat
	Threads int           // Threads from /proc/PID/status
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// ReadProc reads /proc/<pid>/status and /proc/<pid>/stat; pid 0 means this
// process (/proc/self).
func ReadProc(pid int) (ProcStat, error) {
	dir := "/proc/self"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	var ps ProcStat
	b, err := os.ReadFile(dir + "/status")
	if err != nil {
		return ps, fmt.Errorf("read %s/status: %w", dir, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return ps, fmt.Errorf("parse %q: %w", line, err)
			}
			ps.RSS = kb << 10
		}
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			ps.Threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	b, err = os.ReadFile(dir + "/stat")
	if err != nil {
		return ps, fmt.Errorf("read %s/stat: %w", dir, err)
	}
	// The command name (field 2) may contain spaces: fields are counted
	// from the last ')'. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return ps, fmt.Errorf("parse %s/stat: no ')'", dir)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return ps, fmt.Errorf("parse %s/stat: %d fields", dir, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return ps, fmt.Errorf("parse %s/stat: %w", dir, err)
	}
	ps.CPU = time.Duration(ut+st) * clockTick
	return ps, nil
}

// Sample is one measurement of a server, each field the median of several
// readings.
type Sample struct {
	RSS         uint64 `json:"rss_bytes"`
	HeapBytes   uint64 `json:"heap_bytes"`
	SysBytes    uint64 `json:"sys_bytes"`
	Goroutines  int    `json:"goroutines"`
	Connections int    `json:"connections"`
}

// Measure takes n readings of /stats (and of RSS when pid > 0) one second
// apart and returns the median of each field.
func Measure(ctx context.Context, base string, pid, n int) (Sample, error) {
	var rss, heap, sys []uint64
	var gor, conns []int
	for i := range n {
		if i > 0 {
			Sleep(ctx, time.Second)
		}
		if err := ctx.Err(); err != nil {
			return Sample{}, err
		}
		var r uint64
		if pid > 0 {
			ps, err := ReadProc(pid)
			if err != nil {
				return Sample{}, err
			}
			r = ps.RSS
		}
		st, err := GetStats(ctx, base)
		if err != nil {
			return Sample{}, err
		}
		rss, heap, sys = append(rss, r), append(heap, st.HeapBytes), append(sys, st.SysBytes)
		gor, conns = append(gor, st.Goroutines), append(conns, st.Connections)
	}
	return Sample{
		RSS: median(rss), HeapBytes: median(heap), SysBytes: median(sys),
		Goroutines: median(gor), Connections: median(conns),
	}, nil
}

func median[T int | uint64](v []T) T {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// RaiseNoFile lifts the soft open-file limit to the hard one and fails if
// that is below need. Setting it explicitly also makes os/exec pass the
// raised limit on to a started server.
func RaiseNoFile(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	if lim.Cur < need {
		return fmt.Errorf("open-file limit %d is below the %d needed: raise the hard limit (ulimit -Hn) or use fewer connections", lim.Cur, need)
	}
	return nil
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// SystemCPU is the machine's CPU time from the first line of /proc/stat.
type SystemCPU struct {
	Busy  time.Duration // everything but idle, iowait and steal
	Steal time.Duration // taken by the hypervisor for other guests
}

// ReadSystemCPU reads /proc/stat. With the server's and the load's own
// CPU time it shows whether something else on the machine competed.
func ReadSystemCPU() (SystemCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return SystemCPU{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return SystemCPU{}, fmt.Errorf("parse /proc/stat: %q", line)
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return SystemCPU{}, fmt.Errorf("parse /proc/stat: %w", err)
		}
	}
	busy := v[0] + v[1] + v[2] + v[5] + v[6]
	return SystemCPU{Busy: time.Duration(busy) * clockTick, Steal: time.Duration(v[7]) * clockTick}, nil
}
