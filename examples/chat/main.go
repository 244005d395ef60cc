// Command chat is a complete Switchboard app: the edge (any broker, the
// same flags as the switchboard binary) plus a browser page at / built on
// the Switchboard browser client (/client.js): rooms, private messages,
// the transport in use on screen, and a custom envelope type, "typing",
// registered on the router to show routing by type.
//
//	go run ./examples/chat            # then open http://localhost:8080/
//	go run ./examples/chat --help     # every setting, as for the edge
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/examples/chat/chatapp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil))
}

// run serves the chat until ctx ends, then drains within
// --shutdown-timeout, and returns the exit status: 0 after a clean
// shutdown, 2 for a bad setting, 1 otherwise. Logs go to stderr in
// --log-format at --log-level. ready, if not nil, is called once the
// listeners are open (adminAddr nil without --admin-addr).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(addr, adminAddr net.Addr)) int {
	cfg, err := config.Load(args, getenv, stdout)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "chat: %v\n", err)
		return 2
	}
	logger := newLogger(cfg, stderr)
	srv, err := server.New(cfg, logger)
	if err != nil {
		logger.Error("start", "err", err)
		return 1
	}
	chatapp.Register(srv)
	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintf(stderr, "chat: cannot listen on --addr %s: %v (choose another address with --addr or SWITCHBOARD_ADDR)\n", cfg.Addr, err)
		_ = shutdown()
		return 1
	}
	listeners := []net.Listener{ln}
	var adminAddr net.Addr
	if cfg.AdminAddr != "" {
		aln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			fmt.Fprintf(stderr, "chat: cannot listen on --admin-addr %s: %v (choose another address with --admin-addr or SWITCHBOARD_ADMIN_ADDR)\n", cfg.AdminAddr, err)
			_ = ln.Close()
			_ = shutdown()
			return 1
		}
		listeners, adminAddr = append(listeners, aln), aln.Addr()
		go func() {
			if err := srv.ServeAdmin(aln); err != nil {
				logger.Error("admin server stopped", "err", err)
			}
		}()
	}
	if ready != nil {
		ready(ln.Addr(), adminAddr)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		logger.Error("serve", "err", err)
		_ = shutdown()
		return 1
	case <-ctx.Done():
	}
	err = shutdown()
	// A signal that comes before Fiber has begun serving is not seen by
	// its shutdown, which closes only the listeners already serving:
	// closing ours makes a late Serve return (a closed listener is a clean
	// stop for it).
	for _, l := range listeners {
		_ = l.Close()
	}
	if err != nil {
		logger.Error("shutdown incomplete", "err", err)
		return 1
	}
	if err := <-served; err != nil {
		logger.Error("serve", "err", err)
		return 1
	}
	return 0
}

// newLogger is the edge's logger (edge/main.go): log/slog on w, in
// --log-format, at --log-level. The configuration has validated both.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
