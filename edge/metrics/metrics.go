// Package metrics owns the edge's Prometheus metrics: a registry per
// server whose collector reads the node's counters at scrape time (no
// cost on the message path), plus histograms fed by core's latency hooks.
// Names follow Prometheus conventions (switchboard_…_total, seconds,
// bytes), and every label value is bounded: transports, close codes,
// envelope types the router knows, webhook routes — never a room or a
// user.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/core"
)

// Source is what the collector reads at scrape time.
type Source struct {
	Node *core.Node
	// Extra adds counters from outside core (presence drops, webhook
	// routes); optional.
	Extra func(ch chan<- prometheus.Metric)
}

// Metrics is one server's registry and its hook-fed histograms.
type Metrics struct {
	Registry        *prometheus.Registry
	deliveryLatency prometheus.Histogram
	publishLatency  prometheus.Histogram
	publishErrors   prometheus.Counter
	src             *Source
}

// New builds the registry with Go runtime and process collectors. Hand
// OnDeliveryLatency and OnPublish to core.Config, then call Attach once
// the node exists.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), src: &Source{}}
	m.deliveryLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "switchboard_delivery_latency_seconds",
		Help:    "Time from a message's acceptance to its delivery to this node by the broker (before the per-connection queue).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.publishLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "switchboard_broker_publish_seconds",
		Help:    "Duration of broker publishes, until the log has the message (group commit included; on Kafka a keyed publish also waits for the read-back that decides its key).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	})
	m.publishErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_broker_publish_errors_total",
		Help: "Broker publishes that failed or were not confirmed.",
	})
	m.Registry.MustRegister(m.deliveryLatency, m.publishLatency, m.publishErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collector{m.src})
	return m
}

// OnDeliveryLatency is core.Config.OnDeliveryLatency.
func (m *Metrics) OnDeliveryLatency(d time.Duration) { m.deliveryLatency.Observe(d.Seconds()) }

// OnPublish is core.Config.OnPublish.
func (m *Metrics) OnPublish(d time.Duration, err error) {
	m.publishLatency.Observe(d.Seconds())
	if err != nil {
		m.publishErrors.Inc()
	}
}

// Attach points the collector at the node (and extra counters).
func (m *Metrics) Attach(node *core.Node, extra func(ch chan<- prometheus.Metric)) {
	m.src.Node, m.src.Extra = node, extra
}

var (
	descConns       = prometheus.NewDesc("switchboard_connections", "Open connections by transport.", []string{"transport"}, nil)
	descConnects    = prometheus.NewDesc("switchboard_connections_total", "Connections accepted (long-poll requests included).", nil, nil)
	descDisconnects = prometheus.NewDesc("switchboard_disconnects_total", "Connections ended, by close code (long-poll requests excluded).", []string{"code"}, nil)
	descIn          = prometheus.NewDesc("switchboard_messages_in_total", "Client envelopes received, by type (unknown types folded) and transport (send: POST /send).", []string{"type", "transport"}, nil)
	descOut         = prometheus.NewDesc("switchboard_messages_out_total", "Envelopes written to connections, by transport.", []string{"transport"}, nil)
	descMalformed   = prometheus.NewDesc("switchboard_broker_malformed_total", "Broker messages dropped because they were not Switchboard envelopes.", nil, nil)
	descDeliveries  = prometheus.NewDesc("switchboard_broker_deliveries_total", "Messages delivered to this node by the broker.", nil, nil)
	descErrors      = prometheus.NewDesc("switchboard_errors_total", "Error envelopes sent to clients.", nil, nil)
	descSlow        = prometheus.NewDesc("switchboard_slow_consumer_actions_total", "Slow-consumer actions, by what was done.", []string{"action"}, nil)
	descRefused     = prometheus.NewDesc("switchboard_refused_connections_total", "Connections refused at --max-connections or --max-connections-per-ip.", nil, nil)
	descRooms       = prometheus.NewDesc("switchboard_rooms", "Rooms with members on this node.", nil, nil)
	descQueued      = prometheus.NewDesc("switchboard_send_queue_envelopes", "Envelopes waiting in send queues, over all connections.", nil, nil)
	descMaxQueued   = prometheus.NewDesc("switchboard_send_queue_max_envelopes", "Envelopes in the longest send queue.", nil, nil)
	descLag         = prometheus.NewDesc("switchboard_broker_lag_seconds", "Publish-to-delivery delay of the newest message the broker delivered to this node; 0 after 10 s without deliveries.", nil, nil)
	descResumes     = prometheus.NewDesc("switchboard_resumes_total", "Connects that resumed with since=, by outcome.", []string{"recovered"}, nil)
	descResumeRetry = prometheus.NewDesc("switchboard_resumes_deferred_total", "Resumes sent back to retry later (close 1013, HTTP 503) because their history could not be read in time.", nil, nil)
)

// collector reads the node at scrape time.
type collector struct{ src *Source }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descConnects, descDisconnects, descIn, descOut, descDeliveries, descErrors, descSlow, descRefused, descRooms, descResumes, descQueued, descMaxQueued, descLag, descMalformed, descResumeRetry} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	n := c.src.Node
	if n == nil {
		return
	}
	st, mt := n.Stats(), n.Metrics()
	for _, t := range []string{"websocket", "sse", "longpoll"} { // always present, so dashboards see 0
		if _, ok := mt.ConnectionsByTransport[t]; !ok {
			mt.ConnectionsByTransport[t] = 0
		}
	}
	for t, v := range mt.ConnectionsByTransport {
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(v), t)
	}
	ch <- prometheus.MustNewConstMetric(descConnects, prometheus.CounterValue, float64(st.ConnectionsTotal))
	for code, v := range mt.DisconnectsByCode {
		ch <- prometheus.MustNewConstMetric(descDisconnects, prometheus.CounterValue, float64(v), strconv.Itoa(int(code)))
	}
	for k, v := range mt.Inbound {
		ch <- prometheus.MustNewConstMetric(descIn, prometheus.CounterValue, float64(v), k.Type, k.Transport)
	}
	for _, t := range []string{"websocket", "sse", "longpoll"} {
		if _, ok := mt.OutboundByTransport[t]; !ok {
			mt.OutboundByTransport[t] = 0
		}
	}
	for t, v := range mt.OutboundByTransport {
		ch <- prometheus.MustNewConstMetric(descOut, prometheus.CounterValue, float64(v), t)
	}
	ch <- prometheus.MustNewConstMetric(descMalformed, prometheus.CounterValue, float64(broker.Malformed()))
	ch <- prometheus.MustNewConstMetric(descDeliveries, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(st.Errors))
	for action, v := range map[string]uint64{"closed": st.SlowClosed, "dropped": st.Dropped, "conflated": st.Conflated, "resume_paused": st.ResumeGaps, "resume_lost": st.ResumeGapsLost} {
		ch <- prometheus.MustNewConstMetric(descSlow, prometheus.CounterValue, float64(v), action)
	}
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(st.Refused))
	ch <- prometheus.MustNewConstMetric(descRooms, prometheus.GaugeValue, float64(st.Rooms))
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(mt.Queued))
	ch <- prometheus.MustNewConstMetric(descMaxQueued, prometheus.GaugeValue, float64(mt.MaxQueued))
	ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, mt.BrokerLag.Seconds())
	ch <- prometheus.MustNewConstMetric(descResumes, prometheus.CounterValue, float64(mt.Resumes-mt.ResumesLost), "true")
	ch <- prometheus.MustNewConstMetric(descResumes, prometheus.CounterValue, float64(mt.ResumesLost), "false")
	ch <- prometheus.MustNewConstMetric(descResumeRetry, prometheus.CounterValue, float64(mt.ResumesRetry))
	if c.src.Extra != nil {
		c.src.Extra(ch)
	}
}
