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
	// InboundByType counts client envelopes per type.
	InboundByType map[string]uint64
	// Resumes counts connects with since=; ResumesLost those answered
	// recovered:false.
	Resumes, ResumesLost uint64
}

// counters is a small concurrent map of counters keyed by a bounded label.
type counters[K comparable] struct{ m sync.Map }

func (c *counters[K]) add(k K) {
	v, ok := c.m.Load(k)
	if !ok {
		v, _ = c.m.LoadOrStore(k, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
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
		InboundByType:          n.metrics.inbound.snapshot(),
		Resumes:                n.metrics.resumes.Load(),
		ResumesLost:            n.metrics.resumesLost.Load(),
	}
	n.mu.Lock()
	for s := range n.sessions {
		m.ConnectionsByTransport[s.t.Name()]++
	}
	n.mu.Unlock()
	return m
}

type nodeMetrics struct {
	disconnects counters[uint16]
	inbound     counters[string]
	resumes     atomic.Uint64
	resumesLost atomic.Uint64
}

// countInbound records one client envelope of typ, folding types the
// router does not know into "unknown" so a client cannot mint labels.
func (n *Node) countInbound(typ string, known bool) {
	if !known {
		typ = "unknown"
	}
	n.metrics.inbound.add(typ)
}

// observeDelivery reports the publish-to-delivery latency of a message
// this node received from the broker (once per message, not per
// recipient).
func (n *Node) observeDelivery(env *Envelope) {
	if n.cfg.OnDeliveryLatency != nil && env.TS > 0 {
		n.cfg.OnDeliveryLatency(time.Since(time.UnixMilli(env.TS)))
	}
}
