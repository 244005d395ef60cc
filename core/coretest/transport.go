package coretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/switchboard-dev/switchboard/core"
)

// ErrClosed is returned by Next once the transport has been closed and
// every recorded envelope has been read.
var ErrClosed = errors.New("switchboard/coretest: transport closed")

// TransportConfig configures a Transport. The zero value is a
// bidirectional transport named "test".
type TransportConfig struct {
	// Name is what Transport.Name reports. Optional. Default: "test".
	Name string
	// Unidirectional makes the transport report that the client cannot
	// send (like SSE), so core must not close it for silence.
	// Optional. Default: false.
	Unidirectional bool
}

// Transport is a recording core.Transport and core.Pinger. It records
// every frame core writes (one entry per envelope, copied, so core may
// reuse its slices), every ping and the Disconnect passed to Close. It
// checks core's side of the Transport contract (one call at a time, no
// call after Close, Close exactly once, every frame one valid UTF-8 JSON
// object without a raw newline) and reports violations from Err.
//
// Block simulates a stalled client; FailWrites a client that is gone.
// All methods are safe for concurrent use.
type Transport struct {
	name   string
	unidir bool

	inflight atomic.Int32

	mu         sync.Mutex
	frames     [][]byte
	writes     int
	pings      int
	cursor     int // next frame Next returns
	closed     bool
	disconnect core.Disconnect
	changed    chan struct{} // closed and replaced on every recorded event
	closedCh   chan struct{}
	block      chan struct{} // non-nil while blocked: writes wait for it to close
	blockedCh  chan struct{} // closed when a call is waiting on block
	failWith   error
	violations []error
}

var (
	_ core.Transport = (*Transport)(nil)
	_ core.Pinger    = (*Transport)(nil)
)

// NewTransport returns a recording transport.
func NewTransport(config ...TransportConfig) *Transport {
	var cfg TransportConfig
	if len(config) > 0 {
		cfg = config[0]
	}
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	return &Transport{
		name:     cfg.Name,
		unidir:   cfg.Unidirectional,
		changed:  make(chan struct{}),
		closedCh: make(chan struct{}),
	}
}

// Name implements core.Transport.
func (t *Transport) Name() string { return t.name }

// Unidirectional implements core.Transport.
func (t *Transport) Unidirectional() bool { return t.unidir }

// WriteMany implements core.Transport: it records a copy of every frame,
// after waiting while the transport is blocked.
func (t *Transport) WriteMany(frames [][]byte) error {
	defer t.enter("WriteMany")()
	if err := t.wait(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.violateLocked(errors.New("WriteMany called after Close"))
		return ErrClosed
	}
	if len(frames) == 0 {
		t.violateLocked(errors.New("WriteMany called with no frames"))
	}
	t.writes++
	for _, f := range frames {
		if err := checkFrame(f); err != nil {
			t.violateLocked(fmt.Errorf("frame %d: %w: %q", len(t.frames), err, f))
		}
		t.frames = append(t.frames, bytes.Clone(f))
	}
	t.signalLocked()
	return nil
}

// Ping implements core.Pinger: it counts the ping, after waiting while the
// transport is blocked.
func (t *Transport) Ping() error {
	defer t.enter("Ping")()
	if err := t.wait(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.violateLocked(errors.New("Ping called after Close"))
		return ErrClosed
	}
	t.pings++
	t.signalLocked()
	return nil
}

// Close implements core.Transport: it records d. Core must call it
// exactly once.
func (t *Transport) Close(d core.Disconnect) error {
	defer t.enter("Close")()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.violateLocked(fmt.Errorf("Close(%v) called again after Close(%v)", d, t.disconnect))
		return nil
	}
	t.closed = true
	t.disconnect = d
	close(t.closedCh)
	t.signalLocked()
	return nil
}

// enter records that a core call is in progress and reports overlapping
// calls, which the Transport contract forbids.
func (t *Transport) enter(method string) (exit func()) {
	if t.inflight.Add(1) > 1 {
		t.mu.Lock()
		t.violateLocked(fmt.Errorf("%s called while another call was in progress", method))
		t.mu.Unlock()
	}
	return func() { t.inflight.Add(-1) }
}

// wait blocks while the transport is blocked, then returns the error set
// by FailWrites, if any.
func (t *Transport) wait() error {
	t.mu.Lock()
	block := t.block
	if block != nil && t.blockedCh != nil {
		select {
		case <-t.blockedCh:
		default:
			close(t.blockedCh)
		}
	}
	t.mu.Unlock()
	if block != nil {
		<-block
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failWith
}

func checkFrame(f []byte) error {
	switch {
	case !utf8.Valid(f):
		return errors.New("frame is not valid UTF-8")
	case bytes.IndexByte(f, '\n') >= 0:
		return errors.New("frame contains a raw newline")
	case !json.Valid(f) || len(f) == 0 || f[0] != '{':
		return errors.New("frame is not a JSON object")
	}
	return nil
}

func (t *Transport) violateLocked(err error) {
	t.violations = append(t.violations, err)
}

func (t *Transport) signalLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// Block makes every later WriteMany and Ping wait until Unblock, like a
// client that stopped reading. Blocked is closed once a call is waiting.
func (t *Transport) Block() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.block == nil {
		t.block = make(chan struct{})
		t.blockedCh = make(chan struct{})
	}
}

// Blocked returns a channel closed when core is waiting in a blocked
// WriteMany or Ping. It is nil unless Block was called.
func (t *Transport) Blocked() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.blockedCh
}

// Unblock releases the calls waiting since Block.
func (t *Transport) Unblock() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.block != nil {
		close(t.block)
		t.block = nil
	}
}

// FailWrites makes every later WriteMany and Ping return err, like a
// client that has gone away. A nil err restores normal writes.
func (t *Transport) FailWrites(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failWith = err
}

// Frames returns copies of all frames written so far, one per envelope,
// in order.
func (t *Transport) Frames() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]byte, len(t.frames))
	for i, f := range t.frames {
		out[i] = bytes.Clone(f)
	}
	return out
}

// Envelopes decodes all frames written so far.
func (t *Transport) Envelopes() ([]*core.Envelope, error) {
	frames := t.Frames()
	out := make([]*core.Envelope, 0, len(frames))
	for i, f := range frames {
		env, err := core.UnmarshalEnvelope(f)
		if err != nil {
			return out, fmt.Errorf("frame %d: %w", i, err)
		}
		out = append(out, env)
	}
	return out, nil
}

// Writes returns how many WriteMany calls carried the frames: a batch of
// several frames counts once.
func (t *Transport) Writes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.writes
}

// Pings returns how many pings core sent.
func (t *Transport) Pings() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pings
}

// Closed returns a channel closed when core has closed the transport.
func (t *Transport) Closed() <-chan struct{} { return t.closedCh }

// Disconnect returns what core passed to Close, and whether it has been
// called.
func (t *Transport) Disconnect() (core.Disconnect, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.disconnect, t.closed
}

// WaitClosed waits until core closes the transport and returns the
// Disconnect it passed, or ctx's error.
func (t *Transport) WaitClosed(ctx context.Context) (core.Disconnect, error) {
	select {
	case <-t.closedCh:
		d, _ := t.Disconnect()
		return d, nil
	case <-ctx.Done():
		return core.Disconnect{}, ctx.Err()
	}
}

// Next returns the next envelope written since the previous Next,
// waiting for one if needed. It returns ErrClosed once the transport is
// closed and every envelope has been returned, or ctx's error. Next keeps
// one cursor: call it from one goroutine.
func (t *Transport) Next(ctx context.Context) (*core.Envelope, error) {
	for {
		t.mu.Lock()
		if t.cursor < len(t.frames) {
			f := t.frames[t.cursor]
			t.cursor++
			t.mu.Unlock()
			return core.UnmarshalEnvelope(f)
		}
		if t.closed {
			t.mu.Unlock()
			return nil, ErrClosed
		}
		changed := t.changed
		t.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Pending returns how many written envelopes Next has not returned yet.
func (t *Transport) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.frames) - t.cursor
}

// Err reports every violation of the Transport contract seen so far, or
// nil.
func (t *Transport) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.violations...)
}

// WithoutPinger returns t as a core.Transport that does not implement
// core.Pinger, like a long-poll transport whose liveness is the client's
// own traffic. Recording still happens on t.
func (t *Transport) WithoutPinger() core.Transport { return noPinger{t} }

type noPinger struct{ t *Transport }

func (n noPinger) Name() string                    { return n.t.Name() }
func (n noPinger) Unidirectional() bool            { return n.t.Unidirectional() }
func (n noPinger) WriteMany(frames [][]byte) error { return n.t.WriteMany(frames) }
func (n noPinger) Close(d core.Disconnect) error   { return n.t.Close(d) }
