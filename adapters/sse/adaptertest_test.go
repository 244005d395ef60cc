package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/adaptertest"
	"github.com/switchboard-dev/switchboard/adapters/httpsend"
	"github.com/switchboard-dev/switchboard/adapters/internal/testserver"
	"github.com/switchboard-dev/switchboard/adapters/sse"
	"github.com/switchboard-dev/switchboard/core"
)

// TestConformance runs the adapter conformance suite over real SSE
// streams (GET /sse) with POST /send as the client's side channel, on
// both front ends: New and httpsend.New on a Fiber app, NewHandler and
// httpsend.NewHandler on a net/http server, on 127.0.0.1:0.
func TestConformance(t *testing.T) {
	for _, front := range fronts {
		t.Run(front, func(t *testing.T) {
			adaptertest.Run(t, adaptertest.Harness{
				Features: adaptertest.Features{
					Unidirectional: true, // the client sends with POST /send
					CloseCodes:     true, // the final "close" event carries the code
					ServerPings:    true, // ": ping" comment lines
					FixedRooms:     true, // /send is stateless: join/leave answer reconnect_required
				},
				Start: func(t *testing.T, srv adaptertest.Server) adaptertest.Dialer {
					base := serveFront(t, srv.Node, sse.Config{WriteTimeout: 2 * time.Second}, front)
					// No keep-alive: every stream and every send has a
					// connection of its own, closed when it ends, so no
					// idle client goroutine outlives a test.
					hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
					return func(t *testing.T, o adaptertest.ConnectOpts) (adaptertest.Client, error) {
						return dialSSE(hc, base, o)
					}
				},
			})
		})
	}
}

// fronts are the handler's front ends: New on Fiber, NewHandler on
// net/http.
var fronts = []string{"fiber", "nethttp"}

// serveFront mounts GET /sse and POST /send for node on front, on
// 127.0.0.1:0 until the test ends, and returns the base URL.
func serveFront(t *testing.T, node *core.Node, cfg sse.Config, front string) string {
	t.Helper()
	if front == "nethttp" {
		mux := http.NewServeMux()
		mux.Handle("GET /sse", sse.NewHandler(node, cfg))
		mux.Handle("POST /send", httpsend.NewHandler(node, httpsend.Config{}))
		return "http://" + testserver.HTTP(t, mux, nil)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/sse", sse.New(node, cfg))
	app.Post("/send", httpsend.New(node, httpsend.Config{}))
	return serve(t, app)
}

// serve runs app on 127.0.0.1:0 until the test ends and returns its base
// URL.
func serve(t *testing.T, app *fiber.App) string {
	t.Helper()
	return "http://" + testserver.Fiber(t, app, nil)
}

// sseClient is the suite's SSE client: a reader goroutine parses the
// event stream into the inbox; Send posts to /send with the stream's
// identity and puts the reply envelopes into the same inbox.
type sseClient struct {
	hc    *http.Client
	send  string // the /send URL with the stream's user and rooms
	token string
	body  io.ReadCloser
	in    *adaptertest.Inbox
	pings atomic.Int64
	done  chan struct{} // closed when the reader stops
	code  int           // from the close event; read after done
	once  sync.Once
}

func dialSSE(hc *http.Client, base string, o adaptertest.ConnectOpts) (*sseClient, error) {
	q := url.Values{}
	if o.User != "" {
		q.Set("user", o.User)
	}
	if len(o.Rooms) > 0 {
		q.Set("rooms", strings.Join(o.Rooms, ","))
	}
	send := base + "/send?" + q.Encode()
	if o.Since != "" {
		q.Set("since", o.Since)
	}
	req, err := http.NewRequest(http.MethodGet, base+"/sse?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return nil, fmt.Errorf("GET /sse: HTTP %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("GET /sse: Content-Type %q", ct)
	}
	c := &sseClient{hc: hc, send: send, token: o.Token, body: resp.Body, in: adaptertest.NewInbox(), done: make(chan struct{})}
	go c.read()
	return c, nil
}

// read parses events until the stream ends: "data:" lines are envelopes,
// ": ping" comments keep-alives, and "event: close" ends the stream with
// its code.
func (c *sseClient) read() {
	defer close(c.done)
	r := bufio.NewReader(c.body)
	var event string
	var data []byte
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			c.in.Closed(err)
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data == nil {
				event = ""
				continue
			}
			if event == "close" {
				var d struct {
					Code int `json:"code"`
				}
				if err := json.Unmarshal(data, &d); err != nil {
					c.in.Fail(fmt.Errorf("close event %q: %w", data, err))
					return
				}
				c.code = d.Code
				event, data = "", nil
				continue // the stream ends next
			}
			env := new(core.Envelope)
			if err := json.Unmarshal(data, env); err != nil {
				c.in.Fail(fmt.Errorf("event data is not an envelope: %q: %w", data, err))
				return
			}
			c.in.Push(env)
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
			c.pings.Add(1)
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: ")...)
		case strings.HasPrefix(line, "id: "), strings.HasPrefix(line, "retry: "):
		default:
			c.in.Fail(fmt.Errorf("unexpected line %q", line))
			return
		}
	}
}

// Send posts frame to /send as the stream's user with its rooms and
// queues the replies.
func (c *sseClient) Send(frame []byte) error {
	envs, err := adaptertest.PostSend(c.hc, c.send, c.token, frame)
	for _, env := range envs {
		c.in.Push(env)
	}
	return err
}

func (c *sseClient) Next(ctx context.Context) (*core.Envelope, error) { return c.in.Next(ctx) }

func (c *sseClient) Pings() int { return int(c.pings.Load()) }

// Close drops the TCP connection: the server notices only when a write
// fails.
func (c *sseClient) Close() error {
	c.once.Do(func() { _ = c.body.Close() })
	<-c.done
	return nil
}

func (c *sseClient) Closed(ctx context.Context) (int, error) {
	select {
	case <-c.done:
		return c.code, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
