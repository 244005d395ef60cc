package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// conn is one of the driver's three NATS connections (publish, read,
// history) with its JetStream context. It knows when it is lost: a
// request in flight on a connection that drops never gets its answer,
// so use bounds each call by the connection as well as by its context.
type conn struct {
	*natsio.Conn
	js   jetstream.JetStream
	role string

	mu   sync.Mutex
	lost chan struct{} // closed when the connection is lost, then replaced
}

// errLost is the cause of a call's context cancelled by its connection's
// loss.
var errLost = errors.New("connection lost")

// dial makes one of the driver's connections, with the nats.go
// settings chosen deliberately (see Config): bounded dials, frequent
// pings, reconnecting forever with jitter, and no reconnect buffer (a
// publish during an outage fails at once instead of being appended
// late). Every loss, reconnection and final close of it reaches
// connChanged.
func (d *driver) dial(url, role string, connectTimeout time.Duration) (*conn, error) {
	cfg := d.cfg
	c := &conn{role: role, lost: make(chan struct{})}
	opts := []natsio.Option{
		natsio.Name(cfg.Name + " " + role),
		natsio.Timeout(connectTimeout),
		natsio.PingInterval(cfg.PingInterval),
		natsio.MaxPingsOutstanding(2),
		natsio.ReconnectWait(cfg.ReconnectWait),
		natsio.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
		natsio.MaxReconnects(cfg.MaxReconnects),
		natsio.ReconnectBufSize(-1),
		natsio.NoCallbacksAfterClientClose(),
		natsio.DisconnectErrHandler(func(*natsio.Conn, error) {
			c.markLost()
			d.connChanged(c)
		}),
		natsio.ReconnectHandler(func(*natsio.Conn) { d.connChanged(c) }),
		natsio.ClosedHandler(func(*natsio.Conn) {
			if !d.closing.Load() {
				d.log.Error("nats connection closed for good (MaxReconnects exhausted); the broker stays unavailable", "connection", role)
			}
			c.markLost()
			d.connChanged(c)
		}),
		natsio.ErrorHandler(func(_ *natsio.Conn, _ *natsio.Subscription, err error) {
			if errors.Is(err, natsio.ErrPermissionViolation) && strings.Contains(err.Error(), "$JS.EVENT.ADVISORY") {
				d.pubEpoch.noAdvisories()
				d.log.Warn("nats: no permission to subscribe to the stream's advisories; every publish batch asks for the stream's info", "err", err)
				return
			}
			d.log.Warn("nats asynchronous error", "connection", role, "err", err)
		}),
	}
	nc, err := natsio.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	c.Conn = nc
	return c, nil
}

func (c *conn) markLost() {
	c.mu.Lock()
	close(c.lost)
	c.lost = make(chan struct{})
	c.mu.Unlock()
}

// use returns ctx bounded by the connection: an error at once while it
// is down (rather than after a request's timeout), and otherwise a
// context also cancelled, with errLost as its cause, if the connection
// is lost before done is called.
func (c *conn) use(ctx context.Context) (_ context.Context, done func(), err error) {
	c.mu.Lock()
	lost := c.lost // before the check: a loss from here on closes it
	c.mu.Unlock()
	if !c.IsConnected() {
		return nil, nil, c.down()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	go func() {
		select {
		case <-lost:
			cancel(fmt.Errorf("%w: the %s connection", errLost, c.role))
		case <-stop:
		}
	}()
	return ctx, func() { close(stop); cancel(nil) }, nil
}

// down is the error of a call while the connection is down.
func (c *conn) down() error {
	return fmt.Errorf("the %s connection is down (%s)", c.role, c.Status())
}

// cause is err, or the connection's loss when that is what cancelled ctx.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); errors.Is(c, errLost) && errors.Is(err, context.Canceled) {
		return c
	}
	return err
}
