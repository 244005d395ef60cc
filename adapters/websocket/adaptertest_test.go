package websocket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/adapters/adaptertest"
	"github.com/switchboard-dev/switchboard/adapters/websocket"
	"github.com/switchboard-dev/switchboard/core"
)

// TestConformance runs the adapter conformance suite over real WebSocket
// connections, on both front ends (New on a Fiber app, NewHandler on a
// net/http server, on 127.0.0.1:0) and in both reading modes: detached
// (the epoll poller reads idle connections) and blocking (a goroutine per
// connection, as over TLS).
func TestConformance(t *testing.T) {
	for _, front := range websocket.Fronts {
		t.Run(front, func(t *testing.T) {
			adaptertest.Run(t, adaptertest.Harness{
				Features: adaptertest.Features{CloseCodes: true, ServerPings: true},
				Start: func(t *testing.T, srv adaptertest.Server) adaptertest.Dialer {
					base := "ws://" + websocket.ServeFront(t, srv.Node, websocket.Config{CloseGrace: time.Second}, front) + "/ws"
					return func(t *testing.T, o adaptertest.ConnectOpts) (adaptertest.Client, error) {
						return dialWS(base, o)
					}
				},
			})
		})
	}
}

// wsClient is the suite's WebSocket client: a reader goroutine splits
// frames on '\n' and queues envelopes; the suite reads them with Next.
type wsClient struct {
	conn   *fws.Conn
	wmu    sync.Mutex // one writer at a time
	envs   chan *core.Envelope
	done   chan struct{} // closed when the reader stops
	code   int           // close code received; read after done
	err    error         // why the reader stopped; read after done
	pings  atomic.Int64
	closed sync.Once
}

func dialWS(base string, o adaptertest.ConnectOpts) (*wsClient, error) {
	q := url.Values{}
	if o.User != "" {
		q.Set("user", o.User)
	}
	if len(o.Rooms) > 0 {
		q.Set("rooms", strings.Join(o.Rooms, ","))
	}
	if o.Since != "" {
		q.Set("since", o.Since)
	}
	h := http.Header{}
	if o.Token != "" {
		h.Set("Authorization", "Bearer "+o.Token)
	}
	d := &fws.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(base+"?"+q.Encode(), h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c := &wsClient{conn: conn, envs: make(chan *core.Envelope, 1024), done: make(chan struct{})}
	conn.SetPingHandler(func(data string) error {
		c.pings.Add(1)
		if o.Silent {
			return nil
		}
		err := conn.WriteControl(fws.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if errors.Is(err, fws.ErrCloseSent) {
			return nil
		}
		return err
	})
	go c.read()
	return c, nil
}

func (c *wsClient) read() {
	defer close(c.done)
	defer close(c.envs)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			var ce *fws.CloseError
			if errors.As(err, &ce) && ce.Code != fws.CloseAbnormalClosure {
				c.code = ce.Code
			}
			c.err = err
			return
		}
		for _, line := range bytes.Split(data, []byte{'\n'}) {
			env := new(core.Envelope)
			if err := json.Unmarshal(line, env); err != nil {
				c.err = fmt.Errorf("server sent a line that is not an envelope: %q: %w", line, err)
				return
			}
			c.envs <- env // buffered far beyond what a subtest receives
		}
	}
}

func (c *wsClient) Send(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(fws.TextMessage, frame)
}

func (c *wsClient) Next(ctx context.Context) (*core.Envelope, error) {
	select {
	case env, ok := <-c.envs:
		if !ok {
			return nil, fmt.Errorf("%w: %v", adaptertest.ErrClosed, c.err)
		}
		return env, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *wsClient) Pings() int { return int(c.pings.Load()) }

// Close drops the TCP connection without a close frame.
func (c *wsClient) Close() error {
	c.closed.Do(func() { _ = c.conn.Close() })
	<-c.done
	return nil
}

func (c *wsClient) Closed(ctx context.Context) (int, error) {
	select {
	case <-c.done:
		return c.code, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
