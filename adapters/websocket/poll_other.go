//go:build !linux

package websocket

import "errors"

// errNoPoller means the connection must be read by a goroutine.
var errNoPoller = errors.New("websocket: no poller on this system")

// poller is Linux-only (epoll). Elsewhere every connection keeps a reading
// goroutine, as with TLS.
type poller struct{}

func newPoller() *poller { return nil }

func (p *poller) add(c *conn, fd int) error   { return errNoPoller }
func (p *poller) rearm(c *conn, fd int) error { return errNoPoller }
func (p *poller) remove(c *conn, fd int)      {}

// readable is never called without a poller.
func (c *conn) readable() {}

// tryWrite is never called without a poller (no connection is detached).
func tryWrite(fd int, b []byte) (int, error) { return 0, errNoPoller }
