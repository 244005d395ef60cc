package main

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

// latencyMS are publish→deliver latencies in milliseconds, measured by the
// subscriber from the send time embedded in the payload.
type latencyMS struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// usage is a process's CPU and memory over a step.
type usage struct {
	CPUCores   float64 `json:"cpu_cores"` // CPU seconds per wall second
	RSSBytes   uint64  `json:"rss_bytes,omitempty"`
	Goroutines int     `json:"goroutines,omitempty"`
	Threads    int     `json:"threads,omitempty"`
	GOMAXPROCS int     `json:"gomaxprocs,omitempty"`
}

// fanoutResult is one step of fanout or saturate: one JSON line.
type fanoutResult struct {
	Scenario      string    `json:"scenario"`
	ServerName    string    `json:"server_name"` // switchboard, fiber or centrifuge
	Transport     string    `json:"transport"`
	Publisher     string    `json:"publisher"`
	Run           int       `json:"run"` // 1-based, of --runs
	Step          int       `json:"step"`
	Subscribers   int       `json:"subscribers"`
	Rooms         int       `json:"rooms"`
	PayloadBytes  int       `json:"payload_bytes"` // pad: exact; chat, market: the mean
	RateTarget    float64   `json:"rate_target"`
	DurationS     float64   `json:"duration_s"`
	Published     int64     `json:"published"`
	PublishedPerS float64   `json:"published_per_s"`
	Acked         int64     `json:"acked"`
	PublishErrors int64     `json:"publish_errors"`
	PublishError  string    `json:"publish_error,omitempty"`
	Expected      int64     `json:"expected"`
	Delivered     int64     `json:"delivered"`
	DeliveredPerS float64   `json:"delivered_per_s"`
	LossPct       float64   `json:"loss_pct"`
	Latency       latencyMS `json:"latency_ms"`
	Disconnects   int64     `json:"disconnects"`
	Disconnect    string    `json:"disconnect,omitempty"`
	// Server counters over the step, from /stats.
	ServerSlowClosed uint64 `json:"server_slow_closed"`
	ServerDropped    uint64 `json:"server_dropped"`
	Server           *usage `json:"server,omitempty"` // nil without a pid
	Generator        usage  `json:"generator"`
	// Machine is the whole machine's CPU over the step, in cores: Other is
	// what neither the server nor the load used (other processes; only
	// meaningful with a known server pid), Steal what the hypervisor took.
	Machine     machineCPU `json:"machine"`
	Sustainable *bool      `json:"sustainable,omitempty"` // saturate only
	// Disturbed is set when other processes used more than
	// --max-other-cpu on every attempt at this step.
	Disturbed bool `json:"disturbed,omitempty"`
	// DeliveredSeries is deliveries per second from the step's start.
	DeliveredSeries []int64 `json:"delivered_series"`
	PublishedSeries []int64 `json:"published_series"`
	Histogram       []bin   `json:"latency_histogram"`

	// Extrapolated is set when only a sample of the subscribers inflated
	// and was measured (--inflate-sample; sample.go): Expected, Delivered,
	// LossPct, Latency, the histogram, the delivered series and
	// WireBytesPerDelivery are the sample's own; DeliveredPerS is the
	// sample's times Sample.Scale, and the CPU per delivery is over
	// Delivered times Sample.Scale. Disconnects, WireBytes and the
	// server's counters cover every subscriber.
	Extrapolated bool           `json:"extrapolated,omitempty"`
	Sample       *sampleFigures `json:"sample,omitempty"`

	PayloadKind string `json:"payload_kind"` // pad, chat or market
	// DeflateOffered: the subscribers offered permessage-deflate
	// (--compress); DeflatedSubs of them had it accepted.
	DeflateOffered bool  `json:"deflate_offered"`
	DeflatedSubs   int64 `json:"deflated_subs"`
	// WireBytes is what the subscribers read from their sockets during
	// the step (TCP payload: frames and framing, pings included), and
	// WireBytesPerDelivery that over Delivered.
	WireBytes            int64   `json:"wire_bytes"`
	WireBytesPerDelivery float64 `json:"wire_bytes_per_delivery"`
	// EnvelopeBytes is the mean size of the load messages one subscriber
	// received, as the server framed them (its envelope around the
	// payload; inflated), and OwnDeflateBytes their mean size each
	// deflated on its own at level 6 (deflateSizer): the floor of
	// compressing once per message without context takeover. Both are
	// from up to envelopeSamples messages; 0 when there were none (long
	// poll).
	EnvelopeBytes   float64 `json:"envelope_bytes"`
	OwnDeflateBytes float64 `json:"own_deflate_bytes"`
	// ServerCPUPerDelivery and LoadCPUPerDelivery are the server's and
	// this tool's CPU time (user+system) over the step, in µs per
	// delivery.
	ServerCPUPerDelivery float64 `json:"server_cpu_us_per_delivery,omitempty"`
	LoadCPUPerDelivery   float64 `json:"load_cpu_us_per_delivery"`
}

type machineCPU struct {
	BusyCores  float64 `json:"busy_cores"`
	OtherCores float64 `json:"other_cores"`
	StealCores float64 `json:"steal_cores"`
}

// saturateSummary closes a saturate run.
type saturateSummary struct {
	Scenario          string  `json:"scenario"`
	ServerName        string  `json:"server_name"`
	Transport         string  `json:"transport"`
	Summary           bool    `json:"summary"`
	Run               int     `json:"run"`
	Subscribers       int     `json:"subscribers"`
	Rooms             int     `json:"rooms"`
	PayloadKind       string  `json:"payload_kind"`
	DeflateOffered    bool    `json:"deflate_offered"`
	MaxDeliveriesPerS float64 `json:"max_sustainable_deliveries_per_s"`
	AtRate            float64 `json:"at_rate"`
	FailedAtRate      float64 `json:"failed_at_rate,omitempty"`
	Reason            string  `json:"reason"`
	// Extrapolated: the deliveries are a sample's, scaled up
	// (fanoutResult.Extrapolated); InflateSample is the sample's size.
	Extrapolated  bool `json:"extrapolated,omitempty"`
	InflateSample int  `json:"inflate_sample,omitempty"`
}

// runFanout runs fanout or saturate --runs times against every server
// (started once each, measured in turn within each run) and, with more
// than one run, ends with the medians of each server's figures: each
// fanout's step, or each saturate's highest sustainable step.
func runFanout(ctx context.Context, o options, specs []serverSpec, out *output) error {
	if err := edgeproc.RaiseNoFile(uint64(o.subs) + 512); err != nil {
		return err
	}
	targets := make([]*edgeTarget, 0, len(specs))
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	for _, spec := range specs {
		t, err := startServer(ctx, o, spec)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	// Within a run, each server in turn, and on each server the variants
	// (--compress=both: without, then with the deflate offer).
	offers := o.compress.offers()
	figures := make([][]*fanoutResult, len(targets)*len(offers))
	for run := 1; run <= o.runs; run++ {
		for i, t := range targets {
			for j, offer := range offers {
				best, err := fanoutOnce(ctx, o, t, out, run, offer)
				if err != nil {
					if o.runs > 1 || len(targets) > 1 {
						err = fmt.Errorf("%s, run %d of %d: %w", t.server().name, run, o.runs, err)
					}
					return t.withLog(err)
				}
				if best != nil {
					figures[i*len(offers)+j] = append(figures[i*len(offers)+j], best)
				}
			}
		}
	}
	if o.runs > 1 {
		for i, t := range targets {
			for j, offer := range offers {
				out.result(summarizeRuns(o, t.server().name, offer, figures[i*len(offers)+j]))
			}
		}
	}
	return nil
}

// maxAttempts is how often a step disturbed by other processes is run.
const maxAttempts = 3

// fanoutOnce is one run: fresh rooms and subscribers (offering
// permessage-deflate if offer), one step (fanout) or a ramp (saturate).
// It returns the run's figures: the fanout step, or the highest
// sustainable saturate step (nil if none was).
func fanoutOnce(ctx context.Context, o options, t *edgeTarget, out *output, run int, offer bool) (*fanoutResult, error) {
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	rooms := make([]string, o.rooms)
	members := make([]int64, o.rooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("load-%s-%d", runID, i)
	}
	for i := range o.subs {
		members[i%o.rooms]++
	}
	steps := 1
	if o.scenario == "saturate" {
		steps = o.maxSteps
	}
	rec := &recorder{steps: make([]atomicStep, steps*maxAttempts)}
	f := &fleet{rec: rec, offerDeflate: offer}
	defer f.closeAll()
	measured := members // per room, the subscribers whose deliveries are counted
	if offer {
		var in []int64
		if f.sample, in = pickSample(o.subs, o.rooms, o.inflateSample); f.sample != nil {
			measured = in
			rec.keeper = slices.Index(f.sample, true)
		}
	}

	prefix := variantPrefix(o, t, run, offer)
	if f.sample != nil {
		out.note(fmt.Sprintf("%s%d of %d subscribers inflate and are measured (--inflate-sample); the others drop compressed messages unread, and deliveries/s are extrapolated",
			prefix, sum(measured), o.subs))
	}
	bar := out.progress(prefix+fmt.Sprintf("connecting %d %s subscribers", o.subs, o.transport), int64(o.subs))
	err := openFleet(ctx, f, t.server().subscribe[o.transport], t.target, o.subs, o.dialConcurrency, o.sourceIPs, rooms, "load-s"+runID+"-", bar.add1)
	bar.done()
	if err != nil {
		return nil, err
	}
	if n := f.deflated.Load(); offer && n < int64(o.subs) {
		out.note(fmt.Sprintf("%s%s accepted permessage-deflate from %d of %d subscribers: the rest is measured uncompressed", prefix, t.server().name, n, o.subs))
	}
	pubTarget := t.target
	if o.publishURL != "" { // another node of the cluster: messages cross the broker
		pubTarget.host, _ = loopbackHost("--publish-url", o.publishURL)
	}
	pub, err := publishers[o.publisher](ctx, pubTarget, rooms, o.payloadSpec(), o.publishWorkers)
	if err != nil {
		return nil, err
	}
	defer pub.close()

	rate := o.rate
	if o.scenario == "saturate" {
		rate = o.rateStart
	}
	var best *fanoutResult
	for step := range steps {
		// A step during which other processes used more than
		// --max-other-cpu is measured again (a fresh payload tag per
		// attempt, so late deliveries of the old one are not counted),
		// unless it lost subscribers: the next attempt would measure a
		// smaller fleet, so the step stands, marked disturbed.
		var res *fanoutResult
		var err error
		for attempt := range maxAttempts {
			res, err = runStep(ctx, o, t, out, f, pub, prefix, run, step, step*maxAttempts+attempt, rate, members, measured)
			if err != nil || o.maxOther < 0 || res.Server == nil || res.Machine.OtherCores <= o.maxOther {
				break
			}
			if res.Disconnects > 0 || res.ServerSlowClosed > 0 {
				res.Disturbed = true
				break
			}
			res.Disturbed = true
			if attempt < maxAttempts-1 {
				out.note(fmt.Sprintf("%sstep %d at %.0f msg/s: other processes used %.2f CPU cores (over --max-other-cpu %.2f); measuring it again",
					prefix, step+1, rate, res.Machine.OtherCores, o.maxOther))
			}
		}
		if err != nil {
			if o.scenario == "saturate" && step > 0 && ctx.Err() == nil {
				// A failing publisher (with --publisher ws, its own copies
				// overflow its send queue past some rate: 4008) ends the
				// ramp like any other failure.
				out.result(summarize(o, t, run, offer, best, rate, fmt.Sprintf("at %.0f msg/s: %v", rate, err)))
				return best, nil
			}
			return nil, err
		}
		if o.scenario == "fanout" {
			out.result(res)
			return res, nil
		}
		others := res.Sample.failure(res.ServerSlowClosed, res.ServerDropped)
		ok := res.LossPct <= 100-o.minDelivery && res.Latency.P99 <= float64(o.maxP99)/1e6 && res.Disconnects == 0 && others == ""
		res.Sustainable = &ok
		out.result(res)
		if !ok {
			reason := fmt.Sprintf("at %.0f msg/s: %.2f%% delivered, p99 %.1f ms, %d disconnects", rate, 100-res.LossPct, res.Latency.P99, res.Disconnects)
			if others != "" {
				reason += "; " + others
			}
			out.result(summarize(o, t, run, offer, best, rate, reason))
			return best, nil
		}
		best = res
		rate = math.Round(rate * o.rateFactor)
	}
	out.result(summarize(o, t, run, offer, best, 0, fmt.Sprintf("still sustainable after --max-steps %d", steps)))
	return best, nil
}

// runPrefix labels progress with the server and the run when there are
// several.
func runPrefix(o options, t *edgeTarget, run int) string {
	p := ""
	if len(o.peers) > 1 {
		p = t.server().name + " "
	}
	if o.runs > 1 {
		p += fmt.Sprintf("run %d/%d", run, o.runs)
	}
	if p = strings.TrimSpace(p); p != "" {
		p += ": "
	}
	return p
}

// variantPrefix is runPrefix with, under --compress=both, the variant:
// plain or deflate (offered).
func variantPrefix(o options, t *edgeTarget, run int, offer bool) string {
	p := runPrefix(o, t, run)
	if o.compress != compressBoth {
		return p
	}
	v := "plain: "
	if offer {
		v = "deflate: "
	}
	if p == "" {
		return v
	}
	return strings.TrimSuffix(p, ": ") + " " + v
}

func summarize(o options, t *edgeTarget, run int, offer bool, best *fanoutResult, failedAt float64, reason string) saturateSummary {
	s := saturateSummary{Scenario: "saturate", ServerName: t.server().name, Transport: o.transport, Summary: true, Run: run, Subscribers: o.subs, Rooms: o.rooms,
		PayloadKind: o.payloadK, DeflateOffered: offer, FailedAtRate: failedAt, Reason: reason}
	if best != nil {
		s.MaxDeliveriesPerS, s.AtRate = best.DeliveredPerS, best.RateTarget
		if best.Sample != nil {
			s.Extrapolated, s.InflateSample = true, best.Sample.Subscribers
		}
	}
	return s
}

func sum(v []int64) int64 {
	var t int64
	for _, x := range v {
		t += x
	}
	return t
}

// runStep publishes at rate for o.duration, waits for the deliveries (at
// most o.drain) and measures the step. members are the subscribers per
// room, measured those of them whose deliveries are counted (the sample's
// with a sampled fleet, else members).
func runStep(ctx context.Context, o options, t *edgeTarget, out *output, f *fleet, pub publisher, prefix string, run, step, tag int, rate float64, members, measured []int64) (*fanoutResult, error) {
	seconds := int((o.duration+o.drain)/time.Second) + 2
	st := newStepStats(seconds)
	f.rec.steps[tag].Store(st)

	base := t.httpBase()
	stats0, _ := edgeproc.GetStats(ctx, base)
	self0, srv0, err := readProcs(t.pid)
	if err != nil {
		return nil, err
	}
	sys0, err := edgeproc.ReadSystemCPU()
	if err != nil {
		return nil, err
	}
	lost0, _ := f.lost()
	acks0, errs0 := pub.replies()
	rx0, frames0, others0 := f.rx.total(), f.frames.total(), f.others()

	desc := fmt.Sprintf("%s %.0f msg/s → %d subs", o.scenario, rate, o.subs)
	if o.scenario == "saturate" {
		desc = fmt.Sprintf("step %d: ", step+1) + desc
	}
	desc = prefix + desc
	bar := out.progress(desc, int64(o.duration/time.Second))
	start := time.Now()
	st.startNS.Store(start.UnixNano())
	var lastDelivered int64
	lastAt := start
	perDelivery, unit := 1.0, "delivered/s"
	if f.sample != nil && f.offerDeflate {
		perDelivery, unit = float64(o.subs)/float64(sum(measured)), "delivered/s (extrapolated)"
	}
	counts, err := pub.run(ctx, tag, rate, o.duration, func(el time.Duration, sent int64) {
		d := st.delivered.Load()
		now := time.Now()
		bar.set(int64(el/time.Second), fmt.Sprintf("%s: %.0f %s", desc, float64(d-lastDelivered)*perDelivery/now.Sub(lastAt).Seconds(), unit))
		lastDelivered, lastAt = d, now
	})
	bar.done()
	if err != nil {
		return nil, err
	}
	pubEnd := time.Now()

	var expected, expectedAll int64
	for i, n := range counts.perRoom {
		expected += n * measured[i]
		expectedAll += n * members[i]
	}
	// Drain: wait for the deliveries and the acks, bounded by o.drain.
	deadline := pubEnd.Add(o.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if acks, errs := pub.replies(); st.delivered.Load() >= expected && acks+errs-acks0-errs0 >= counts.sent {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	end := time.Now()
	wall := end.Sub(start).Seconds()

	// The counters are read together at the end, before /stats: a busy
	// server may answer it late, and its CPU time, the deliveries and
	// the bytes must cover the same wall time.
	self1, srv1, err := readProcs(t.pid)
	if err != nil {
		return nil, err
	}
	sys1, err := edgeproc.ReadSystemCPU()
	if err != nil {
		return nil, err
	}
	delivered := st.delivered.Load()
	rx1, frames1, others1 := f.rx.total(), f.frames.total(), f.others()
	lost1, why := f.lost()
	acks1, errs1 := pub.replies()
	stats1, _ := edgeproc.GetStats(ctx, base)

	h := st.snapshot()
	res := &fanoutResult{
		Scenario: o.scenario, ServerName: t.server().name, Transport: o.transport, Publisher: o.publisher, Run: run, Step: step,
		Subscribers: o.subs, Rooms: o.rooms, PayloadKind: o.payloadK, PayloadBytes: int(math.Round(meanPayloadSize(o.payloadSpec()))),
		DeflateOffered: f.offerDeflate, DeflatedSubs: f.deflated.Load(), WireBytes: rx1 - rx0,
		RateTarget: rate, DurationS: pubEnd.Sub(start).Seconds(),
		Published: counts.sent, PublishedPerS: float64(counts.sent) / pubEnd.Sub(start).Seconds(),
		Acked: acks1 - acks0, PublishErrors: errs1 - errs0, PublishError: pub.firstError(),
		Expected: expected, Delivered: delivered,
		Latency: latencyMS{
			P50: ms(h.quantile(0.50)), P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(time.Duration(h.max)),
		},
		Disconnects: lost1 - lost0, Disconnect: why,
		ServerSlowClosed: stats1.SlowClosed - stats0.SlowClosed,
		ServerDropped:    stats1.Dropped - stats0.Dropped,
		Generator: usage{
			CPUCores: (self1.CPU - self0.CPU).Seconds() / wall, RSSBytes: self1.RSS,
			Threads: self1.Threads, GOMAXPROCS: runtime.GOMAXPROCS(0), Goroutines: runtime.NumGoroutine(),
		},
		Machine: machineCPU{
			BusyCores:  (sys1.Busy - sys0.Busy).Seconds() / wall,
			StealCores: (sys1.Steal - sys0.Steal).Seconds() / wall,
		},
		PublishedSeries: counts.series,
		Histogram:       h.bins(),
	}
	if expected > 0 {
		res.LossPct = max(0, float64(expected-delivered)/float64(expected)*100)
	}
	res.EnvelopeBytes, res.OwnDeflateBytes = envelopeSizes(st.samples())
	// deliveries is what all subscribers had delivered: Delivered, or
	// with a sample, the sample's scaled up.
	deliveries, wire := float64(delivered), res.WireBytes
	if f.sample != nil && f.offerDeflate {
		n := sum(measured)
		scale := float64(o.subs) / float64(n)
		if expected > 0 {
			scale = float64(expectedAll) / float64(expected)
		}
		wire -= others1.bytes - others0.bytes
		res.Extrapolated = true
		res.Sample = sampleStep(int(n), scale, wire, frames1-frames0, others0, others1)
		deliveries *= scale
	}
	if delivered > 0 {
		res.WireBytesPerDelivery = float64(wire) / float64(delivered)
		res.LoadCPUPerDelivery = (self1.CPU - self0.CPU).Seconds() * 1e6 / deliveries
	}
	if last := st.lastNS.Load(); last > 0 && delivered > 0 {
		res.DeliveredPerS = float64(delivered) / (float64(last-start.UnixNano()) / 1e9)
		if res.Sample != nil {
			res.Sample.DeliveredPerS = res.DeliveredPerS
			res.DeliveredPerS *= res.Sample.Scale
		}
	}
	used := int((time.Duration(st.lastNS.Load()-start.UnixNano()))/time.Second) + 1
	for i := range min(max(used, len(counts.series)), len(st.series)) {
		res.DeliveredSeries = append(res.DeliveredSeries, st.series[i].Load())
	}
	if busy := res.Generator.CPUCores / float64(res.Generator.GOMAXPROCS); busy >= 0.9 {
		out.note(fmt.Sprintf("%sthe load used %.2f of its %d CPUs (%.0f%%): the figures may be bound by the load generator, not the server",
			prefix, res.Generator.CPUCores, res.Generator.GOMAXPROCS, busy*100))
	}
	if t.pid > 0 {
		res.Server = &usage{CPUCores: (srv1.CPU - srv0.CPU).Seconds() / wall, RSSBytes: srv1.RSS, Goroutines: stats1.Goroutines, Threads: srv1.Threads}
		if delivered > 0 {
			res.ServerCPUPerDelivery = (srv1.CPU - srv0.CPU).Seconds() * 1e6 / deliveries
		}
		res.Machine.OtherCores = max(0, res.Machine.BusyCores-res.Server.CPUCores-res.Generator.CPUCores)
	}
	return res, nil
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// readProcs reads /proc counters of this tool and, when pid is known, of
// the server.
func readProcs(pid int) (self, srv edgeproc.ProcStat, err error) {
	if self, err = edgeproc.ReadProc(0); err != nil {
		return self, srv, err
	}
	if pid > 0 {
		srv, err = edgeproc.ReadProc(pid)
	}
	return self, srv, err
}
