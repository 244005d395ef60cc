package adaptertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/switchboard-dev/switchboard/core"
)

// Helpers for harnesses of unidirectional transports (SSE, long-poll,
// and third-party ones of that shape), whose Client.Send goes through
// POST /send and whose Next drains envelopes from two sources.

// PostSend posts body to a /send URL (with a bearer token if non-empty)
// and decodes the reply: one envelope or an array of them. Statuses other
// than 200 still carry envelopes (an error reply is an answer, not a
// failure of Send).
func PostSend(hc *http.Client, u, token string, body []byte) ([]*core.Envelope, error) {
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if bytes.HasPrefix(b, []byte("[")) {
		var envs []*core.Envelope
		if err := json.Unmarshal(b, &envs); err != nil {
			return nil, fmt.Errorf("POST /send: HTTP %d: %q: %w", resp.StatusCode, b, err)
		}
		return envs, nil
	}
	env := new(core.Envelope)
	if err := json.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("POST /send: HTTP %d: %q: %w", resp.StatusCode, b, err)
	}
	return []*core.Envelope{env}, nil
}

// Inbox is a client's queue of received envelopes, fed by its reader (or
// poll loop) and by Send, drained by Next. Use NewInbox.
type Inbox struct {
	mu      sync.Mutex
	envs    []*core.Envelope
	err     error         // why the connection ended; nil while open
	changed chan struct{} // closed and replaced on every change
}

// NewInbox returns an empty, open inbox.
func NewInbox() *Inbox { return &Inbox{changed: make(chan struct{})} }

// Push queues env.
func (in *Inbox) Push(env *core.Envelope) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.envs = append(in.envs, env)
	in.signal()
}

// Fail ends the inbox with err: Next returns it once the queue is empty.
// The first error wins.
func (in *Inbox) Fail(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err == nil {
		in.err = err
	}
	in.signal()
}

// Closed ends the inbox because the connection ended (cause: the read
// error): Next then returns an error wrapping ErrClosed.
func (in *Inbox) Closed(cause error) {
	in.Fail(fmt.Errorf("%w: %v", ErrClosed, cause))
}

func (in *Inbox) signal() {
	close(in.changed)
	in.changed = make(chan struct{})
}

// Next returns the next queued envelope, waiting until one arrives, the
// inbox fails, or ctx ends.
func (in *Inbox) Next(ctx context.Context) (*core.Envelope, error) {
	for {
		in.mu.Lock()
		if len(in.envs) > 0 {
			env := in.envs[0]
			in.envs = in.envs[1:]
			in.mu.Unlock()
			return env, nil
		}
		err, changed := in.err, in.changed
		in.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
