package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/switchboard-dev/switchboard/core"
)

// Confirmations lets Publish return a message's position in drivers whose
// log assigns it (a Redis entry ID, a Kafka offset, a JetStream sequence):
// Publish registers the message's Watermill UUID before publishing, and
// the node's reader resolves it with the id when it reads the message
// back. The zero value is ready to use; safe for concurrent use.
type Confirmations struct {
	mu      sync.Mutex
	waiting map[string]chan string
}

// Expect registers uuid. The returned channel receives the id at most
// once; call done when Publish returns, whatever happened.
func (c *Confirmations) Expect(uuid string) (confirmed <-chan string, done func()) {
	ch := make(chan string, 1)
	c.mu.Lock()
	if c.waiting == nil {
		c.waiting = make(map[string]chan string)
	}
	c.waiting[uuid] = ch
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.waiting, uuid)
		c.mu.Unlock()
	}
}

// Resolve hands id to the Publish waiting for uuid, if any.
func (c *Confirmations) Resolve(uuid, id string) {
	c.mu.Lock()
	ch := c.waiting[uuid]
	delete(c.waiting, uuid)
	c.mu.Unlock()
	if ch != nil {
		ch <- id // buffered, sent at most once
	}
}

// AwaitConfirmation waits for the id of a message already appended to the
// log. It returns ErrClosed when closing is closed first, and an error
// wrapping core.ErrUnconfirmed when ctx ends first: the log has the message
// and only this node's read-back is late, so it is not an outage (a client
// that resent would publish it twice). driver names the package in errors.
func AwaitConfirmation(ctx context.Context, confirmed <-chan string, closing <-chan struct{}, driver string) (string, error) {
	select {
	case id := <-confirmed:
		return id, nil
	case <-closing:
		return "", ErrClosed
	case <-ctx.Done():
		return "", fmt.Errorf("switchboard/broker/%s: appended but not read back in time: %w", driver, errors.Join(core.ErrUnconfirmed, ctx.Err()))
	}
}
