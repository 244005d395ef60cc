// Command custom-adapter runs an edge with a third-party transport next to
// the built-in ones: the HTTP server (WebSocket on /ws) on --addr and
// newline-delimited JSON over TCP (package ndjson) on --tcp-addr, both
// serving the same node.
//
//	go run ./examples/custom-adapter --tcp-addr 127.0.0.1:9090
//	printf '%s\n' '{"user":"ada","rooms":["lobby"]}' \
//	  '{"v":1,"type":"publish","room":"lobby","ref":"1","data":"hi"}' | nc 127.0.0.1 9090
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/examples/custom-adapter/ndjson"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "custom-adapter:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("custom-adapter", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "HTTP address (WebSocket on /ws)")
	tcpAddr := fs.String("tcp-addr", "127.0.0.1:9090", "NDJSON-over-TCP address")
	secret := fs.String("jwt-secret", os.Getenv("SWITCHBOARD_JWT_SECRET"), "HS256 secret; empty: development mode")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := config.Default()
	cfg.JWTSecret = *secret

	// The edge as usual...
	srv, err := server.New(cfg, logger)
	if err != nil {
		return err
	}
	httpLn, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	tcpLn, err := net.Listen("tcp", *tcpAddr)
	if err != nil {
		return err
	}
	// ...and the custom adapter on the same node: the node authenticates
	// its connections with the edge's chain, as it does the built-in ones.
	// The listener stops accepting when ctx ends (a signal).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(httpLn) }()
	tcpDone := make(chan error, 1)
	go func() {
		tcpDone <- ndjson.Serve(ctx, srv.Node(), tcpLn, ndjson.Config{WriteTimeout: cfg.WriteTimeout})
	}()
	logger.Info("ndjson listening", "addr", tcpLn.Addr().String())

	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	case err := <-tcpDone:
		return err
	}
	// Stop accepting TCP, then the edge's ordered shutdown (the node ends
	// every session, TCP ones included, with 1012), then wait for both.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	stop()
	err = srv.Shutdown(sctx)
	return errors.Join(err, <-errc, <-tcpDone)
}
