package longpoll_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/adaptertest"
	"github.com/switchboard-dev/switchboard/adapters/httpsend"
	"github.com/switchboard-dev/switchboard/adapters/internal/testserver"
	"github.com/switchboard-dev/switchboard/adapters/longpoll"
	"github.com/switchboard-dev/switchboard/core"
)

// pollWait is how long the conformance client's polls wait. It bounds how
// long the server keeps a client that stopped polling: Fiber cannot see a
// client give up, so a poll runs to its wait.
const pollWait = time.Second

// TestConformance runs the adapter conformance suite against GET /poll
// with POST /send as the client's side channel, on both front ends: New
// and httpsend.New on a Fiber app, NewHandler and httpsend.NewHandler on
// a net/http server, on 127.0.0.1:0. The client polls in a loop with the
// cursor.
func TestConformance(t *testing.T) {
	for _, front := range []string{"fiber", "nethttp"} {
		t.Run(front, func(t *testing.T) {
			adaptertest.Run(t, adaptertest.Harness{
				Features: adaptertest.Features{
					Unidirectional: true, // the client sends with POST /send
					FixedRooms:     true, // /send is stateless: join/leave answer reconnect_required
					Connectionless: true, // a poll is a short-lived session: no welcome
					// No CloseCodes: the end is an HTTP 503, not a numbered close.
					// No ServerPings: liveness is the next poll.
				},
				Start: func(t *testing.T, srv adaptertest.Server) adaptertest.Dialer {
					base := serveFront(t, srv.Node, front)
					hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
					return func(t *testing.T, o adaptertest.ConnectOpts) (adaptertest.Client, error) {
						return dialPoll(hc, base, o)
					}
				},
			})
		})
	}
}

// serveFront mounts GET /poll and POST /send for node on front ("fiber"
// or "nethttp"), on 127.0.0.1:0 until the test ends, and returns the
// base URL.
func serveFront(t *testing.T, node *core.Node, front string) string {
	t.Helper()
	if front == "nethttp" {
		mux := http.NewServeMux()
		mux.Handle("GET /poll", longpoll.NewHandler(node, longpoll.Config{}))
		mux.Handle("POST /send", httpsend.NewHandler(node, httpsend.Config{}))
		return "http://" + testserver.HTTP(t, mux, nil)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/poll", longpoll.New(node, longpoll.Config{}))
	app.Post("/send", httpsend.New(node, httpsend.Config{}))
	return serve(t, app)
}

// serve runs app on 127.0.0.1:0 until the test ends and returns its base
// URL.
func serve(t testing.TB, app *fiber.App) string {
	t.Helper()
	return "http://" + testserver.Fiber(t, app, nil)
}

// answer is a decoded GET /poll reply.
type answer struct {
	status    int
	body      string           // as received
	Messages  []*core.Envelope `json:"messages"`
	Cursor    string           `json:"cursor"`
	Recovered bool             `json:"recovered"`
	Errors    []*core.Envelope `json:"errors"`
	Error     *struct {
		Code string `json:"code"`
	} `json:"error"`
}

// getPoll runs one GET /poll.
func getPoll(ctx context.Context, hc *http.Client, base string, q url.Values, token string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/poll?"+q.Encode(), nil)
	if err != nil {
		return answer{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, body: string(b)}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("GET /poll: HTTP %d: %q: %w", resp.StatusCode, b, err)
	}
	if a.status == http.StatusOK && a.Messages == nil {
		return a, fmt.Errorf("GET /poll: HTTP 200 without a messages array: %q", b)
	}
	return a, nil
}

// pollClient is the suite's long-poll client. Dial answers a first poll
// with wait=0 (which fixes the cursor); a goroutine then polls in a loop
// with the cursor and queues the messages. Polling ends, and the client
// counts as closed, when the server answers 503 (shutting down) or Close
// is called; any other failure, and a recovered:false answer, end it with
// an error that Next returns.
type pollClient struct {
	hc     *http.Client
	base   string
	q      url.Values // user and rooms
	token  string
	in     *adaptertest.Inbox
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop stops
}

func dialPoll(hc *http.Client, base string, o adaptertest.ConnectOpts) (*pollClient, error) {
	q := url.Values{}
	if o.User != "" {
		q.Set("user", o.User)
	}
	if len(o.Rooms) > 0 {
		q.Set("rooms", strings.Join(o.Rooms, ","))
	}
	first := cloneValues(q)
	first.Set("wait", "0")
	if o.Since != "" {
		first.Set("cursor", o.Since)
	}
	a, err := getPoll(context.Background(), hc, base, first, o.Token)
	if err != nil {
		return nil, err
	}
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("GET /poll: HTTP %d (%+v)", a.status, a.Error)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &pollClient{hc: hc, base: base, q: q, token: o.Token, in: adaptertest.NewInbox(), cancel: cancel, done: make(chan struct{})}
	// Errors about the request itself (an invalid room) come with every
	// answer: queue the first answer's only.
	for _, env := range a.Errors {
		c.in.Push(env)
	}
	cursor, ok := c.take(a)
	if !ok {
		close(c.done)
		cancel()
		return c, nil
	}
	go c.loop(ctx, cursor)
	return c, nil
}

// take queues an answer's messages and returns the next cursor; false
// means polling ends (recovered:false, reported through Next).
func (c *pollClient) take(a answer) (string, bool) {
	for _, env := range a.Messages {
		c.in.Push(env)
	}
	if !a.Recovered {
		c.in.Fail(fmt.Errorf("the server answered recovered:false (cursor now %q): messages were lost", a.Cursor))
		return "", false
	}
	return a.Cursor, true
}

func (c *pollClient) loop(ctx context.Context, cursor string) {
	defer close(c.done)
	for {
		q := cloneValues(c.q)
		q.Set("wait", pollWait.String())
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		a, err := getPoll(ctx, c.hc, c.base, q, c.token)
		switch {
		case ctx.Err() != nil:
			c.in.Fail(fmt.Errorf("%w: closed by the client", adaptertest.ErrClosed))
			return
		case err != nil:
			c.in.Fail(err)
			return
		case a.status == http.StatusServiceUnavailable:
			c.in.Fail(fmt.Errorf("%w: HTTP 503 (%+v)", adaptertest.ErrClosed, a.Error))
			return
		case a.status != http.StatusOK:
			c.in.Fail(fmt.Errorf("GET /poll: HTTP %d (%+v)", a.status, a.Error))
			return
		}
		var ok bool
		if cursor, ok = c.take(a); !ok {
			return
		}
	}
}

// Send posts frame to /send as the poller's user with its rooms and
// queues the replies.
func (c *pollClient) Send(frame []byte) error {
	envs, err := adaptertest.PostSend(c.hc, c.base+"/send?"+c.q.Encode(), c.token, frame)
	for _, env := range envs {
		c.in.Push(env)
	}
	return err
}

func (c *pollClient) Next(ctx context.Context) (*core.Envelope, error) { return c.in.Next(ctx) }

// Pings is always 0: long-poll has no server keep-alive.
func (c *pollClient) Pings() int { return 0 }

// Close stops polling, abandoning the poll in flight: the server sees
// nothing and keeps that poll's session until its wait ends.
func (c *pollClient) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// Closed waits for polling to end. There is no close code.
func (c *pollClient) Closed(ctx context.Context) (int, error) {
	select {
	case <-c.done:
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func cloneValues(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}
