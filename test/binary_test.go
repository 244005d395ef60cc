package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// buildBinary builds ./edge once per test binary run.
var (
	binMu   sync.Mutex // parallel tests may ask at once
	binPath string
)

func switchboardBin(t *testing.T) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if binPath != "" {
		return binPath
	}
	dir, err := os.MkdirTemp("", "switchboard-bin-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "switchboard")
	cmd := exec.Command("go", "build", "-o", path, "../edge")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	binPath = path
	return binPath
}

// TestMain removes the built binary and fails the run if a test left a
// goroutine behind (an adapter goroutine outliving its connection, a
// server not shut down).
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		// fasthttp's worker-pool cleaner notices Stop only after its 10s
		// sleep; it ends on its own.
		if err := coretest.LeakCheck(5*time.Second, "fasthttp.updateServerDate", "fasthttp.(*workerPool).Start.func2"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// startBinary runs the built edge on 127.0.0.1:0 and returns its address,
// read from the JSON "listening" log line.
func startBinary(t *testing.T, args ...string) (*exec.Cmd, string, *syncBuffer) {
	return startBinaryUntil(t, "listening", args...)
}

// startBinaryUnready is startBinary for an edge waiting for its broker
// (--broker-wait): it returns once the stand-in /healthz is served.
func startBinaryUnready(t *testing.T, args ...string) (*exec.Cmd, string, *syncBuffer) {
	return startBinaryUntil(t, "broker unreachable; not ready, retrying (--broker-wait)", args...)
}

func startBinaryUntil(t *testing.T, ready string, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	// A free port chosen here, since a waiting edge logs no "listening".
	listenAddr := freeAddr(t)
	cmd := exec.Command(switchboardBin(t), append([]string{"--addr", listenAddr, "--log-format", "json"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	logs := &syncBuffer{eof: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(logs.eof)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			logs.Write(append(line, '\n'))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == ready {
				addr <- listenAddr
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, a, logs
	case <-time.After(waitFor):
		t.Fatalf("binary did not start listening; logs:\n%s", logs)
	}
	return nil, "", nil
}

func TestBinarySIGTERMDrains(t *testing.T) {
	cmd, addr, logs := startBinary(t)
	e := &edge{addr: addr}
	a, _ := connect(t, e.url(q("user", "a", "rooms", "r")))
	b, _ := connect(t, e.url(q("user", "b", "rooms", "r")))
	a.send(`{"v":1,"type":"publish","room":"r","data":"before"}`)
	a.ackAnd(core.TypeMessage)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m := b.expect(core.TypeMessage); dataString(t, m) != "before" {
		t.Fatalf("got %s", m.Encode())
	}
	for _, c := range []*client{a, b} {
		if code := c.closed(); code != 1012 {
			t.Fatalf("close code %d, want 1012 service restart", code)
		}
	}
	done := make(chan error, 1)
	// Read stderr to its end before Wait (which closes the pipe): the
	// last log lines must not be lost.
	go func() { <-logs.eof; done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\nlogs:\n%s", err, logs)
		}
	case <-time.After(waitFor):
		t.Fatal("binary did not exit after SIGTERM")
	}
	if len(logs.lines("shutdown complete")) != 1 {
		t.Fatalf("no shutdown log; logs:\n%s", logs)
	}
}

// TestBinaryBadConfigExits: a bad setting stops the binary with one line
// naming it (exit status 2 for the configuration, 1 for what is only found
// out by connecting) before any listener opens. Every case that should
// fail before listening runs with --addr on a port this test holds open:
// reaching the listener would report "cannot listen" instead of the
// setting. Cases that get as far as connecting to something listen on a
// port the test reserved, never on a fixed one.
func TestBinaryBadConfigExits(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := file("garbage.pem", "not a key\n")
	private := file("private.pem", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n")
	notJWKS := file("keys.json", `{"issuer":"https://id.example"}`)
	// A JWKS URL that answers, with a page that is not a key set.
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>login</html>")
	}))
	t.Cleanup(page.Close)

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })

	cases := []struct {
		args []string
		env  string
		want string
		code int
		// listens: the binary gets past its configuration (the failure
		// is found by connecting), so it needs a free port.
		listens bool
	}{
		{[]string{"--rate-limit", "fast"}, "", "--rate-limit", 2, false},
		{[]string{"--heartbeat-interval", "30s", "--heartbeat-timeout", "10s"}, "", "--heartbeat-timeout", 2, false},
		{nil, "SWITCHBOARD_SEND_QUEUE=lots", "SWITCHBOARD_SEND_QUEUE", 2, false},
		{[]string{"--broker", "carrier-pigeon"}, "", "unknown broker", 2, false},
		{[]string{"--slow-consumer", "ignore"}, "", "--slow-consumer", 2, false},
		{[]string{"--resume-index-age", "0s"}, "", `invalid value "0s" for --resume-index-age (SWITCHBOARD_RESUME_INDEX_AGE): 0 is not a setting here`, 2, false},
		{[]string{"--resume-index-age", "-1s"}, "", "invalid --resume-index-age (SWITCHBOARD_RESUME_INDEX_AGE): -1s must not be negative", 2, false},
		{nil, "SWITCHBOARD_PRESENCE_TTL=1s", "invalid --presence-ttl (SWITCHBOARD_PRESENCE_TTL): 1s must exceed the interval 5s", 2, false},
		{[]string{"--jwt-secret", "short"}, "", "--jwt-secret", 2, false},
		{[]string{"--broker", "redis", "--broker-url", "mysql://x"}, "", "--broker-url", 2, false},
		{[]string{"--admin-token", "short"}, "", "invalid --admin-token (SWITCHBOARD_ADMIN_TOKEN): shorter than 16 bytes", 2, false},
		{[]string{"--jwt-public-key", filepath.Join(dir, "missing.pem")}, "", "invalid --jwt-public-key (SWITCHBOARD_JWT_PUBLIC_KEY) \"" + filepath.Join(dir, "missing.pem") + "\": open: no such file", 2, false},
		{[]string{"--jwt-public-key", garbage}, "", "invalid --jwt-public-key (SWITCHBOARD_JWT_PUBLIC_KEY) \"" + garbage + "\": no PEM-encoded public key", 2, false},
		{[]string{"--jwt-public-key", private}, "", `PEM block 1 is a "PRIVATE KEY"`, 2, false},
		{[]string{"--jwks-file", filepath.Join(dir, "missing.json")}, "", "invalid --jwks-file (SWITCHBOARD_JWKS_FILE) \"" + filepath.Join(dir, "missing.json") + "\": open: no such file", 2, false},
		{[]string{"--jwks-file", notJWKS}, "", "invalid --jwks-file (SWITCHBOARD_JWKS_FILE) \"" + notJWKS + "\": no usable key", 2, false},
		{nil, "SWITCHBOARD_JWKS_FILE=" + notJWKS, "SWITCHBOARD_JWKS_FILE", 2, false},
		{[]string{"--jwks-url", "ftp://id.example/jwks"}, "", `invalid --jwks-url (SWITCHBOARD_JWKS_URL) "ftp://id.example/jwks": want an absolute http or https URL`, 2, false},
		{[]string{"--jwks-url", "/jwks"}, "", `invalid --jwks-url (SWITCHBOARD_JWKS_URL) "/jwks": want an absolute http or https URL`, 2, false},
		// Held open: the one case where "cannot listen" is the answer.
		{nil, "", "cannot listen on --addr " + held.Addr().String(), 1, false},
		{[]string{"--addr", "256.0.0.1:1"}, "", "--addr", 1, false},
		{[]string{"--broker", "redis", "--broker-url", "redis://127.0.0.1:1/0"}, "", "cannot reach redis at 127.0.0.1:1", 1, true},
		{[]string{"--broker", "kafka", "--broker-url", "kafka://127.0.0.1:1"}, "", "cannot reach kafka at 127.0.0.1:1", 1, true},
		{[]string{"--broker", "nats", "--broker-url", "nats://127.0.0.1:1"}, "", "127.0.0.1:1", 1, true},
		{[]string{"--jwks-url", page.URL}, "", `invalid --jwks-url (SWITCHBOARD_JWKS_URL) "` + page.URL + `": not a JSON Web Key Set`, 2, true},
		{nil, "OTEL_TRACES_EXPORTER=zipkin", "OTEL_TRACES_EXPORTER", 2, false},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " ")+tc.env, func(t *testing.T) {
			addr := held.Addr().String()
			if tc.listens {
				addr = freeAddr(t)
			}
			// tc.args come last: a case's own --addr wins.
			cmd := exec.Command(switchboardBin(t), append([]string{"--addr", addr}, tc.args...)...)
			cmd.Env = os.Environ()
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("err = %v, want exit status %d; stderr:\n%s", err, tc.code, &stderr)
			}
			out := strings.TrimSpace(stderr.String())
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.want) || !strings.HasPrefix(out, "switchboard: ") {
				t.Fatalf("stderr = %q, want one line mentioning %q", out, tc.want)
			}
			for _, field := range []string{"PublicKeyFile", "JWKSFile", "JWKSURL"} {
				if strings.Contains(out, field) {
					t.Errorf("stderr = %q names the Go field %s, not the flag", out, field)
				}
			}
		})
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for a binary that must open its own listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestBinaryHelpListsEverySetting(t *testing.T) {
	out, err := exec.Command(switchboardBin(t), "--help").Output()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--addr", "SWITCHBOARD_ADDR", "--jwt-secret", "SWITCHBOARD_JWT_SECRET", "--heartbeat-interval", "--send-queue", "--slow-consumer", "--max-message-size", "--rate-limit"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

// TestBinarySIGTERMWithStalledClient: a client that stopped reading cannot
// hold the process past --shutdown-timeout: its session is aborted at the
// deadline, the others got 1012, and the process exits 0.
func TestBinarySIGTERMWithStalledClient(t *testing.T) {
	cmd, addr, logs := startBinary(t, "--shutdown-timeout", "2s", "--rate-limit", "-1")
	e := &edge{addr: addr}
	stalled := dial(t, e.url(q("user", "stalled", "rooms", "big")), withRcvBuf(4096)) // never reads after the welcome
	if _, _, err := stalled.conn.ReadMessage(); err != nil {                          // joined
		t.Fatal(err)
	}
	pub, _ := connect(t, e.url(q("user", "pub", "rooms", "big")))
	payload := strings.Repeat("x", 60<<10)
	for i := 0; i < 200; i++ { // 12 MB: more than the stalled socket's buffers (up to 4 MB + 4 KB)
		pub.send(`{"v":1,"type":"publish","room":"big","data":"` + payload + `"}`)
		pub.ackAnd(core.TypeMessage)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := pub.closed(); code != 1012 {
		t.Fatalf("publisher close code %d, want 1012", code)
	}
	done := make(chan error, 1)
	// Read stderr to its end before Wait (which closes the pipe): the
	// abort line is among the last ones.
	go func() { <-logs.eof; done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\nlogs:\n%s", err, logs)
		}
	case <-time.After(waitFor):
		t.Fatalf("binary did not exit after SIGTERM; logs:\n%s", logs)
	}
	// Not before the deadline; how long after it depends on the machine's
	// load (the wait above bounds it), and the abort log below proves the
	// deadline is what ended it.
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("exit took %v, want at least the 2s shutdown timeout", took)
	}
	if len(logs.lines("shutdown deadline reached: aborting sessions still flushing")) != 1 {
		t.Fatalf("no abort log; logs:\n%s", logs)
	}
}
