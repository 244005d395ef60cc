// Command custom-adapter runs an edge with a third-party transport next to
// the built-in ones: the edge exactly as the switchboard binary runs it
// (every flag and SWITCHBOARD_* variable: JWT secret, public key or JWKS,
// the anonymous rules, webhooks, brokers…) and, on the same node,
// newline-delimited JSON over TCP (package ndjson) on --tcp-addr
// (SWITCHBOARD_TCP_ADDR). The node authenticates NDJSON connections with
// the edge's chain, as it does WebSocket ones.
//
//	go run ./examples/custom-adapter --tcp-addr 127.0.0.1:9090   # development mode
//	printf '%s\n' '{"user":"ada","rooms":["lobby"]}' \
//	  '{"v":1,"type":"publish","room":"lobby","ref":"1","data":"hi"}' | nc 127.0.0.1 9090
//
//	go run ./examples/custom-adapter --jwt-secret "$SECRET"     # a JWT in the hello: {"token":"…"}
//	go run ./examples/custom-adapter --help                      # every setting
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-dev/switchboard/edge/command"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/examples/custom-adapter/ndjson"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// The first signal starts the drain; a second one ends the process.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil))
}

// run serves the edge and the NDJSON listener until ctx ends, then drains
// both within --shutdown-timeout, and returns the exit status as the
// switchboard binary does (0 after --help or a clean shutdown, 2 for a bad
// setting, 1 otherwise). ready, if not nil, is called once both serve.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(httpAddr, tcpAddr net.Addr)) int {
	tcpAddr := defaultTCPAddr
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var ln net.Listener
	var listenErr error
	served := make(chan error, 1)
	code := command.Command{
		Name: "custom-adapter", Getenv: getenv, Stdout: stdout, Stderr: stderr,
		// The example's one setting of its own, read like the edge's
		// (SWITCHBOARD_TCP_ADDR too) and listed by --help.
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tcpAddr, "tcp-addr", defaultTCPAddr, "NDJSON-over-TCP listen address of this example")
		},
		// Setup runs once the settings are checked and the node is built.
		// The NDJSON listener stops accepting when ctx ends, as the edge's
		// does; the node's shutdown ends its sessions (1012).
		Setup: func(srv *server.Server) {
			if ln, listenErr = net.Listen("tcp", tcpAddr); listenErr != nil {
				cancel() // drain the edge, then fail
				return
			}
			go func() {
				served <- ndjson.Serve(ctx, srv.Node(), ln, ndjson.Config{WriteTimeout: srv.Config().WriteTimeout})
				cancel()
			}()
		},
		Ready: func(addr, _ net.Addr) {
			if ready != nil && ln != nil {
				ready(addr, ln.Addr())
			}
		},
	}.Run(ctx, args)
	switch {
	case listenErr != nil:
		fmt.Fprintf(stderr, "custom-adapter: cannot listen on --tcp-addr %s: %v\n", tcpAddr, errors.Unwrap(listenErr))
		return 1
	case ln == nil: // the edge never started: --help, or a bad setting
		return code
	}
	cancel() // if the edge stopped by itself
	if err := <-served; err != nil {
		fmt.Fprintf(stderr, "custom-adapter: ndjson: %v\n", err)
		return 1
	}
	return code
}

const defaultTCPAddr = "127.0.0.1:9090"
