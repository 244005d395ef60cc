package coretest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

func TestMain(m *testing.M) { coretest.VerifyNone(m) }

func frames(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, f := range s {
		out[i] = []byte(f)
	}
	return out
}

func TestTransportRecords(t *testing.T) {
	t.Parallel()
	tr := coretest.NewTransport()
	if tr.Name() != "test" || tr.Unidirectional() {
		t.Fatalf("defaults: name %q unidirectional %v", tr.Name(), tr.Unidirectional())
	}
	batch := frames(`{"v":1,"type":"pong","ref":"1"}`, `{"v":1,"type":"ack"}`)
	if err := tr.WriteMany(batch); err != nil {
		t.Fatal(err)
	}
	batch[0][0] = 'X' // core may reuse its buffers: the recording is a copy
	if err := tr.Ping(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(core.DisconnectNormal); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, want := range []string{core.TypePong, core.TypeAck} {
		env, err := tr.Next(ctx)
		if err != nil || env.Type != want {
			t.Fatalf("Next = %v, %v; want %s", env, err, want)
		}
	}
	if _, err := tr.Next(ctx); !errors.Is(err, coretest.ErrClosed) {
		t.Fatalf("Next after the last envelope of a closed transport = %v, want ErrClosed", err)
	}
	if tr.Writes() != 1 || tr.Pings() != 1 || len(tr.Frames()) != 2 || tr.Pending() != 0 {
		t.Errorf("writes %d pings %d frames %d pending %d", tr.Writes(), tr.Pings(), len(tr.Frames()), tr.Pending())
	}
	if d, closed := tr.Disconnect(); !closed || d != core.DisconnectNormal {
		t.Errorf("Disconnect() = %v, %v", d, closed)
	}
	if err := tr.Err(); err != nil {
		t.Errorf("Err() = %v", err)
	}
}

func TestTransportReportsViolations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		do   func(tr *coretest.Transport)
		want string
	}{
		{"raw newline", func(tr *coretest.Transport) { _ = tr.WriteMany(frames("{\"v\":1,\n\"type\":\"ack\"}")) }, "raw newline"},
		{"not JSON", func(tr *coretest.Transport) { _ = tr.WriteMany(frames(`{"v":1`)) }, "not a JSON object"},
		{"invalid UTF-8", func(tr *coretest.Transport) { _ = tr.WriteMany(frames("{\"v\":1,\"type\":\"\xff\"}")) }, "UTF-8"},
		{"empty write", func(tr *coretest.Transport) { _ = tr.WriteMany(nil) }, "no frames"},
		{"close twice", func(tr *coretest.Transport) {
			_ = tr.Close(core.DisconnectNormal)
			_ = tr.Close(core.DisconnectSlow)
		}, "called again"},
		{"write after close", func(tr *coretest.Transport) {
			_ = tr.Close(core.DisconnectNormal)
			_ = tr.WriteMany(frames(`{"v":1,"type":"ack"}`))
		}, "after Close"},
		{"ping after close", func(tr *coretest.Transport) {
			_ = tr.Close(core.DisconnectNormal)
			_ = tr.Ping()
		}, "after Close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := coretest.NewTransport()
			tt.do(tr)
			if err := tr.Err(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Err() = %v, want a violation mentioning %q", err, tt.want)
			}
		})
	}
}

func TestTransportDetectsConcurrentCalls(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tr := coretest.NewTransport()
		tr.Block()
		go func() { _ = tr.WriteMany(frames(`{"v":1,"type":"ack"}`)) }()
		<-tr.Blocked()
		go func() { _ = tr.Ping() }() // a second writer: forbidden
		synctest.Wait()
		tr.Unblock()
		synctest.Wait()
		if err := tr.Err(); err == nil || !strings.Contains(err.Error(), "while another call") {
			t.Fatalf("Err() = %v, want a concurrent-call violation", err)
		}
	})
}

func TestTransportBlockAndFail(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tr := coretest.NewTransport(coretest.TransportConfig{Name: "sse", Unidirectional: true})
		if tr.Name() != "sse" || !tr.Unidirectional() {
			t.Fatalf("config ignored: %q %v", tr.Name(), tr.Unidirectional())
		}
		if tr.Blocked() != nil {
			t.Fatal("Blocked() is non-nil before Block")
		}
		tr.Block()
		done := make(chan error, 1)
		go func() { done <- tr.WriteMany(frames(`{"v":1,"type":"ack"}`)) }()
		synctest.Wait()
		select {
		case <-tr.Blocked():
		default:
			t.Fatal("Blocked() not closed while a write waits")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := tr.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next while the write is blocked = %v, want the context's error", err)
		}
		tr.Unblock()
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		boom := errors.New("gone")
		tr.FailWrites(boom)
		if err := tr.WriteMany(frames(`{"v":1,"type":"ack"}`)); !errors.Is(err, boom) {
			t.Fatalf("WriteMany after FailWrites = %v", err)
		}
		if err := tr.Ping(); !errors.Is(err, boom) {
			t.Fatalf("Ping after FailWrites = %v", err)
		}
		if got := len(tr.Frames()); got != 1 {
			t.Fatalf("%d frames recorded, want only the one before FailWrites", got)
		}
	})
}

func TestWithoutPinger(t *testing.T) {
	t.Parallel()
	tr := coretest.NewTransport()
	var ct core.Transport = tr.WithoutPinger()
	if _, ok := ct.(core.Pinger); ok {
		t.Fatal("WithoutPinger still implements core.Pinger")
	}
	if err := ct.WriteMany(frames(`{"v":1,"type":"ack"}`)); err != nil {
		t.Fatal(err)
	}
	_ = ct.Close(core.DisconnectNormal)
	if d, closed := tr.Disconnect(); !closed || d != core.DisconnectNormal || len(tr.Frames()) != 1 {
		t.Fatalf("not recorded on the underlying transport: %v %v %d", d, closed, len(tr.Frames()))
	}
}
