// Package natstest runs embedded nats-server instances with JetStream for
// tests: one per call, on a random free loopback port, storing in the
// test's temporary directory, shut down when the test ends. Shutdown and
// Restart stop and start the same server (same port, same store) for
// outage tests.
package natstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is one embedded nats-server. Its methods may be called from the
// test goroutine only.
type Server struct {
	URL  string // nats://127.0.0.1:port
	Addr string // 127.0.0.1:port

	t    testing.TB
	opts server.Options

	mu  sync.Mutex
	srv *server.Server // nil while shut down
}

// readyTimeout bounds the wait for a server to accept connections.
const readyTimeout = 10 * time.Second

// Start runs a nats-server with JetStream on a free loopback port and
// waits until it accepts connections. It is shut down in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, opts: server.Options{
		ServerName: "natstest",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	}}
	srv, err := s.run()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	// Pin the port the kernel chose, so Restart comes back on it.
	s.opts.Port = srv.Addr().(*net.TCPAddr).Port
	s.Addr = net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
	s.URL = "nats://" + s.Addr
	t.Cleanup(s.Shutdown)
	return s
}

func (s *Server) run() (*server.Server, error) {
	opts := s.opts // the server keeps a pointer and fills in defaults
	srv, err := server.NewServer(&opts)
	if err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("nats-server not ready within " + readyTimeout.String())
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	return srv, nil
}

// Shutdown stops the server and waits until it has; its clients see the
// connection close. Idempotent.
func (s *Server) Shutdown() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts the server again on the same port with the same store:
// streams on file storage and their messages are back. The previous
// server must have been shut down.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		s.t.Fatal("natstest: Restart while the server is running; call Shutdown first")
	}
	// The port was just released; retry briefly if the kernel still holds it.
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if _, err = s.run(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("natstest: restart on %s: %v", s.Addr, err)
}

// HideStream moves the files of stream (of the default account) out of
// the store, so that the next Restart comes back with JetStream
// answering "stream not found" for it, as a server answers for a stream
// it has not loaded yet (a cluster still replaying its metadata, a
// server still recovering its store). ShowStream puts the files back for
// the Restart after; it fails the test if a stream of that name was
// created meanwhile. Both need the server shut down.
func (s *Server) HideStream(stream string) {
	s.t.Helper()
	dir, hidden := s.streamDirs(stream)
	if err := os.Rename(dir, hidden); err != nil {
		s.t.Fatalf("natstest: hide stream %s: %v", stream, err)
	}
}

// ShowStream undoes HideStream.
func (s *Server) ShowStream(stream string) {
	s.t.Helper()
	dir, hidden := s.streamDirs(stream)
	if _, err := os.Stat(dir); err == nil {
		s.t.Fatalf("natstest: show stream %s: a stream of that name was created while it was hidden", stream)
	}
	if err := os.Rename(hidden, dir); err != nil {
		s.t.Fatalf("natstest: show stream %s: %v", stream, err)
	}
}

// streamDirs is where stream's files are, and where HideStream keeps them.
func (s *Server) streamDirs(stream string) (dir, hidden string) {
	if s.Server() != nil {
		s.t.Fatal("natstest: the store can be changed only while the server is shut down")
	}
	streams := filepath.Join(s.opts.StoreDir, server.JetStreamStoreDir, server.DEFAULT_GLOBAL_ACCOUNT, "streams")
	return filepath.Join(streams, stream), filepath.Join(s.opts.StoreDir, "hidden-"+stream)
}

// Server returns the running server (nil while shut down), for tests that
// need its API.
func (s *Server) Server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}
