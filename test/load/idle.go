package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

// idleResult is the idle scenario's JSON line. Per-connection figures are
// (after − before) / conns, each sample the median of --samples readings,
// as test/load/idlecost measures them.
type idleResult struct {
	Scenario       string          `json:"scenario"`
	ServerName     string          `json:"server_name"`
	Run            int             `json:"run"`
	Transport      string          `json:"transport"`
	Conns          int             `json:"conns"`
	SourceIPs      int             `json:"source_ips"`
	ConnectSeconds float64         `json:"connect_seconds"`
	ConnectPerS    float64         `json:"connects_per_s"`
	Before         edgeproc.Sample `json:"before"`
	After          edgeproc.Sample `json:"after"`
	RSSPerConn     float64         `json:"rss_bytes_per_conn,omitempty"` // without a pid: absent
	HeapPerConn    float64         `json:"heap_bytes_per_conn"`
	SysPerConn     float64         `json:"sys_bytes_per_conn"`
	GorPerConn     float64         `json:"goroutines_per_conn"`
	Generator      usage           `json:"generator"`
}

// figures are what the runs summary takes the medians of.
func (r idleResult) figures() map[string]float64 {
	m := map[string]float64{
		"connects_per_s": r.ConnectPerS, "heap_bytes_per_conn": r.HeapPerConn,
		"sys_bytes_per_conn": r.SysPerConn, "goroutines_per_conn": r.GorPerConn,
	}
	if r.RSSPerConn != 0 {
		m["rss_bytes_per_conn"] = r.RSSPerConn
	}
	return m
}

func runIdle(ctx context.Context, o options, t *edgeTarget, out *output, run int) (map[string]float64, error) {
	if err := edgeproc.RaiseNoFile(uint64(o.conns) + 512); err != nil {
		return nil, err
	}
	base := t.httpBase()
	edgeproc.Sleep(ctx, 2*time.Second) // an idle server has little to settle
	before, err := edgeproc.Measure(ctx, base, t.pid, o.samples)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	f := &fleet{rec: &recorder{}}
	defer f.closeAll()
	self0, err := edgeproc.ReadProc(0)
	if err != nil {
		return nil, err
	}
	prefix := runPrefix(o, t, run)
	bar := out.progress(fmt.Sprintf("%sconnecting %d idle %s connections", prefix, o.conns, o.transport), int64(o.conns))
	start := time.Now()
	err = openFleet(ctx, f, t.server().subscribe[o.transport], t.target, o.conns, o.dialConcurrency, o.sourceIPs,
		[]string{"load-idle-" + runID}, "load-i"+runID+"-", bar.add1)
	bar.done()
	if err != nil {
		return nil, err
	}
	if err := edgeproc.WaitConnections(ctx, base, before.Connections+o.conns); err != nil {
		return nil, err
	}
	connect := time.Since(start)
	self1, err := edgeproc.ReadProc(0)
	if err != nil {
		return nil, err
	}

	out.note(fmt.Sprintf("%s%d connections open in %.1fs; settling %s", prefix, o.conns, connect.Seconds(), o.settle))
	edgeproc.Sleep(ctx, o.settle)
	after, err := edgeproc.Measure(ctx, base, t.pid, o.samples)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	if n, why := f.lost(); n > 0 {
		return nil, fmt.Errorf("%d connections ended during the measurement (first: %s)", n, why)
	}
	if err := ctx.Err(); err != nil {
		return nil, errors.New("interrupted")
	}
	n := float64(o.conns)
	res := idleResult{
		Scenario: "idle", ServerName: t.server().name, Run: run, Transport: o.transport, Conns: o.conns, SourceIPs: min(o.sourceIPs, o.conns),
		ConnectSeconds: connect.Seconds(), ConnectPerS: n / connect.Seconds(),
		Before: before, After: after,
		HeapPerConn: (float64(after.HeapBytes) - float64(before.HeapBytes)) / n,
		SysPerConn:  (float64(after.SysBytes) - float64(before.SysBytes)) / n,
		GorPerConn:  float64(after.Goroutines-before.Goroutines) / n,
		Generator:   usage{CPUCores: (self1.CPU - self0.CPU).Seconds() / connect.Seconds(), RSSBytes: self1.RSS, Threads: self1.Threads},
	}
	if t.pid > 0 {
		res.RSSPerConn = (float64(after.RSS) - float64(before.RSS)) / n
	}
	out.result(res)
	return res.figures(), nil
}
