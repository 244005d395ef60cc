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
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-dev/switchboard/edge/command"
	"github.com/switchboard-dev/switchboard/examples/chat/chatapp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// The first signal starts the drain; a second one ends the process.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil))
}

// run serves the chat as the switchboard binary serves the edge (the
// same flags, OTEL_* tracing and --broker-wait included) until ctx ends,
// then drains within --shutdown-timeout, and returns the exit status: 0
// after a clean shutdown, 2 for a bad setting, 1 otherwise. Logs go to
// stderr in --log-format at --log-level. ready, if not nil, is called once
// the chat serves (adminAddr nil without --admin-addr).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(addr, adminAddr net.Addr)) int {
	return command.Command{
		Name:   "chat",
		Getenv: getenv,
		Stdout: stdout,
		Stderr: stderr,
		Setup:  chatapp.Register,
		Ready:  ready,
	}.Run(ctx, args)
}
