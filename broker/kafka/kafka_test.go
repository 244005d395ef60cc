package kafka_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/kafka"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a broker leaves its franz-go goroutines
// behind after Close. One goroutine is not a leak: the Watermill wire
// tests run watermill-kafka's Sarama clients, Sarama registers go-metrics
// meters, and go-metrics ticks every meter of the process from one
// arbiter goroutine it starts on the first meter and never stops (a
// process-wide singleton).
func TestMain(m *testing.M) {
	coretest.VerifyNone(m, "github.com/rcrowley/go-metrics.(*meterArbiter).tick")
}

var quiet = slog.New(slog.DiscardHandler)

// newCluster starts an in-process Kafka (kfake: the real wire protocol)
// on a random loopback port.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// config is a test configuration: short timeouts so outages show quickly.
func config(addrs []string, topic string) kafka.Config {
	return kafka.Config{
		Brokers:        addrs,
		Topic:          topic,
		DialTimeout:    time.Second,
		RequestTimeout: time.Second,
	}
}

// newBroker makes an unstarted broker, closed when the test ends.
func newBroker(t testing.TB, cfg kafka.Config) *engine.Broker {
	t.Helper()
	b, err := kafka.New(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatalf("kafka.New: %v", err)
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
	cluster := newCluster(t)
	for _, tt := range []struct {
		name, topic string
		engine      engine.Config
	}{
		{"default", "conformance", engine.Config{}},
		// No index: every History reads the log (Range); one record per
		// Read and per Range call.
		{"from the log, one record per read", "conformance-log", engine.Config{IndexBytes: -1, ReadCount: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := config(cluster.ListenAddrs(), tt.topic)
			cfg.Engine = tt.engine
			f := brokertest.Features{GlobalOrder: true, SharedLog: true,
				Outage: func(t *testing.T) brokertest.Backend {
					own := newRestartableCluster(t)
					cfg := config(own.addrs(), "outage")
					cfg.Engine = tt.engine
					return brokertest.Backend{
						NewBroker: func(t *testing.T) core.Broker { return newBroker(t, cfg) },
						Stop:      own.stop,
						Start:     own.start,
						KeepsData: true, // the restarted cluster reads its DataDir
					}
				},
			}
			brokertest.Run(t, f, func(t *testing.T) core.Broker {
				return newBroker(t, cfg)
			})
		})
	}
}

// restartableCluster is a kfake cluster that can be stopped and started
// again where it was: on a fixed port, with its data in a directory that
// the restarted cluster reads back. Its methods may be called from the
// test goroutine only.
type restartableCluster struct {
	t    testing.TB
	port int
	dir  string

	mu sync.Mutex
	c  *kfake.Cluster // nil while stopped
}

// newRestartableCluster starts one on a free loopback port; it is
// stopped when the test ends.
func newRestartableCluster(t testing.TB) *restartableCluster {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &restartableCluster{t: t, port: port, dir: t.TempDir()}
	t.Cleanup(r.stop)
	r.start()
	return r
}

// addrs is the cluster's address, the same across restarts.
func (r *restartableCluster) addrs() []string {
	return []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))}
}

// start starts the cluster on its port with its data. It must be stopped.
func (r *restartableCluster) start() {
	r.t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(r.port), kfake.DataDir(r.dir))
	if err != nil {
		r.t.Fatalf("kfake on port %d: %v", r.port, err)
	}
	r.mu.Lock()
	r.c = c
	r.mu.Unlock()
}

// stop closes the cluster (its data stays in the directory). Idempotent.
func (r *restartableCluster) stop() {
	r.mu.Lock()
	c := r.c
	r.c = nil
	r.mu.Unlock()
	if c != nil {
		c.Close()
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

// TestUnreachableAtStart: a cluster nobody listens for fails New at once
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
	b, err := kafka.New(context.Background(), config([]string{addr}, "t"), quiet)
	if err == nil {
		b.Close(context.Background())
		t.Fatal("New succeeded against a closed port")
	}
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("error %v does not wrap ErrUnavailable", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, addr) || !strings.Contains(msg, "--broker-url") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming %s and suggesting --broker-url", msg, addr)
	}
	if d := time.Since(began); d > 30*time.Second { // a hang bound: its budget is DialTimeout + RequestTimeout (2s)
		t.Errorf("New took %s to fail", d)
	}
}

// TestTwoNodesReceiveEverything: two nodes on one cluster never compete:
// each delivers every message of both, in one order, with the same ids.
func TestTwoNodesReceiveEverything(t *testing.T) {
	t.Parallel()
	cluster := newCluster(t)
	cfg := config(cluster.ListenAddrs(), "two-nodes")
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
	cluster := newCluster(t)
	cfg := config(cluster.ListenAddrs(), "restart")
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

// TestRetentionGap: records removed below a since (DeleteRecords, as
// retention would) make it unrecoverable; the last removed one is still
// a complete resume point. The index is off, so History reads the log.
func TestRetentionGap(t *testing.T) {
	t.Parallel()
	cluster := newCluster(t)
	cfg := config(cluster.ListenAddrs(), "retention")
	cfg.Engine.IndexBytes = -1
	b := newBroker(t, cfg)
	brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	var all []string
	for i := range 6 {
		all = append(all, publish(t, b, room, i))
	}
	// Through the protocol, as an operator's tool or retention would.
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var offs kadm.Offsets
	offs.AddOffset(cfg.Topic, 0, 3, -1)
	res, err := kadm.NewClient(cl).DeleteRecords(context.Background(), offs)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}

	h := history(t, b, all[0], 10, room)
	if h.Recovered {
		t.Errorf("since a deleted record: recovered %v, want false", ids(h.Envelopes))
	}
	for _, e := range h.Envelopes {
		if !slices.Contains(all[3:], e.ID) {
			t.Errorf("since a deleted record: returned %s, which is not retained", e.ID)
		}
	}
	h = history(t, b, all[2], 10, room)
	if !h.Recovered || strings.Join(ids(h.Envelopes), " ") != strings.Join(all[3:], " ") {
		t.Errorf("since the last deleted record: recovered %v %v, want true %v", h.Recovered, ids(h.Envelopes), all[3:])
	}
}

// TestKeyedAcrossNodes: Kafka keeps no idempotency keys, so two
// publishes with one key through two nodes both reach the log; every
// node's reader drops the second, both calls return the first one's id
// (one of them Duplicate), and each node delivers the message once.
// Run in rounds: the two publishes race, and sometimes one node has read
// the first record before the other publishes.
func TestKeyedAcrossNodes(t *testing.T) {
	t.Parallel()
	cluster := newCluster(t)
	cfg := config(cluster.ListenAddrs(), "keyed")
	b1, b2 := newBroker(t, cfg), newBroker(t, cfg)
	r1, r2 := brokertest.Listen(t, b1), brokertest.Listen(t, b2)
	room := core.RoomChannel("r")
	const rounds = 5
	var want []string
	for i := range rounds {
		key := "key-" + strconv.Itoa(i)
		type outcome struct {
			res core.Published
			err error
		}
		out := make(chan outcome, 2)
		for _, b := range []*engine.Broker{b1, b2} {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: []byte(strconv.Itoa(i))}
				res, err := b.Publish(ctx, core.Publication{Channel: room, Envelope: env, Key: key, Digest: "d"})
				out <- outcome{res, err}
			}()
		}
		a, c := <-out, <-out
		if a.err != nil || c.err != nil {
			t.Fatalf("round %d: %v, %v", i, a.err, c.err)
		}
		if a.res.ID != c.res.ID || a.res.Duplicate == c.res.Duplicate {
			t.Fatalf("round %d: publishes with one key on two nodes = %+v and %+v: want one id, one of them Duplicate", i, a.res, c.res)
		}
		want = append(want, a.res.ID)
	}
	// A last message unkeyed: once it is delivered, everything before it is.
	last := publish(t, b1, room, rounds)
	want = append(want, last)
	for n, r := range []*brokertest.Recorder{r1, r2} {
		got := r.WaitN(t, len(want), waitTime)
		for len(got) > 0 && got[len(got)-1].ID != last {
			got = r.WaitN(t, len(got)+1, waitTime)
		}
		if strings.Join(ids(got), " ") != strings.Join(want, " ") {
			t.Errorf("node %d delivered %v, want %v", n+1, ids(got), want)
		}
	}
}

// TestTopicRecreated: deleting and recreating the topic starts a new
// epoch: old ids are unrecoverable, ordered before the new log's (the
// reader was in both), and the reader carries on with the new log. The
// idempotency keys of the old log stay: a retry of a message it held is
// still a duplicate.
func TestTopicRecreated(t *testing.T) {
	t.Parallel()
	cluster := newCluster(t)
	cfg := config(cluster.ListenAddrs(), "recreated")
	b := newBroker(t, cfg)
	rec := brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	keyed := func(i int) (core.Published, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: []byte(strconv.Itoa(i))}
		return b.Publish(ctx, core.Publication{Channel: room, Envelope: env, Key: "k", Digest: "d"})
	}
	first, err := keyed(0)
	if err != nil || first.Duplicate {
		t.Fatalf("keyed publish = %+v, %v", first, err)
	}
	old := []string{first.ID, publish(t, b, room, 1)}
	rec.WaitN(t, 2, waitTime) // read before the topic goes
	oldEpoch := b.Epoch()

	if err := cluster.DeleteTopic(cfg.Topic); err != nil {
		t.Fatal(err)
	}
	// The driver recreates a missing topic itself; it may be first.
	if err := cluster.CreateTopic(cfg.Topic, 1, nil); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatal(err)
	}
	fresh := publish(t, b, room, 2)
	if got := ids(rec.WaitN(t, 3, waitTime)); got[2] != fresh {
		t.Fatalf("delivered %v, want %s third", got, fresh)
	}
	if b.Epoch() == oldEpoch || !strings.HasPrefix(fresh, b.Epoch()+"-") {
		t.Fatalf("after recreation: epoch %s (was %s), new id %s", b.Epoch(), oldEpoch, fresh)
	}
	// The old topic is gone: not recovered, and everything of the new
	// one follows (all of it came after the old id).
	h := history(t, b, old[0], 10, room)
	if h.Recovered || strings.Join(ids(h.Envelopes), " ") != fresh {
		t.Errorf("since an id of the old topic: recovered %v %v, want false and [%s]", h.Recovered, ids(h.Envelopes), fresh)
	}
	// The reader was in both logs: one gap, and the old one's ids first.
	brokertest.CheckRecreated(t, b, old[1], fresh, rec.Gaps())
	if _, ok := b.After("zz9-1", fresh); ok {
		t.Errorf("After compared an id of an epoch the reader was never in")
	}
	again, err := keyed(0)
	if err != nil || !again.Duplicate || again.ID != first.ID {
		t.Errorf("retrying the old log's keyed publish = %+v, %v; want Duplicate of %s", again, err, first.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.WaitDelivered(ctx, old[1]); err != nil {
		t.Errorf("WaitDelivered(old epoch) = %v, want nil at once", err)
	}
}

// TestOutageAndRecovery: with the cluster gone, Healthy reports
// ErrUnavailable within a bounded time and Publish fails promptly; once
// it is back (same port, same data), the node heals, delivers again and
// resumes from ids issued before the outage.
func TestOutageAndRecovery(t *testing.T) {
	t.Parallel()
	cluster := newRestartableCluster(t)
	cfg := config(cluster.addrs(), "outage")
	b := newBroker(t, cfg)
	rec := brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	before := publish(t, b, room, 0)
	if err := b.Healthy(); err != nil {
		t.Fatalf("Healthy before the outage: %v", err)
	}

	cluster.stop()
	began := time.Now()
	for b.Healthy() == nil { // Healthy is state, not an event: poll it
		if time.Since(began) > 10*time.Second {
			t.Fatal("Healthy still nil 10s into the outage")
		}
		time.Sleep(20 * time.Millisecond)
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
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("Publish took %s to fail", d)
	}
	t.Logf("publish failed after %s: %v", time.Since(began).Round(time.Millisecond), err)

	cluster.start()
	after := publish(t, b, room, 1)
	got := ids(rec.WaitN(t, 2, waitTime))
	if got[len(got)-1] != after {
		t.Fatalf("after recovery delivered %v, want %s last", got, after)
	}
	if err := b.Healthy(); err != nil {
		t.Errorf("Healthy after recovery: %v", err)
	}
	h := history(t, b, before, 10, room)
	if !h.Recovered || len(h.Envelopes) == 0 || h.Envelopes[len(h.Envelopes)-1].ID != after {
		t.Errorf("History since before the outage: recovered %v %v, want true ending with %s", h.Recovered, ids(h.Envelopes), after)
	}
}

// TestMalformedRecordSkipped: a record that is not a Switchboard message
// is skipped by the reader and by History.
func TestMalformedRecordSkipped(t *testing.T) {
	t.Parallel()
	cluster := newCluster(t)
	cfg := config(cluster.ListenAddrs(), "malformed")
	b := newBroker(t, cfg)
	rec := brokertest.Listen(t, b)
	room := core.RoomChannel("r")
	first := publish(t, b, room, 0)

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: cfg.Topic, Value: []byte("not an envelope")}).FirstErr(); err != nil {
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

// TestWaitDeliveredAndAfter: the positioning helpers core uses at the
// resume seam.
func TestWaitDeliveredAndAfter(t *testing.T) {
	t.Parallel()
	cluster := newCluster(t)
	cfg := config(cluster.ListenAddrs(), "positions")
	b := newBroker(t, cfg)
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
	for _, id := range []string{c, "garbage", epoch + "-999999"} { // delivered, unparseable, ahead of the log
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

func TestParseURL(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"kafka://localhost:9092":            "localhost:9092",
		"kafka://h1:9092,h2:9093":           "h1:9092 h2:9093",
		"kafka://h1":                        "h1:9092",
		"kafka://h1/":                       "h1:9092",
		"kafka://[::1]:9092,10.0.0.1":       "[::1]:9092 10.0.0.1:9092",
		"kafka://kafka-0.kafka.svc:29092":   "kafka-0.kafka.svc:29092",
		"kafka://127.0.0.1:1,127.0.0.1:2,x": "127.0.0.1:1 127.0.0.1:2 x:9092",
	}
	for raw, want := range good {
		got, err := kafka.ParseURL(raw)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("ParseURL(%q) = %v, %v; want %s", raw, got, err, want)
		}
	}
	for _, raw := range []string{"", "kafka://", "redis://h:6379", "h:9092", "kafka://h:9092,", "kafka://h:0",
		"kafka://h:99999", "kafka://u:p@h:9092", "kafka://h:9092/topic", "kafka://h:9092?tls=1", "kafka://:9092"} {
		if got, err := kafka.ParseURL(raw); !errors.Is(err, kafka.ErrInvalidConfig) {
			t.Errorf("ParseURL(%q) = %v, %v; want ErrInvalidConfig", raw, got, err)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := (kafka.Config{Brokers: []string{"h:9092"}}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	for name, cfg := range map[string]kafka.Config{
		"no brokers":      {},
		"bad broker":      {Brokers: []string{"h"}},
		"bad topic":       {Brokers: []string{"h:1"}, Topic: "a/b"},
		"negative dial":   {Brokers: []string{"h:1"}, DialTimeout: -1},
		"backoff inverse": {Brokers: []string{"h:1"}, RetryBackoff: time.Second, MaxRetryBackoff: time.Millisecond},
		"bad engine":      {Brokers: []string{"h:1"}, Engine: engine.Config{ReadCount: -1}},
	} {
		err := cfg.Validate()
		if !errors.Is(err, kafka.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
		if _, nerr := kafka.New(context.Background(), cfg, quiet); !errors.Is(nerr, kafka.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, nerr)
		}
	}
}

// publishTo publishes env on channel through b, without a key.
func publishTo(b core.Broker, ctx context.Context, channel string, env *core.Envelope) (string, error) {
	res, err := b.Publish(ctx, core.Publication{Channel: channel, Envelope: env})
	return res.ID, err
}

// TestLateNodeKnowsKeys: Kafka cannot refuse a repeated key, so a
// keyed publish can be in the topic twice (a hedged or retried request
// racing itself); every node's reader drops the repeat. A node started
// after the first copy learns the keys of the last dedup window at
// start, so a replay from it drops the repeat as well instead of
// delivering the message a second time.
func TestLateNodeKnowsKeys(t *testing.T) {
	t.Parallel()
	cluster := newCluster(t)
	cfg := config(cluster.ListenAddrs(), "latekeys")
	b1 := newBroker(t, cfg)
	brokertest.Listen(t, b1)
	room := core.RoomChannel("r")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", Data: []byte(`"once"`)}
	first, err := b1.Publish(ctx, core.Publication{Channel: room, Envelope: env, Key: "k", Digest: "d"})
	if err != nil {
		t.Fatal(err)
	}

	// The same record again, as a racing append would leave it.
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var orig *kgo.Record
	for orig == nil {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if orig == nil {
				orig = r
			}
		})
	}
	dup := &kgo.Record{Topic: cfg.Topic, Value: orig.Value, Headers: orig.Headers}
	if err := cl.ProduceSync(ctx, dup).FirstErr(); err != nil {
		t.Fatal(err)
	}
	last := publish(t, b1, room, 1)

	b2 := newBroker(t, cfg) // started after both copies
	brokertest.Listen(t, b2)
	for _, b := range []*engine.Broker{b1, b2} {
		h := history(t, b, first.ID, 10, room)
		if !h.Recovered || strings.Join(ids(h.Envelopes), " ") != last {
			t.Errorf("History after the first copy = recovered %v %v, want true [%s] (the repeat dropped)", h.Recovered, ids(h.Envelopes), last)
		}
		page, err := b.HistoryPage(ctx, core.HistoryRequest{Channels: []string{room}, Since: first.ID, Limit: 10})
		if err != nil || strings.Join(ids(page.Envelopes), " ") != last {
			t.Errorf("HistoryPage after the first copy = %v, %v; want [%s]", ids(page.Envelopes), err, last)
		}
	}
}
