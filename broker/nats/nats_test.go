package nats_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/nats"
	"github.com/switchboard-dev/switchboard/broker/nats/natstest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a broker or an embedded server leaves
// goroutines behind after Close and Shutdown. Nothing is ignored: nats.go
// and nats-server stop every goroutine they start.
func TestMain(m *testing.M) {
	coretest.VerifyNone(m)
}

var quiet = slog.New(slog.DiscardHandler)

// config is a test configuration: short timeouts so outages show quickly.
func config(url, stream string) nats.Config {
	return nats.Config{
		URL:            url,
		Stream:         stream,
		Subject:        "sb." + strings.ToLower(stream),
		ConnectTimeout: time.Second,
		RequestTimeout: 2 * time.Second,
		ReconnectWait:  50 * time.Millisecond,
		PingInterval:   time.Second,
		Heartbeat:      500 * time.Millisecond,
	}
}

// newBroker makes an unstarted broker, closed when the test ends.
func newBroker(t testing.TB, cfg nats.Config) *nats.Broker {
	t.Helper()
	b, err := nats.New(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatalf("nats.New: %v", err)
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

func TestConformance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		storage string
		// keeps: the stream survives a server restart. A file stream does
		// (natstest restarts on the same store); a memory stream does not,
		// and the reader recreates it under a new epoch.
		keeps bool
	}{
		{"file", "", true},
		{"memory", "memory", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.Start(t)
			cfg := config(srv.URL, "CONFORMANCE")
			cfg.Storage = tt.storage
			f := brokertest.Features{GlobalOrder: true, SharedLog: true,
				Outage: func(t *testing.T) brokertest.Backend {
					own := natstest.Start(t)
					cfg := config(own.URL, "OUTAGE")
					cfg.Storage = tt.storage
					return brokertest.Backend{
						NewBroker: func(t *testing.T) core.Broker { return newBroker(t, cfg) },
						Stop:      own.Shutdown,
						Start:     own.Restart,
						KeepsData: tt.keeps,
					}
				},
			}
			brokertest.Run(t, f, func(t *testing.T) core.Broker { return newBroker(t, cfg) })
		})
	}
}

// recorder collects deliveries and signals each one.
type recorder struct {
	mu      sync.Mutex
	got     []core.Delivery
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) deliver(d core.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, d)
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitN waits until n deliveries arrived and returns them all.
func (r *recorder) waitN(t *testing.T, n int) []core.Delivery {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		got, changed := append([]core.Delivery(nil), r.got...), r.changed
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("%d deliveries within 10s, want %d", len(got), n)
		}
	}
}

func start(t *testing.T, b *nats.Broker) *recorder {
	t.Helper()
	rec := newRecorder()
	if err := b.Start(context.Background(), rec.deliver); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return rec
}

func publish(t *testing.T, b *nats.Broker, channel string, i int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: strings.TrimPrefix(channel, "room:"), Data: []byte(strconv.Itoa(i))}
	id, err := publishTo(b, ctx, channel, env)
	if err != nil {
		t.Fatalf("Publish(%s, %d): %v", channel, i, err)
	}
	return id
}

func history(t *testing.T, b *nats.Broker, since string, limit int, channels ...string) core.HistoryResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := b.History(ctx, core.HistoryRequest{Channels: channels, Since: since, Limit: limit})
	if err != nil {
		t.Fatalf("History(since %s): %v", since, err)
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

func deliveredIDs(ds []core.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Envelope.ID
	}
	return out
}

// jsClient is a plain JetStream client, as an operator's tool would use.
func jsClient(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := natsio.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestUnreachableAtStart: a server nobody listens for fails New at once
// with one line naming the address and wrapping ErrUnavailable.
func TestUnreachableAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	began := time.Now()
	b, err := nats.New(context.Background(), config("nats://"+addr, "T"), quiet)
	if err == nil {
		b.Close(context.Background())
		t.Fatal("New succeeded against a closed port")
	}
	if !errors.Is(err, nats.ErrUnavailable) {
		t.Errorf("error %v does not wrap ErrUnavailable", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, addr) || !strings.Contains(msg, "--broker-url") || !strings.Contains(msg, "JetStream") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming %s and suggesting --broker-url", msg, addr)
	}
	if d := time.Since(began); d > 30*time.Second { // a hang bound: its budget is ConnectTimeout (1s)
		t.Errorf("New took %s to fail", d)
	}
	t.Logf("%v", err)
}

// TestTwoNodesReceiveEverything: two nodes on one stream never compete:
// each delivers every message of both, in one order, with the same ids.
func TestTwoNodesReceiveEverything(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "TWO")
	b1, b2 := newBroker(t, cfg), newBroker(t, cfg)
	r1, r2 := start(t, b1), start(t, b2)
	var want []string
	for i := range 20 {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		want = append(want, publish(t, b, core.RoomChannel("r"+strconv.Itoa(i%3)), i))
	}
	for n, r := range []*recorder{r1, r2} {
		got := deliveredIDs(r.waitN(t, len(want)))
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("node %d delivered %v, want %v", n+1, got, want)
		}
	}
}

// TestRestartDoesNotReplay: a node started after messages were published
// delivers only what comes after its start, and still resumes from the
// older ids.
func TestRestartDoesNotReplay(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "RESTART")
	room := core.RoomChannel("r")
	b1 := newBroker(t, cfg)
	start(t, b1)
	old := []string{publish(t, b1, room, 0), publish(t, b1, room, 1), publish(t, b1, room, 2)}
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b2 := newBroker(t, cfg)
	r2 := start(t, b2)
	fresh := publish(t, b2, room, 3)
	got := deliveredIDs(r2.waitN(t, 1))
	if len(got) != 1 || got[0] != fresh {
		t.Fatalf("restarted node delivered %v, want only %s", got, fresh)
	}
	res := history(t, b2, old[0], 10, room)
	if !res.Recovered || strings.Join(ids(res.Envelopes), " ") != strings.Join([]string{old[1], old[2], fresh}, " ") {
		t.Fatalf("History since the first old id = recovered %v %v", res.Recovered, ids(res.Envelopes))
	}
}

// TestRetentionGap: with MaxMsgs small, a since whose successors the
// stream dropped is unrecoverable (what is left is returned); a recent one
// is recovered. History filters channels and keeps the stream's order.
func TestRetentionGap(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "RETENTION")
	cfg.MaxMsgs = 4
	b := newBroker(t, cfg)
	start(t, b)
	a, c := core.RoomChannel("a"), core.RoomChannel("c")
	var all, onA []string
	for i := range 8 {
		ch := a
		if i%2 == 1 {
			ch = c
		}
		id := publish(t, b, ch, i)
		all = append(all, id)
		if ch == a {
			onA = append(onA, id)
		}
	}
	// Kept: all[4:] (sequences 5..8).
	h := history(t, b, all[0], 10, a, c)
	if h.Recovered || strings.Join(ids(h.Envelopes), " ") != strings.Join(all[4:], " ") {
		t.Errorf("since a dropped message: recovered %v %v, want false %v", h.Recovered, ids(h.Envelopes), all[4:])
	}
	h = history(t, b, all[3], 10, a, c)
	if !h.Recovered || strings.Join(ids(h.Envelopes), " ") != strings.Join(all[4:], " ") {
		t.Errorf("since the last dropped message: recovered %v %v, want true %v", h.Recovered, ids(h.Envelopes), all[4:])
	}
	h = history(t, b, all[3], 10, a)
	if !h.Recovered || strings.Join(ids(h.Envelopes), " ") != strings.Join(onA[2:], " ") {
		t.Errorf("one channel: recovered %v %v, want true %v", h.Recovered, ids(h.Envelopes), onA[2:])
	}
	h = history(t, b, all[3], 1, a, c)
	if h.Recovered || strings.Join(ids(h.Envelopes), " ") != all[7] {
		t.Errorf("limit 1: recovered %v %v, want false [%s]", h.Recovered, ids(h.Envelopes), all[7])
	}
	h = history(t, b, all[7], 10, a, c)
	if !h.Recovered || len(h.Envelopes) != 0 {
		t.Errorf("since the newest: recovered %v %v, want true and nothing", h.Recovered, ids(h.Envelopes))
	}
}

// TestStreamRecreated: deleting and recreating the stream starts a new
// epoch: old ids are unrecoverable and incomparable, and the reader
// carries on with the new stream.
func TestStreamRecreated(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "RECREATED")
	b := newBroker(t, cfg)
	rec := start(t, b)
	room := core.RoomChannel("r")
	old := []string{publish(t, b, room, 0), publish(t, b, room, 1)}
	oldEpoch := b.Epoch()

	js := jsClient(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, cfg.Stream); err != nil {
		t.Fatal(err)
	}
	// The reader notices its consumer is gone and creates the stream anew
	// (as it would after a memory-storage server lost it); an operator
	// creating it first is the same to the driver.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream, Subjects: []string{cfg.Subject + ".>"}}); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil { // the reader has moved to the new stream
		t.Fatal(err)
	}
	for b.Epoch() == oldEpoch {
		select {
		case <-ctx.Done():
			t.Fatal("the reader did not notice the new stream")
		case <-time.After(20 * time.Millisecond): // Epoch is state, not an event: poll it
		}
	}
	fresh := publish(t, b, room, 2)
	if !strings.HasPrefix(fresh, b.Epoch()+"-") || fresh == old[0] {
		t.Fatalf("after recreation: epoch %s (was %s), new id %s", b.Epoch(), oldEpoch, fresh)
	}
	if got := deliveredIDs(rec.waitN(t, 3)); got[2] != fresh {
		t.Fatalf("delivered %v, want %s third", got, fresh)
	}
	h := history(t, b, old[0], 10, room)
	if h.Recovered || len(h.Envelopes) > 0 {
		t.Errorf("since an id of the old stream: recovered %v %v, want false and nothing", h.Recovered, ids(h.Envelopes))
	}
	if _, ok := b.After(fresh, old[1]); ok {
		t.Errorf("After compared ids of two epochs")
	}
	wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
	defer wcancel()
	if err := b.WaitDelivered(wctx, old[1]); err != nil {
		t.Errorf("WaitDelivered(old epoch) = %v, want nil at once", err)
	}
}

// TestOutageAndRecovery: with the server gone, Healthy reports
// ErrUnavailable within a bounded time and Publish fails promptly; once
// it is back (same port, same store), the node heals, delivers again and
// resumes from ids issued before the outage.
func TestOutageAndRecovery(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "OUTAGE")
	b := newBroker(t, cfg)
	rec := start(t, b)
	room := core.RoomChannel("r")
	before := publish(t, b, room, 0)
	if err := b.Healthy(); err != nil {
		t.Fatalf("Healthy before the outage: %v", err)
	}

	srv.Shutdown()
	began := time.Now()
	for b.Healthy() == nil { // Healthy is state, not an event: poll it
		if time.Since(began) > 10*time.Second {
			t.Fatal("Healthy still nil 10s into the outage")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := b.Healthy(); !errors.Is(err, nats.ErrUnavailable) {
		t.Fatalf("Healthy during the outage = %v, want ErrUnavailable", err)
	}
	t.Logf("outage noticed after %s: %v", time.Since(began).Round(time.Millisecond), b.Healthy())

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	began = time.Now()
	_, err := publishTo(b, ctx, room, &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r"})
	if !errors.Is(err, nats.ErrUnavailable) {
		t.Fatalf("Publish during the outage = %v, want ErrUnavailable", err)
	}
	if errors.Is(err, natsio.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) { // at once: not after waiting for an ack
		t.Errorf("Publish waited for an ack during the outage instead of failing at once: %v", err)
	}
	t.Logf("publish failed after %s: %v", time.Since(began).Round(time.Microsecond), err)
	if h, err := b.History(ctx, core.HistoryRequest{Channels: []string{room}, Since: before}); !errors.Is(err, nats.ErrUnavailable) {
		t.Errorf("History during the outage = %v, %v; want ErrUnavailable", h, err)
	}

	srv.Restart()
	began = time.Now()
	for b.Healthy() != nil {
		if time.Since(began) > 10*time.Second {
			t.Fatalf("Healthy 10s after the restart: %v", b.Healthy())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("healthy again %s after the restart", time.Since(began).Round(time.Millisecond))
	after := publish(t, b, room, 1)
	got := deliveredIDs(rec.waitN(t, 2))
	if len(got) != 2 || got[0] != before || got[1] != after {
		t.Fatalf("after recovery delivered %v, want [%s %s]", got, before, after)
	}
	h := history(t, b, before, 10, room)
	if !h.Recovered || strings.Join(ids(h.Envelopes), " ") != after {
		t.Errorf("History since before the outage: recovered %v %v, want true [%s]", h.Recovered, ids(h.Envelopes), after)
	}
}

// TestOutageDeliversWhatOthersPublished: a node that lost its connection
// while another node kept publishing delivers what it missed, in order,
// once it is back: it resumes from its last delivered sequence.
func TestOutageResumesFromLastDelivered(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "RESUME")
	b := newBroker(t, cfg)
	rec := start(t, b)
	room := core.RoomChannel("r")
	first := publish(t, b, room, 0)
	srv.Shutdown()
	srv.Restart()

	// Another node publishes while b may still be reconnecting.
	other := newBroker(t, cfg)
	start(t, other)
	want := []string{first}
	for i := 1; i <= 5; i++ {
		want = append(want, publish(t, other, room, i))
	}
	got := deliveredIDs(rec.waitN(t, len(want)))
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// TestMalformedMessageSkipped: a message on the stream that is not a
// Switchboard message is skipped by the reader and by History.
func TestMalformedMessageSkipped(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "MALFORMED")
	b := newBroker(t, cfg)
	rec := start(t, b)
	room := core.RoomChannel("r")
	first := publish(t, b, room, 0)

	js := jsClient(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, cfg.Subject+".junk", []byte("not an envelope")); err != nil {
		t.Fatal(err)
	}
	last := publish(t, b, room, 1)
	got := deliveredIDs(rec.waitN(t, 2))
	if strings.Join(got, " ") != first+" "+last {
		t.Fatalf("delivered %v, want %s %s", got, first, last)
	}
	h := history(t, b, first, 10, room)
	if !h.Recovered || strings.Join(ids(h.Envelopes), " ") != last {
		t.Fatalf("History = recovered %v %v, want true [%s]", h.Recovered, ids(h.Envelopes), last)
	}
}

// TestManyChannelsHistory: a resume over more channels than one consumer
// filters on still returns exactly the requested channels.
func TestManyChannelsHistory(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	b := newBroker(t, config(srv.URL, "MANY"))
	start(t, b)
	since := publish(t, b, core.RoomChannel("x"), 0)
	var channels, want []string
	for i := range 100 {
		ch := core.RoomChannel("room " + strconv.Itoa(i) + " ünïcode.*>")
		channels = append(channels, ch)
		id := publish(t, b, ch, i)
		if i%2 == 0 {
			want = append(want, id)
		} else {
			publish(t, b, core.RoomChannel("other"), i)
		}
	}
	var asked []string
	for i, ch := range channels {
		if i%2 == 0 {
			asked = append(asked, ch)
		}
	}
	asked = append(asked, core.UserChannel("nobody"))
	h := history(t, b, since, 0, asked...)
	if !h.Recovered || strings.Join(ids(h.Envelopes), " ") != strings.Join(want, " ") {
		t.Fatalf("History over %d channels: recovered %v, %d envelopes, want true and %d", len(asked), h.Recovered, len(h.Envelopes), len(want))
	}
	h = history(t, b, since, 0, asked[:3]...)
	if !h.Recovered || strings.Join(ids(h.Envelopes), " ") != strings.Join(want[:3], " ") {
		t.Fatalf("History over 3 channels: recovered %v %v, want true %v", h.Recovered, ids(h.Envelopes), want[:3])
	}
}

// TestWaitDeliveredAndAfter: the positioning helpers core uses at the
// resume seam.
func TestWaitDeliveredAndAfter(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	b := newBroker(t, config(srv.URL, "POSITIONS"))
	start(t, b)
	room := core.RoomChannel("r")
	a, c := publish(t, b, room, 0), publish(t, b, room, 1)
	if after, ok := b.After(c, a); !ok || !after {
		t.Errorf("After(later, earlier) = %v, %v", after, ok)
	}
	if after, ok := b.After(a, c); !ok || after {
		t.Errorf("After(earlier, later) = %v, %v", after, ok)
	}
	if _, ok := b.After("garbage", a); ok {
		t.Errorf("After compared garbage")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	epoch, _, _ := strings.Cut(c, "-")
	for _, id := range []string{c, "garbage", epoch + "-999999"} { // delivered, unparseable, ahead of the stream
		if err := b.WaitDelivered(ctx, id); err != nil {
			t.Errorf("WaitDelivered(%s) = %v", id, err)
		}
	}
	if err := b.Sync(ctx); err != nil {
		t.Errorf("Sync: %v", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Healthy(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Healthy after Close = %v, want broker.ErrClosed", err)
	}
	if _, err := b.History(ctx, core.HistoryRequest{Channels: []string{room}, Since: a}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("History after Close = %v, want broker.ErrClosed", err)
	}
}

// TestStreamConfigured: New creates the stream with the configured
// limits and brings an existing stream's limits and subjects to them.
func TestStreamConfigured(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	js := jsClient(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PRE", Subjects: []string{"legacy.>"}, MaxMsgs: 5}); err != nil {
		t.Fatal(err)
	}
	cfg := config(srv.URL, "PRE")
	cfg.MaxMsgs, cfg.MaxAge, cfg.MaxBytes = -1, 90*time.Second, 1<<20
	newBroker(t, cfg)
	s, err := js.Stream(ctx, "PRE")
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.MaxMsgs != -1 || got.MaxAge != 90*time.Second || got.MaxBytes != 1<<20 || got.Duplicates > got.MaxAge ||
		strings.Join(got.Subjects, " ") != "legacy.> "+cfg.Subject+".>" {
		t.Errorf("stream config after New: max_msgs %d max_age %s max_bytes %d duplicates %s subjects %v",
			got.MaxMsgs, got.MaxAge, got.MaxBytes, got.Duplicates, got.Subjects)
	}

	def := config(srv.URL, "")
	def.Subject = ""
	newBroker(t, def)
	s, err = js.Stream(ctx, nats.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	got = s.CachedInfo().Config
	if got.MaxMsgs != nats.DefaultMaxMsgs || got.MaxAge != nats.DefaultMaxAge || got.MaxBytes != -1 || got.Storage != jetstream.FileStorage ||
		strings.Join(got.Subjects, " ") != nats.DefaultSubject+".>" {
		t.Errorf("default stream config: %+v", got)
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"nats://localhost:4222":               "nats://localhost:4222",
		"nats://h1":                           "nats://h1:4222",
		"nats://h1/":                          "nats://h1:4222",
		"nats://h1:4222,nats://h2:4223":       "nats://h1:4222 nats://h2:4223",
		"nats://h1:4222,h2":                   "nats://h1:4222 nats://h2:4222",
		"tls://h1:4443":                       "tls://h1:4443",
		"nats://user:pass@h1:4222":            "nats://user:pass@h1:4222",
		"nats://[::1]:4222":                   "nats://[::1]:4222",
		"nats://nats-0.nats.svc:4222, nats-1": "nats://nats-0.nats.svc:4222 nats://nats-1:4222",
	}
	for raw, want := range good {
		got, err := nats.ParseURL(raw)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("ParseURL(%q) = %v, %v; want %s", raw, got, err, want)
		}
	}
	for _, raw := range []string{"", "nats://", "redis://h:6379", "h:4222", "nats://h:4222,", "nats://h:0",
		"nats://h:99999", "nats://h:4222/x", "nats://h:4222?tls=1", "nats://:4222", "http://h:4222"} {
		if got, err := nats.ParseURL(raw); !errors.Is(err, nats.ErrInvalidConfig) {
			t.Errorf("ParseURL(%q) = %v, %v; want ErrInvalidConfig", raw, got, err)
		}
	}
	_, err := nats.ParseURL("nats://user:s3cret@h:0")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("ParseURL error %v: want an error that hides the password", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := (nats.Config{URL: "nats://h:4222"}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	for name, cfg := range map[string]nats.Config{
		"no URL":           {},
		"bad URL":          {URL: "kafka://h:9092"},
		"bad stream":       {URL: "nats://h", Stream: "a.b"},
		"wildcard subject": {URL: "nats://h", Subject: "a.*"},
		"empty token":      {URL: "nats://h", Subject: "a..b"},
		"bad storage":      {URL: "nats://h", Storage: "disk"},
		"negative timeout": {URL: "nats://h", RequestTimeout: -1},
		"tiny heartbeat":   {URL: "nats://h", Heartbeat: time.Millisecond},
		"replicas":         {URL: "nats://h", Replicas: 7},
	} {
		err := cfg.Validate()
		if !errors.Is(err, nats.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
		if _, nerr := nats.New(context.Background(), cfg, quiet); !errors.Is(nerr, nats.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, nerr)
		}
	}
}

// TestJetStreamDisabled: a server without JetStream fails New with one
// line that says what to check, wrapping ErrUnavailable.
func TestJetStreamDisabled(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	b, err := nats.New(context.Background(), config(srv.ClientURL(), "NOJS"), quiet)
	if err == nil {
		b.Close(context.Background())
		t.Fatal("New succeeded without JetStream")
	}
	if msg := err.Error(); !errors.Is(err, nats.ErrUnavailable) || !strings.Contains(msg, "JetStream") || strings.Contains(msg, "\n") {
		t.Errorf("New without JetStream = %v, want one line wrapping ErrUnavailable that names JetStream", err)
	}
	t.Logf("%v", err)
}

// TestMemoryStreamLostOnRestart: a memory-storage stream does not survive
// a server restart; the reader recreates it under a new epoch, ids from
// before are unrecoverable, and delivery goes on.
func TestMemoryStreamLostOnRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "MEMORY")
	cfg.Storage = "memory"
	b := newBroker(t, cfg)
	rec := start(t, b)
	room := core.RoomChannel("r")
	old := publish(t, b, room, 0)
	oldEpoch := b.Epoch()
	srv.Shutdown()
	srv.Restart()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for b.Epoch() == oldEpoch { // Epoch is state, not an event: poll it
		select {
		case <-ctx.Done():
			t.Fatal("the reader did not recreate the stream")
		case <-time.After(10 * time.Millisecond):
		}
	}
	fresh := publish(t, b, room, 1)
	if got := deliveredIDs(rec.waitN(t, 2)); got[1] != fresh || !strings.HasPrefix(fresh, b.Epoch()+"-") {
		t.Fatalf("delivered %v, want %s (epoch %s) second", got, fresh, b.Epoch())
	}
	if h := history(t, b, old, 10, room); h.Recovered || len(h.Envelopes) > 0 {
		t.Errorf("since an id of the lost stream: recovered %v %v, want false and nothing", h.Recovered, ids(h.Envelopes))
	}
	if err := b.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}

// publishTo publishes env on channel through b, without a key.
func publishTo(b core.Broker, ctx context.Context, channel string, env *core.Envelope) (string, error) {
	res, err := b.Publish(ctx, core.Publication{Channel: channel, Envelope: env})
	return res.ID, err
}
