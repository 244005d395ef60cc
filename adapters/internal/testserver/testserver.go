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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener = ln
	if wrap != nil {
		l = wrap(ln)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("http server shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// Fiber serves app on 127.0.0.1:0 until the test ends and returns its
// address (host:port), as HTTP does for net/http; wrap as there.
func Fiber(t testing.TB, app *fiber.App, wrap func(net.Listener) net.Listener) string {
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
	go func() { served <- app.Listener(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := app.ShutdownWithContext(ctx); err != nil {
			t.Errorf("app shutdown: %v", err)
		}
		if err := <-served; err != nil {
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
