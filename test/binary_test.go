package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// buildBinary builds ./edge once per test binary run.
var binPath string

func switchboardBin(t *testing.T) string {
	t.Helper()
	if binPath != "" {
		return binPath
	}
	dir, err := os.MkdirTemp("", "switchboard-bin-")
	if err != nil {
		t.Fatal(err)
	}
	binPath = filepath.Join(dir, "switchboard")
	cmd := exec.Command("go", "build", "-o", binPath, "../edge")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listenAddr := probe.Addr().String()
	probe.Close()
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

func TestBinaryBadConfigExits(t *testing.T) {
	cases := []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--rate-limit", "fast"}, "", "--rate-limit"},
		{[]string{"--heartbeat-interval", "30s", "--heartbeat-timeout", "10s"}, "", "--heartbeat-timeout"},
		{nil, "SWITCHBOARD_SEND_QUEUE=lots", "SWITCHBOARD_SEND_QUEUE"},
		{[]string{"--broker", "carrier-pigeon"}, "", "unknown broker"},
		{[]string{"--slow-consumer", "ignore"}, "", "--slow-consumer"},
		{[]string{"--addr", "256.0.0.1:1"}, "", "--addr"},
		{[]string{"--jwt-secret", "short"}, "", "--jwt-secret"},
		{[]string{"--broker", "redis", "--broker-url", "redis://127.0.0.1:1/0"}, "", "cannot reach redis at 127.0.0.1:1"},
		{[]string{"--broker", "redis", "--broker-url", "mysql://x"}, "", "--broker-url"},
		{[]string{"--broker", "kafka", "--broker-url", "kafka://127.0.0.1:1"}, "", "cannot reach kafka at 127.0.0.1:1"},
		{[]string{"--broker", "nats", "--broker-url", "nats://127.0.0.1:1"}, "", "127.0.0.1:1"},
		{nil, "OTEL_TRACES_EXPORTER=zipkin", "OTEL_TRACES_EXPORTER"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " ")+tc.env, func(t *testing.T) {
			cmd := exec.Command(switchboardBin(t), tc.args...)
			cmd.Env = os.Environ()
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("err = %v, want non-zero exit", err)
			}
			out := strings.TrimSpace(stderr.String())
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.want) || !strings.HasPrefix(out, "switchboard: ") {
				t.Fatalf("stderr = %q, want one line mentioning %q", out, tc.want)
			}
		})
	}
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
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\nlogs:\n%s", err, logs)
		}
	case <-time.After(waitFor):
		t.Fatalf("binary did not exit after SIGTERM; logs:\n%s", logs)
	}
	if took := time.Since(start); took < 2*time.Second || took > 6*time.Second {
		t.Errorf("exit took %v, want about the 2s shutdown timeout", took)
	}
	if len(logs.lines("shutdown deadline reached: aborting sessions still flushing")) != 1 {
		t.Fatalf("no abort log; logs:\n%s", logs)
	}
}
