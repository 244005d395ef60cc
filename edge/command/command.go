package command

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/switchboard-dev/switchboard/edge/auth"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/edge/tracing"
)

// Command is a program that runs one edge node from the edge's flags and
// environment: the switchboard binary (edge/main.go), or an application
// built on the edge (examples/chat), which adds its routes in Setup.
type Command struct {
	// Name starts every line written to Stderr outside the log
	// ("switchboard: cannot listen on --addr …").
	Name string
	// Getenv reads the SWITCHBOARD_* and OTEL_* variables. Optional.
	// Default: os.Getenv.
	Getenv func(string) string
	// Stdout receives --help and the spans of OTEL_TRACES_EXPORTER=console;
	// Stderr the error lines and the log (--log-format, --log-level).
	// Optional. Default: os.Stdout, os.Stderr.
	Stdout, Stderr io.Writer
	// Flags, if set, defines the application's own flags on the edge's
	// flag set (examples/custom-adapter's --tcp-addr): each is also read
	// from its SWITCHBOARD_* variable, a bad value is reported like the
	// edge's (exit status 2), and --help lists it. Read their values in
	// Setup.
	Flags func(*flag.FlagSet)
	// Setup, if set, is called with the server before it serves: register
	// the application's routes and envelope types there. The server's
	// Config is the edge's configuration.
	Setup func(*server.Server)
	// Ready, if set, is called once the node serves, with its listeners'
	// addresses (admin nil without --admin-addr).
	Ready func(addr, admin net.Addr)
}

// Run loads the configuration from args, serves until ctx ends (a
// signal), then drains within --shutdown-timeout. It returns the exit
// status: 0 after --help or a clean shutdown, 2 for a bad setting, 1
// otherwise. Every setting, OTEL_* included, is checked before a listener
// opens; with --broker-wait an unreachable broker is retried while /healthz
// answers on --addr.
func (c Command) Run(ctx context.Context, args []string) int {
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	var extra []func(*flag.FlagSet)
	if c.Flags != nil {
		extra = append(extra, c.Flags)
	}
	cfg, err := config.Load(args, c.Getenv, c.Stdout, extra...)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		c.fail(err)
		return 2
	}
	logger := cfg.Logger(c.Stderr)
	tr, err := tracing.Setup(context.Background(), c.Getenv, c.Stdout)
	if err != nil {
		c.fail(err)
		return 2
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		c.fail(fmt.Errorf("cannot listen on --addr %s: %w (choose another address with --addr or SWITCHBOARD_ADDR)", cfg.Addr, errors.Unwrap(err)))
		if tr != nil {
			_ = tr.Close(context.Background())
		}
		return 1
	}
	if tr != nil {
		cfg.Tracer = tr
		logger.Info("tracing on", "exporter", c.Getenv("OTEL_TRACES_EXPORTER"))
		defer func() {
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Close(fctx); err != nil {
				logger.Warn("tracing: spans not flushed", "err", err)
			}
		}()
	}
	srv, err := server.New(cfg, logger)
	if err != nil && cfg.Broker.Wait && errors.Is(err, server.ErrBrokerUnavailable) {
		srv, err = waitForBroker(ctx, cfg, logger, ln, err)
	}
	if err != nil {
		c.fail(err)
		_ = ln.Close()
		var se *auth.SourceError
		if errors.As(err, &se) {
			return 2 // a JWT key setting: --jwks-url answered with no usable key set
		}
		return 1
	}
	if c.Setup != nil {
		c.Setup(srv)
	}
	return c.serve(ctx, cfg, logger, srv, ln)
}

// serve runs srv on ln (and --admin-addr) until ctx ends, then shuts it
// down; it returns the exit status.
func (c Command) serve(ctx context.Context, cfg config.Config, logger *slog.Logger, srv *server.Server, ln net.Listener) int {
	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	}
	var adminAddr net.Addr
	adminDone := make(chan struct{})
	if cfg.AdminAddr == "" {
		close(adminDone)
	} else {
		aln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			c.fail(fmt.Errorf("cannot listen on --admin-addr %s: %w (choose another address with --admin-addr or SWITCHBOARD_ADMIN_ADDR)", cfg.AdminAddr, errors.Unwrap(err)))
			_ = ln.Close()
			_ = shutdown()
			return 1
		}
		adminAddr = aln.Addr()
		go func() {
			defer close(adminDone)
			if err := srv.ServeAdmin(aln); err != nil {
				logger.Error("admin server stopped", "err", err)
			}
		}()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if c.Ready != nil {
		c.Ready(ln.Addr(), adminAddr)
	}
	code, serving := 0, true
	select {
	case err := <-served:
		logger.Error("server stopped", "err", err)
		code, serving = 1, false
	case <-ctx.Done():
		logger.Info("signal received, draining", "timeout", cfg.ShutdownTimeout.String())
	}
	// Shutdown closes the listeners, also one that Serve or ServeAdmin
	// has not begun to serve: both return.
	if err := shutdown(); err != nil {
		logger.Error("shutdown incomplete", "err", err)
		code = 1
	}
	if serving {
		if err := <-served; err != nil {
			logger.Error("server error", "err", err)
			code = 1
		}
	}
	<-adminDone
	return code
}

// fail writes err as one line on Stderr, after the program's name.
func (c Command) fail(err error) { fmt.Fprintf(c.Stderr, "%s: %v\n", c.Name, err) }

// waitForBroker serves /healthz (200) and /readyz (503) on ln while it
// retries New with backoff, for --broker-wait. It returns the server once
// the broker answers, with ln free for it, or the last error when ctx
// ends or the failure is not an outage.
func waitForBroker(ctx context.Context, cfg config.Config, logger *slog.Logger, ln net.Listener, err error) (*server.Server, error) {
	logger.Warn("broker unreachable; not ready, retrying (--broker-wait)", "broker", cfg.Broker.Name, "err", err)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"not ready","broker":"unreachable"}`)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		var l net.Listener = keepOpen{ln}
		if cfg.TLS != nil {
			l = tls.NewListener(l, cfg.TLS)
		}
		_ = hs.Serve(l)
	}()
	defer func() {
		// Stop the stand-in server without closing ln (the real server
		// takes it over): a past deadline makes its Accept fail, Shutdown
		// makes it give up, and the cleared deadline hands ln on.
		tl, _ := ln.(*net.TCPListener)
		if tl != nil {
			_ = tl.SetDeadline(time.Now())
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		<-served
		if tl != nil {
			_ = tl.SetDeadline(time.Time{})
		}
	}()
	backoff := 500 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		var srv *server.Server
		srv, err = server.New(cfg, logger)
		if err == nil {
			logger.Info("broker reachable; starting")
			return srv, nil
		}
		if !errors.Is(err, server.ErrBrokerUnavailable) {
			return nil, err
		}
		logger.Debug("broker still unreachable", "err", err)
		backoff = min(2*backoff, 10*time.Second)
	}
}

// keepOpen lets the stand-in server stop without closing the listener.
type keepOpen struct{ net.Listener }

func (keepOpen) Close() error { return nil }
