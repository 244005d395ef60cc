package core_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// tryTransport is a recording transport that can write without blocking:
// it takes everything (take), holds it for FlushPending (hold), or fails.
type tryTransport struct {
	*coretest.Transport
	mode    atomic.Int32 // take, hold or fail
	tries   atomic.Int32 // TryWriteMany calls
	flushes atomic.Int32 // FlushPending calls that wrote something
	mu      sync.Mutex
	held    [][]byte
}

const (
	take = iota
	hold
	fail
)

var _ core.TryWriter = (*tryTransport)(nil)

func (t *tryTransport) TryWriteMany(frames [][]byte) (bool, error) {
	t.tries.Add(1)
	switch t.mode.Load() {
	case hold:
		t.mu.Lock()
		t.held = append(t.held, frames...) // frames are immutable: keeping them is allowed
		t.mu.Unlock()
		return false, nil
	case fail:
		return false, errors.New("gone")
	}
	return true, t.Transport.WriteMany(frames)
}

func (t *tryTransport) FlushPending() error {
	t.mu.Lock()
	held := t.held
	t.held = nil
	t.mu.Unlock()
	if len(held) == 0 {
		return nil
	}
	t.flushes.Add(1)
	return t.Transport.WriteMany(held)
}

// TestWriterPool: a TryWriter session is written by the node's writer
// pool; what the transport holds back is flushed by the session's own
// writer before anything after it, in order; a failed write ends the
// session as a failed write does.
func TestWriterPool(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode int32
	}{{"taken", take}, {"held", hold}} {
		t.Run(tc.name, func(t *testing.T) {
			n, tr := tryNode(t)
			tr.mode.Store(tc.mode)
			const messages = 50
			for i := range messages {
				if _, err := n.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: []byte(strconv.Itoa(i))}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range messages {
				env, err := nextMessage(tr)
				if err != nil || string(env.Data) != strconv.Itoa(i) {
					t.Fatalf("message %d: %v %v", i, env, err)
				}
			}
			if tr.tries.Load() == 0 {
				t.Fatal("the writer pool tried no write")
			}
			if tc.mode == hold && tr.flushes.Load() == 0 {
				t.Fatal("held frames were not flushed by FlushPending")
			}
			if err := tr.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("failed", func(t *testing.T) {
		n, tr := tryNode(t)
		tr.mode.Store(fail)
		if _, err := n.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
		if d, err := tr.WaitClosed(t.Context()); err != nil || d.Code != core.DisconnectGoingAway.Code {
			t.Fatalf("closed with %v, %v; want going away", d, err)
		}
	})
}

func tryNode(t *testing.T) (*core.Node, *tryTransport) {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := core.NewNode(core.Config{}, b, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	tr := &tryTransport{Transport: coretest.NewTransport()}
	if _, err := n.Accept(context.Background(), tr, core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"r"}}); err != nil {
		t.Fatal(err)
	}
	if env, err := tr.Next(context.Background()); err != nil || env.Type != core.TypeWelcome {
		t.Fatalf("welcome: %v %v", env, err)
	}
	return n, tr
}

// nextMessage reads the next room message, skipping nothing else.
func nextMessage(tr *tryTransport) (*core.Envelope, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env, err := tr.Next(ctx)
	if err == nil && env.Type != core.TypeMessage {
		return env, fmt.Errorf("got %s", env.Type)
	}
	return env, err
}

// TestWriterPoolSlowClient: a client whose socket is full (its transport
// holds the frames and then blocks in FlushPending) never holds a worker:
// another client on the node still gets every message.
func TestWriterPoolSlowClient(t *testing.T) {
	n, slow := tryNode(t)
	slow.mode.Store(hold)
	slow.Block()
	defer slow.Unblock()
	fast := &tryTransport{Transport: coretest.NewTransport()}
	if _, err := n.Accept(context.Background(), fast, core.ConnectRequest{Credentials: core.Credentials{User: "f"}, Rooms: []string{"r"}}); err != nil {
		t.Fatal(err)
	}
	if env, err := fast.Next(context.Background()); err != nil || env.Type != core.TypeWelcome {
		t.Fatalf("welcome: %v %v", env, err)
	}
	for i := range 200 {
		if _, err := n.Publish(context.Background(), core.RoomChannel("r"), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-slow.Blocked() // its own writer is stuck in FlushPending
		}
	}
	for i := range 200 {
		env, err := nextMessage(fast)
		if err != nil || string(env.Data) != strconv.Itoa(i) {
			t.Fatalf("fast client, message %d: %v %v", i, env, err)
		}
	}
}
