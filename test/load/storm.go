package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

// The storm scenario: a broker and two nodes, A and B (see cluster.go).
//
//  1. --subs WebSocket subscribers connect to A, subscriber i in
//     subscribed room i mod --rooms. The --rooms subscribed rooms are
//     spread evenly among the --pub-rooms rooms the publisher uses.
//  2. A backend publishes --rate msg/s through B (one message per
//     request, --publish-workers requests in flight at most), round-robin
//     over the --pub-rooms rooms, for --warmup, so every subscriber has
//     seen at least one message of its room (the tool waits at most 10 s
//     more if one has not).
//  3. A is SIGKILLed. Every subscriber reconnects to B at once, at most
//     --dial-concurrency dials in flight, from where it was: Switchboard
//     with since=<the last id it saw>, centrifuge with recover and the
//     epoch and offset of the last publication it saw. Publishing goes on
//     for --duration (the storm window).
//  4. Publishing stops, and the tool waits at most --catchup until every
//     subscriber has every accepted message of its room.
//
// Message k goes to room k mod P and carries its room's sequence number
// k div P ("lq", as in resume), so each subscriber knows exactly which of
// its room's messages it has: an accepted one never seen is lost, one
// seen twice a duplicate. A subscriber has caught up when it is back on B
// and every message published before it was back has arrived; its
// catch-up time runs from the kill to that moment.
//
// B's publish rate is the accepted publishes per second over the second
// half of the warm-up (before) and over the storm window (during). Extra
// CPU is B's (and the broker's) CPU time from the kill until everyone
// caught up (or the wait ended), less what it used per second in the
// second half of the warm-up times the storm window: what the storm cost
// on top of the publishing.

// stormResult is the storm scenario's JSON line.
type stormResult struct {
	Scenario    string  `json:"scenario"`
	ServerName  string  `json:"server_name"`
	Run         int     `json:"run"`
	Broker      string  `json:"broker"`
	Transport   string  `json:"transport"`
	Subscribers int     `json:"subscribers"`
	Rooms       int     `json:"rooms"`
	PubRooms    int     `json:"pub_rooms"`
	RateTarget  float64 `json:"rate_target"`
	WarmupS     float64 `json:"warmup_s"`
	StormS      float64 `json:"storm_s"`

	// Publishing through B.
	Published         int64   `json:"published"` // requests sent
	Accepted          int64   `json:"accepted"`
	Unconfirmed       int64   `json:"unconfirmed"` // Switchboard 202: appended, not confirmed
	Failed            int64   `json:"failed"`
	RateBefore        float64 `json:"publish_rate_before"` // accepted/s
	RateDuring        float64 `json:"publish_rate_during"`
	FailedDuring      int64   `json:"publish_failed_during"`
	UnconfirmedDuring int64   `json:"publish_unconfirmed_during"`
	PublishP99Before  float64 `json:"publish_p99_ms_before"`
	PublishP99During  float64 `json:"publish_p99_ms_during"`
	PublishError      string  `json:"publish_error,omitempty"`

	// Subscribers.
	NoPosition   int   `json:"no_position"` // had seen nothing of their room when A was killed
	Back         int   `json:"back"`        // reconnected to B
	NotBack      int   `json:"not_back"`
	NotRecovered int   `json:"not_recovered"` // back, with recovered false or absent
	Expected     int64 `json:"expected"`      // accepted messages of their rooms, over all subscribers
	Lost         int64 `json:"lost"`
	LostBefore   int64 `json:"lost_before_kill"` // of Lost, published before the kill
	Duplicates   int64 `json:"duplicates"`
	// Replayed are the messages sent before their subscriber was back on
	// B that reached it there (recovered, or delivered late).
	Replayed   int64  `json:"replayed"`
	DialErrors int64  `json:"dial_errors"` // failed reconnect attempts (retried)
	DialError  string `json:"dial_error,omitempty"`
	EarlyEnds  int64  `json:"early_disconnects"` // A connections that ended before the kill
	BEnds      int64  `json:"b_disconnects"`     // B connections that ended (and reconnected)
	BEnd       string `json:"b_disconnect,omitempty"`

	// Catch-up, in seconds from the kill.
	CaughtUp      int     `json:"caught_up"`
	AllCaughtUp   bool    `json:"all_caught_up"`
	CaughtUpAllS  float64 `json:"caught_up_all_s"` // the last subscriber's (the wait's end if not all)
	CaughtUpP50S  float64 `json:"caught_up_p50_s"` // the median subscriber's (-1 if fewer than half)
	ReconnectAllS float64 `json:"reconnect_all_s"` // until the last subscriber was back

	// CPU seconds on top of the warm-up's rate (see above).
	ExtraCPUB      float64 `json:"extra_cpu_b_s"`
	ExtraCPUBroker float64 `json:"extra_cpu_broker_s"`
	CPUWindowS     float64 `json:"cpu_window_s"`
	NodeB          usage   `json:"node_b"`       // from the kill to the end
	BrokerUsage    usage   `json:"broker_usage"` // from the kill to the end
	Generator      usage   `json:"generator"`

	// Switchboard only, when B exposes them: the resume and history
	// counters of /metrics and /stats that changed from the kill to the
	// end, and the log entries History read per resume (0: every resume
	// was served from the resume index).
	EntriesPerResume *float64           `json:"entries_per_resume,omitempty"`
	NodeCounters     map[string]float64 `json:"node_counters,omitempty"`
}

func (r stormResult) figures() map[string]float64 {
	f := map[string]float64{
		"not_recovered": float64(r.NotRecovered), "not_back": float64(r.NotBack), "lost": float64(r.Lost),
		"duplicates": float64(r.Duplicates), "caught_up_all_s": r.CaughtUpAllS, "caught_up_p50_s": r.CaughtUpP50S,
		"reconnect_all_s": r.ReconnectAllS, "publish_rate_before": r.RateBefore, "publish_rate_during": r.RateDuring,
		"publish_failed_during": float64(r.FailedDuring), "extra_cpu_b_s": r.ExtraCPUB, "extra_cpu_broker_s": r.ExtraCPUBroker,
	}
	if r.EntriesPerResume != nil {
		f["entries_per_resume"] = *r.EntriesPerResume
	}
	return f
}

// stormSub is what one subscriber saw, over its connections to A and B.
type stormSub struct {
	mu     sync.Mutex
	seen   []uint8 // by sequence number: times received (saturating)
	lastID string  // Switchboard: the last message id
	epoch  string  // centrifuge: the stream's epoch…
	offset uint64  // …and the last publication's offset
	onB    bool
	// recovered is what B's welcome (connect reply) said.
	recovered bool
	// backNS is when it was (last) back on B; catchNS the latest arrival,
	// on B, of a message sent before backNS.
	backNS, catchNS int64
}

// stormState counts the subscribers' deliveries. sink and the welcome
// functions are the fleets' callbacks, called concurrently by the readers
// (one reader per subscriber at a time).
type stormState struct {
	kind       *serverKind
	room       []string // subscriber i's room
	subs       []stormSub
	dups       atomic.Int64
	replayed   atomic.Int64 // first arrivals on B of messages sent before their subscriber was back
	positioned atomic.Int64 // subscribers that have seen a message
	other      atomic.Int64
}

func newStormState(kind *serverKind, rooms []string) *stormState {
	return &stormState{kind: kind, room: rooms, subs: make([]stormSub, len(rooms))}
}

// record counts message seq of sub shard, sent at sentNS and arrived at
// nowNS; id (Switchboard) or offset (centrifuge, hasOffset) is its
// position.
func (s *stormState) record(shard, seq int, sentNS int64, id []byte, offset uint64, hasOffset bool, nowNS int64) {
	sub := &s.subs[shard]
	sub.mu.Lock()
	first := len(sub.seen) == 0
	for len(sub.seen) <= seq {
		sub.seen = append(sub.seen, 0)
	}
	n := sub.seen[seq]
	if n < 255 {
		sub.seen[seq] = n + 1
	}
	if id != nil && string(id) != sub.lastID {
		sub.lastID = string(id)
	}
	if hasOffset {
		sub.offset = max(sub.offset, offset)
	}
	missed := sub.onB && sentNS <= sub.backNS
	if missed && nowNS > sub.catchNS {
		sub.catchNS = nowNS
	}
	sub.mu.Unlock()
	if missed && n == 0 {
		s.replayed.Add(1)
	}
	if first {
		s.positioned.Add(1)
	}
	if n > 0 {
		s.dups.Add(1)
	}
}

// sink takes a Switchboard frame or a centrifuge line.
func (s *stormState) sink(shard int, frame []byte, nowNS int64) {
	for line := range lines(frame) {
		if s.kind == switchboard {
			id, _, seq, ok := parseResumeLine(line)
			sent, _, _ := parseLine(line)
			if !ok {
				s.other.Add(1)
				continue
			}
			s.record(shard, seq, sent, id, 0, false, nowNS)
			continue
		}
		sent, seq, ok := parseSeqPayload(line)
		if !ok {
			s.other.Add(1)
			continue
		}
		off, hasOff := centrifugePubOffset(line)
		s.record(shard, seq, sent, nil, off, hasOff, nowNS)
	}
}

// parseSeqPayload returns the send time and room sequence number of a
// line holding a numbered load payload.
func parseSeqPayload(line []byte) (sentNS int64, seq int, ok bool) {
	sentNS, _, ok = parseLine(line)
	if !ok {
		return 0, 0, false
	}
	i := bytes.Index(line, markSeq)
	if i < 0 {
		return 0, 0, false
	}
	q, n := parseUint(line[i+len(markSeq):])
	if n == 0 {
		return 0, 0, false
	}
	return sentNS, int(q), true
}

// welcome handles a subscriber's welcome (Switchboard) or connect reply
// (centrifuge) on A (onB false) or B.
func (s *stormState) welcome(shard int, msg []byte, onB bool) {
	now := time.Now().UnixNano()
	sub := &s.subs[shard]
	if s.kind == switchboard {
		if i := indexNL(msg); i >= 0 {
			msg = msg[:i]
		}
		if onB {
			sub.mu.Lock()
			sub.onB, sub.backNS = true, now
			sub.recovered = bytes.Contains(msg, []byte(`"recovered":true`))
			sub.mu.Unlock()
		}
		return
	}
	room := s.room[shard]
	res, err := parseCentrifugeConnect(msg, []string{room})
	if err != nil {
		return // subscribeCentrifuge has checked it already
	}
	r := res[room]
	sub.mu.Lock()
	if r.Epoch != sub.epoch { // a new stream: offsets start again
		sub.epoch, sub.offset = r.Epoch, r.Offset
	} else {
		sub.offset = max(sub.offset, r.Offset)
	}
	if onB {
		sub.onB, sub.backNS = true, now
		sub.recovered = r.Recovered
	}
	sub.mu.Unlock()
	for _, p := range r.Publications {
		sent, seq, ok := parseSeqPayload(append([]byte(`{"data":`), p.Data...))
		if !ok {
			s.other.Add(1)
			continue
		}
		s.record(shard, seq, sent, nil, p.Offset, true, now)
	}
}

// resumeReq is subscriber i's request to B: from where it was.
func (s *stormState) resumeReq(r subReq) subReq {
	sub := &s.subs[r.shard]
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if s.kind == switchboard {
		r.since = sub.lastID
	} else if sub.epoch != "" {
		r.cfRecover = map[string]cfPosition{r.rooms: {Epoch: sub.epoch, Offset: sub.offset}}
	}
	return r
}

// Status of a published message: its outcome in the low bits, the phase
// it was sent in above.
const (
	stormOutcomeMask = 0xf
	stormDuringBit   = 0x10
)

// stormPublisher publishes rate msg/s through one node, message k to room
// k mod len(rooms) with sequence number k div len(rooms). A pacer hands
// message numbers to --publish-workers workers; when all are busy the
// pacer waits and then catches up, so a slow node shows as fewer accepted
// per second.
type stormPublisher struct {
	api     *apiPublisher
	node    int
	rooms   []string
	payload int
	started time.Time       // set by start
	status  []atomic.Uint32 // by message number
	handed  atomic.Int64    // messages handed to the workers
	during  atomic.Bool     // the storm has begun
	// acceptedAt counts accepted publishes by the 100 ms slot (from
	// started) in which they were answered.
	acceptedAt []atomic.Int64
	lat        [2]histogram // request → answer of accepted ones, before and during
	firstErr   atomic.Pointer[string]
	jobs       chan int64
	wg         sync.WaitGroup
}

const stormSlot = 100 * time.Millisecond

func newStormPublisher(api *apiPublisher, node int, rooms []string, payload, workers, maxMessages int, horizon time.Duration) *stormPublisher {
	p := &stormPublisher{
		api: api, node: node, rooms: rooms, payload: payload,
		status:     make([]atomic.Uint32, maxMessages),
		acceptedAt: make([]atomic.Int64, int(horizon/stormSlot)+1),
		jobs:       make(chan int64),
	}
	for range workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *stormPublisher) work() {
	defer p.wg.Done()
	body := make([]byte, 0, p.payload+160)
	payload := make([]byte, 0, p.payload+32)
	nr := int64(len(p.rooms))
	for k := range p.jobs {
		var during uint32
		if p.during.Load() {
			during = stormDuringBit
		}
		t0 := time.Now()
		payload = appendResumePayload(payload[:0], t0.UnixNano(), int(during>>4), k/nr, p.payload)
		body = appendPublishBody(body[:0], p.rooms[k%nr], payload)
		// Not the run's context: a publish handed out is answered.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, msg := p.api.publish(ctx, p.node, body)
		cancel()
		p.status[k].Store(uint32(res) | during)
		switch res {
		case pubAccepted:
			p.lat[during>>4].record(time.Since(t0))
			slot := int(time.Since(p.started) / stormSlot)
			p.acceptedAt[min(slot, len(p.acceptedAt)-1)].Add(1)
		case pubFailed:
			p.firstErr.CompareAndSwap(nil, &msg)
		}
	}
}

// start begins pacing rate msg/s (from p.started) and returns the
// function that stops it and waits for the publishes in flight; calling
// that more than once is harmless.
func (p *stormPublisher) start(ctx context.Context, rate float64) (stop func()) {
	stopCh := make(chan struct{})
	done := make(chan struct{})
	p.started = time.Now()
	go func() {
		defer close(done)
		p.pace(ctx, rate, stopCh)
	}()
	return sync.OnceFunc(func() {
		close(stopCh)
		<-done
	})
}

// pace hands out message numbers at rate msg/s until stop is closed or
// ctx ends, then waits for the publishes in flight.
func (p *stormPublisher) pace(ctx context.Context, rate float64, stop <-chan struct{}) {
	defer func() {
		close(p.jobs)
		p.wg.Wait()
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		k := p.handed.Load()
		if want := int64(rate * time.Since(p.started).Seconds()); k < want && k < int64(len(p.status)) {
			select {
			case p.jobs <- k:
				p.handed.Store(k + 1)
				continue
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// acceptedRate is the accepted publishes per second answered in [from, to).
func (p *stormPublisher) acceptedRate(from, to time.Time) float64 {
	a, b := int(from.Sub(p.started)/stormSlot), int(to.Sub(p.started)/stormSlot)
	if b <= a {
		return 0
	}
	var n int64
	for i := a; i < b && i < len(p.acceptedAt); i++ {
		n += p.acceptedAt[i].Load()
	}
	return float64(n) / (float64(b-a) * stormSlot.Seconds())
}

// stormCount is the subscribers' tally against what was published.
type stormCount struct {
	expected, lost, lostBefore int64
	back                       int    // subscribers on B
	missing                    []bool // by subscriber: some accepted message not seen
}

// count compares every subscriber's messages with the accepted ones of
// its room (qOf(i) is its room's index among the published rooms).
func (s *stormState) count(p *stormPublisher, qOf func(i int) int) stormCount {
	c := stormCount{missing: make([]bool, len(s.subs))}
	handed := p.handed.Load()
	nr := int64(len(p.rooms))
	for i := range s.subs {
		sub := &s.subs[i]
		sub.mu.Lock()
		if sub.onB {
			c.back++
		}
		for k, seq := int64(qOf(i)), 0; k < handed; k, seq = k+nr, seq+1 {
			st := p.status[k].Load()
			if pubOutcome(st&stormOutcomeMask) != pubAccepted {
				continue
			}
			c.expected++
			if seq >= len(sub.seen) || sub.seen[seq] == 0 {
				c.lost++
				c.missing[i] = true
				if st&stormDuringBit == 0 {
					c.lostBefore++
				}
			}
		}
		sub.mu.Unlock()
	}
	return c
}

// stormFleets are the subscribers' connections, to A and then to B. A
// connection that ends is queued, and --dial-concurrency workers
// reconnect it to B from where it was, retrying with backoff until stop.
type stormFleets struct {
	a, b                       *fleet
	queue                      chan int
	killed                     atomic.Bool // A was killed on purpose
	earlyEnds, bEnds, dialErrs atomic.Int64
	bEnd, dialErr              atomic.Pointer[string]
	cancel                     context.CancelFunc
	redialers                  sync.WaitGroup
}

func startStormFleets(ctx context.Context, o options, state *stormState, b target, subscribe subscribeFunc, req func(i int) subReq) *stormFleets {
	ctx, cancel := context.WithCancel(ctx)
	f := &stormFleets{queue: make(chan int, o.subs), cancel: cancel}
	f.a = &fleet{rec: &recorder{}, sink: state.sink, welcome: func(shard int, msg []byte) { state.welcome(shard, msg, false) }}
	f.b = &fleet{rec: &recorder{}, sink: state.sink, welcome: func(shard int, msg []byte) { state.welcome(shard, msg, true) }}
	f.a.onEnd = func(shard int, _ error) {
		if !f.killed.Load() {
			f.earlyEnds.Add(1)
		}
		f.enqueue(ctx, shard)
	}
	f.b.onEnd = func(shard int, err error) {
		f.bEnds.Add(1)
		msg := err.Error()
		f.bEnd.CompareAndSwap(nil, &msg)
		f.enqueue(ctx, shard)
	}
	for range o.dialConcurrency {
		f.redialers.Add(1)
		go f.redial(ctx, b, subscribe, func(i int) subReq { return state.resumeReq(req(i)) })
	}
	return f
}

// enqueue queues a subscriber to reconnect; it never blocks a reader.
func (f *stormFleets) enqueue(ctx context.Context, shard int) {
	select {
	case f.queue <- shard:
	default:
		go func() {
			select {
			case f.queue <- shard:
			case <-ctx.Done():
			}
		}()
	}
}

// redial reconnects queued subscribers to b until ctx ends.
func (f *stormFleets) redial(ctx context.Context, b target, subscribe subscribeFunc, req func(i int) subReq) {
	defer f.redialers.Done()
	for {
		var shard int
		select {
		case shard = <-f.queue:
		case <-ctx.Done():
			return
		}
		for attempt := 1; ctx.Err() == nil; attempt++ {
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := subscribe(dctx, f.b, b, req(shard))
			cancel()
			if err == nil {
				break
			}
			f.dialErrs.Add(1)
			msg := err.Error()
			f.dialErr.CompareAndSwap(nil, &msg)
			d := time.Duration(min(attempt, 10)) * 100 * time.Millisecond
			edgeproc.Sleep(ctx, d/2+rand.N(d/2+1))
		}
	}
}

// stop ends the redialers and closes every connection.
func (f *stormFleets) stop() {
	f.cancel()
	f.redialers.Wait()
	f.b.closeAll()
	f.a.closeAll()
}

// readCPU reads the CPU time of each pid (0: this process).
func readCPU(pids []int) ([]edgeproc.ProcStat, error) {
	ps := make([]edgeproc.ProcStat, len(pids))
	for i, pid := range pids {
		var err error
		if ps[i], err = edgeproc.ReadProc(pid); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// stormMarks are the run's moments and the CPU readings (this process,
// B, the broker) taken at them.
type stormMarks struct {
	mid, kill, end          time.Time // mid-warm-up, A killed, wait over
	cpuMid, cpuKill, cpuEnd []edgeproc.ProcStat
}

func runStorm(ctx context.Context, o options, c *cluster, out *output, run int) (map[string]float64, error) {
	if err := edgeproc.RaiseNoFile(uint64(2*o.subs) + 1024); err != nil {
		return nil, err
	}
	a, b := c.nodes[0], c.nodes[1]
	kind := a.server()
	subscribe := kind.subscribe["websocket"]
	prefix := runPrefix(o, a, run)
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	pubRooms := make([]string, o.pubRooms)
	for q := range pubRooms {
		pubRooms[q] = fmt.Sprintf("st-%s-%d", runID, q)
	}
	// Subscribed room j is published room j*P/R: spread evenly.
	qOf := func(i int) int { return (i % o.rooms) * o.pubRooms / o.rooms }
	subRooms := make([]string, o.subs)
	for i := range subRooms {
		subRooms[i] = pubRooms[qOf(i)]
	}
	state := newStormState(kind, subRooms)
	req := func(i int) subReq {
		return subReq{rooms: subRooms[i], user: fmt.Sprintf("st-%s-%d", runID, i), src: sourceIP(i, o.sourceIPs), shard: i}
	}
	fleets := startStormFleets(ctx, o, state, b.target, subscribe, req)
	defer fleets.stop()

	// 1. Subscribers on A.
	bar := out.progress(fmt.Sprintf("%sstorm: connecting %d subscribers to node A", prefix, o.subs), int64(o.subs))
	err := openFleetWith(ctx, fleets.a, subscribe, a.target, o.subs, o.dialConcurrency, req, bar.add1)
	bar.done()
	if err != nil {
		return nil, err
	}

	// 2. Publish through B; warm up until every subscriber has a position.
	api := newAPIPublisher(kind, c.nodes[:], o.publishWorkers)
	defer api.close()
	maxMessages := int(o.rate*(o.warmup+10*time.Second+o.duration).Seconds()) + 1
	pub := newStormPublisher(api, 1, pubRooms, o.payload, o.publishWorkers, maxMessages, o.warmup+o.duration+o.catchup+2*time.Minute)
	stopPublishing := pub.start(ctx, o.rate)
	defer stopPublishing()
	out.note(fmt.Sprintf("%sstorm: publishing %.0f msg/s over %d rooms through node B; warm-up %s", prefix, o.rate, o.pubRooms, o.warmup))
	pids := []int{0, b.pid, c.broker.pid()}
	var m stormMarks
	m.mid = pub.started.Add(o.warmup / 2)
	edgeproc.Sleep(ctx, time.Until(m.mid))
	if m.cpuMid, err = readCPU(pids); err != nil {
		return nil, err
	}
	edgeproc.Sleep(ctx, time.Until(pub.started.Add(o.warmup)))
	for deadline := time.Now().Add(10 * time.Second); state.positioned.Load() < int64(o.subs) && time.Now().Before(deadline) && ctx.Err() == nil; {
		edgeproc.Sleep(ctx, 20*time.Millisecond)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	noPosition := o.subs - int(state.positioned.Load())
	if noPosition > 0 {
		out.note(fmt.Sprintf("%sstorm: %d subscribers have seen nothing of their room yet", prefix, noPosition))
	}

	// 3. Kill A; everyone comes back to B while publishing goes on.
	counters0 := scrapeNodeCounters(ctx, b)
	if m.cpuKill, err = readCPU(pids); err != nil {
		return nil, err
	}
	fleets.killed.Store(true)
	pub.during.Store(true)
	m.kill = time.Now()
	a.proc.Kill()
	out.note(fmt.Sprintf("%sstorm: node A killed; %d subscribers reconnect to B (%d dials in flight), publishing for %s more", prefix, o.subs, o.dialConcurrency, o.duration))
	edgeproc.Sleep(ctx, time.Until(m.kill.Add(o.duration)))
	stopPublishing()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// 4. Wait until everyone has everything.
	out.note(fmt.Sprintf("%sstorm: publishing stopped; waiting at most %s for every subscriber to catch up", prefix, o.catchup))
	var tally stormCount
	for deadline := time.Now().Add(o.catchup); ; {
		tally = state.count(pub, qOf)
		if (tally.lost == 0 && tally.back == o.subs) || !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		edgeproc.Sleep(ctx, 200*time.Millisecond)
	}
	m.end = time.Now()
	if m.cpuEnd, err = readCPU(pids); err != nil {
		return nil, err
	}
	counters1 := scrapeNodeCounters(ctx, b)
	fleets.stop()

	res := stormResult{
		Scenario: "storm", ServerName: kind.name, Run: run, Broker: c.broker.kind, Transport: "websocket",
		Subscribers: o.subs, Rooms: o.rooms, PubRooms: o.pubRooms, RateTarget: o.rate,
		WarmupS: o.warmup.Seconds(), StormS: o.duration.Seconds(), NoPosition: noPosition,
		DialErrors: fleets.dialErrs.Load(), EarlyEnds: fleets.earlyEnds.Load(), BEnds: fleets.bEnds.Load(),
	}
	if p := fleets.dialErr.Load(); p != nil {
		res.DialError = *p
	}
	if p := fleets.bEnd.Load(); p != nil {
		res.BEnd = *p
	}
	res.addPublishing(pub, m, o.duration)
	res.addSubscribers(state, tally, m)
	res.addCPU(m, o.duration)
	res.NodeCounters, res.EntriesPerResume = counterDeltas(counters0, counters1)
	out.result(res)
	return res.figures(), nil
}

// addPublishing counts what the publisher sent, before and during the
// storm window.
func (res *stormResult) addPublishing(pub *stormPublisher, m stormMarks, window time.Duration) {
	res.Published = pub.handed.Load()
	res.RateBefore = pub.acceptedRate(m.mid, m.kill)
	res.RateDuring = pub.acceptedRate(m.kill, m.kill.Add(window))
	for k := range res.Published {
		st := pub.status[k].Load()
		during := st&stormDuringBit != 0
		switch pubOutcome(st & stormOutcomeMask) {
		case pubAccepted:
			res.Accepted++
		case pubUnconfirmed:
			res.Unconfirmed++
			if during {
				res.UnconfirmedDuring++
			}
		default:
			res.Failed++
			if during {
				res.FailedDuring++
			}
		}
	}
	var hb, hd hsnap
	hb.add(&pub.lat[0])
	hd.add(&pub.lat[1])
	res.PublishP99Before, res.PublishP99During = ms(hb.quantile(0.99)), ms(hd.quantile(0.99))
	if p := pub.firstErr.Load(); p != nil {
		res.PublishError = *p
	}
}

// addSubscribers counts who came back, recovered and caught up, and what
// was lost or duplicated.
func (res *stormResult) addSubscribers(state *stormState, tally stormCount, m stormMarks) {
	res.Expected, res.Lost, res.LostBefore = tally.expected, tally.lost, tally.lostBefore
	res.Duplicates, res.Replayed = state.dups.Load(), state.replayed.Load()
	killNS := m.kill.UnixNano()
	catch := make([]float64, 0, len(state.subs))
	var lastBack int64
	for i := range state.subs {
		sub := &state.subs[i]
		sub.mu.Lock()
		onB, recovered, backNS, catchNS := sub.onB, sub.recovered, sub.backNS, sub.catchNS
		sub.mu.Unlock()
		if !onB {
			res.NotBack++
			continue
		}
		res.Back++
		lastBack = max(lastBack, backNS)
		if !recovered {
			res.NotRecovered++
		}
		if !tally.missing[i] {
			catch = append(catch, float64(max(backNS, catchNS)-killNS)/1e9)
		}
	}
	if lastBack > 0 {
		res.ReconnectAllS = float64(lastBack-killNS) / 1e9
	}
	res.CaughtUp = len(catch)
	res.AllCaughtUp = res.CaughtUp == len(state.subs)
	slices.Sort(catch)
	res.CaughtUpAllS = m.end.Sub(m.kill).Seconds()
	if res.AllCaughtUp && len(catch) > 0 {
		res.CaughtUpAllS = catch[len(catch)-1]
	}
	res.CaughtUpP50S = -1
	if mid := (len(state.subs) - 1) / 2; mid < len(catch) {
		res.CaughtUpP50S = catch[mid]
	}
}

// addCPU computes the storm's CPU cost on top of the warm-up's rate, for
// B and the broker (readings 1 and 2; 0 is this process).
func (res *stormResult) addCPU(m stormMarks, window time.Duration) {
	warm := m.kill.Sub(m.mid).Seconds()
	wall := m.end.Sub(m.kill).Seconds()
	res.CPUWindowS = wall
	extra := func(i int) float64 {
		base := (m.cpuKill[i].CPU - m.cpuMid[i].CPU).Seconds() / warm
		return (m.cpuEnd[i].CPU - m.cpuKill[i].CPU).Seconds() - base*window.Seconds()
	}
	use := func(i int) usage {
		return usage{CPUCores: (m.cpuEnd[i].CPU - m.cpuKill[i].CPU).Seconds() / wall, RSSBytes: m.cpuEnd[i].RSS, Threads: m.cpuEnd[i].Threads}
	}
	res.ExtraCPUB, res.ExtraCPUBroker = extra(1), extra(2)
	res.NodeB, res.BrokerUsage, res.Generator = use(1), use(2), use(0)
}

// nodeCounterRE picks the /metrics series and /stats fields about resumes
// and history.
var nodeCounterRE = regexp.MustCompile(`(?i)resume|recover|history|replay|index`)

// scrapeNodeCounters reads the resume and history figures of a
// Switchboard node's /metrics (series, histogram buckets left out) and
// /stats (numeric top-level fields, as "stats.<name>"). Nil for a peer
// or when neither answers.
func scrapeNodeCounters(ctx context.Context, t *edgeTarget) map[string]float64 {
	if t.server() != switchboard {
		return nil
	}
	out := map[string]float64{}
	get := func(path string) []byte {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.httpBase()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return buf.Bytes()
	}
	for k, v := range parsePromCounters(get("/metrics")) {
		out[k] = v
	}
	var stats map[string]any
	if json.Unmarshal(get("/stats"), &stats) == nil {
		for k, v := range stats {
			if f, ok := v.(float64); ok && nodeCounterRE.MatchString(k) {
				out["stats."+k] = f
			}
		}
	}
	return out
}

// parsePromCounters reads Prometheus text exposition: every sample whose
// metric name matches nodeCounterRE, keyed by name and labels, except
// histogram buckets.
func parsePromCounters(text []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		key, val := line[:i], line[i+1:]
		name, _, _ := strings.Cut(key, "{")
		if strings.HasSuffix(name, "_bucket") || !nodeCounterRE.MatchString(name) {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		out[key] = v
	}
	return out
}

// logEntriesRead is the node's counter of log entries History read from
// the broker (positions older than its resume index).
const logEntriesRead = "switchboard_history_log_entries_read_total"

// counterDeltas returns the counters that changed from before to after,
// and the log entries read per resume when the node exports
// logEntriesRead: its increase over the resumes counted by
// switchboard_resumes_total (0 when every resume was served from the
// node's index).
func counterDeltas(before, after map[string]float64) (map[string]float64, *float64) {
	if len(after) == 0 {
		return nil, nil
	}
	delta := map[string]float64{}
	resumes := 0.0
	for k, v := range after {
		d := v - before[k]
		if d != 0 {
			delta[k] = d
		}
		if name, _, _ := strings.Cut(k, "{"); name == "switchboard_resumes_total" {
			resumes += d
		}
	}
	if v, ok := after[logEntriesRead]; ok && resumes > 0 {
		epr := (v - before[logEntriesRead]) / resumes
		return delta, &epr
	}
	return delta, nil
}

// headline is the figures compared across servers, as the runs summary
// names them (compare.go).
func (r stormResult) headline() []figure {
	return []figure{
		{"all caught up s", r.CaughtUpAllS, "%.2f", false},
		{"p50 caught up s", r.CaughtUpP50S, "%.2f", false},
		{"not recovered", float64(r.NotRecovered), "%.0f", false},
		{"lost", float64(r.Lost), "%.0f", false},
		{"duplicates", float64(r.Duplicates), "%.0f", false},
		{"B publish/s during", r.RateDuring, "%.0f", true},
		{"B publish failures", float64(r.FailedDuring), "%.0f", false},
		{"B extra CPU s", r.ExtraCPUB, "%.2f", false},
		{"broker extra CPU s", r.ExtraCPUBroker, "%.2f", false},
	}
}

// writeStormTable prints the storm runs.
func writeStormTable(w io.Writer, rs []stormResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "| storm | run | broker | subs | rooms | pub rooms | rate | back | not recovered | lost (before kill) | duplicates | replayed | caught up | all caught up s | p50 caught up s | all back s | B publish/s before → during | B failed during | B p99 ms before → during | B extra CPU s | broker extra CPU s | log entries read per resume |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		all := fmt.Sprintf("%.2f", r.CaughtUpAllS)
		if !r.AllCaughtUp {
			all = fmt.Sprintf("> %.1f", r.CaughtUpAllS)
		}
		p50 := "n/a"
		if r.CaughtUpP50S >= 0 {
			p50 = fmt.Sprintf("%.2f", r.CaughtUpP50S)
		}
		epr := "n/a"
		if r.EntriesPerResume != nil {
			epr = fmt.Sprintf("%.1f", *r.EntriesPerResume)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %d | %d | %.0f | %d | %d | %d (%d) | %d | %d | %d | %s | %s | %.2f | %.0f → %.0f | %d | %.1f → %.1f | %.2f | %.2f | %s |\n",
			r.ServerName, r.Run, r.Broker, r.Subscribers, r.Rooms, r.PubRooms, r.RateTarget, r.Back, r.NotRecovered, r.Lost, r.LostBefore,
			r.Duplicates, r.Replayed, r.CaughtUp, all, p50, r.ReconnectAllS, r.RateBefore, r.RateDuring, r.FailedDuring,
			r.PublishP99Before, r.PublishP99During, r.ExtraCPUB, r.ExtraCPUBroker, epr)
	}
	for _, r := range rs {
		for _, note := range []struct{ what, msg string }{
			{"first publish failure", r.PublishError}, {"first failed reconnect", r.DialError}, {"first B disconnect", r.BEnd},
		} {
			if note.msg != "" {
				fmt.Fprintf(w, "\n%s run %d, %s: %.300s\n", r.ServerName, r.Run, note.what, note.msg)
			}
		}
		if r.NoPosition > 0 || r.EarlyEnds > 0 {
			fmt.Fprintf(w, "\n%s run %d: %d subscribers had seen nothing when A was killed; %d A connections ended before the kill\n",
				r.ServerName, r.Run, r.NoPosition, r.EarlyEnds)
		}
	}
	fmt.Fprintln(w)
}
