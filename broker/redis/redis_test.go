package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/engine"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a broker leaves its reader or go-redis
// goroutines behind after Close.
func TestMain(m *testing.M) {
	sbredis.SetClientLogger(quiet)
	coretest.VerifyNone(m)
}

var quiet = slog.New(slog.DiscardHandler)

var unsafeStream = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// streamFor is a stream name unique to t: two brokers made in one subtest
// share it (two nodes on one log), subtests never do.
func streamFor(t testing.TB) string {
	return "sb:" + unsafeStream.ReplaceAllString(t.Name(), "_")
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	tests := []struct {
		name string
		cfg  sbredis.Config
		// persist: the Outage subtest's redis-server keeps its data across
		// the restart (an RDB saved on stop), so resumes from before the
		// outage are recovered. Without it the restart is empty, and the
		// suite checks the new epoch makes them honestly unrecoverable.
		persist bool
	}{
		{"default", sbredis.Config{}, true},
		{"one entry per read", sbredis.Config{Block: 50 * time.Millisecond, Engine: engine.Config{ReadCount: 1}}, true},
		{"restart loses data", sbredis.Config{}, false},
		// History from the log itself: positions older than a tiny index,
		// or no index at all.
		{"tiny index", sbredis.Config{Engine: engine.Config{IndexEntries: 3}}, true},
		{"no index", sbredis.Config{Engine: engine.Config{IndexBytes: -1}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// One stream holds every channel, in one order, for every node;
			// retention (MaxLen) is stream-wide, so per-channel HistorySize
			// does not apply: the suite's volumes stay far below MaxLen.
			f := brokertest.Features{HistorySize: 0, GlobalOrder: true, SharedLog: true,
				Outage: func(t *testing.T) brokertest.Backend {
					own := redistest.Start
					if tt.persist {
						own = redistest.StartPersistent
					}
					srv := own(t)
					return brokertest.Backend{
						NewBroker: func(t *testing.T) core.Broker {
							cfg := tt.cfg
							cfg.URL, cfg.Stream = srv.URL, streamFor(t)
							return newBroker(t, cfg)
						},
						Stop:      srv.Stop,
						Start:     srv.Restart,
						KeepsData: tt.persist,
					}
				},
			}
			brokertest.Run(t, f, func(t *testing.T) core.Broker {
				cfg := tt.cfg
				cfg.URL, cfg.Stream = srv.URL, streamFor(t)
				return newBroker(t, cfg)
			})
		})
	}
}

func newBroker(t testing.TB, cfg sbredis.Config) *engine.Broker {
	t.Helper()
	b, err := sbredis.New(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// waitTime bounds a test's wait for deliveries.
const waitTime = 10 * time.Second

func msg(room string, i int) *core.Envelope {
	return &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: room, From: "t",
		Data: json.RawMessage(`{"i":` + strconv.Itoa(i) + `}`)}
}

func publish(t *testing.T, b *engine.Broker, room string, i int) *core.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := msg(room, i)
	if _, err := publishTo(b, ctx, core.RoomChannel(room), env); err != nil {
		t.Fatalf("Publish %d: %v", i, err)
	}
	return env
}

func history(t *testing.T, b *engine.Broker, since string, limit int, rooms ...string) core.HistoryResult {
	t.Helper()
	var chs []string
	for _, r := range rooms {
		chs = append(chs, core.RoomChannel(r))
	}
	res, err := b.History(context.Background(), core.HistoryRequest{Channels: chs, Since: since, Limit: limit})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	return res
}

func ids(envs []*core.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

func sameIDs(a, b []*core.Envelope) bool {
	return strings.Join(ids(a), ",") == strings.Join(ids(b), ",")
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  sbredis.Config
		ok   bool
	}{
		{"url only", sbredis.Config{URL: "redis://127.0.0.1:6379/0"}, true},
		{"unbounded stream", sbredis.Config{URL: "redis://localhost:6379", MaxLen: -1}, true},
		{"no url", sbredis.Config{}, false},
		{"bad scheme", sbredis.Config{URL: "http://localhost:6379"}, false},
		{"bad db", sbredis.Config{URL: "redis://localhost:6379/x"}, false},
		{"negative block", sbredis.Config{URL: "redis://localhost:6379", Block: -1}, false},
		{"negative read count", sbredis.Config{URL: "redis://localhost:6379", Engine: engine.Config{ReadCount: -1}}, false},
		{"negative backoff", sbredis.Config{URL: "redis://localhost:6379", Engine: engine.Config{ReconnectBackoff: -time.Second}}, false},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, sbredis.ErrInvalidConfig) {
			t.Errorf("%s: %v does not wrap ErrInvalidConfig", tt.name, err)
		}
	}
	if _, err := sbredis.New(context.Background(), sbredis.Config{}, quiet); !errors.Is(err, sbredis.ErrInvalidConfig) {
		t.Errorf("New without URL = %v, want ErrInvalidConfig", err)
	}
}

// TestUnreachableAtStart: New fails promptly with one clear line wrapping
// ErrUnavailable.
func TestUnreachableAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	b, err := sbredis.New(context.Background(), sbredis.Config{URL: "redis://" + addr}, quiet)
	if err == nil {
		b.Close(context.Background())
		t.Fatal("New succeeded against a closed port")
	}
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("error %v does not wrap ErrUnavailable", err)
	}
	msg := err.Error()
	for _, want := range []string{"switchboard/broker/redis: cannot reach redis at " + addr, "connection refused", "is redis-server running? check --broker-url"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	if timedOut(err) { // promptly: on the refusal, not at the end of its budget
		t.Errorf("New waited out its deadline instead of giving up on the refused connection: %v", err)
	}
}

// timedOut reports whether err came from a deadline (a context's or a
// socket's) rather than from an answer such as a refused connection.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// TestTwoNodesTotalOrder: two nodes publishing concurrently both deliver
// every message, in the same order, with the same ids.
func TestTwoNodesTotalOrder(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := sbredis.Config{URL: srv.URL}
	n1, n2 := newBroker(t, cfg), newBroker(t, cfg)
	r1, r2 := brokertest.Listen(t, n1), brokertest.Listen(t, n2)
	const each = 40
	errs := make(chan error, 2)
	for i, n := range []*engine.Broker{n1, n2} {
		go func() {
			for j := range each {
				room := []string{"a", "b", "c"}[j%3]
				if _, err := publishTo(n, context.Background(), core.RoomChannel(room), msg(room, i*1000+j)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	g1, g2 := r1.WaitN(t, 2*each, waitTime), r2.WaitN(t, 2*each, waitTime)
	if !sameIDs(g1, g2) {
		t.Fatalf("the nodes delivered different sequences:\n%v\n%v", ids(g1), ids(g2))
	}
	for i := 1; i < len(g1); i++ {
		if after, ok := n1.After(g1[i].ID, g1[i-1].ID); !ok || !after {
			t.Fatalf("delivery %d (%s) is not after %s", i, g1[i].ID, g1[i-1].ID)
		}
	}
}

// TestRestartNoReplay: a node started on an existing stream delivers only
// what is published after its Start, yet resumes from older ids.
func TestRestartNoReplay(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := sbredis.Config{URL: srv.URL}
	old := newBroker(t, cfg)
	brokertest.Listen(t, old)
	var before []*core.Envelope
	for i := range 5 {
		before = append(before, publish(t, old, "r", i))
	}
	if err := old.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b := newBroker(t, cfg)
	rec := brokertest.Listen(t, b)
	after := publish(t, b, "r", 5)
	// The reader reads in order from where Start pinned it: anything
	// replayed would arrive before after.
	if got := rec.WaitN(t, 1, waitTime); len(got) != 1 || got[0].ID != after.ID {
		t.Fatalf("restarted node delivered %v, want only %s", ids(got), after.ID)
	}
	res := history(t, b, before[1].ID, 100, "r")
	if want := append(before[2:], after); !res.Recovered || !sameIDs(res.Envelopes, want) {
		t.Fatalf("History since the old node's 2nd id = recovered %v %v, want true %v", res.Recovered, ids(res.Envelopes), ids(want))
	}
}

// TestFlushChangesEpoch: after FLUSHALL the ids carry a new epoch, and a
// resume from an older id is recovered:false.
func TestFlushChangesEpoch(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, sbredis.Config{URL: srv.URL})
	rec := brokertest.Listen(t, b)
	e0 := publish(t, b, "r", 0)
	e1 := publish(t, b, "r", 1)
	if res := history(t, b, e0.ID, 10, "r"); !res.Recovered || !sameIDs(res.Envelopes, []*core.Envelope{e1}) {
		t.Fatalf("before the flush: recovered %v %v", res.Recovered, ids(res.Envelopes))
	}
	oldEpoch := b.Epoch()
	// The reader has the old log's records before it is flushed (a
	// Publish does not wait for its node's reader): what it had not read
	// when the log went is lost with it, with a gap.
	rec.WaitFor(t, e1.ID, waitTime)

	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	e2 := publish(t, b, "r", 2)
	rec.WaitN(t, 3, waitTime) // the reader has read e2: it is in the new epoch
	if strings.HasPrefix(e2.ID, oldEpoch+"-") || b.Epoch() == oldEpoch {
		t.Fatalf("after FLUSHALL the id %s still has epoch %s", e2.ID, oldEpoch)
	}
	if res := history(t, b, e1.ID, 10, "r"); res.Recovered || strings.Join(ids(res.Envelopes), " ") != e2.ID {
		t.Errorf("resume across the flush: recovered %v with %v, want false and [%s] (the new log from its start)", res.Recovered, ids(res.Envelopes), e2.ID)
	}
	// The reader was in both logs: one gap, and the old one's ids first.
	brokertest.CheckRecreated(t, b, e1.ID, e2.ID, rec.Gaps())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.WaitDelivered(ctx, e1.ID); err != nil {
		t.Errorf("WaitDelivered(old epoch) = %v, want nil at once", err)
	}
	e3 := publish(t, b, "r", 3)
	if res := history(t, b, e2.ID, 10, "r"); !res.Recovered || !sameIDs(res.Envelopes, []*core.Envelope{e3}) {
		t.Errorf("resume within the new epoch: recovered %v %v", res.Recovered, ids(res.Envelopes))
	}
	if got := rec.All(); !sameIDs(got, []*core.Envelope{e0, e1, e2, e3}) {
		t.Errorf("delivered %v", ids(got))
	}
}

// TestRetention: with a small approximate MaxLen, a position whose entry
// was trimmed is unrecoverable (the newest entries are still returned),
// and a recent one is recovered exactly.
func TestRetention(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, sbredis.Config{URL: srv.URL, MaxLen: 10})
	brokertest.Listen(t, b)
	var all []*core.Envelope
	for i := range 400 { // MAXLEN ~ trims whole nodes of 100 entries
		all = append(all, publish(t, b, "r", i))
	}
	res := history(t, b, all[0].ID, 1000, "r")
	if res.Recovered {
		t.Errorf("since the first of 400 with MaxLen ~10: recovered")
	}
	if n := len(res.Envelopes); n == 0 || n >= 399 || !sameIDs(res.Envelopes, all[len(all)-n:]) {
		t.Errorf("unrecoverable History returned %d envelopes, want the newest retained ones in order", n)
	}
	res = history(t, b, all[396].ID, 1000, "r")
	if !res.Recovered || !sameIDs(res.Envelopes, all[397:]) {
		t.Errorf("since a recent id: recovered %v %v, want true %v", res.Recovered, ids(res.Envelopes), ids(all[397:]))
	}
	// Over Limit: the newest Limit, unrecovered.
	res = history(t, b, all[390].ID, 3, "r")
	if res.Recovered || !sameIDs(res.Envelopes, all[397:]) {
		t.Errorf("limit 3: recovered %v %v, want false %v", res.Recovered, ids(res.Envelopes), ids(all[397:]))
	}
}

// TestHistoryPaging: History pages through more than one chunk, filters
// channels, and reports ids ahead of the stream unrecoverable.
func TestHistoryPaging(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, sbredis.Config{URL: srv.URL, MaxLen: -1})
	brokertest.Listen(t, b)
	first := publish(t, b, "mine", -1)
	// 2500 entries of another room through a pipeline, then ours.
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer c.Close()
	pipe := c.Pipeline()
	for i := range 2500 {
		pipe.XAdd(context.Background(), &goredis.XAddArgs{Stream: "switchboard", Values: map[string]any{"_watermill_message_uuid": "u" + strconv.Itoa(i), "payload": "not an envelope"}})
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mine []*core.Envelope
	for i := range 3 {
		mine = append(mine, publish(t, b, "mine", i))
		publish(t, b, "other", i)
	}
	res := history(t, b, first.ID, 100, "mine")
	if !res.Recovered || !sameIDs(res.Envelopes, mine) {
		t.Fatalf("History across 2500 foreign entries: recovered %v %v, want true %v", res.Recovered, ids(res.Envelopes), ids(mine))
	}
	p := strings.Split(first.ID, "-")
	ahead := p[0] + "-99999999999999-0"
	if res := history(t, b, ahead, 100, "mine"); res.Recovered || len(res.Envelopes) > 0 {
		t.Errorf("since an id ahead of the stream: recovered %v %v", res.Recovered, ids(res.Envelopes))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.WaitDelivered(ctx, ahead); err != nil {
		t.Errorf("WaitDelivered(ahead of the stream) = %v, want nil at once", err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Errorf("Sync: %v", err)
	}
}

// waitHealth polls Healthy until it matches want (there is no signal for
// an outage beyond the reader's own loop).
func waitHealth(t *testing.T, b *engine.Broker, healthy bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := b.Healthy()
		if (err == nil) == healthy {
			if err != nil && !errors.Is(err, broker.ErrUnavailable) {
				t.Fatalf("Healthy() = %v, want an error wrapping ErrUnavailable", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Healthy() = %v after %s, want healthy=%v", err, within, healthy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var fastReconnect = sbredis.Config{Block: 200 * time.Millisecond, Engine: engine.Config{ReconnectBackoff: 10 * time.Millisecond, MaxReconnectBackoff: 100 * time.Millisecond}}

// TestServerOutage: redis-server stops: Healthy reports it and Publish
// fails promptly; it comes back (empty): Healthy recovers and new
// publications are delivered, under a new epoch.
func TestServerOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := fastReconnect
	cfg.URL = srv.URL
	b := newBroker(t, cfg)
	rec := brokertest.Listen(t, b)
	e0 := publish(t, b, "r", 0)
	if err := b.Healthy(); err != nil {
		t.Fatalf("Healthy before the outage: %v", err)
	}

	srv.Stop()
	waitHealth(t, b, false, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // bounds a hang
	defer cancel()
	_, err := publishTo(b, ctx, core.RoomChannel("r"), msg("r", 1))
	if err == nil || !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish during the outage = %v, want an error wrapping ErrUnavailable", err)
	}
	if timedOut(err) { // promptly: on the refused dial, not at a deadline
		t.Errorf("Publish waited for a deadline during the outage instead of failing on the refused dial: %v", err)
	}
	if res, err := b.History(ctx, core.HistoryRequest{Channels: []string{core.RoomChannel("r")}, Since: e0.ID, Limit: 10}); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("History during the outage = %v, %v; want an error wrapping ErrUnavailable", res, err)
	}

	srv.Restart()
	waitHealth(t, b, true, 10*time.Second)
	e2 := publish(t, b, "r", 2)
	if got := rec.WaitN(t, 2, waitTime); !sameIDs(got, []*core.Envelope{e0, e2}) {
		t.Fatalf("delivered %v, want %v", ids(got), ids([]*core.Envelope{e0, e2}))
	}
	if strings.SplitN(e2.ID, "-", 2)[0] == strings.SplitN(e0.ID, "-", 2)[0] {
		t.Errorf("Redis restarted empty, but the epoch did not change: %s then %s", e0.ID, e2.ID)
	}
	if res := history(t, b, e0.ID, 10, "r"); res.Recovered {
		t.Error("resume across an empty restart reported recovered")
	}
}

// TestReaderOutageLosesNothing: a node loses Redis (its connections cut
// by a proxy) while another node keeps publishing; when it is back, it
// delivers everything it missed, in order, then live messages.
func TestReaderOutageLosesNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	px := newProxy(t, srv.Addr)
	cut := fastReconnect
	cut.URL = "redis://" + px.addr
	a := newBroker(t, cut)
	other := newBroker(t, sbredis.Config{URL: srv.URL})
	recA := brokertest.Listen(t, a)
	brokertest.Listen(t, other)

	var want []*core.Envelope
	want = append(want, publish(t, other, "r", 0))
	recA.WaitN(t, 1, waitTime)

	px.down()
	waitHealth(t, a, false, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := publishTo(a, ctx, core.RoomChannel("r"), msg("r", -1)); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish on the cut node = %v, want ErrUnavailable", err)
	}
	for i := 1; i <= 20; i++ {
		want = append(want, publish(t, other, "r", i))
	}

	px.up()
	waitHealth(t, a, true, 10*time.Second)
	want = append(want, publish(t, a, "r", 21))
	got := recA.WaitN(t, len(want), waitTime)
	if !sameIDs(got, want) {
		t.Fatalf("after the outage the node delivered\n%v\nwant\n%v", ids(got), ids(want))
	}
}

// TestPublishBeforeStartAndAfterClose.
func TestPublishLifecycle(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, sbredis.Config{URL: srv.URL})
	if _, err := publishTo(b, context.Background(), core.RoomChannel("r"), msg("r", 0)); err == nil {
		t.Error("Publish before Start succeeded")
	}
	brokertest.Listen(t, b)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := publishTo(b, context.Background(), core.RoomChannel("r"), msg("r", 0)); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := b.Healthy(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Healthy after Close = %v, want ErrClosed", err)
	}
	if err := b.Start(context.Background(), func(core.Delivery) {}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

// proxy forwards TCP to a Redis and can cut every connection and refuse
// new ones, to simulate a network outage between one node and Redis.
type proxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = struct{}{}, struct{}{}
			p.mu.Unlock()
			p.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer p.wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						if _, werr := dst.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				dst.Close()
				src.Close()
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
}

// down closes the listener (new dials are refused) and every connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// up listens again on the same address.
func (p *proxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: relisten on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// publishTo publishes env on channel through b, without a key.
func publishTo(b core.Broker, ctx context.Context, channel string, env *core.Envelope) (string, error) {
	res, err := b.Publish(ctx, core.Publication{Channel: channel, Envelope: env})
	return res.ID, err
}
