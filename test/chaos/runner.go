package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// result is one broker's run: the JSON line of results.jsonl.
type result struct {
	Broker    string                    `json:"broker"`
	Messages  int64                     `json:"messages"`
	Subs      map[string]int            `json:"subscribers"` // per transport
	Faults    []phase                   `json:"faults"`
	Log       logFigures                `json:"log"`
	Rows      []*figures                `json:"rows"`
	CaughtUp  bool                      `json:"caught_up"`
	CatchUpS  float64                   `json:"catch_up_s"`  // last accept → every subscriber has everything
	Errors    map[string]map[string]int `json:"disconnects"` // per transport: what ended connections
	PubErrors map[string]int            `json:"publish_failures"`
	Timeline  timeline                  `json:"timeline"`
	Failures  []string                  `json:"failures"`
	// Examples are the first failures by subscriber.
	Examples []string `json:"examples,omitempty"`
	// Policies are the edges' slow-consumer counters (/stats) when the
	// stall ended: evidence that every policy acted.
	Policies map[string]uint64 `json:"slow_consumer_counters,omitempty"`
	// DataLoss: the broker lost its log in a fault (kfake restarted).
	DataLoss bool      `json:"data_loss,omitempty"` // targets missed; empty when met
	Started  time.Time `json:"started"`
}

// timeline is what timeline.html draws: deliveries per transport and
// accepted publishes per bucket.
type timeline struct {
	BucketMS   int              `json:"bucket_ms"`
	Accepted   []int            `json:"accepted"`
	Deliveries map[string][]int `json:"deliveries"`
}

var transports = []string{"websocket", "sse", "longpoll"}

// runBroker runs the suite on one broker.
func runBroker(ctx context.Context, o options, broker string, b bins, status func(string, ...any)) (*result, error) {
	dir := filepath.Join(o.out, broker)
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// With the partition fault, edge 2 lives in a network namespace and
	// everyone reaches the broker on the namespace pair's host end.
	var part *netPartition
	host := "127.0.0.1"
	if contains(o.faults, "partition") {
		var err error
		if part, err = newPartition(); err != nil {
			return nil, err
		}
		defer part.close()
		host = part.brokerIP
	}
	bp, baddr, url, err := brokerProc(broker, b, dir, host)
	if err != nil {
		return nil, err
	}
	status("%s: starting %s on %s", broker, broker, baddr)
	defer bp.close()
	if err := bp.start(ctx); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, bp.logTail(2000))
	}

	edges := make([]*proc, 3)
	addrs := make([]string, 3)
	for i := range edges {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		args := []string{"--addr", addr, "--broker", broker, "--broker-url", url, "--api-keys", apiKey,
			"--broker-wait", "--shutdown-timeout", "5s",
			// A small send queue, so that a stalled reader overflows it
			// and its edge's slow-consumer policy acts.
			"--send-queue", "32",
			// The log keeps every message of the run: any loss is a
			// failure (a retention fault would be a run of its own).
			"--retention-messages", strconv.FormatInt(2*(o.messages+burstSize)+10000, 10),
			// Two rooms whose policies lose messages by design.
			"--slow-consumer-rooms", policyFlag()}
		if i == 1 {
			// One edge replays a slow consumer from the log instead of
			// closing it: both policies are under test.
			args = append(args, "--slow-consumer", "resume")
		}
		edges[i] = &proc{name: "edge" + strconv.Itoa(i), addr: addr, bin: b.edge, args: args,
			logPath: filepath.Join(dir, "edge"+strconv.Itoa(i)+".log")}
		if i == 2 && part != nil {
			// Any port is free in a namespace of its own.
			_, port, _ := net.SplitHostPort(addr)
			e := edges[i]
			e.addr = net.JoinHostPort(part.clientIP, port)
			args[1] = e.addr
			e.bin, e.args = part.wrap(b.edge, args)
			addr = e.addr
		}
		addrs[i] = addr
	}
	defer func() {
		for _, e := range edges {
			e.stop(syscall.SIGTERM, 10*time.Second)
		}
	}()
	for _, e := range edges {
		if err := e.start(ctx); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, e.logTail(2000))
		}
		if err := waitReady(ctx, e.addr); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, e.logTail(2000))
		}
	}

	runID := broker + strconv.FormatInt(time.Now().UnixNano(), 36)
	rooms := make([]string, o.rooms, o.rooms+len(policyRooms))
	for i := range rooms {
		rooms[i] = fmt.Sprintf("chaos-%d", i)
	}
	for _, pr := range policyRooms {
		rooms = append(rooms, pr.room)
	}
	// One message first, so that the log has a head: a long-poll client's
	// first answer then carries a cursor.
	if err := publishMarker(ctx, addrs[0], runID); err != nil {
		return nil, err
	}

	var br *browser
	if o.browsers > 0 {
		if br, err = startBrowser(b.chromium, filepath.Join(dir, "chromium.log")); err != nil {
			return nil, err
		}
		defer br.close()
	}

	// Subscribers, spread over the edges, each in roomsPer rooms.
	subCtx, stopSubs := context.WithCancel(ctx)
	var subs []*subscriber
	var wg sync.WaitGroup
	// Every subscriber is done before the browser closes, also on an
	// early return.
	defer func() { stopSubs(); wg.Wait() }()
	n := 0
	roomsOf := func(n int) []string {
		var sr []string
		for k := range o.roomsPer {
			sr = append(sr, rooms[(n+k*7)%o.rooms])
		}
		return dedupe(sr)
	}
	for _, tr := range transports {
		for i := range o.subs {
			s := newSubscriber(fmt.Sprintf("%s-%d", tr, i), tr, roomsOf(n), addrs)
			switch {
			case tr != "longpoll" && i == 0:
				// The stalled readers: in every room, so that a stall
				// leaves a backlog their edge must deal with (close or
				// resume, by edge).
				s.slow, s.rooms = true, rooms
			case tr != "longpoll" && i == 1:
				// Stalled readers of the drop-oldest and conflate rooms
				// only: their policies act, not the edge's.
				s.slow, s.rooms = true, policyRoomNames()
			case i == 2:
				s.away = true // the retention fault's
			}
			subs = append(subs, s)
			wg.Add(1)
			go func(start int) { defer wg.Done(); s.run(subCtx, start) }(n)
			n++
		}
	}
	// Browser subscribers: transports round-robin, each on one edge
	// (the client takes one URL), so that every nine of them cover
	// every transport on every edge. They are not stalled readers.
	for i := range o.browsers {
		tr := browserTransports[i%len(browserTransports)]
		edge := addrs[(i+i/len(browserTransports))%len(addrs)]
		// In the stall's burst room too: the client takes the burst.
		s := newSubscriber(fmt.Sprintf("browser-%s-%d", tr, i/len(browserTransports)), "browser-"+tr, dedupe(append(roomsOf(n), rooms[0])), []string{edge})
		subs = append(subs, s)
		wg.Add(1)
		go func() { defer wg.Done(); br.subscribe(subCtx, s, edge, tr) }()
		n++
	}
	readyCtx, cancelReady := context.WithTimeout(ctx, readyTimeout)
	for _, s := range subs {
		select {
		case <-s.ready:
		case <-readyCtx.Done():
			cancelReady()
			return nil, fmt.Errorf("subscriber %s not welcomed within %s (%s)", s.name, readyTimeout, s.errSummary())
		}
	}
	cancelReady()
	status("%s: %d subscribers in; publishing %d messages over %s with faults %v", broker, len(subs), o.messages, o.duration, o.faults)

	started := time.Now()
	pub := newPublisher(runID, rooms, append([]string{rooms[0]}, policyRoomNames()...), addrs, o.messages, float64(o.messages)/o.duration.Seconds())
	pubCtx, cancelPub := context.WithTimeout(ctx, 3*o.duration+2*time.Minute)
	defer cancelPub()
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.publishAll(pubCtx, o.publishers) }()

	// Faults, in order, each once a share of the messages is accepted.
	var phases []phase
	var faultErr error
	fenv := &faultEnv{o: o, broker: broker, addr: baddr, url: url, bp: bp, edges: edges, subs: subs, pub: pub, part: part}
	for i, f := range o.faults {
		want := o.messages * int64(i+1) / int64(len(o.faults)+1)
		if !waitAccepted(pubCtx, pub, want) {
			break
		}
		p := phase{Name: f, Start: time.Now()}
		status("%s: fault %s (%d accepted)", broker, f, pub.accepted.Load())
		loss, err := inject(ctx, f, fenv)
		if err != nil {
			faultErr = fmt.Errorf("fault %s: %w", f, err)
			status("%s: %v", broker, faultErr)
		}
		p.DataLoss = loss
		p.End = time.Now()
		phases = append(phases, p)
	}
	pubErr := <-pubDone
	status("%s: publishing over (%d accepted, %d retries)", broker, pub.accepted.Load(), pub.retries.Load())

	// The log, read from the broker itself.
	readCtx, cancelRead := context.WithTimeout(ctx, time.Minute)
	final, err := readLog(readCtx, broker, baddr, url)
	cancelRead()
	if err != nil {
		return nil, fmt.Errorf("reading the log: %w", err)
	}
	var holes []string
	if broker == "postgres" {
		holes = positionHoles(final)
	}
	final = onlyRooms(final, rooms)
	// What the broker lost in a restart (kfake) comes first: it was
	// published before everything the log holds now.
	log, gone, unread := composeLog(onlyRooms(fenv.lost, rooms), onlyRooms(fenv.trimmed, rooms), final, pub.acceptAt, pub.room)
	fenv.unread = unread
	trimmed := onlyRooms(fenv.trimmed, rooms)

	// Everyone catches up with what the log holds, or the deadline
	// passes.
	progress := newCatchUp(final, subs, policyOf)
	deadline := time.Now().Add(o.catchup)
	caughtUp := time.Time{}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if progress.done() {
			caughtUp = time.Now()
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the subscribers' progress
	}
	stopSubs()
	wg.Wait()

	r := &result{Broker: broker, Messages: o.messages, Faults: phases, Subs: map[string]int{},
		Errors: map[string]map[string]int{}, PubErrors: pub.failures, Started: started}
	var results []subResult
	for _, s := range subs {
		gots, sigs, rc, errs := s.snapshot()
		results = append(results, subResult{Name: s.name, Transport: s.transport, Rooms: s.rooms, Got: gots, Signals: sigs, Reconnects: rc, Errors: errs})
		r.Subs[s.transport]++
		if r.Errors[s.transport] == nil {
			r.Errors[s.transport] = map[string]int{}
		}
		for k, v := range errs {
			r.Errors[s.transport][k] += v
		}
	}
	r.Rows, r.Examples = check(log, results, pub.acceptAt, phases, gone, policyOf)
	r.Policies = fenv.policies
	attempted := o.messages
	if contains(o.faults, "stall") {
		attempted += burstSize
	}
	r.Log = checkLog(final, pub.acceptAt, pub.retries.Load(), attempted)
	if gone != nil {
		// Every log the broker had, for "accepted but missing": what the
		// restart lost was in the log before it.
		lost := checkLog(log, pub.acceptAt, 0, attempted)
		r.Log.Trimmed = int64(len(trimmed))
		r.Log.LostWithTheLog = lost.InLog - r.Log.InLog - fenv.unread - r.Log.Trimmed
		if len(fenv.lost) > 0 {
			r.Log.AcceptedNotInLog = fenv.unread
		} else {
			r.Log.AcceptedNotInLog = lost.AcceptedNotInLog // with nothing lost by the broker, a loss
		}
	}
	for _, p := range phases {
		r.DataLoss = r.DataLoss || p.DataLoss
	}
	r.Timeline = buildTimeline(started, pub.acceptAt, results, 250*time.Millisecond)
	if !caughtUp.IsZero() {
		r.CaughtUp, r.CatchUpS = true, max(0, caughtUp.Sub(pub.lastAccept).Seconds())
	}
	r.Failures = targets(r, caughtUp.IsZero(), o.catchup)
	if contains(o.faults, "retention") {
		r.Failures = append(r.Failures, awayMissedTrimmed(results, trimmed, awayNames(subs))...)
	}
	if len(holes) > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("the log's positions have holes (positions %s)", strings.Join(holes, ", ")))
	}
	if pubErr != nil {
		r.Failures = append(r.Failures, "publishing: "+pubErr.Error())
	}
	if faultErr != nil {
		r.Failures = append(r.Failures, faultErr.Error())
	}
	return r, nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// brokerServer is the broker as the suite starts it and the faults act
// on it: one process (*proc), or PostgreSQL's postmaster and the
// processes it forks (*pgServer). The suite's goroutine calls its
// methods.
type brokerServer interface {
	// start starts it, and starts it again on its data after restart's
	// shutdown, waiting until it accepts connections.
	start(ctx context.Context) error
	// restart shuts it down (crash: abruptly, as a crash would) and
	// starts it on its data.
	restart(ctx context.Context, crash bool) error
	// pause stops it (SIGSTOP) until resume: it keeps its connections
	// and answers nothing, as a hung broker.
	pause() error
	resume() error
	// close shuts it down for good.
	close()
	logTail(n int) string
}

var (
	_ brokerServer = (*proc)(nil)
	_ brokerServer = (*pgServer)(nil)
)

// brokerProc describes the broker and returns it with its address and
// the edges' URL: redis-server with AOF persistence, nats-server with
// JetStream file storage, both keeping their data in dir/data across
// restarts; kfake, which keeps none; PostgreSQL (pgtest), which keeps
// its data in a temporary directory of its own.
func brokerProc(broker string, b bins, dir, host string) (brokerServer, string, string, error) {
	free, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	_, port, _ := net.SplitHostPort(free)
	addr := net.JoinHostPort(host, port)
	p := &proc{name: broker, addr: addr, logPath: filepath.Join(dir, broker+".log")}
	data := filepath.Join(dir, "data")
	if broker == "redis" || broker == "nats" {
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, "", "", err
		}
	}
	switch broker {
	case "redis":
		p.bin = b.redis
		p.args = []string{"--port", port, "--bind", host, "--save", "", "--appendonly", "yes",
			"--appendfsync", "everysec", "--dir", data,
			// Bound to loopback or to the suite's own veth address:
			// accept the edges there without a password.
			"--protected-mode", "no"}
		return p, addr, "redis://" + addr + "/0", nil
	case "kafka":
		p.bin, p.args = b.self, []string{"kfake", "--addr", addr}
		return p, addr, "kafka://" + addr, nil
	case "nats":
		p.bin = b.nats
		p.args = []string{"-js", "-sd", data, "-a", host, "-p", port}
		return p, addr, "nats://" + addr, nil
	case "postgres":
		n, _ := strconv.Atoi(port)
		pg, err := newPGServer(host, n, p.logPath)
		if err != nil {
			return nil, "", "", err
		}
		return pg, addr, "postgres://postgres@" + addr + "/postgres?sslmode=disable", nil
	}
	return nil, "", "", fmt.Errorf("unknown broker %q", broker)
}

func readLog(ctx context.Context, broker, addr, url string) ([]entry, error) {
	switch broker {
	case "redis":
		return readRedisLog(ctx, addr)
	case "kafka":
		return readKafkaLog(ctx, addr)
	case "postgres":
		return readPostgresLog(ctx, url)
	}
	return readNATSLog(ctx, url)
}

func onlyRooms(log []entry, rooms []string) []entry {
	in := map[string]bool{}
	for _, r := range rooms {
		in[r] = true
	}
	out := log[:0:0]
	for _, e := range log {
		if in[e.Room] && e.Seq >= 0 {
			out = append(out, e)
		}
	}
	return out
}

func publishMarker(ctx context.Context, edge, run string) error {
	body := fmt.Appendf(nil, `{"room":"chaos-start","data":"start","idempotency_key":"%s-start"}`, run)
	deadline := time.Now().Add(readyTimeout)
	for {
		status, msg := post(ctx, edge, body)
		if status == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the first publish was refused: %d %s", status, msg)
		}
		time.Sleep(100 * time.Millisecond) // a backend's retry pause
	}
}

func waitAccepted(ctx context.Context, p *publisher, n int64) bool {
	for p.accepted.Load() < n {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond): // polling the publishers' progress
		}
	}
	return true
}

// restartGap is how long PostgreSQL runs between the broker-restart
// fault's crash and its fast shutdown.
const restartGap = 2 * time.Second

// faultEnv is what the faults act on.
type faultEnv struct {
	o      options
	broker string // redis, nats, kafka, postgres
	addr   string // the broker's
	url    string
	bp     brokerServer
	edges  []*proc
	subs   []*subscriber
	pub    *publisher
	part   *netPartition
	// lost collects the log as it was just before a restart that loses
	// it (kfake keeps its log in memory): the check counts those
	// messages as published, and their loss as the broker's.
	lost []entry
	// unread counts the messages accepted after the suite's last read of
	// a log that was then lost: in no log the suite read.
	unread int64
	// policies: the edges' slow-consumer counters at the stall's end.
	policies map[string]uint64
	// trimmed: what the retention fault removed from the log: the check
	// counts it as in the log, and its loss, signalled, as retention's.
	trimmed []entry
}

// inject runs one fault to its end; dataLoss reports that the broker
// lost its log in it.
func inject(ctx context.Context, fault string, env *faultEnv) (dataLoss bool, err error) {
	o, bp, edges := env.o, env.bp, env.edges
	// hold keeps a fault in place for its length.
	hold := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	restart := func(e *proc) error {
		if err := e.start(ctx); err != nil {
			return err
		}
		return waitReady(ctx, e.addr)
	}
	switch fault {
	case "edge-kill":
		edges[0].stop(syscall.SIGKILL, 0)
		return false, restart(edges[0])
	case "edge-term":
		edges[1].stop(syscall.SIGTERM, 30*time.Second)
		return false, restart(edges[1])
	case "broker-restart":
		if env.broker == "kafka" {
			// kfake loses its log: read it first, as late as possible
			// (what is accepted between the read and the kill is lost
			// without a record).
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			log, err := readLog(rctx, env.broker, env.addr, env.url)
			cancel()
			if err != nil {
				return false, fmt.Errorf("reading the log before the restart: %w", err)
			}
			env.lost = append(env.lost, log...)
		}
		if env.broker == "postgres" {
			// Two restarts: a crash first (an immediate shutdown,
			// nothing written: the start recovers from the write-ahead
			// log), then, after a while of traffic, a fast shutdown.
			if err := bp.restart(ctx, true); err != nil {
				return false, err
			}
			hold(restartGap)
		}
		return env.broker == "kafka", bp.restart(ctx, false)
	case "broker-pause":
		if err := bp.pause(); err != nil {
			return false, err
		}
		hold(o.pause)
		return false, bp.resume()
	case "partition":
		if err := env.part.cut(); err != nil {
			return false, err
		}
		hold(o.pause)
		return false, env.part.heal()
	case "retention":
		return false, retention(ctx, env, hold)
	case "stall":
		release := make(chan struct{})
		for _, s := range env.subs {
			if s.slow {
				s.stall <- release
			}
		}
		// A burst of large messages meanwhile, more than the kernel
		// buffers for a reader that reads nothing. The readers stay
		// stalled for --stall, and until the whole burst is published
		// and drop-oldest and conflate have acted (at most --stall
		// more): on a busy machine the burst takes longer than --stall,
		// and readers that read again while it is published would
		// never fill a send queue.
		end := time.Now().Add(o.stall) // the fault's length
		env.pub.burst(ctx, 8)
		hold(time.Until(end))
		var err error
		env.policies, err = policiesActed(ctx, edges, o.stall)
		close(release)
		return false, err
	}
	return false, errors.New("unknown fault")
}

// catchUp tracks, per subscriber, which of the log's messages in its
// rooms it has received: the run waits until every subscriber has every
// one of them. It reads each subscriber's new receipts only.
type catchUp struct {
	subs []*subscriber
	want []map[msgKey]bool // still missing, per subscriber
	next []int             // receipts already looked at
}

// Of a room whose policy drops messages (policy(room) != ""), only the
// newest is wanted: what those policies promise.
func newCatchUp(log []entry, subs []*subscriber, policy func(room string) string) *catchUp {
	c := &catchUp{subs: subs, want: make([]map[msgKey]bool, len(subs)), next: make([]int, len(subs))}
	newest := map[string]msgKey{}
	for _, e := range log {
		if policy(e.Room) != "" {
			newest[e.Room] = msgKey{e.Room, e.Seq}
		}
	}
	for i, s := range subs {
		in := map[string]bool{}
		for _, r := range s.rooms {
			in[r] = true
		}
		c.want[i] = map[msgKey]bool{}
		for _, e := range log {
			if in[e.Room] && policy(e.Room) == "" {
				c.want[i][msgKey{e.Room, e.Seq}] = true
			}
		}
		for room, k := range newest {
			if in[room] {
				c.want[i][k] = true
			}
		}
	}
	return c
}

// done reports whether every subscriber has received everything.
func (c *catchUp) done() bool {
	all := true
	for i, s := range c.subs {
		for _, g := range s.gotFrom(c.next[i]) {
			delete(c.want[i], msgKey{g.Room, g.Seq})
			c.next[i]++
		}
		all = all && len(c.want[i]) == 0
	}
	return all
}

func buildTimeline(start time.Time, acceptAt []time.Time, subs []subResult, bucket time.Duration) timeline {
	t := timeline{BucketMS: int(bucket / time.Millisecond), Deliveries: map[string][]int{}}
	add := func(s []int, at time.Time) []int {
		i := int(at.Sub(start) / bucket)
		if i < 0 {
			return s
		}
		for len(s) <= i {
			s = append(s, 0)
		}
		s[i]++
		return s
	}
	for _, at := range acceptAt {
		if !at.IsZero() {
			t.Accepted = add(t.Accepted, at)
		}
	}
	for _, s := range subs {
		for _, g := range s.Got {
			t.Deliveries[s.Transport] = add(t.Deliveries[s.Transport], g.At)
		}
	}
	return t
}

// targets lists what the run missed (issue #15's targets).
func targets(r *result, timedOut bool, catchup time.Duration) []string {
	var f []string
	if timedOut {
		f = append(f, fmt.Sprintf("not every subscriber caught up within %s of the last publish", catchup))
	}
	// Kafka cannot refuse an append: two racing appends of one key (the
	// hedged publishes) may both be in the topic, and every reader drops
	// the repeat (docs/brokers.md). Deliveries are checked below.
	if r.Log.TwiceInLog > 0 && r.Broker != "kafka" {
		f = append(f, fmt.Sprintf("%d messages are in the log twice despite their idempotency key", r.Log.TwiceInLog))
	}
	if r.Policies != nil && (r.Policies["dropped"] == 0 || r.Policies["conflated"] == 0) {
		f = append(f, fmt.Sprintf("the stall did not make drop-oldest and conflate act (edges' counters %v)", r.Policies))
	}
	if r.Log.AcceptedNotInLog > 0 && !r.DataLoss {
		f = append(f, fmt.Sprintf("%d accepted messages are not in the log", r.Log.AcceptedNotInLog))
	}
	for _, row := range r.Rows {
		at := row.Transport + "/" + row.Phase
		for _, c := range []struct {
			n    int64
			what string
		}{
			{row.LostUnsignaled, "lost without a signal"},
			// The suite's brokers keep everything: no loss is warranted.
			{row.LostSignaled, "lost (signalled) although the log holds them"},
			{row.DupByID, "duplicates by id"},
			{row.DupBySeq, "duplicates by sequence"},
			{row.Reordered, "reordered"},
			{row.NewestMissed, "newest messages of drop-oldest/conflate rooms missed"},
			{row.Phantom, "received but not in the log"},
			{row.Unwarranted, "recovered:false with nothing missing"},
		} {
			if c.n > 0 {
				f = append(f, fmt.Sprintf("%s: %d %s", at, c.n, c.what))
			}
		}
	}
	return f
}

// retention keeps one subscriber per transport away while the log is
// trimmed under it (all but the newer half of what was accepted
// meanwhile, as retention would),
// restarts edge 0 meanwhile (its resume index then starts after the
// trim, so a resume from before it reads the log) and brings them back
// there: each must be told recovered:false and get what the log still
// holds after its position.
func retention(ctx context.Context, env *faultEnv, hold func(time.Duration)) error {
	back := make(chan struct{})
	defer close(back)
	for _, s := range env.subs {
		if !s.away {
			continue
		}
		req := leaveReq{left: make(chan struct{}), back: back, edge: 0}
		select {
		case s.leave <- req:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-req.left:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	left := env.pub.accepted.Load()
	hold(env.o.pause)
	// Keep the newer half of what was accepted while they were away, so
	// that however late in the run (or slow the machine) they missed
	// trimmed messages and kept ones.
	keep := max(1, int(env.pub.accepted.Load()-left)/2)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	trimmed, err := trimLog(rctx, env.broker, env.addr, env.url, keep)
	cancel()
	if err != nil {
		return err
	}
	env.trimmed = append(env.trimmed, trimmed...)
	e := env.edges[0]
	e.stop(syscall.SIGTERM, 30*time.Second)
	if err := e.start(ctx); err != nil {
		return err
	}
	return waitReady(ctx, e.addr)
}

func awayNames(subs []*subscriber) map[string]bool {
	names := map[string]bool{}
	for _, s := range subs {
		if s.away {
			names[s.name] = true
		}
	}
	return names
}

// awayMissedTrimmed checks that the retention fault tested what it is
// for: each away subscriber missed messages the trim removed (the check
// has already required that it was told so, right there).
func awayMissedTrimmed(results []subResult, trimmed []entry, away map[string]bool) []string {
	var f []string
	for _, r := range results {
		if !away[r.Name] {
			continue
		}
		in, got := map[string]bool{}, map[msgKey]bool{}
		for _, room := range r.Rooms {
			in[room] = true
		}
		for _, g := range r.Got {
			got[msgKey{g.Room, g.Seq}] = true
		}
		missed := 0
		for _, e := range trimmed {
			if in[e.Room] && !got[msgKey{e.Room, e.Seq}] {
				missed++
			}
		}
		if missed == 0 {
			f = append(f, fmt.Sprintf("retention: %s missed no trimmed message (the fault did not test the signal)", r.Name))
		}
	}
	return f
}
