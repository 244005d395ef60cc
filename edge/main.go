// Command switchboard runs a Switchboard edge node.
//
//	go run ./edge             # in-memory broker on :8080, development mode
//	go run ./edge --help      # every setting, with its environment variable
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-dev/switchboard/edge/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// The first signal starts the drain; a second one ends the process.
	context.AfterFunc(ctx, stop)
	os.Exit(command.Command{Name: "switchboard"}.Run(ctx, os.Args[1:]))
}
