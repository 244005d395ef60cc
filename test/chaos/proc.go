package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one process of the suite (a broker or an edge) on a fixed
// loopback address, so that restarting it keeps its clients' URLs.
// Its output goes to a log file in the run's directory. Every method is
// safe for concurrent use.
type proc struct {
	name    string
	addr    string // 127.0.0.1:port it listens on
	bin     string
	args    []string
	env     []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

// readyTimeout bounds the wait for a started process to accept TCP
// connections on its address.
const readyTimeout = 30 * time.Second

// freeAddr returns a currently free 127.0.0.1 address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start starts the process and waits until its address accepts TCP
// connections.
func (p *proc) start(ctx context.Context) error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return fmt.Errorf("%s: already running", p.name)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	fmt.Fprintf(logf, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), p.name)
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, killed with the suite.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.mu.Unlock()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	p.cmd, p.exited, p.paused = cmd, exited, false
	p.mu.Unlock()
	return waitListening(ctx, p.addr, exited, p.name)
}

// waitListening waits until addr accepts a TCP connection.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}, name string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before listening on %s", name, addr)
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s: %w", name, addr, ctx.Err())
		case <-tick.C:
		}
	}
}

// signal sends sig to the process group and, for SIGKILL and SIGTERM,
// waits for the exit (SIGTERM at most grace, then SIGKILL).
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, exited, paused := p.cmd, p.exited, p.paused
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if paused {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// pause stops the process (SIGSTOP) until resume: it keeps its sockets
// open and answers nothing, as a hung broker does.
func (p *proc) pause() error { return p.signalRunning(syscall.SIGSTOP, true) }

func (p *proc) resume() error { return p.signalRunning(syscall.SIGCONT, false) }

func (p *proc) signalRunning(sig syscall.Signal, paused bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s: not running", p.name)
	}
	p.paused = paused
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// restart stops the process, SIGKILL if crash, else SIGTERM with 30 s
// to exit, and starts it again.
func (p *proc) restart(ctx context.Context, crash bool) error {
	if crash {
		p.stop(syscall.SIGKILL, 0)
	} else {
		p.stop(syscall.SIGTERM, 30*time.Second)
	}
	return p.start(ctx)
}

// close stops the process for good (SIGTERM, then SIGKILL after 20 s).
func (p *proc) close() { p.stop(syscall.SIGTERM, 20*time.Second) }

// logTail is the last n bytes of the process's log.
func (p *proc) logTail(n int) string { return tailFile(p.logPath, n) }

// tailFile is the last n bytes of a file, from a line's start.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// errNotReady is returned when an edge does not become ready in time.
var errNotReady = errors.New("not ready")
