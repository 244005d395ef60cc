package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

// The pubcluster scenario: a broker and two nodes (see cluster.go), and
// --publishers concurrent backends, each publishing one message per HTTP
// request as fast as it is answered, to the two nodes alternately and
// round-robin over --rooms rooms, for --warmup (not measured) and then
// --duration. Nobody subscribes: it measures the publish path through
// the cluster. Figures: accepted publishes per second, failures, publish
// latency (request to answer) and the nodes' CPU time per accepted
// publish (both nodes, from /proc), the figure that shows the path itself
// when the load generator shares the machine.

// pubclusterResult is the pubcluster scenario's JSON line.
type pubclusterResult struct {
	Scenario     string  `json:"scenario"`
	ServerName   string  `json:"server_name"`
	Run          int     `json:"run"`
	Broker       string  `json:"broker"`
	Publishers   int     `json:"publishers"`
	Rooms        int     `json:"rooms"`
	PayloadBytes int     `json:"payload_bytes"`
	DurationS    float64 `json:"duration_s"`
	// Counts of the publishes started in the measured window.
	Accepted     int64   `json:"accepted"`
	Unconfirmed  int64   `json:"unconfirmed"` // Switchboard 202 publish_unconfirmed
	Failed       int64   `json:"failed"`
	FirstError   string  `json:"first_error,omitempty"`
	AcceptedPerS float64 `json:"accepted_per_s"`
	// Latency is request → answer of the accepted publishes.
	Latency latencyMS `json:"latency_ms"`
	// NodeCPUSeconds is both nodes' CPU time over the window;
	// NodeCPUPerPublishUS that divided by Accepted, in µs.
	NodeCPUSeconds        float64 `json:"node_cpu_s"`
	NodeCPUPerPublishUS   float64 `json:"node_cpu_us_per_publish"`
	BrokerCPUSeconds      float64 `json:"broker_cpu_s"`
	BrokerCPUPerPublishUS float64 `json:"broker_cpu_us_per_publish"`
	Nodes                 []usage `json:"nodes"` // A, B
	BrokerUsage           usage   `json:"broker_usage"`
	Generator             usage   `json:"generator"`
}

func (r pubclusterResult) figures() map[string]float64 {
	return map[string]float64{
		"accepted_per_s": r.AcceptedPerS, "failed": float64(r.Failed), "unconfirmed": float64(r.Unconfirmed),
		"p50_ms": r.Latency.P50, "p99_ms": r.Latency.P99,
		"node_cpu_us_per_publish": r.NodeCPUPerPublishUS, "broker_cpu_us_per_publish": r.BrokerCPUPerPublishUS,
	}
}

// pubclusterCounts is what the publishers count in the measured window.
type pubclusterCounts struct {
	accepted, unconfirmed, failed atomic.Int64
	firstErr                      atomic.Pointer[string]
	lat                           [histShards]histogram
}

func runPubCluster(ctx context.Context, o options, c *cluster, out *output, run int) (map[string]float64, error) {
	kind := c.nodes[0].server()
	prefix := runPrefix(o, c.nodes[0], run)
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	rooms := make([]string, o.rooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("pc-%s-%d", runID, i)
	}
	pub := newAPIPublisher(kind, c.nodes[:], o.publishers)
	defer pub.close()
	// One publish through each node checks the path before the clock runs.
	for n := range c.nodes {
		body := appendPublishBody(nil, rooms[0], appendPayload(nil, time.Now().UnixNano(), 0, o.payload))
		if res, msg := pub.publish(ctx, n, body); res != pubAccepted {
			return nil, fmt.Errorf("probe publish through node %c: %s", 'A'+n, msg)
		}
	}
	out.note(fmt.Sprintf("%spubcluster: %d publishers through 2 %s nodes on %s, %d rooms, %s warm-up + %s",
		prefix, o.publishers, kind.name, c.broker.kind, o.rooms, o.warmup, o.duration))

	var counts pubclusterCounts
	start := time.Now()
	measure := start.Add(o.warmup)
	end := measure.Add(o.duration)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range o.publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := make([]byte, 0, o.payload+128)
			payload := make([]byte, 0, o.payload+16)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				k := next.Add(1) - 1
				payload = appendPayload(payload[:0], t0.UnixNano(), 0, o.payload)
				body = appendPublishBody(body[:0], rooms[k%int64(len(rooms))], payload)
				res, msg := pub.publish(ctx, int(k%2), body)
				if t0.Before(measure) {
					continue
				}
				switch res {
				case pubAccepted:
					counts.accepted.Add(1)
					counts.lat[w%histShards].record(time.Since(t0))
				case pubUnconfirmed:
					counts.unconfirmed.Add(1)
				default:
					if counts.failed.Add(1) == 1 {
						counts.firstErr.CompareAndSwap(nil, &msg)
					}
				}
			}
		}()
	}
	// The window's CPU readings.
	edgeproc.Sleep(ctx, time.Until(measure))
	pids := []int{0, c.nodes[0].pid, c.nodes[1].pid, c.broker.pid()}
	before := make([]edgeproc.ProcStat, len(pids))
	for i, pid := range pids {
		var err error
		if before[i], err = edgeproc.ReadProc(pid); err != nil {
			wg.Wait()
			return nil, err
		}
	}
	edgeproc.Sleep(ctx, time.Until(end))
	after := make([]edgeproc.ProcStat, len(pids))
	var readErr error
	for i, pid := range pids {
		var err error
		after[i], err = edgeproc.ReadProc(pid)
		readErr = errors.Join(readErr, err)
	}
	wall := time.Since(measure).Seconds()
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var h hsnap
	for i := range counts.lat {
		h.add(&counts.lat[i])
	}
	use := func(i int) usage {
		return usage{CPUCores: (after[i].CPU - before[i].CPU).Seconds() / wall, RSSBytes: after[i].RSS, Threads: after[i].Threads}
	}
	res := pubclusterResult{
		Scenario: "pubcluster", ServerName: kind.name, Run: run, Broker: c.broker.kind, Publishers: o.publishers, Rooms: o.rooms,
		PayloadBytes: o.payload, DurationS: wall,
		Accepted: counts.accepted.Load(), Unconfirmed: counts.unconfirmed.Load(), Failed: counts.failed.Load(),
		Latency: latencyMS{
			P50: ms(h.quantile(0.50)), P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(time.Duration(h.max)),
		},
		NodeCPUSeconds:   (after[1].CPU - before[1].CPU + after[2].CPU - before[2].CPU).Seconds(),
		BrokerCPUSeconds: (after[3].CPU - before[3].CPU).Seconds(),
		Nodes:            []usage{use(1), use(2)},
		BrokerUsage:      use(3),
		Generator:        use(0),
	}
	if p := counts.firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	res.AcceptedPerS = float64(res.Accepted) / wall
	if res.Accepted > 0 {
		res.NodeCPUPerPublishUS = res.NodeCPUSeconds / float64(res.Accepted) * 1e6
		res.BrokerCPUPerPublishUS = res.BrokerCPUSeconds / float64(res.Accepted) * 1e6
	}
	out.result(res)
	return res.figures(), nil
}

// pubclusterKey stands for the transport in pubcluster's comparisons and
// runs summaries: its publishers use HTTP and nobody subscribes.
const pubclusterKey = "http publish"

// headline is the figures compared across servers, as the runs summary
// names them (compare.go).
func (r pubclusterResult) headline() []figure {
	return []figure{
		{"accepted/s", r.AcceptedPerS, "%.0f", true},
		{"p50 ms", r.Latency.P50, "%.2f", false},
		{"p99 ms", r.Latency.P99, "%.2f", false},
		{"node CPU µs/publish", r.NodeCPUPerPublishUS, "%.1f", false},
	}
}

// writePubClusterTable prints the pubcluster runs.
func writePubClusterTable(w io.Writer, rs []pubclusterResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "| pubcluster | run | broker | publishers | rooms | s | accepted | accepted/s | unconfirmed | failed | p50 ms | p99 ms | max ms | node CPU µs/publish | broker CPU µs/publish | node A, B cores | broker cores | load cores |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		nodes := "n/a"
		if len(r.Nodes) == 2 {
			nodes = fmt.Sprintf("%.2f, %.2f", r.Nodes[0].CPUCores, r.Nodes[1].CPUCores)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %d | %.1f | %d | %.0f | %d | %d | %.2f | %.2f | %.2f | %.1f | %.1f | %s | %.2f | %.2f |\n",
			r.ServerName, r.Run, r.Broker, r.Publishers, r.Rooms, r.DurationS, r.Accepted, r.AcceptedPerS, r.Unconfirmed, r.Failed,
			r.Latency.P50, r.Latency.P99, r.Latency.Max, r.NodeCPUPerPublishUS, r.BrokerCPUPerPublishUS, nodes, r.BrokerUsage.CPUCores, r.Generator.CPUCores)
	}
	for _, r := range rs {
		if r.FirstError != "" {
			fmt.Fprintf(w, "\n%s run %d, first publish failure: %s\n", r.ServerName, r.Run, r.FirstError)
		}
	}
	fmt.Fprintln(w)
}
