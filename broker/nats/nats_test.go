package nats_test

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/engine"
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

// config is a test configuration: short reconnect waits and backoffs so
// outages end quickly (an outage shows at once: a lost connection fails
// reads and publishes without waiting), and timeouts generous enough for
// a busy machine running the embedded servers under the race detector.
func config(url, stream string) nats.Config {
	return nats.Config{
		URL:            url,
		Stream:         stream,
		Subject:        "sb." + strings.ToLower(stream),
		ConnectTimeout: 5 * time.Second,
		RequestTimeout: 20 * time.Second,
		ReconnectWait:  50 * time.Millisecond,
		PingInterval:   time.Second,
		Heartbeat:      500 * time.Millisecond,
		Engine:         engine.Config{ReconnectBackoff: 50 * time.Millisecond, MaxReconnectBackoff: 500 * time.Millisecond},
	}
}

// newBroker makes an unstarted broker, closed when the test ends.
func newBroker(t testing.TB, cfg nats.Config) *engine.Broker {
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
		engine  engine.Config
		// keeps: the stream survives a server restart. A file stream does
		// (natstest restarts on the same store); a memory stream does not,
		// and the reader recreates it under a new epoch.
		keeps bool
	}{
		{"file", "", engine.Config{}, true},
		{"memory", "memory", engine.Config{}, false},
		{"one record per read", "", engine.Config{ReadCount: 1}, true},
		// History from the stream itself: positions older than a tiny
		// index, or no index at all.
		{"tiny index", "", engine.Config{IndexEntries: 3}, true},
		{"no index", "", engine.Config{IndexBytes: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.Start(t)
			cfg := config(srv.URL, "CONFORMANCE")
			cfg.Storage = tt.storage
			cfg.Engine.ReadCount, cfg.Engine.IndexEntries, cfg.Engine.IndexBytes = tt.engine.ReadCount, tt.engine.IndexEntries, tt.engine.IndexBytes
			f := brokertest.Features{GlobalOrder: true, SharedLog: true,
				// Embedded servers under the race detector, five variants
				// at once: a loaded machine needs more than the default.
				DeliveryTimeout: 30 * time.Second,
				Outage: func(t *testing.T) brokertest.Backend {
					own := natstest.Start(t)
					cfg := cfg
					cfg.URL, cfg.Stream, cfg.Subject = own.URL, "OUTAGE", "sb.outage"
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

// waitTime bounds a test's wait for deliveries.
const waitTime = 10 * time.Second

func publish(t *testing.T, b *engine.Broker, channel string, i int) string {
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

func history(t *testing.T, b *engine.Broker, since string, limit int, channels ...string) core.HistoryResult {
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
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("error %v does not wrap ErrUnavailable", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, addr) || !strings.Contains(msg, "--broker-url") || !strings.Contains(msg, "JetStream") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming %s and suggesting --broker-url", msg, addr)
	}
	if d := time.Since(began); d > 30*time.Second { // a hang bound: its budget is ConnectTimeout (5s)
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
	r1, r2 := brokertest.Listen(t, b1), brokertest.Listen(t, b2)
	var want []string
	for i := range 20 {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		want = append(want, publish(t, b, core.RoomChannel("r"+strconv.Itoa(i%3)), i))
	}
	for n, r := range []*brokertest.Recorder{r1, r2} {
		got := ids(r.WaitN(t, len(want), waitTime))
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
	brokertest.Listen(t, b1)
	old := []string{publish(t, b1, room, 0), publish(t, b1, room, 1), publish(t, b1, room, 2)}
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	b2 := newBroker(t, cfg)
	r2 := brokertest.Listen(t, b2)
	fresh := publish(t, b2, room, 3)
	got := ids(r2.WaitN(t, 1, waitTime))
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
	brokertest.Listen(t, b)
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
	rec := brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	old := []string{publish(t, b, room, 0), publish(t, b, room, 1)}
	rec.WaitN(t, 2, waitTime) // a publish returns once appended: read them before the stream goes
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
	if got := ids(rec.WaitN(t, 3, waitTime)); got[2] != fresh {
		t.Fatalf("delivered %v, want %s third", got, fresh)
	}
	// The old stream is gone: not recovered, and everything of the new
	// one follows (all of it came after the old id).
	h := history(t, b, old[0], 10, room)
	if h.Recovered || strings.Join(ids(h.Envelopes), " ") != fresh {
		t.Errorf("since an id of the old stream: recovered %v %v, want false and [%s]", h.Recovered, ids(h.Envelopes), fresh)
	}
	// The reader was in both logs: one gap, and the old one's ids first.
	brokertest.CheckRecreated(t, b, old[1], fresh, rec.Gaps())
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
	rec := brokertest.Listen(t, b)
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
	if err := b.Healthy(); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Healthy during the outage = %v, want ErrUnavailable", err)
	}
	t.Logf("outage noticed after %s: %v", time.Since(began).Round(time.Millisecond), b.Healthy())

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	began = time.Now()
	_, err := publishTo(b, ctx, room, &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r"})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish during the outage = %v, want ErrUnavailable", err)
	}
	if errors.Is(err, natsio.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) { // at once: not after waiting for an ack
		t.Errorf("Publish waited for an ack during the outage instead of failing at once: %v", err)
	}
	t.Logf("publish failed after %s: %v", time.Since(began).Round(time.Microsecond), err)
	if h, err := b.History(ctx, core.HistoryRequest{Channels: []string{room}, Since: before}); !errors.Is(err, broker.ErrUnavailable) {
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
	got := ids(rec.WaitN(t, 2, waitTime))
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
	rec := brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	first := publish(t, b, room, 0)
	srv.Shutdown()
	srv.Restart()

	// Another node publishes while b may still be reconnecting.
	other := newBroker(t, cfg)
	brokertest.Listen(t, other)
	want := []string{first}
	for i := 1; i <= 5; i++ {
		want = append(want, publish(t, other, room, i))
	}
	got := ids(rec.WaitN(t, len(want), waitTime))
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
	rec := brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	first := publish(t, b, room, 0)

	js := jsClient(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, cfg.Subject+".junk", []byte("not an envelope")); err != nil {
		t.Fatal(err)
	}
	last := publish(t, b, room, 1)
	got := ids(rec.WaitN(t, 2, waitTime))
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
	brokertest.Listen(t, b)
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
	brokertest.Listen(t, b)
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
	// The duplicate window is the engine's, capped at MaxAge.
	if got.MaxMsgs != -1 || got.MaxAge != 90*time.Second || got.MaxBytes != 1<<20 || got.Duplicates != 90*time.Second ||
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
		got.Duplicates != broker.DefaultDedupWindow || strings.Join(got.Subjects, " ") != nats.DefaultSubject+".>" {
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
		"engine":           {URL: "nats://h", Engine: engine.Config{DedupWindow: -time.Second}},
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
	if msg := err.Error(); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(msg, "JetStream") || strings.Contains(msg, "\n") {
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
	rec := brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	old := publish(t, b, room, 0)
	rec.WaitN(t, 1, waitTime) // a publish returns once appended: read it before the stream goes
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
	if got := ids(rec.WaitN(t, 2, waitTime)); got[1] != fresh || !strings.HasPrefix(fresh, b.Epoch()+"-") {
		t.Fatalf("delivered %v, want %s (epoch %s) second", got, fresh, b.Epoch())
	}
	if h := history(t, b, old, 10, room); h.Recovered || strings.Join(ids(h.Envelopes), " ") != fresh {
		t.Errorf("since an id of the lost stream: recovered %v %v, want false and [%s] (the new stream from its start)", h.Recovered, ids(h.Envelopes), fresh)
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

// TestKeyedRefusedByTheStream: a keyed publish is refused by the stream
// itself (Nats-Msg-Id = the key, within the stream's duplicate window),
// not only by a node that read the first one: a node started after the
// first publish, whose reader never saw it, publishes the same key and
// gets the first id back as a duplicate (or ErrKeyReused for another
// request), and the stream holds one message with the key.
func TestKeyedRefusedByTheStream(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "KEYED")
	room := core.RoomChannel("r")
	b1 := newBroker(t, cfg)
	brokertest.Listen(t, b1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := func(i int) *core.Envelope {
		return &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: []byte(strconv.Itoa(i))}
	}
	first, err := b1.Publish(ctx, core.Publication{Channel: room, Envelope: env(0), Key: "order-42", Digest: "d"})
	if err != nil || first.Duplicate {
		t.Fatalf("first keyed Publish = %+v, %v", first, err)
	}

	b2 := newBroker(t, cfg) // its reader starts after the first publish
	rec2 := brokertest.Listen(t, b2)
	again, err := b2.Publish(ctx, core.Publication{Channel: room, Envelope: env(0), Key: "order-42", Digest: "d"})
	if err != nil || !again.Duplicate || again.ID != first.ID {
		t.Fatalf("the same key on another node = %+v, %v; want Duplicate with %s", again, err, first.ID)
	}
	// The stream keeps the first request's digest with it: a node that
	// never read it still tells a reused key from a retry.
	b3 := newBroker(t, cfg)
	brokertest.Listen(t, b3)
	if res, err := b3.Publish(ctx, core.Publication{Channel: room, Envelope: env(7), Key: "order-42", Digest: "another request"}); !errors.Is(err, core.ErrKeyReused) {
		t.Fatalf("the same key for another request = %+v, %v; want core.ErrKeyReused", res, err)
	}
	other := publish(t, b2, room, 1)
	if got := ids(rec2.WaitN(t, 1, waitTime)); len(got) != 1 || got[0] != other {
		t.Fatalf("the second node delivered %v, want only %s", got, other)
	}

	js := jsClient(t, srv.URL)
	s, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("the stream holds %d messages, want 2 (the keyed one once, and another)", n)
	}
	_, seq, _ := strings.Cut(first.ID, "-")
	n, _ := strconv.ParseUint(seq, 10, 64)
	raw, err := s.GetMsg(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if id := raw.Header.Get(jetstream.MsgIDHeader); id != "order-42" {
		t.Errorf("the first message's Nats-Msg-Id = %q, want the key", id)
	}
}

// TestKeyedBatch: one key twice in one group-committed batch (racing
// publishes on one node) appends once; the second gets the first id.
func TestKeyedBatch(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "KEYEDBATCH")
	b := newBroker(t, cfg)
	rec := brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const racers = 8
	type result struct {
		res core.Published
		err error
	}
	results := make(chan result, racers)
	for i := range racers {
		go func() {
			env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: []byte(strconv.Itoa(i))}
			res, err := b.Publish(ctx, core.Publication{Channel: room, Envelope: env, Key: "k", Digest: "d"})
			results <- result{res, err}
		}()
	}
	var id string
	fresh := 0
	for range racers {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if id == "" {
			id = r.res.ID
		}
		if r.res.ID != id {
			t.Fatalf("racing publishes with one key returned %s and %s", id, r.res.ID)
		}
		if !r.res.Duplicate {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d publishes reported not Duplicate, want 1", fresh)
	}
	last := publish(t, b, room, 99)
	if got := ids(rec.WaitN(t, 2, waitTime)); strings.Join(got, " ") != id+" "+last {
		t.Fatalf("delivered %v, want [%s %s]", got, id, last)
	}
	s, err := jsClient(t, srv.URL).Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("the stream holds %d messages, want 2", n)
	}
}

// TestWatermillPublisherInterop: a Watermill application publishing
// with watermill-nats (its NATSMarshaler, the driver's wire format) on a
// channel's subject reaches every node like any other message.
func TestWatermillPublisherInterop(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "INTEROP")
	b := newBroker(t, cfg)
	rec := brokertest.Listen(t, b)
	room := core.RoomChannel("r")

	pub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: srv.URL, JetStream: wnats.JetStreamConfig{TrackMsgId: true}}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: []byte(`"from watermill"`)}
	subject := cfg.Subject + "." + base64.RawURLEncoding.EncodeToString([]byte(room))
	if err := pub.Publish(subject, broker.NewMessage(room, env)); err != nil {
		t.Fatal(err)
	}
	after := publish(t, b, room, 1)
	envs := rec.WaitN(t, 2, waitTime)
	got := rec.Deliveries() // with their channels
	if string(got[0].Envelope.Data) != `"from watermill"` || got[0].Channel != room || got[1].Envelope.ID != after {
		t.Fatalf("delivered %v %q, want the Watermill message then %s", ids(envs), got[0].Envelope.Data, after)
	}
}

// TestSlowReaderGap: a node whose reader falls behind the stream's limits
// (its delivery stalls while another node publishes past MaxMsgs) skips
// what the stream dropped, and reports it: a resume from before the
// dropped messages is Recovered false, with (some of) what is left.
func TestSlowReaderGap(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "SLOW")
	cfg.MaxMsgs = 4
	cfg.Engine.ReadCount = 1 // the reader's consumer pulls one message at a time
	room := core.RoomChannel("r")
	fast := newBroker(t, cfg)
	brokertest.Listen(t, fast)

	slow := newBroker(t, cfg)
	rec := new(brokertest.Recorder)
	gate, stalled := make(chan struct{}), make(chan struct{})
	var once sync.Once
	if err := slow.Start(context.Background(), func(d core.Delivery) {
		once.Do(func() {
			close(stalled)
			<-gate // the first delivery stalls the slow node's reader
		})
		rec.Deliver(d)
	}); err != nil {
		t.Fatal(err)
	}
	var all []string
	all = append(all, publish(t, fast, room, 0))
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow node did not read the first message")
	}
	for i := 1; i < 12; i++ {
		all = append(all, publish(t, fast, room, i))
	}
	close(gate)
	kept := all[len(all)-4:]
	got := ids(rec.WaitFor(t, kept[len(kept)-1], waitTime))
	if len(got) >= len(all) || got[0] != all[0] || !strings.HasSuffix(strings.Join(got, " "), strings.Join(kept, " ")) {
		t.Fatalf("the slow node delivered %v: want %s first, then a gap, then %v", got, all[0], kept)
	}
	// The last message it read before the gap.
	var before string
	for i, id := range got {
		if id == kept[0] {
			before = got[i-1]
			break
		}
	}
	h := history(t, slow, before, 100, room)
	if h.Recovered {
		t.Errorf("History since %s, before the gap: recovered %v %v, want false", before, h.Recovered, ids(h.Envelopes))
	}
	if k := len(h.Envelopes); k > len(kept) || strings.Join(ids(h.Envelopes), " ") != strings.Join(kept[len(kept)-k:], " ") {
		t.Errorf("History since %s = %v, want the newest of what is left %v", before, ids(h.Envelopes), kept)
	}
}

// TestConsumersDeleted: the reader's consumer and the history reads'
// consumers are deleted when they are done with, not left to expire.
func TestConsumersDeleted(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := config(srv.URL, "CONSUMERS")
	cfg.Engine.IndexBytes = -1 // every History reads the stream
	b := newBroker(t, cfg)
	brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	first := publish(t, b, room, 0)
	last := publish(t, b, room, 1)
	if h := history(t, b, first, 10, room); !h.Recovered || strings.Join(ids(h.Envelopes), " ") != last {
		t.Fatalf("History = recovered %v %v, want true [%s]", h.Recovered, ids(h.Envelopes), last)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := jsClient(t, srv.URL).Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for { // the deletes are not answered: poll the stream's state
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Consumers == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d consumers left 10s after Close", info.State.Consumers)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestPublishRightAfterReplacement: a node publishing right after the
// stream was deleted and created again, before its reader noticed,
// names the new stream's epoch in the id it returns: the id its reader
// then delivers. Twice: with the new stream shorter than the old one (a
// sequence handed out again gives it away), and longer (the advisory of
// the deletion does).
func TestPublishRightAfterReplacement(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name          string
		before, after int // messages in the old stream, and in the new one before the node publishes
	}{
		{"shorter", 3, 0},
		{"longer", 1, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.Start(t)
			cfg := config(srv.URL, "REPLACED")
			b := newBroker(t, cfg)
			rec := brokertest.Listen(t, b)
			room := core.RoomChannel("r")
			for i := range tt.before {
				publish(t, b, room, i)
			}
			rec.WaitN(t, tt.before, waitTime)

			js := jsClient(t, srv.URL)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := js.DeleteStream(ctx, cfg.Stream); err != nil {
				t.Fatal(err)
			}
			// The node's reader may create it first, as after a loss. When
			// both create it at once, nats-server may refuse one with a 500
			// ("error creating store for stream") rather than "already in
			// use": then the stream is there, or about to be.
			for {
				_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream, Subjects: []string{cfg.Subject + ".>"}})
				if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
					break
				}
				if _, serr := js.Stream(ctx, cfg.Stream); serr == nil {
					break
				}
				select { // poll the server: nothing signals the other create's end
				case <-ctx.Done():
					t.Fatal(err)
				case <-time.After(10 * time.Millisecond):
				}
			}
			for range tt.after { // not Switchboard messages: the reader skips them
				if _, err := js.Publish(ctx, cfg.Subject+".other", []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			id := publish(t, b, room, 100)
			got := ids(rec.WaitFor(t, id, waitTime))
			if got[len(got)-1] != id || len(got) != tt.before+1 {
				t.Fatalf("published %s, delivered %v", id, got)
			}
		})
	}
}
