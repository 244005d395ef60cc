package core

import (
	"sync"
	"sync/atomic"
	"time"
)

// Metrics is a snapshot of the node's labelled counters, for exporters
// (edge/metrics turns it into Prometheus series). Label values are
// bounded: close codes, transport names, envelope types the router
// knows ("unknown" for the rest).
type Metrics struct {
	// ConnectionsByTransport counts open sessions per transport name.
	ConnectionsByTransport map[string]int
	// DisconnectsByCode counts ended sessions per close code.
	DisconnectsByCode map[uint16]uint64
	// InboundByType counts client envelopes per type; Inbound per type
	// and transport ("send" for POST /send).
	InboundByType map[string]uint64
	Inbound       map[InboundKey]uint64
	// OutboundByTransport counts envelopes written, per transport name.
	OutboundByTransport map[string]uint64
	// Resumes counts connects with since= that went live; ResumesLost
	// those answered recovered:false. ResumesRetry counts resumes sent
	// back (1013) because their history could not be read.
	Resumes, ResumesLost, ResumesRetry uint64
	// Queued is the number of envelopes waiting in send queues over all
	// sessions; MaxQueued the longest single queue.
	Queued, MaxQueued int
	// BrokerLag is how late the newest message the broker delivered to
	// this node was (publish time to delivery), or 0 when none arrived in
	// the last LagWindow: a node that falls behind its broker shows a
	// growing value while traffic flows.
	BrokerLag time.Duration
}

// LagWindow is how long Metrics.BrokerLag reports the last delivery's
// delay before it reads 0 again.
const LagWindow = 10 * time.Second

// counters is a small concurrent map of counters keyed by a bounded label.
type counters[K comparable] struct{ m sync.Map }

func (c *counters[K]) add(k K) { c.get(k).Add(1) }

// get returns k's counter, created on first use: callers on hot paths
// keep the pointer.
func (c *counters[K]) get(k K) *atomic.Uint64 {
	v, ok := c.m.Load(k)
	if !ok {
		v, _ = c.m.LoadOrStore(k, new(atomic.Uint64))
	}
	return v.(*atomic.Uint64)
}

// sum adds every counter.
func (c *counters[K]) sum() uint64 {
	var t uint64
	c.m.Range(func(_, v any) bool {
		t += v.(*atomic.Uint64).Load()
		return true
	})
	return t
}

func (c *counters[K]) snapshot() map[K]uint64 {
	out := make(map[K]uint64)
	c.m.Range(func(k, v any) bool {
		out[k.(K)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// Metrics returns the node's labelled counters. It walks the open
// sessions once: call it at scrape time, not per message.
func (n *Node) Metrics() Metrics {
	m := Metrics{
		ConnectionsByTransport: make(map[string]int),
		DisconnectsByCode:      n.metrics.disconnects.snapshot(),
		Inbound:                n.metrics.inbound.snapshot(),
		InboundByType:          map[string]uint64{},
		OutboundByTransport:    n.metrics.outbound.snapshot(),
		Resumes:                n.metrics.resumes.Load(),
		ResumesLost:            n.metrics.resumesLost.Load(),
		ResumesRetry:           n.metrics.resumesRetry.Load(),
	}
	for k, v := range m.Inbound {
		m.InboundByType[k.Type] += v
	}
	if at := n.metrics.lastDelivery.Load(); at > 0 && time.Since(time.Unix(0, at)) < LagWindow {
		m.BrokerLag = time.Duration(n.metrics.lastLag.Load())
	}
	// Each session's lock is taken with the node's released, so a scrape
	// never holds up connects and disconnects.
	for _, s := range n.allSessions() {
		m.ConnectionsByTransport[s.t.Name()]++
		q := s.queued()
		m.Queued += q
		m.MaxQueued = max(m.MaxQueued, q)
	}
	return m
}

type nodeMetrics struct {
	disconnects  counters[uint16]
	inbound      counters[InboundKey]
	outbound     counters[string] // by transport; sessions hold their counter
	resumes      atomic.Uint64
	resumesLost  atomic.Uint64
	resumesRetry atomic.Uint64
	// lastDelivery (unix ns) and lastLag (ns): the newest broker delivery
	// and its publish-to-delivery delay.
	lastDelivery atomic.Int64
	lastLag      atomic.Int64
}

// countInbound records one client envelope of typ, folding types the
// router does not know into "unknown" so a client cannot mint labels.
func (n *Node) countInbound(typ string, known bool, transport string) {
	if !known {
		typ = "unknown"
	}
	if transport == "stateless" {
		transport = "send" // POST /send, for SSE and long-poll clients
	}
	n.metrics.inbound.add(InboundKey{Type: typ, Transport: transport})
}

// InboundKey labels Metrics.Inbound: an envelope type (one the router
// knows, or "unknown") and a transport name; both bounded.
type InboundKey struct{ Type, Transport string }

// observeDelivery reports the publish-to-delivery latency of a message
// this node received from the broker (once per message, not per
// recipient).
func (n *Node) observeDelivery(env *Envelope) {
	if env.TS <= 0 {
		return
	}
	now := time.Now()
	lag := max(now.Sub(time.UnixMilli(env.TS)), 0)
	n.metrics.lastLag.Store(int64(lag))
	n.metrics.lastDelivery.Store(now.UnixNano())
	if n.cfg.OnDeliveryLatency != nil {
		n.cfg.OnDeliveryLatency(lag)
	}
}
