package core_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// levels records the level of every log line by message.
type levels struct {
	mu sync.Mutex
	by map[string][]slog.Level
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.by[r.Message] = append(l.by[r.Message], r.Level)
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

type ephemeral struct{ *coretest.Transport }

func (ephemeral) Ephemeral() bool { return true }

// TestEphemeralTransportsLogAtDebug: a long-poll's connect and disconnect
// are routine (one per request) and logged at Debug; a WebSocket's at
// Info.
func TestEphemeralTransportsLogAtDebug(t *testing.T) {
	t.Parallel()
	rec := &levels{by: map[string][]slog.Level{}}
	b, err := memory.New(memory.Config{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	n, err := core.NewNode(core.Config{}, b, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []core.Transport{ephemeral{coretest.NewTransport()}, coretest.NewTransport()} {
		s, err := n.Accept(context.Background(), tr, core.ConnectRequest{Credentials: core.Credentials{User: "u"}})
		if err != nil {
			t.Fatal(err)
		}
		s.Close(core.DisconnectNormal)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, msg := range []string{"connect", "disconnect"} {
		got := rec.by[msg]
		if len(got) != 2 || got[0] != slog.LevelDebug || got[1] != slog.LevelInfo {
			t.Errorf("%s logged at %v, want [DEBUG INFO]", msg, got)
		}
	}
}
