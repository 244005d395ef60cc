// Command switchboard runs a Switchboard edge node.
//
//	go run ./edge             # in-memory broker on :8080, development mode
//	go run ./edge --help      # every setting, with its environment variable
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-dev/switchboard/edge/auth"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/edge/tracing"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := config.Load(args, os.Getenv, os.Stdout)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchboard: %v\n", err)
		return 2
	}
	// Every setting is checked before the listener opens: a busy --addr
	// must not hide a bad one.
	logger := newLogger(cfg)
	tr, err := tracing.Setup(context.Background(), os.Getenv, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchboard: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchboard: cannot listen on --addr %s: %v (choose another address with --addr or SWITCHBOARD_ADDR)\n", cfg.Addr, errors.Unwrap(err))
		if tr != nil {
			_ = tr.Close(context.Background())
		}
		return 1
	}
	if tr != nil {
		cfg.Tracer = tr
		logger.Info("tracing on", "exporter", os.Getenv("OTEL_TRACES_EXPORTER"))
		defer func() {
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Close(fctx); err != nil {
				logger.Warn("tracing: spans not flushed", "err", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(cfg, logger)
	if err != nil && cfg.BrokerWait && errors.Is(err, server.ErrBrokerUnavailable) {
		srv, err = waitForBroker(ctx, cfg, logger, ln, err)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchboard: %v\n", err)
		_ = ln.Close()
		var se *auth.SourceError
		if errors.As(err, &se) {
			return 2 // a JWT key setting: --jwks-url answered with no usable key set
		}
		return 1
	}
	if cfg.AdminAddr != "" {
		aln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "switchboard: cannot listen on --admin-addr %s: %v (choose another address with --admin-addr or SWITCHBOARD_ADMIN_ADDR)\n", cfg.AdminAddr, errors.Unwrap(err))
			_ = ln.Close()
			return 1
		}
		go func() {
			if err := srv.ServeAdmin(aln); err != nil {
				logger.Error("admin server stopped", "err", err)
			}
		}()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		logger.Error("server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	stop()
	logger.Info("signal received, draining", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Error("shutdown incomplete", "err", err)
		return 1
	}
	if err := <-serveErr; err != nil {
		logger.Error("server error", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// waitForBroker serves /healthz (200) and /readyz (503) on ln while it
// retries server.New with backoff, for --broker-wait. It returns the
// server once the broker answers, with ln free for it, or the last error
// when a signal arrives or the failure is not an outage.
func waitForBroker(ctx context.Context, cfg config.Config, logger *slog.Logger, ln net.Listener, err error) (*server.Server, error) {
	logger.Warn("broker unreachable; not ready, retrying (--broker-wait)", "broker", cfg.Broker, "err", err)
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
