// Package pgtest starts throwaway PostgreSQL servers: one per call,
// from Debian's postgresql package (the newest major under
// /usr/lib/postgresql), initialised in a directory of its own, listening
// on a free port of a local address. Start(t) is for tests: the server
// lives in the test's temporary directory and is shut down when the test
// ends. Run is the same outside a test (a program such as the fault
// suite): the caller owns the directory and calls Close. Stop, Kill and
// Start take the same server (same port, same data directory) through an
// outage or a crash; its data survives both. Pause and Resume freeze it
// (the postmaster and every process it forked), as a hung server.
//
// initdb and postgres refuse to run as root: when this process runs as
// root, the server runs as the postgres user the package creates, and the
// directories on the way to its data are made traversable for it. The
// server is this process's child (no pg_ctl daemon): it is killed with
// this process if that dies. fsync is off: the data survives the
// server's shutdowns and crashes (Kill), not the machine's. A missing
// postgresql package fails the test (CI installs it; nothing is skipped).
package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

// Server is one PostgreSQL server. Its methods may be called from one
// goroutine at a time (a test's own), except Running, URL and String.
type Server struct {
	Addr string // host:port, 127.0.0.1:port unless Config.Host says otherwise
	// URL is the superuser's connection URL for the "postgres" database:
	// postgres://postgres@127.0.0.1:port/postgres?sslmode=disable.
	URL string
	// Dir is the data directory (owned by the postgres user when this
	// process runs as root).
	Dir string

	t       testing.TB // nil for a server of Run
	bin     string     // the directory of initdb and postgres
	host    string
	port    int
	root    string // holds Dir and the socket directory
	logPath string // the server's output, every start appended
	socket  string // unix_socket_directories: "" when the path would be too long
	cred    *syscall.Credential

	mu     sync.Mutex
	cmd    *exec.Cmd
	exit   chan struct{} // closed when cmd has exited
	log    *os.File
	paused []int // the processes Pause stopped, postmaster first
	dbs    int   // databases made by CreateDatabase
}

// Config is how Run starts a server.
type Config struct {
	// Host is the local IP address the server listens on. On another
	// address than loopback, connections from the host's own subnets
	// (pg_hba's samenet) are trusted too.
	// Optional. Default: 127.0.0.1.
	Host string
	// Port is the port it listens on.
	// Optional. Default: a free one (another if that is taken before the
	// server binds it).
	Port int
	// LogPath is the file the server's output is appended to, a line
	// "=== <time> start" before each start's.
	// Optional. Default: postgres.log in Run's directory.
	LogPath string
}

// Timeouts. A start includes crash recovery after Kill, which a busy
// machine may take a while over.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// Start initialises a data directory in the test's temporary directory
// and runs a server on a free loopback port, waiting until it accepts
// connections. The server is shut down (immediately, no checkpoint) in
// t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Run(context.Background(), t.TempDir(), Config{})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.t = t
	t.Cleanup(s.Close)
	return s
}

// Run initialises a data directory in dir (created if missing; it must
// not hold one already) and runs a server on cfg.Host and cfg.Port,
// waiting until it accepts connections or ctx ends. When this process
// runs as root, dir becomes the postgres user's, and its parents must be
// searchable by that user: Run makes them so below os.TempDir() and
// refuses elsewhere. The caller calls Close, and removes dir when it
// wants to.
func Run(ctx context.Context, dir string, cfg Config) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	ip := net.ParseIP(cfg.Host)
	if ip == nil {
		return nil, fmt.Errorf("Config.Host %q: want an IP address", cfg.Host)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Join(dir, "postgres.log")
	}
	s := &Server{bin: bin, host: cfg.Host, root: dir, logPath: cfg.LogPath, Dir: filepath.Join(dir, "data")}
	if err := s.prepare(); err != nil {
		return nil, err
	}
	if out, err := s.run(filepath.Join(bin, "initdb"), "-D", s.Dir, "-U", "postgres", "--auth=trust",
		"--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if !ip.IsLoopback() {
		// initdb trusts loopback only.
		if err := appendFile(filepath.Join(s.Dir, "pg_hba.conf"), "host all all samenet trust\n"); err != nil {
			return nil, err
		}
	}
	// The port was free a moment ago; another process may take it before
	// the server binds it. Try a few fresh ports.
	for attempt := 1; ; attempt++ {
		if s.port = cfg.Port; s.port == 0 {
			if s.port, err = freePort(s.host); err != nil {
				return nil, err
			}
		}
		s.Addr = net.JoinHostPort(s.host, strconv.Itoa(s.port))
		s.URL = "postgres://postgres@" + s.Addr + "/postgres?sslmode=disable"
		err := s.start(ctx)
		if err == nil {
			return s, nil
		}
		var early *exitedError
		if !errors.As(err, &early) || cfg.Port != 0 || attempt == 3 || !strings.Contains(early.out, "could not bind") {
			s.Close()
			return nil, err
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
	// Temporary directories are 0700: let the postgres user through
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

func appendFile(name, text string) error {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// sunPathMax is the room for a unix socket's path (sockaddr_un.sun_path),
// minus its terminating NUL.
const sunPathMax = 107

// exitedError is a start's failure because the server exited before it
// accepted connections: out is what it wrote meanwhile.
type exitedError struct {
	addr, out string
}

func (e *exitedError) Error() string {
	return fmt.Sprintf("postgres on %s exited at start:\n%s", e.addr, e.out)
}

// start runs the server and waits until it accepts connections. If it
// exits first, the error is an *exitedError with its output.
func (s *Server) start(ctx context.Context) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	// Where this start's output begins, to quote it if it fails.
	var from int64
	if fi, err := logf.Stat(); err == nil {
		from = fi.Size()
	}
	fmt.Fprintf(logf, "=== %s start postgres on %s\n", time.Now().Format(time.RFC3339Nano), net.JoinHostPort(s.host, strconv.Itoa(s.port)))
	output := func() string {
		f, err := os.Open(s.logPath)
		if err != nil {
			return ""
		}
		defer f.Close()
		b, _ := io.ReadAll(io.NewSectionReader(f, from, 1<<20))
		return string(b)
	}
	sock := filepath.Join(s.root, "sock")
	if len(sock)+len("/.s.PGSQL.65535") > sunPathMax || strings.Contains(sock, `"`) {
		sock = "" // TCP only: a deep directory, or one the setting cannot spell
	} else if err := os.MkdirAll(sock, 0o700); err != nil {
		logf.Close()
		return err
	} else if s.cred != nil {
		_ = os.Chown(sock, int(s.cred.Uid), int(s.cred.Gid))
	}
	s.socket = sock
	// No postmaster runs on the directory now: a pid file left by a
	// killed one would only confuse the readiness check.
	_ = os.Remove(filepath.Join(s.Dir, "postmaster.pid"))
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.Dir, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses="+s.host,
		// A list: quoted, as a test's name may put a comma in the path.
		"-c", "unix_socket_directories="+quoteList(sock),
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=400", "-c", "shared_buffers=32MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning")
	cmd.Dir = s.root
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, killed if this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exit := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exit)
	}()
	s.mu.Lock()
	s.cmd, s.exit, s.log, s.paused = cmd, exit, logf, nil
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	// The server's only readiness signal is its pid file (what pg_ctl -w
	// reads too): poll it.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.ready(cmd.Process.Pid) {
			return nil
		}
		select {
		case <-exit:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			logf.Close()
			return &exitedError{addr: s.Addr, out: output()}
		case <-ctx.Done():
			s.stop(syscall.SIGQUIT)
			return fmt.Errorf("postgres on %s not ready: %w:\n%s", s.Addr, ctx.Err(), output())
		case <-tick.C:
		}
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

// Close shuts the server down as Kill does. Start(t) calls it when the
// test ends; a server of Run needs it called. Idempotent.
func (s *Server) Close() { s.Kill() }

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exit, logf, paused := s.cmd, s.exit, s.log, s.paused
	s.cmd, s.paused = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// A stopped process acts on no signal but SIGKILL.
	for _, pid := range paused {
		_ = syscall.Kill(pid, syscall.SIGCONT)
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
// nothing while the server runs. It fails the test (for a server of
// Run, it panics): StartContext returns the error instead.
func (s *Server) Start() {
	if s.t != nil {
		s.t.Helper()
	}
	if err := s.StartContext(context.Background()); err != nil {
		if s.t == nil {
			panic("pgtest: " + err.Error())
		}
		s.t.Fatalf("pgtest: %v", err)
	}
}

// StartContext is Start returning its error: the server did not accept
// connections before it exited, or before ctx ended (or a minute, for
// crash recovery on a busy machine).
func (s *Server) StartContext(ctx context.Context) error {
	if s.Running() {
		return nil
	}
	return s.start(ctx)
}

// Restart is Stop, then Start.
func (s *Server) Restart() {
	if s.t != nil {
		s.t.Helper()
	}
	s.Stop()
	s.Start()
}

// Pause stops the server (SIGSTOP) until Resume, the postmaster first so
// that it forks nothing more, then every process it forked, each of
// which leads a process group of its own: it keeps its connections open
// and answers nothing, as a hung server. Stop, Kill and Close resume it
// first. Pausing a paused or stopped server is an error.
func (s *Server) Pause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("pgtest: Pause: the server is not running")
	}
	if s.paused != nil {
		return errors.New("pgtest: Pause: the server is paused already")
	}
	pm := s.cmd.Process.Pid
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pgtest: Pause: %w", err)
	}
	s.paused = []int{pm}
	// The signal takes effect when the postmaster next runs: wait for
	// it to be stopped, so that the list of its children is final.
	deadline := time.Now().Add(stopTimeout)
	for state, _ := procStat(pm); state != 'T'; state, _ = procStat(pm) {
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: Pause: the postmaster (pid %d) is not stopped after %s (state %q)", pm, stopTimeout, state)
		}
		time.Sleep(time.Millisecond) // the kernel has no notification for it
	}
	kids, err := children(pm)
	if err != nil {
		return fmt.Errorf("pgtest: Pause: %w", err)
	}
	for _, pid := range kids {
		if syscall.Kill(pid, syscall.SIGSTOP) == nil {
			s.paused = append(s.paused, pid)
		}
	}
	return nil
}

// Resume continues a paused server: every process Pause stopped, the
// postmaster last. Resuming a server that is not paused does nothing.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for i := len(s.paused) - 1; i >= 0; i-- {
		if err := syscall.Kill(s.paused[i], syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) && first == nil {
			first = fmt.Errorf("pgtest: Resume: pid %d: %w", s.paused[i], err)
		}
	}
	s.paused = nil
	return first
}

// procStat reads a process's state letter and parent pid from
// /proc/<pid>/stat.
func procStat(pid int) (state byte, ppid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	// "pid (comm) state ppid …": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid
}

// children lists the processes whose parent is pid.
func children(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == pid {
			continue
		}
		if _, ppid := procStat(n); ppid == pid {
			out = append(out, n)
		}
	}
	return out, nil
}

// Running reports whether the server process is up (paused or not).
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
