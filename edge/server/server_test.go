package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core/coretest"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
)

// TestMain fails the package if a test leaves a goroutine behind.
// fasthttp's clock runs for the life of the process once a server has
// started, and its worker-pool cleaner sleeps up to 10 s before it sees
// that Serve has stopped: neither is a leak.
func TestMain(m *testing.M) {
	coretest.VerifyNone(m, "fasthttp.updateServerDate", "fasthttp.(*workerPool).Start.func2")
}

// hang bounds the wait for Serve to return: generous for a loaded
// machine, short of the test binary's own timeout.
const hang = 30 * time.Second

func newServer(t *testing.T, args ...string) *server.Server {
	t.Helper()
	cfg, err := config.Load(append([]string{"--log-level", "error"}, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func shutdown(t *testing.T, srv *server.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// awaitServe waits for a Serve or ServeAdmin started on ln to return nil.
// On a hang it closes ln itself, so the goroutine ends, and fails.
func awaitServe(t *testing.T, what string, served <-chan error, ln net.Listener) {
	t.Helper()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("%s returned %v, want nil after Shutdown", what, err)
		}
	case <-time.After(hang):
		_ = ln.Close()
		<-served
		t.Fatalf("%s still serving %s after Shutdown", what, hang)
	}
	// The listener is closed: nobody is left to answer on it.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		_ = c.Close()
		t.Errorf("%s left %s open after Shutdown", what, ln.Addr())
	}
}

// TestServeAfterShutdown: a Serve that comes after Shutdown (a signal
// right after start) closes its listener and returns at once instead of
// serving forever.
func TestServeAfterShutdown(t *testing.T) {
	srv := newServer(t, "--admin-addr", "127.0.0.1:0")
	shutdown(t, srv)
	for _, s := range []struct {
		name  string
		serve func(net.Listener) error
	}{{"Serve", srv.Serve}, {"ServeAdmin", srv.ServeAdmin}} {
		ln := listen(t)
		served := make(chan error, 1)
		go func() { served <- s.serve(ln) }()
		awaitServe(t, s.name, served, ln)
	}
}

// TestShutdownRacesServe: Shutdown at any point while Serve and
// ServeAdmin are starting makes both return and close their listeners.
// Repeated to land in the window before Fiber has begun serving.
func TestShutdownRacesServe(t *testing.T) {
	for range 20 {
		srv := newServer(t, "--admin-addr", "127.0.0.1:0")
		ln, aln := listen(t), listen(t)
		served, adminServed := make(chan error, 1), make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		go func() { adminServed <- srv.ServeAdmin(aln) }()
		shutdown(t, srv)
		awaitServe(t, "Serve", served, ln)
		awaitServe(t, "ServeAdmin", adminServed, aln)
		if t.Failed() {
			return
		}
	}
}

// TestNewFailureReleases: when a step of New fails, what the steps before
// it built is released (the broker, the webhooks' workers: TestMain finds
// any goroutine left), and the error names what to fix.
func TestNewFailureReleases(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error
		down bool   // matches ErrBrokerUnavailable
	}{
		{"authentication, after the broker and the webhooks", []string{"--jwks-url", "http://127.0.0.1:1/jwks.json", // unreachable: only auth.New finds out

			"--webhook-connect", "http://127.0.0.1:1/connect", "--webhook-secret", "0123456789abcdef0123456789abcdef"}, "--jwks-url", false},
		{"the broker", []string{"--broker", "redis", "--broker-url", "redis://127.0.0.1:1/0"}, "redis", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(append([]string{"--log-level", "error"}, tc.args...), func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				shutdown(t, srv)
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || errors.Is(err, server.ErrBrokerUnavailable) != tc.down {
				t.Errorf("New: %v; want an error naming %s (broker unavailable: %v)", err, tc.want, tc.down)
			}
		})
	}
}
