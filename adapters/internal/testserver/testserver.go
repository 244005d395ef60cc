// Package testserver runs the adapters' front ends in tests: a real
// http.Server or Fiber app on 127.0.0.1:0, stopped when the test ends.
//
// Concurrency: HTTP is called from the test goroutine; the server serves
// on a goroutine of its own, which ends in the test's cleanup.
package testserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// HTTP serves h on 127.0.0.1:0 until the test ends and returns its
// address (host:port). wrap, if not nil, wraps the listener (NotTCP,
// smaller socket buffers…). The server's Shutdown runs in a cleanup
// registered now: shut nodes down in cleanups registered later (they run
// first), since the server does not end event streams or upgraded
// connections itself.
func HTTP(t testing.TB, h http.Handler, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	return Serve(t, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, wrap)
}

// Serve is HTTP with a server of the caller's (its timeouts…).
func Serve(t testing.TB, srv *http.Server, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	return run(t, wrap, srv.Serve, srv.Shutdown, http.ErrServerClosed)
}

// Fiber serves app on 127.0.0.1:0 until the test ends and returns its
// address (host:port), as HTTP does for net/http; wrap as there.
func Fiber(t testing.TB, app *fiber.App, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	return run(t, wrap, app.Listener, app.ShutdownWithContext, nil)
}

// run listens on 127.0.0.1:0 (wrapped by wrap when not nil), serves on a
// goroutine of its own, and registers the shutdown as a cleanup, which
// waits for serve to return closed (nil, or matching closed).
func run(t testing.TB, wrap func(net.Listener) net.Listener, serve func(net.Listener) error, shutdown func(context.Context) error, closed error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener = ln
	if wrap != nil {
		l = wrap(ln)
	}
	served := make(chan error, 1)
	go func() { served <- serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, closed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// NotTCP wraps every connection ln accepts in a type that is not a
// *net.TCPConn, as a TLS or instrumented listener's would be, so the
// WebSocket adapter reads it with a goroutine instead of its poller.
func NotTCP(ln net.Listener) net.Listener { return wrapped{ln} }

type wrapped struct{ net.Listener }

func (l wrapped) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrappedConn{c}, nil
}

type wrappedConn struct{ net.Conn }
