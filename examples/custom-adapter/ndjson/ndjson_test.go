package ndjson_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/adapters/adaptertest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
	"github.com/switchboard-dev/switchboard/examples/custom-adapter/ndjson"
)

func TestMain(m *testing.M) { coretest.VerifyNone(m) }

// TestConformance: the NDJSON adapter passes the same suite as the
// built-in adapters.
func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Harness{
		Features: adaptertest.Features{CloseCodes: true, ServerPings: true},
		Start: func(t *testing.T, srv adaptertest.Server) adaptertest.Dialer {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- ndjson.Serve(ctx, srv.Node, ln, ndjson.Config{CloseGrace: time.Second}) }()
			// Runs after the suite has shut the node down, so every
			// connection is ending and Serve returns.
			t.Cleanup(func() {
				cancel()
				if err := <-served; err != nil {
					t.Errorf("serve: %v", err)
				}
			})
			return func(t *testing.T, o adaptertest.ConnectOpts) (adaptertest.Client, error) {
				return dial(ln.Addr().String(), o)
			}
		},
	})
}

// client is the suite's NDJSON client: a reader goroutine queues
// envelopes, answers the server's blank-line keep-alives (unless silent)
// and records the close line.
type client struct {
	conn  net.Conn
	wmu   sync.Mutex
	envs  chan *core.Envelope
	done  chan struct{}
	code  int   // from the close line; read after done
	err   error // why the reader stopped; read after done
	pings atomic.Int64
	once  sync.Once
}

func dial(addr string, o adaptertest.ConnectOpts) (*client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	hello, _ := json.Marshal(ndjson.Hello{User: o.User, Rooms: o.Rooms, Since: o.Since, Token: o.Token})
	c := &client{conn: conn, envs: make(chan *core.Envelope, 1024), done: make(chan struct{})}
	if err := c.write(hello); err != nil {
		conn.Close()
		return nil, err
	}
	go c.read(o.Silent)
	return c, nil
}

func (c *client) read(silent bool) {
	defer close(c.done)
	defer close(c.envs)
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			c.pings.Add(1)
			if !silent {
				_ = c.write(nil) // answer with a blank line
			}
			continue
		}
		env := new(core.Envelope)
		if err := json.Unmarshal(sc.Bytes(), env); err != nil {
			c.err = fmt.Errorf("server sent a line that is not an envelope: %q: %w", sc.Bytes(), err)
			return
		}
		if env.Type == "close" {
			var d struct{ Code int }
			_ = json.Unmarshal(env.Data, &d)
			c.code = d.Code
			continue // EOF follows
		}
		c.envs <- env
	}
	c.err = sc.Err()
}

func (c *client) write(line []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(append(line, '\n'))
	return err
}

func (c *client) Send(frame []byte) error { return c.write(frame) }

func (c *client) Next(ctx context.Context) (*core.Envelope, error) {
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

func (c *client) Pings() int { return int(c.pings.Load()) }

func (c *client) Close() error {
	c.once.Do(func() { _ = c.conn.Close() })
	<-c.done
	return nil
}

func (c *client) Closed(ctx context.Context) (int, error) {
	select {
	case <-c.done:
		return c.code, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
