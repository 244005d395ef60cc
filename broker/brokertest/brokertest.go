package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/core"
)

// Features describes what the broker under test can do. Each field
// changes assertions; none disables a subtest.
type Features struct {
	// HistorySize is how many messages the broker keeps per channel for
	// resume; configure the driver's retention to it in the factory.
	//   > 0: a position older than the newest HistorySize messages of a
	//        channel is unrecoverable (Recovered false), one inside them is
	//        recovered. Must be at least 8.
	//   = 0: retention is unbounded at the suite's volumes: old positions
	//        stay recoverable.
	//   < 0: the broker keeps no history: every History call reports
	//        Recovered false and returns nothing.
	HistorySize int

	// GlobalOrder: ids order publications across channels (one log), so
	// History over several channels is one sequence in publish order,
	// After compares any two ids of one epoch, and Head names the end of
	// the log. When false (a partitioned log), only per-channel order is
	// asserted and the set of messages must still be exact, and Head must
	// return "" (there is no one position to name).
	GlobalOrder bool

	// SharedLog: two brokers from the factory are two nodes on one bus: a
	// publication on one is delivered by both, and either answers History
	// for the other's ids. When false (an embedded broker), each broker is
	// its own log and the other's ids are unrecoverable.
	SharedLog bool

	// DeliveryTimeout bounds each wait for a delivery.
	// Optional. Default: 10s.
	DeliveryTimeout time.Duration

	// Outage, when set, gives the Outage subtest a backend of its own that
	// it can stop and start again (see Backend), to check outage and
	// recovery. Set it for every driver whose backend can go away; it
	// requires SharedLog. When nil (an embedded broker: there is nothing
	// to stop), the Outage subtest checks the nearest thing it can: one
	// node closing does not disturb another.
	// Optional.
	Outage func(t *testing.T) Backend
}

// Backend is a backend the suite may stop and start again, returned by
// Features.Outage for one subtest. Outage is called on that subtest's
// goroutine with its t, and should register the backend's teardown with
// t.Cleanup; the suite calls Stop and Start on the same goroutine, so they
// may fail t (t.Fatal) when they cannot do their job. The backend is the
// subtest's alone: stopping it disturbs no other subtest, so the Outage
// subtest runs in parallel with the rest.
type Backend struct {
	// NewBroker returns a new, unstarted broker on this backend, like
	// Run's factory. Two of them are two nodes on one log.
	NewBroker func(t *testing.T) core.Broker

	// Stop makes the backend unreachable (a server shut down, a cluster
	// closed, a process stopped) and returns once it is. The nodes' open
	// connections see it go away.
	Stop func()

	// Start brings the backend back at the same address and returns once
	// it accepts connections. The nodes must find it again by themselves.
	Start func()

	// KeepsData: the backend keeps its log across Stop and Start (a store
	// on disk, a snapshot), so a position from before the outage is still
	// recoverable after it: History from it is Recovered true with what
	// followed. When false the restarted backend is empty, and the suite
	// asserts honesty instead: such a position is Recovered false, none of
	// the lost messages come back, and new ids never repeat old ones.
	KeepsData bool
}

// Bounds of the Outage subtest. Health is state, not an event: the suite
// polls it until these deadlines.
const (
	// outageNoticed bounds how long Healthy may keep returning nil once
	// the backend is gone.
	outageNoticed = 10 * time.Second
	// publishFails bounds a Publish while the backend is gone: it must
	// fail by itself, not when the caller's (longer) context expires.
	publishFails = 5 * time.Second
	// recovered bounds how long a node takes to be healthy again once the
	// backend is back (its reconnect backoff included).
	recovered = 20 * time.Second
)

// Run runs the conformance suite against brokers made by newBroker. The
// factory must return a new, unstarted broker; it may register cleanups
// with t. The suite starts it and closes it when the subtest ends.
func Run(t *testing.T, features Features, newBroker func(t *testing.T) core.Broker) {
	t.Helper()
	if features.HistorySize > 0 && features.HistorySize < 8 {
		t.Fatalf("brokertest: Features.HistorySize %d: use at least 8 (or 0 or negative)", features.HistorySize)
	}
	if features.Outage != nil && !features.SharedLog {
		t.Fatal("brokertest: Features.Outage needs SharedLog: the nodes on a backend that can stop share its log")
	}
	if features.DeliveryTimeout == 0 {
		features.DeliveryTimeout = 10 * time.Second
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s := &suite{f: features, newBroker: newBroker, run: hex.EncodeToString(rnd[:])}

	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"PublishDelivers", testPublishDelivers},
		{"OrderPerChannel", testOrderPerChannel},
		{"UniqueIDs", testUniqueIDs},
		{"TraceContext", testTraceContext},
		{"HistorySince", testHistorySince},
		{"HistoryLimit", testHistoryLimit},
		{"HistoryPages", testHistoryPages},
		{"HistoryRetention", testHistoryRetention},
		{"HistoryGarbageSince", testHistoryGarbageSince},
		{"Head", testHead},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"TwoNodes", testTwoNodes},
		{"KeyedOnce", testKeyedOnce},
		{"KeyedRace", testKeyedRace},
		{"Close", testClose},
		{"Outage", testOutage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, s)
		})
	}
}

type suite struct {
	f         Features
	newBroker func(t *testing.T) core.Broker
	run       string // random per Run: channels never collide across runs
}

// channel returns a room channel unique to this run, subtest and name.
func (s *suite) channel(t *testing.T, name string) string {
	test := t.Name()
	if i := strings.LastIndexByte(test, '/'); i >= 0 {
		test = test[i+1:]
	}
	return core.RoomChannel("bt" + s.run + "-" + test + "-" + name)
}

// node is one started broker and what it delivered.
type node struct {
	t   *testing.T
	s   *suite
	b   core.Broker
	rec *recorder
}

// start makes and starts a broker.
func (s *suite) start(t *testing.T) *node {
	t.Helper()
	return s.startWith(t, s.newBroker)
}

// startWith makes a broker with newBroker and starts it.
func (s *suite) startWith(t *testing.T, newBroker func(t *testing.T) core.Broker) *node {
	t.Helper()
	b := newBroker(t)
	if b == nil {
		t.Fatal("brokertest: the factory returned a nil broker")
	}
	rec := &recorder{byChannel: make(map[string][]core.Delivery), changed: make(chan struct{})}
	if err := b.Start(context.Background(), rec.deliver); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.f.DeliveryTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &node{t: t, s: s, b: b, rec: rec}
}

func (n *node) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), n.s.f.DeliveryTimeout)
}

// message builds the envelope the suite publishes as message i of
// channel: a room message or, on a user channel, a direct message.
func message(channel string, i int) *core.Envelope {
	env := &core.Envelope{
		V:    core.Version,
		Type: core.TypeMessage,
		From: "brokertest",
		TS:   1700000000000 + int64(i),
		Data: json.RawMessage(`{"i":` + strconv.Itoa(i) + `,"text":"line\nbreak é"}`),
	}
	if room, ok := strings.CutPrefix(channel, "room:"); ok {
		env.Room = room
	} else if user, ok := strings.CutPrefix(channel, "user:"); ok {
		env.Type, env.To = core.TypeDirect, user
	}
	return env
}

// publish publishes message i on channel and checks the returned id.
func (n *node) publish(channel string, i int) *core.Envelope {
	n.t.Helper()
	env, err := n.tryPublish(channel, i)
	if err != nil {
		n.t.Fatal(err)
	}
	return env
}

// tryPublish is publish for goroutines: it returns what went wrong.
func (n *node) tryPublish(channel string, i int) (*core.Envelope, error) {
	ctx, cancel := n.ctx()
	defer cancel()
	env := message(channel, i)
	res, err := n.b.Publish(ctx, core.Publication{Channel: channel, Envelope: env})
	if err != nil {
		return nil, fmt.Errorf("Publish(%s, %d): %w", channel, i, err)
	}
	if id := res.ID; id == "" || env.ID != id || res.Duplicate {
		return nil, fmt.Errorf("Publish(%s, %d) returned id %q and set env.ID to %q: want the same non-empty id", channel, i, id, env.ID)
	}
	return env, nil
}

func (n *node) history(channels []string, since string, limit int) core.HistoryResult {
	n.t.Helper()
	ctx, cancel := n.ctx()
	defer cancel()
	res, err := n.b.History(ctx, core.HistoryRequest{Channels: channels, Since: since, Limit: limit})
	if err != nil {
		n.t.Fatalf("History(%v since %q limit %d): %v", channels, since, limit, err)
	}
	return res
}

// expectDelivered waits until channel has delivered exactly want, in
// order: it publishes a marker after them and waits for it, so anything
// delivered twice or out of place shows up before the marker.
func (n *node) expectDelivered(channel string, want []*core.Envelope) {
	n.t.Helper()
	marker := n.publish(channel, -1)
	all := n.rec.waitFor(n.t, channel, marker.ID, n.s.f.DeliveryTimeout)
	// With a shared log, another node's markers reach this one too: they
	// are not part of what the test published.
	got := all[:0:0]
	for _, e := range all {
		if e.ID != marker.ID && !isMarker(e) {
			got = append(got, e)
		}
	}
	if !sameEnvelopes(got, want) {
		n.t.Fatalf("%s delivered\n%s\nwant\n%s", channel, dump(got), dump(want))
	}
}

// isMarker reports whether env is a marker publication (message -1).
func isMarker(env *core.Envelope) bool {
	return strings.HasPrefix(string(env.Data), `{"i":-1,`)
}

// recorder collects the deliveries of one broker.
type recorder struct {
	mu        sync.Mutex
	byChannel map[string][]core.Delivery
	changed   chan struct{}
}

func (r *recorder) deliver(d core.Delivery) {
	if d.Gap {
		return // no conformance case loses the log under a reader
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byChannel[d.Channel] = append(r.byChannel[d.Channel], d)
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitFor waits until the envelope with id has been delivered on channel
// and returns every delivery of channel so far.
func (r *recorder) waitFor(t *testing.T, channel, id string, timeout time.Duration) []*core.Envelope {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ds := r.byChannel[channel]
		changed := r.changed
		r.mu.Unlock()
		out := make([]*core.Envelope, 0, len(ds))
		found := false
		for _, d := range ds {
			if d.Envelope == nil {
				t.Fatalf("%s: delivery without an envelope", channel)
			}
			out = append(out, d.Envelope)
			found = found || d.Envelope.ID == id
		}
		if found {
			return out
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: %s not delivered within %s; got\n%s", channel, id, timeout, dump(out))
		}
	}
}

// all returns what channel delivered so far.
func (r *recorder) all(channel string) []*core.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*core.Envelope, 0, len(r.byChannel[channel]))
	for _, d := range r.byChannel[channel] {
		out = append(out, d.Envelope)
	}
	return out
}

func sameEnvelopes(got, want []*core.Envelope) bool {
	return slices.EqualFunc(got, want, func(a, b *core.Envelope) bool {
		return string(a.Encode()) == string(b.Encode())
	})
}

func dump(envs []*core.Envelope) string {
	if len(envs) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for _, e := range envs {
		b.WriteString("  ")
		b.Write(e.Encode())
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// --- subtests ---

// testPublishDelivers: a publication reaches Start's callback once, on its
// channel, with the id Publish returned and the envelope unchanged; room
// and user channels alike.
func testPublishDelivers(t *testing.T, s *suite) {
	n := s.start(t)
	room := s.channel(t, "room")
	user := core.UserChannel("bt" + s.run + "-user")
	r := n.publish(room, 1)
	u := n.publish(user, 2)
	n.expectDelivered(room, []*core.Envelope{r})
	n.expectDelivered(user, []*core.Envelope{u})
}

// testOrderPerChannel: sequential publications interleaved over channels
// are delivered in publish order within each channel.
func testOrderPerChannel(t *testing.T, s *suite) {
	n := s.start(t)
	channels := []string{s.channel(t, "a"), s.channel(t, "b")}
	want := map[string][]*core.Envelope{}
	for i := range 30 {
		ch := channels[i%len(channels)]
		want[ch] = append(want[ch], n.publish(ch, i))
	}
	for _, ch := range channels {
		n.expectDelivered(ch, want[ch])
	}
}

// testTraceContext: an envelope's Trace (the publisher's span context)
// reaches the delivery unchanged; an envelope without one
// arrives without one. It never appears in the encoded envelope.
func testTraceContext(t *testing.T, s *suite) {
	n := s.start(t)
	room := s.channel(t, "room")
	trace := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "sb=1"}
	ctx, cancel := n.ctx()
	defer cancel()
	env := message(room, 1)
	env.Trace = trace
	res, err := n.b.Publish(ctx, core.Publication{Channel: room, Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	id := res.ID
	plain := n.publish(room, 2)
	all := n.rec.waitFor(t, room, plain.ID, s.f.DeliveryTimeout)
	var traced, untraced *core.Envelope
	for _, e := range all {
		switch e.ID {
		case id:
			traced = e
		case plain.ID:
			untraced = e
		}
	}
	if traced == nil || !maps.Equal(traced.Trace, trace) {
		t.Fatalf("delivered %+v, want Trace %v", traced, trace)
	}
	if len(untraced.Trace) != 0 {
		t.Fatalf("an untraced publish arrived with Trace %v", untraced.Trace)
	}
	if strings.Contains(string(traced.Encode()), "traceparent") {
		t.Fatalf("the trace context leaked into the envelope: %s", traced.Encode())
	}
}

// testUniqueIDs: ids are unique across channels.
func testUniqueIDs(t *testing.T, s *suite) {
	n := s.start(t)
	seen := map[string]string{}
	for i := range 50 {
		ch := s.channel(t, strconv.Itoa(i%5))
		env := n.publish(ch, i)
		if prev, dup := seen[env.ID]; dup {
			t.Fatalf("id %s returned for message %d on %s and again on %s", env.ID, i, prev, ch)
		}
		seen[env.ID] = ch
	}
}

// testHistorySince: History returns exactly the messages of the requested
// channels published after since, in order, and Recovered true.
func testHistorySince(t *testing.T, s *suite) {
	n := s.start(t)
	a, b, other := s.channel(t, "a"), s.channel(t, "b"), s.channel(t, "other")
	var all []*core.Envelope
	for i := range 12 {
		all = append(all, n.publish([]string{a, b, other}[i%3], i))
	}
	since := all[3] // the second message of a
	var want []*core.Envelope
	for _, e := range all[4:] {
		if e.Room == strings.TrimPrefix(a, "room:") || e.Room == strings.TrimPrefix(b, "room:") {
			want = append(want, e)
		}
	}

	res := n.history([]string{a, b}, since.ID, 100)
	s.checkHistory(t, "since the 4th message", res, want, true)

	res = n.history([]string{a, b}, all[len(all)-1].ID, 100)
	s.checkHistory(t, "since the newest message", res, nil, true)

	// since need not belong to a requested channel: a client that left
	// room a resumes with the last id it saw, which came from a.
	res = n.history([]string{b}, since.ID, 100)
	var wantB []*core.Envelope
	for _, e := range want {
		if e.Room == strings.TrimPrefix(b, "room:") {
			wantB = append(wantB, e)
		}
	}
	s.checkHistory(t, "one channel", res, wantB, true)
}

// checkHistory compares a History result with the expected messages,
// honouring the features.
func (s *suite) checkHistory(t *testing.T, what string, res core.HistoryResult, want []*core.Envelope, recovered bool) {
	t.Helper()
	if s.f.HistorySize < 0 {
		if res.Recovered || len(res.Envelopes) > 0 {
			t.Fatalf("%s: a broker without history returned recovered=%v and\n%s", what, res.Recovered, dump(res.Envelopes))
		}
		return
	}
	if res.Recovered != recovered {
		t.Errorf("%s: Recovered = %v, want %v", what, res.Recovered, recovered)
	}
	got := res.Envelopes
	if !s.f.GlobalOrder {
		// Only per-channel order is promised: compare each channel's
		// subsequence, and the whole as a set.
		byRoom := func(envs []*core.Envelope) map[string][]*core.Envelope {
			m := map[string][]*core.Envelope{}
			for _, e := range envs {
				key := e.Room + "|" + e.To
				m[key] = append(m[key], e)
			}
			return m
		}
		g, w := byRoom(got), byRoom(want)
		ok := len(g) == len(w)
		for k := range w {
			ok = ok && sameEnvelopes(g[k], w[k])
		}
		if !ok {
			t.Fatalf("%s: History returned\n%s\nwant (in per-channel order)\n%s", what, dump(got), dump(want))
		}
		return
	}
	if !sameEnvelopes(got, want) {
		t.Fatalf("%s: History returned\n%s\nwant\n%s", what, dump(got), dump(want))
	}
}

// testHistoryLimit: more missed messages than Limit returns the newest
// Limit and Recovered false; exactly Limit is a full recovery.
func testHistoryLimit(t *testing.T, s *suite) {
	n := s.start(t)
	ch := s.channel(t, "c")
	var all []*core.Envelope
	for i := range 6 {
		all = append(all, n.publish(ch, i))
	}
	s.checkHistory(t, "5 missed, limit 5", n.history([]string{ch}, all[0].ID, 5), all[1:], true)
	s.checkHistory(t, "5 missed, limit 2", n.history([]string{ch}, all[0].ID, 2), all[4:], false)
}

// testHistoryPages: HistoryPage read page after page from a position
// returns every message of the requested channels after it exactly once,
// oldest first, each page Recovered and at most Limit long, More until
// the last; however far behind the position is, it is no gap. A garbage
// position is one (Recovered false, nothing returned).
func testHistoryPages(t *testing.T, s *suite) {
	n := s.start(t)
	a, b, other := s.channel(t, "a"), s.channel(t, "b"), s.channel(t, "other")
	total := 30
	if s.f.HistorySize > 0 {
		total = min(total, 3*s.f.HistorySize) // nothing evicted
	}
	var all []*core.Envelope
	for i := range total {
		all = append(all, n.publish([]string{a, b, other}[i%3], i))
	}
	var want []*core.Envelope
	for _, e := range all[1:] {
		if e.Room != strings.TrimPrefix(other, "room:") {
			want = append(want, e)
		}
	}
	const limit = 4
	var got []*core.Envelope
	since := all[0].ID
	for pages := 0; ; pages++ {
		if pages > 3*len(all) {
			t.Fatalf("no last page after %d pages (got %d of %d messages)", pages, len(got), len(want))
		}
		ctx, cancel := n.ctx()
		page, err := n.b.HistoryPage(ctx, core.HistoryRequest{Channels: []string{a, b}, Since: since, Limit: limit})
		cancel()
		if err != nil {
			t.Fatalf("page %d from %s: %v", pages, since, err)
		}
		if s.f.HistorySize < 0 {
			if page.Recovered || len(page.Envelopes) > 0 {
				t.Fatalf("a broker without history returned recovered=%v and\n%s", page.Recovered, dump(page.Envelopes))
			}
			return
		}
		if !page.Recovered {
			t.Fatalf("page %d from %s: Recovered false although nothing is missing", pages, since)
		}
		if len(page.Envelopes) > limit {
			t.Fatalf("page %d: %d messages, more than Limit %d", pages, len(page.Envelopes), limit)
		}
		got = append(got, page.Envelopes...)
		if !page.More {
			break
		}
		if page.Next == "" {
			t.Fatalf("page %d: More without Next", pages)
		}
		since = page.Next
	}
	s.checkHistory(t, "every page", core.HistoryResult{Envelopes: got, Recovered: true}, want, true)

	ctx, cancel := n.ctx()
	defer cancel()
	page, err := n.b.HistoryPage(ctx, core.HistoryRequest{Channels: []string{a}, Since: "garbage", Limit: limit})
	if err != nil || page.Recovered || len(page.Envelopes) > 0 {
		t.Errorf("since garbage: %+v, %v; want Recovered false, nothing and no error", page, err)
	}
}

// testHistoryRetention: a position older than what the broker retains is
// reported unrecoverable; retention is per channel.
func testHistoryRetention(t *testing.T, s *suite) {
	n := s.start(t)
	full, quiet := s.channel(t, "full"), s.channel(t, "quiet")
	size := s.f.HistorySize
	if size <= 0 {
		size = 20 // enough to show nothing is dropped
	}
	q0 := n.publish(quiet, 0)
	q1 := n.publish(quiet, 1)
	var all []*core.Envelope
	for i := range size + 3 {
		all = append(all, n.publish(full, i))
	}
	limit := size + 10
	switch {
	case s.f.HistorySize > 0:
		// The newest size messages (from index 3) are retained.
		s.checkHistory(t, "since the last message before retention", n.history([]string{full}, all[2].ID, limit), all[3:], true)
		res := n.history([]string{full}, all[0].ID, limit)
		if res.Recovered {
			t.Errorf("since the first of %d messages with %d retained: Recovered = true, want false", len(all), size)
		}
		if len(res.Envelopes) > 0 && !sameEnvelopes(res.Envelopes, all[len(all)-len(res.Envelopes):]) {
			t.Errorf("an unrecoverable History must still return the newest messages in order; got\n%s", dump(res.Envelopes))
		}
	default:
		s.checkHistory(t, "since the first message", n.history([]string{full}, all[0].ID, limit), all[1:], true)
	}
	// The full channel's overflow does not touch the quiet one.
	s.checkHistory(t, "quiet channel", n.history([]string{quiet}, q0.ID, limit), []*core.Envelope{q1}, true)
}

// testHistoryGarbageSince: a since that is not one of the broker's ids is
// unrecoverable, never an error and never a guess.
func testHistoryGarbageSince(t *testing.T, s *suite) {
	n := s.start(t)
	ch := s.channel(t, "c")
	env := n.publish(ch, 0)
	n.publish(ch, 1)
	for _, since := range []string{"", "garbage", "not-an-id", "-", "🙂", env.ID + "-tail", env.ID + "x", strings.Repeat("9", 40), "\x00"} {
		res := n.history([]string{ch}, since, 100)
		if res.Recovered || len(res.Envelopes) > 0 {
			t.Errorf("since %q: Recovered = %v with\n%s\nwant false and nothing", since, res.Recovered, dump(res.Envelopes))
		}
	}
}

// testHead: with GlobalOrder, Head names the end of the log. History
// from a head returns exactly what was published after it, on every
// requested channel, Recovered true; a head is at or after every
// publication that returned before it; on a shared log another node's
// head resumes this node's publications. Without GlobalOrder there is no
// one position to name: Head returns "" (core falls back to "from now").
func testHead(t *testing.T, s *suite) {
	n := s.start(t)
	a, b := s.channel(t, "a"), s.channel(t, "b")
	if !s.f.GlobalOrder {
		n.publish(a, 0)
		if h := n.head(); h != "" {
			t.Fatalf("Head = %q without GlobalOrder: want \"\"", h)
		}
		return
	}

	empty := n.head() // "" is allowed while the log is empty
	first := n.publish(a, 0)
	if empty != "" {
		s.checkHistory(t, "from the head taken before the first publication", n.history([]string{a}, empty, 100), []*core.Envelope{first}, true)
	}

	head := n.head()
	if head == "" {
		t.Fatalf("Head returned \"\" after a publication: the log is not empty")
	}
	if after, ok := n.b.After(first.ID, head); !ok || after {
		t.Fatalf("After(%s, head %s) = %v, %v: want the head at or after a publication that returned before it", first.ID, head, after, ok)
	}
	var want []*core.Envelope
	for i := range 6 {
		want = append(want, n.publish([]string{a, b}[i%2], i+1))
	}
	s.checkHistory(t, "from the head", n.history([]string{a, b}, head, 100), want, true)
	s.checkHistory(t, "from a head taken after everything", n.history([]string{a, b}, n.head(), 100), nil, true)

	if s.f.SharedLog {
		m := s.start(t)
		other := m.head()
		if other == "" {
			t.Fatalf("the second node's Head returned \"\" on a log that is not empty")
		}
		env := n.publish(b, 7)
		s.checkHistory(t, "another node's head", m.history([]string{a, b}, other, 100), []*core.Envelope{env}, true)
	}
}

// head calls Head.
func (n *node) head() string {
	n.t.Helper()
	ctx, cancel := n.ctx()
	defer cancel()
	h, err := n.b.Head(ctx)
	if err != nil {
		n.t.Fatalf("Head: %v", err)
	}
	return h
}

// testConcurrentPublishers: publishers on several goroutines, all on one
// channel: every message is delivered exactly once, each publisher's
// messages in its order, with the ids Publish returned.
func testConcurrentPublishers(t *testing.T, s *suite) {
	n := s.start(t)
	ch := s.channel(t, "shared")
	const publishers, each = 6, 25
	type result struct {
		envs []*core.Envelope
		err  error
	}
	results := make(chan result, publishers)
	for p := range publishers {
		go func() {
			var r result
			for i := range each {
				env, err := n.tryPublish(ch, p*1000+i)
				if err != nil {
					r.err = err
					break
				}
				r.envs = append(r.envs, env)
			}
			results <- r
		}()
	}
	var published []*core.Envelope
	for range publishers {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
		}
		published = append(published, r.envs...)
	}
	if t.Failed() {
		return
	}
	marker := n.publish(ch, -1)
	got := n.rec.waitFor(t, ch, marker.ID, s.f.DeliveryTimeout)
	if len(got) != len(published)+1 || got[len(got)-1].ID != marker.ID {
		t.Fatalf("%d deliveries (marker last: %v), want %d then the marker", len(got)-1, got[len(got)-1].ID == marker.ID, len(published))
	}
	got = got[:len(got)-1]
	byID := map[string]*core.Envelope{}
	for _, e := range published {
		if _, dup := byID[e.ID]; dup {
			t.Fatalf("id %s returned twice", e.ID)
		}
		byID[e.ID] = e
	}
	next := make(map[int]int) // publisher → next expected i
	for _, e := range got {
		want, ok := byID[e.ID]
		if !ok {
			t.Fatalf("delivered an unknown or duplicate id: %s", e.Encode())
		}
		delete(byID, e.ID)
		if string(e.Encode()) != string(want.Encode()) {
			t.Fatalf("delivered %s, published %s", e.Encode(), want.Encode())
		}
		var body struct{ I int }
		if err := json.Unmarshal(e.Data, &body); err != nil {
			t.Fatal(err)
		}
		p, i := body.I/1000, body.I%1000
		if i != next[p] {
			t.Fatalf("publisher %d: message %d delivered when %d was next", p, i, next[p])
		}
		next[p]++
	}
}

// testTwoNodes: with a shared log, a second broker delivers the first
// one's publications and resumes from its ids; without one, the second
// broker is a separate world and the first one's ids are unrecoverable
// there.
func testTwoNodes(t *testing.T, s *suite) {
	n1, n2 := s.start(t), s.start(t)
	ch := s.channel(t, "c")
	e0 := n1.publish(ch, 0)
	e1 := n1.publish(ch, 1)
	n1.expectDelivered(ch, []*core.Envelope{e0, e1})
	if s.f.SharedLog {
		n2.expectDelivered(ch, []*core.Envelope{e0, e1})
		res := n2.history([]string{ch}, e0.ID, 10)
		res.Envelopes = slices.DeleteFunc(res.Envelopes, isMarker) // expectDelivered's
		s.checkHistory(t, "other node's id", res, []*core.Envelope{e1}, true)
		return
	}
	n2.expectDelivered(ch, nil)
	res := n2.history([]string{ch}, e0.ID, 10)
	if res.Recovered || len(res.Envelopes) > 0 {
		t.Fatalf("separate brokers: History on the second for the first's id = recovered %v with\n%s\nwant false and nothing", res.Recovered, dump(res.Envelopes))
	}
	if e0.ID == n2.rec.all(ch)[0].ID {
		t.Fatalf("separate brokers issued the same id %s: resume could replay the wrong messages", e0.ID)
	}
}

// testClose: Close is idempotent, and a closed broker refuses to publish
// and reports itself unhealthy.
func testClose(t *testing.T, s *suite) {
	n := s.start(t)
	ch := s.channel(t, "c")
	n.expectDelivered(ch, []*core.Envelope{n.publish(ch, 0)})
	ctx, cancel := n.ctx()
	defer cancel()
	if err := n.b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := n.b.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := n.b.Publish(ctx, core.Publication{Channel: ch, Envelope: message(ch, 1)})
	if !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want an error wrapping broker.ErrClosed", err)
	}
	if err := n.b.Healthy(); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Healthy after Close = %v, want an error wrapping broker.ErrClosed", err)
	}
}
