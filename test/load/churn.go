package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

// churnResult is the churn scenario's JSON line: a storm of waves, each
// opening --conns connections (every one waits for its welcome) and then
// closing them all, for --duration (or --max-waves waves); then the wait
// for the server to come back to where it started.
//
// "Returned" means: /stats counts the connections it had before, and the
// goroutines are at most goroutineSlack above their baseline. Memory does
// not return the same way: the Go runtime keeps freed heap for reuse and
// gives it back to the kernel slowly, so RSS after the storm stays between
// the baseline and the peak (RSSRetainedPct says where). What must hold is
// that the storm's cost is bounded: MemoryBounded is true when the RSS
// after the waves of the storm's second half exceeds that after its first
// half by at most 10% of the first half's growth (1 MiB at least), so
// later waves reuse what earlier ones left instead of adding to it. It
// needs a pid and at least 4 waves.
type churnResult struct {
	Scenario       string  `json:"scenario"`
	ServerName     string  `json:"server_name"`
	Run            int     `json:"run"`
	Transport      string  `json:"transport"`
	ConnsPerWave   int     `json:"conns_per_wave"`
	Waves          int     `json:"waves"`
	Connects       int64   `json:"connects"`
	ConnectErrors  int64   `json:"connect_errors"`
	ConnectError   string  `json:"connect_error,omitempty"`
	StormSeconds   float64 `json:"storm_seconds"`
	ConnectSeconds float64 `json:"connect_seconds"` // spent opening (waves' connect phases)
	ConnectPerS    float64 `json:"connects_per_s"`  // Connects / ConnectSeconds
	CyclesPerS     float64 `json:"cycles_per_s"`    // Connects / StormSeconds: open and close

	Before edgeproc.Sample `json:"before"`
	Peak   edgeproc.Sample `json:"peak"` // the largest reading of each field during the storm
	After  edgeproc.Sample `json:"after"`
	// ReturnSeconds is how long after the storm the connections and
	// goroutines took to come back (--settle if they did not).
	ReturnSeconds       float64  `json:"return_seconds"`
	ConnectionsReturned bool     `json:"connections_returned"`
	GoroutinesReturned  bool     `json:"goroutines_returned"`
	MemoryBounded       bool     `json:"memory_bounded"`           // without a pid or with < 4 waves: false
	RSSLateGrowth       float64  `json:"rss_late_growth_bytes"`    // second half's max wave RSS − first half's
	RSSGrowth           float64  `json:"rss_growth_bytes"`         // after − before
	RSSPeakGrowth       float64  `json:"rss_peak_growth_bytes"`    // peak − before
	RSSRetainedPct      float64  `json:"rss_retained_pct"`         // growth / peak growth × 100
	HeapGrowth          float64  `json:"heap_growth_bytes"`        // Go heap after − before
	GoroutineGrowth     int      `json:"goroutine_growth"`         // after − before
	WaveRSS             []uint64 `json:"wave_rss_bytes,omitempty"` // RSS after each wave closed
	Generator           usage    `json:"generator"`
}

// goroutineSlack is how many goroutines above its baseline still count as
// returned (a timer or a pool's worker that happens to be alive).
const goroutineSlack = 2

func (r churnResult) figures() map[string]float64 {
	m := map[string]float64{
		"connects_per_s": r.ConnectPerS, "cycles_per_s": r.CyclesPerS, "connects": float64(r.Connects),
		"connect_errors": float64(r.ConnectErrors), "return_seconds": r.ReturnSeconds,
		"heap_growth_bytes": r.HeapGrowth, "goroutine_growth": float64(r.GoroutineGrowth),
		"returned": b2f(r.ConnectionsReturned && r.GoroutinesReturned),
	}
	if r.Before.RSS > 0 {
		m["rss_growth_bytes"], m["rss_peak_growth_bytes"], m["rss_retained_pct"] = r.RSSGrowth, r.RSSPeakGrowth, r.RSSRetainedPct
		m["rss_late_growth_bytes"], m["memory_bounded"] = r.RSSLateGrowth, b2f(r.MemoryBounded)
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func runChurn(ctx context.Context, o options, t *edgeTarget, out *output, run int) (map[string]float64, error) {
	if err := edgeproc.RaiseNoFile(uint64(o.conns) + 512); err != nil {
		return nil, err
	}
	base := t.httpBase()
	edgeproc.Sleep(ctx, time.Second)
	before, err := edgeproc.Measure(ctx, base, t.pid, o.samples)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	prefix := runPrefix(o, t, run)
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	room := "load-churn-" + runID
	sub := t.server().subscribe[o.transport]
	self0, err := edgeproc.ReadProc(0)
	if err != nil {
		return nil, err
	}

	peak := newPeakSampler(ctx, base, t.pid, before)
	res := churnResult{Scenario: "churn", ServerName: t.server().name, Run: run, Transport: o.transport, ConnsPerWave: o.conns, Before: before}
	bar := out.progress(fmt.Sprintf("%schurn: waves of %d %s connections for %s", prefix, o.conns, o.transport, o.duration), int64(o.duration/time.Second))
	start := time.Now()
	var connecting time.Duration
	for wave := 0; wave < o.maxWaves && time.Since(start) < o.duration && ctx.Err() == nil; wave++ {
		// Odd waves say goodbye with a close frame, even waves just drop
		// the socket: a server must handle both.
		f := &fleet{rec: &recorder{}, graceful: wave%2 == 1}
		t0 := time.Now()
		opened, failed, firstErr := openWave(ctx, f, sub, t.target, o.conns, o.dialConcurrency, o.sourceIPs, wave, room, "load-c"+runID+"-")
		connecting += time.Since(t0)
		f.closeAll()
		res.Waves++
		res.Connects += opened
		res.ConnectErrors += failed
		if firstErr != nil && res.ConnectError == "" {
			res.ConnectError = firstErr.Error()
		}
		if opened == 0 && ctx.Err() == nil {
			peak.stop()
			return nil, fmt.Errorf("wave %d opened no connection: %v", wave+1, firstErr)
		}
		if t.pid > 0 {
			if ps, err := edgeproc.ReadProc(t.pid); err == nil {
				res.WaveRSS = append(res.WaveRSS, ps.RSS)
			}
		}
		bar.set(int64(time.Since(start)/time.Second), fmt.Sprintf("%schurn: wave %d, %d connects", prefix, res.Waves, res.Connects))
	}
	storm := time.Since(start)
	bar.done()
	res.Peak = peak.stop()
	self1, err := edgeproc.ReadProc(0)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Wait (at most --settle) for the connections and goroutines to come
	// back, then measure.
	end := time.Now()
	deadline := end.Add(o.settle)
	for {
		st, err := edgeproc.GetStats(ctx, base)
		if err == nil && st.Connections == before.Connections && st.Goroutines <= before.Goroutines+goroutineSlack {
			break
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		edgeproc.Sleep(ctx, 100*time.Millisecond)
	}
	res.ReturnSeconds = time.Since(end).Seconds()
	out.note(fmt.Sprintf("%schurn: %d connects in %d waves; back after %.1fs; measuring", prefix, res.Connects, res.Waves, res.ReturnSeconds))
	after, err := edgeproc.Measure(ctx, base, t.pid, o.samples)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	res.After = after
	res.StormSeconds = storm.Seconds()
	res.ConnectSeconds = connecting.Seconds()
	if connecting > 0 {
		res.ConnectPerS = float64(res.Connects) / connecting.Seconds()
	}
	res.CyclesPerS = float64(res.Connects) / storm.Seconds()
	res.ConnectionsReturned = after.Connections == before.Connections
	res.GoroutineGrowth = after.Goroutines - before.Goroutines
	res.GoroutinesReturned = res.GoroutineGrowth <= goroutineSlack
	res.HeapGrowth = float64(after.HeapBytes) - float64(before.HeapBytes)
	if t.pid > 0 {
		res.RSSGrowth = float64(after.RSS) - float64(before.RSS)
		res.RSSPeakGrowth = float64(res.Peak.RSS) - float64(before.RSS)
		if res.RSSPeakGrowth > 0 {
			res.RSSRetainedPct = max(0, res.RSSGrowth) / res.RSSPeakGrowth * 100
		}
		res.RSSLateGrowth, res.MemoryBounded = lateGrowth(before.RSS, res.WaveRSS)
	}
	res.Generator = usage{CPUCores: (self1.CPU - self0.CPU).Seconds() / storm.Seconds(), RSSBytes: self1.RSS, Threads: self1.Threads, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	out.result(res)
	return res.figures(), nil
}

// openWave opens n connections with concurrency dials in flight and
// counts failures instead of stopping at the first; a wave gives up after
// max(10, n/10) failures.
func openWave(ctx context.Context, f *fleet, sub subscribeFunc, t target, n, concurrency, sources, wave int, room, user string) (opened, failed int64, firstErr error) {
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	limit := int64(max(10, n/10))
	for range min(concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				// Successive waves use different source addresses.
				src := sourceIP(i+wave*n, sources)
				err := sub(ctx, f, t, subReq{rooms: room, user: fmt.Sprintf("%s%d-%d", user, wave, i), src: src, shard: i})
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					opened++
				}
				stop := failed >= limit
				mu.Unlock()
				if stop {
					return
				}
			}
		}()
	}
	wg.Wait()
	return opened, failed, firstErr
}

// peakSampler reads the server's /stats (and RSS) every 200 ms and keeps
// the largest value of each field.
type peakSampler struct {
	mu   sync.Mutex
	peak edgeproc.Sample
	quit chan struct{}
	done chan struct{}
}

func newPeakSampler(ctx context.Context, base string, pid int, start edgeproc.Sample) *peakSampler {
	p := &peakSampler{peak: start, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var rss uint64
			if pid > 0 {
				if ps, err := edgeproc.ReadProc(pid); err == nil {
					rss = ps.RSS
				}
			}
			st, err := edgeproc.GetStats(ctx, base)
			p.mu.Lock()
			p.peak.RSS = max(p.peak.RSS, rss)
			if err == nil {
				p.peak.HeapBytes = max(p.peak.HeapBytes, st.HeapBytes)
				p.peak.SysBytes = max(p.peak.SysBytes, st.SysBytes)
				p.peak.Goroutines = max(p.peak.Goroutines, st.Goroutines)
				p.peak.Connections = max(p.peak.Connections, st.Connections)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// stop ends the sampling and returns the peaks.
func (p *peakSampler) stop() edgeproc.Sample {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// lateGrowth compares the largest RSS after a wave of the second half of
// the storm with that of the first half: the growth, and whether it is
// within 10% of the first half's growth over the baseline (1 MiB at
// least). Fewer than 4 waves: (0, false).
func lateGrowth(baseline uint64, waves []uint64) (float64, bool) {
	if len(waves) < 4 {
		return 0, false
	}
	half := len(waves) / 2
	first, second := slices.Max(waves[:half]), slices.Max(waves[half:])
	growth := float64(second) - float64(first)
	allowed := max(1<<20, 0.1*(float64(first)-float64(baseline)))
	return growth, growth <= allowed
}
