package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// lockedBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) lines(t *testing.T) []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(w.b.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestLogLinesNameTheConnection: every line a connection causes carries
// its conn id, user, transport and remote address, including lines
// written deep in the publish path that only has a context.
func TestLogLinesNameTheConnection(t *testing.T) {
	var buf lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	inner, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &hookBroker{Broker: inner, publish: func(context.Context, core.Publication) (core.Published, error) {
		return core.Published{}, errors.New("broker unreachable")
	}}
	n, err := core.NewNode(core.Config{}, b, logger)
	if err != nil {
		t.Fatal(err)
	}
	tr := coretest.NewTransport()
	s, err := n.Accept(context.Background(), tr, core.ConnectRequest{Credentials: core.Credentials{User: "alice"}, Rooms: []string{"r"}, RemoteAddr: "127.0.0.1:5000"})
	if err != nil {
		t.Fatal(err)
	}
	s.HandleFrame([]byte(`{"v":1,"type":"publish","room":"r","ref":"p1","data":1}`))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		env, err := tr.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if env.Type == core.TypeError {
			break
		}
	}
	// A publish from the server API has no connection: no conn attribute.
	if _, err := n.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: 1, Type: core.TypeMessage, Room: "r"}); err == nil {
		t.Fatal("publish through a failing broker succeeded")
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var fromConn, fromAPI int
	for _, l := range buf.lines(t) {
		switch l["msg"] {
		case "publish failed":
			if l["conn"] == nil {
				fromAPI++
				continue
			}
			fromConn++
			if l["conn"] != s.ID() || l["user"] != "alice" || l["transport"] != tr.Name() || l["remote"] != "127.0.0.1:5000" {
				t.Errorf("publish failed line: %v", l)
			}
		case "connect", "disconnect":
			if l["conn"] != s.ID() || l["user"] != "alice" {
				t.Errorf("%s line: %v", l["msg"], l)
			}
		}
	}
	if fromConn != 1 || fromAPI != 1 {
		t.Fatalf("publish failed lines: %d naming the connection, %d without; want 1 and 1", fromConn, fromAPI)
	}
}
