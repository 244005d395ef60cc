// Package pgtest starts throwaway PostgreSQL servers for tests: one per
// call, from Debian's postgresql package (the newest major under
// /usr/lib/postgresql), initialised in the test's temporary directory,
// listening on a free loopback port, and shut down when the test ends.
// Stop, Kill and Start take the same server (same port, same data
// directory) through an outage or a crash; its data survives both.
//
// initdb and postgres refuse to run as root: when the test runs as root,
// the server runs as the postgres user the package creates, and the
// directories on the way to its data are made traversable for it. The
// server is the test binary's child (no pg_ctl daemon): it is killed with
// the test binary if that dies. fsync is off: the data survives the
// server's shutdowns and crashes (Kill), not the machine's. A missing
// postgresql package fails the test (CI installs it; nothing is skipped).
package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one PostgreSQL server. Its methods may be called from the
// test goroutine only, except Running, URL and String.
type Server struct {
	Addr string // 127.0.0.1:port
	// URL is the superuser's connection URL for the "postgres" database:
	// postgres://postgres@127.0.0.1:port/postgres?sslmode=disable.
	URL string
	// Dir is the data directory (owned by the postgres user when the test
	// runs as root).
	Dir string

	t      testing.TB
	bin    string // the directory of initdb and postgres
	port   int
	root   string // holds Dir, the socket directory and the log
	socket string // unix_socket_directories: "" when the path would be too long
	cred   *syscall.Credential

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has exited
	log  *os.File
	dbs  int // databases made by CreateDatabase
}

// Timeouts. A start includes crash recovery after Kill, which a busy
// machine may take a while over.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// Start initialises a data directory and runs a server on a free
// loopback port, waiting until it accepts connections. The server is
// shut down (immediately, no checkpoint) in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s := &Server{t: t, bin: bin, root: t.TempDir()}
	s.Dir = filepath.Join(s.root, "data")
	if err := s.prepare(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if out, err := s.run(filepath.Join(bin, "initdb"), "-D", s.Dir, "-U", "postgres", "--auth=trust",
		"--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	t.Cleanup(s.Kill)
	// The port was free a moment ago; another process may take it before
	// the server binds it. Try a few fresh ports.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
		s.URL = "postgres://postgres@" + s.Addr + "/postgres?sslmode=disable"
		out, ok := s.start()
		if ok {
			return s
		}
		if attempt == 3 || !strings.Contains(out, "could not bind") {
			t.Fatalf("pgtest: postgres on %s exited at start:\n%s", s.Addr, out)
		}
	}
}

// binDir finds the directory of initdb and postgres: the newest major
// version under /usr/lib/postgresql (Debian's layout), else the PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(dir string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return n
	}
	slices.SortFunc(dirs, func(a, b string) int { return major(b) - major(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres, no initdb on PATH): install it with `apt-get install -y postgresql` (.ci/run does)")
}

// prepare makes the server's directory its user's and, when that user is
// not this process's, every directory on the way to it traversable.
func (s *Server) prepare() error {
	if os.Geteuid() != 0 {
		return nil // initdb and postgres run as this user
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root, and there is no postgres user to run the server as (the postgresql package creates it): %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	if err := os.Chown(s.root, int(uid), int(gid)); err != nil {
		return err
	}
	// t.TempDir's directories are 0700: let the postgres user through
	// them (search only, not read), and through nothing else.
	tmp, err := filepath.Abs(os.TempDir())
	if err != nil {
		return err
	}
	for dir := filepath.Dir(s.root); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if !strings.HasPrefix(dir, tmp) {
				return fmt.Errorf("the postgres user cannot reach %s: %s is not searchable by others (set TMPDIR to a directory it can reach)", s.root, dir)
			}
			if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("the postgres user cannot reach %s: %w", s.root, err)
			}
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// run runs a command as the server's user and returns its output.
func (s *Server) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.root
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// sunPathMax is the room for a unix socket's path (sockaddr_un.sun_path),
// minus its terminating NUL.
const sunPathMax = 107

// start runs the server and waits until it accepts connections. If it
// exits first, start returns its output and false.
func (s *Server) start() (string, bool) {
	s.t.Helper()
	logf, err := os.CreateTemp(s.root, "postgres-*.log")
	if err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
	sock := filepath.Join(s.root, "sock")
	if len(sock)+len("/.s.PGSQL.65535") > sunPathMax || strings.Contains(sock, `"`) {
		sock = "" // TCP only: a deep temporary directory, or one the setting cannot spell
	} else if err := os.MkdirAll(sock, 0o700); err != nil {
		s.t.Fatalf("pgtest: %v", err)
	} else if s.cred != nil {
		_ = os.Chown(sock, int(s.cred.Uid), int(s.cred.Gid))
	}
	s.socket = sock
	// No postmaster runs on the directory now: a pid file left by a
	// killed one would only confuse the readiness check.
	_ = os.Remove(filepath.Join(s.Dir, "postmaster.pid"))
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.Dir, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		// A list: quoted, as a test's name may put a comma in the path.
		"-c", "unix_socket_directories="+quoteList(sock),
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=400", "-c", "shared_buffers=32MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning")
	cmd.Dir = s.root
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("pgtest: start postgres: %v", err)
	}
	exit := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exit)
	}()
	s.mu.Lock()
	s.cmd, s.exit, s.log = cmd, exit, logf
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		if s.ready(cmd.Process.Pid) {
			return "", true
		}
		select {
		case <-exit:
			out, _ := os.ReadFile(logf.Name())
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			logf.Close()
			return string(out), false
		default:
		}
		if time.Now().After(deadline) {
			s.stop(syscall.SIGQUIT)
			out, _ := os.ReadFile(logf.Name())
			s.t.Fatalf("pgtest: postgres on %s not ready within %s:\n%s", s.Addr, readyTimeout, out)
		}
		// The server's only readiness signal is its pid file (what
		// pg_ctl -w reads too): poll it.
		time.Sleep(10 * time.Millisecond)
	}
}

// quoteList spells dir as the one element of a list setting ("" for
// none).
func quoteList(dir string) string {
	if dir == "" {
		return ""
	}
	return `"` + dir + `"`
}

// ready reports whether the postmaster with pid says, in its pid file,
// that it accepts connections.
func (s *Server) ready(pid int) bool {
	f, err := os.Open(filepath.Join(s.Dir, "postmaster.pid"))
	if err != nil {
		return false
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, strings.TrimSpace(sc.Text()))
	}
	// Line 1 is the pid, line 8 the status (PM_STATUS_READY is "ready").
	return len(lines) >= 8 && lines[0] == strconv.Itoa(pid) && lines[7] == "ready"
}

// Stop shuts the server down as pg_ctl -m fast does (SIGINT: clients are
// disconnected, a checkpoint is written) and waits for it to exit.
// Idempotent; Start starts it again on the same port and data.
func (s *Server) Stop() { s.stop(syscall.SIGINT) }

// Kill shuts the server down as pg_ctl -m immediate does (SIGQUIT:
// clients are disconnected, nothing is written), like a crash: the next
// Start recovers from the write-ahead log, and every committed
// transaction is still there. Idempotent.
func (s *Server) Kill() { s.stop(syscall.SIGQUIT) }

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exit, logf := s.cmd, s.exit, s.log
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exit:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exit
	}
	logf.Close()
}

// Start starts a stopped (or killed) server again on the same port and
// data directory, and waits until it accepts connections. It does
// nothing while the server runs.
func (s *Server) Start() {
	s.t.Helper()
	if s.Running() {
		return
	}
	if out, ok := s.start(); !ok {
		s.t.Fatalf("pgtest: postgres on %s exited at restart:\n%s", s.Addr, out)
	}
}

// Restart is Stop, then Start.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// String is the server's address.
func (s *Server) String() string { return "postgres " + s.Addr }

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// CreateDatabase creates a new, empty database on the server, named
// after t, and returns its URL (the superuser's): tests that share a
// server each get a database of their own.
func (s *Server) CreateDatabase(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.dbs++
	n := s.dbs
	s.mu.Unlock()
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = "db" + strconv.Itoa(n) + "_" + name
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", s.Addr, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	u, _ := url.Parse(s.URL)
	u.Path = "/" + name
	return u.String()
}
