// Package redistest starts throwaway redis-server processes for tests:
// one per call, on a random free loopback port, in the test's temporary
// directory, stopped when the test ends. Start's server has no
// persistence: a restart comes back empty. StartPersistent's saves a
// snapshot when stopped and loads it when restarted, like a Redis run
// with RDB persistence. A missing redis-server fails the test (CI installs
// it; nothing is skipped).
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process. Its methods may be called from the
// test goroutine only.
type Server struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port/0

	t       testing.TB
	bin     string
	port    int
	dir     string
	persist bool // save an RDB in dir on Stop, load it at start

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has exited
	log  *os.File
}

// readyTimeout bounds the wait for a server to accept connections.
const readyTimeout = 10 * time.Second

// Start runs redis-server without persistence on a free loopback port
// and waits until it accepts connections. It is stopped in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartPersistent is Start with RDB persistence: Stop saves a snapshot of
// the data set in the server's directory (redis-server saves on SIGTERM
// when a save point is configured) and Restart loads it, so data survives
// a restart. Kill saves nothing: data written since the previous Stop is
// lost, as in a crash. No periodic save happens within a test's life (the
// save point is one change in an hour).
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, persist bool) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server is not installed (%v): install it with `apt-get install -y redis-server` (.ci/run does)", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{
		Addr: "127.0.0.1:" + strconv.Itoa(port),
		URL:  "redis://127.0.0.1:" + strconv.Itoa(port) + "/0",
		t:    t, bin: bin, port: port, dir: t.TempDir(), persist: persist,
	}
	t.Cleanup(s.Stop)
	// The port was free a moment ago; another process may take it before
	// redis-server binds it. Try a few fresh ports.
	for attempt := 1; ; attempt++ {
		out, ok := s.start()
		if ok {
			return s
		}
		if attempt == 3 || !strings.Contains(out, "Address already in use") {
			t.Fatalf("redistest: redis-server on %s exited at start:\n%s", s.Addr, out)
		}
		if s.port, err = freePort(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
		s.URL = "redis://" + s.Addr + "/0"
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs the server and waits until it accepts connections. If it
// exits first, start returns its output and false.
func (s *Server) start() (string, bool) {
	s.t.Helper()
	log, err := os.CreateTemp(s.dir, "redis-*.log")
	if err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
	save := ""
	if s.persist {
		save = "3600 1"
	}
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", save, "--appendonly", "no", "--dir", s.dir, "--dbfilename", "dump.rdb")
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	exit := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exit)
	}()
	s.mu.Lock()
	s.cmd, s.exit, s.log = cmd, exit, log
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return "", true
		}
		select {
		case <-exit:
			out, _ := os.ReadFile(log.Name())
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			log.Close()
			return string(out), false
		default:
		}
		if time.Now().After(deadline) {
			s.stop(syscall.SIGKILL)
			s.t.Fatalf("redistest: redis-server on %s not ready within %s: %v", s.Addr, readyTimeout, err)
		}
		// No readiness signal exists besides a successful dial: poll.
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 5 s) and waits
// for it to exit; a persistent server saves its snapshot first.
// Idempotent; Restart starts it again on the same port.
func (s *Server) Stop() { s.stop(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, like a crash, and waits for it.
func (s *Server) Kill() { s.stop(syscall.SIGKILL) }

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exit, log := s.cmd, s.exit, s.log
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exit:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exit
	}
	log.Close()
}

// Restart stops the server if it runs and starts it again on the same
// port: an empty Redis without persistence, as after a crash; with
// persistence (StartPersistent), the data set of the last Stop.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if out, ok := s.start(); !ok {
		s.t.Fatalf("redistest: redis-server on %s exited at restart:\n%s", s.Addr, out)
	}
}

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// String is the server's address.
func (s *Server) String() string { return fmt.Sprintf("redis-server %s", s.Addr) }
