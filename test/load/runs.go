package main

import (
	"fmt"
	"slices"
)

// spread is one figure over several runs.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// format is "median (min–max)" with the given verb, e.g. "%.2f".
func (s spread) format(verb string) string {
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", s.Median, s.Min, s.Max)
}

// runsSummary ends a run with --runs above 1: the median and range of each
// figure over the runs. For fanout the figures are each run's step; for
// saturate each run's highest sustainable step (runs without one are
// counted in NoSustainable and left out).
type runsSummary struct {
	Scenario      string  `json:"scenario"`
	ServerName    string  `json:"server_name"`
	RunsSummary   bool    `json:"runs_summary"`
	Runs          int     `json:"runs"`
	Measured      int     `json:"measured"` // runs whose figures are included
	NoSustainable int     `json:"no_sustainable,omitempty"`
	Disturbed     int     `json:"disturbed,omitempty"` // figures over --max-other-cpu
	Transport     string  `json:"transport"`
	Publisher     string  `json:"publisher"`
	Subscribers   int     `json:"subscribers"`
	Rooms         int     `json:"rooms"`
	RateTarget    spread  `json:"rate_target"`
	PublishedPerS spread  `json:"published_per_s"`
	DeliveredPerS spread  `json:"delivered_per_s"`
	LossPct       spread  `json:"loss_pct"`
	P50           spread  `json:"p50_ms"`
	P99           spread  `json:"p99_ms"`
	P999          spread  `json:"p999_ms"`
	Max           spread  `json:"max_ms"`
	ServerCPU     *spread `json:"server_cpu_cores,omitempty"` // nil without a pid
	LoadCPU       spread  `json:"load_cpu_cores"`
	// OtherCPU is what neither the server nor the load used: a median
	// well above zero means something else on the machine competed.
	OtherCPU *spread `json:"other_cpu_cores,omitempty"` // nil without a pid

	PayloadKind string `json:"payload_kind"`
	// DeflateOffered: the subscribers offered permessage-deflate;
	// DeflatedSubs is how many had it accepted (the fewest of the runs).
	DeflateOffered bool  `json:"deflate_offered"`
	DeflatedSubs   int64 `json:"deflated_subs"`
	// Per delivery (see fanoutResult).
	WireBytesPerDelivery spread  `json:"wire_bytes_per_delivery"`
	EnvelopeBytes        spread  `json:"envelope_bytes"`
	OwnDeflateBytes      spread  `json:"own_deflate_bytes"`
	ServerCPUPerDelivery *spread `json:"server_cpu_us_per_delivery,omitempty"` // nil without a pid
	LoadCPUPerDelivery   spread  `json:"load_cpu_us_per_delivery"`
	// Extrapolated: the figures are an inflation sample's, deliveries/s
	// scaled up to all subscribers (fanoutResult.Extrapolated);
	// InflateSample is the sample's size (the smallest of the runs) and
	// OthersWireRatio the check that the others read as much.
	Extrapolated    bool    `json:"extrapolated,omitempty"`
	InflateSample   int     `json:"inflate_sample,omitempty"`
	OthersWireRatio *spread `json:"others_wire_ratio,omitempty"`
}

func summarizeRuns(o options, server string, offer bool, figs []*fanoutResult) runsSummary {
	s := runsSummary{
		Scenario: o.scenario, ServerName: server, RunsSummary: true, Runs: o.runs, Measured: len(figs), NoSustainable: o.runs - len(figs),
		Transport: o.transport, Publisher: o.publisher, Subscribers: o.subs, Rooms: o.rooms, PayloadKind: o.payloadK, DeflateOffered: offer,
	}
	for i, r := range figs {
		if i == 0 || r.DeflatedSubs < s.DeflatedSubs {
			s.DeflatedSubs = r.DeflatedSubs
		}
	}
	if o.scenario == "fanout" {
		s.NoSustainable = 0
	}
	for _, r := range figs {
		if r.Disturbed {
			s.Disturbed++
		}
	}
	pick := func(f func(r *fanoutResult) float64) spread {
		v := make([]float64, len(figs))
		for i, r := range figs {
			v[i] = f(r)
		}
		return spreadOf(v)
	}
	s.RateTarget = pick(func(r *fanoutResult) float64 { return r.RateTarget })
	s.PublishedPerS = pick(func(r *fanoutResult) float64 { return r.PublishedPerS })
	s.DeliveredPerS = pick(func(r *fanoutResult) float64 { return r.DeliveredPerS })
	s.LossPct = pick(func(r *fanoutResult) float64 { return r.LossPct })
	s.P50 = pick(func(r *fanoutResult) float64 { return r.Latency.P50 })
	s.P99 = pick(func(r *fanoutResult) float64 { return r.Latency.P99 })
	s.P999 = pick(func(r *fanoutResult) float64 { return r.Latency.P999 })
	s.Max = pick(func(r *fanoutResult) float64 { return r.Latency.Max })
	s.LoadCPU = pick(func(r *fanoutResult) float64 { return r.Generator.CPUCores })
	s.WireBytesPerDelivery = pick(func(r *fanoutResult) float64 { return r.WireBytesPerDelivery })
	s.EnvelopeBytes = pick(func(r *fanoutResult) float64 { return r.EnvelopeBytes })
	s.OwnDeflateBytes = pick(func(r *fanoutResult) float64 { return r.OwnDeflateBytes })
	s.LoadCPUPerDelivery = pick(func(r *fanoutResult) float64 { return r.LoadCPUPerDelivery })
	if len(figs) > 0 && figs[0].Sample != nil {
		s.Extrapolated = true
		for i, r := range figs {
			if r.Sample != nil && (i == 0 || r.Sample.Subscribers < s.InflateSample) {
				s.InflateSample = r.Sample.Subscribers
			}
		}
		ratio := pick(func(r *fanoutResult) float64 {
			if r.Sample == nil {
				return 0
			}
			return r.Sample.OthersWireRatio
		})
		s.OthersWireRatio = &ratio
	}
	if len(figs) > 0 && figs[0].Server != nil {
		c := pick(func(r *fanoutResult) float64 {
			if r.Server == nil {
				return 0
			}
			return r.Server.CPUCores
		})
		s.ServerCPU = &c
		other := pick(func(r *fanoutResult) float64 { return r.Machine.OtherCores })
		s.OtherCPU = &other
		per := pick(func(r *fanoutResult) float64 { return r.ServerCPUPerDelivery })
		s.ServerCPUPerDelivery = &per
	}
	return s
}

// figuresSummary ends an idle, churn or resume run with --runs above 1:
// the median and range of each numeric figure of the runs' results, by
// the figure's JSON name.
type figuresSummary struct {
	Scenario    string            `json:"scenario"`
	ServerName  string            `json:"server_name"`
	RunsSummary bool              `json:"runs_summary"`
	Runs        int               `json:"runs"`
	Transport   string            `json:"transport"`
	Figures     map[string]spread `json:"figures"`
}

func summarizeFigures(o options, server string, runs []map[string]float64) figuresSummary {
	s := figuresSummary{Scenario: o.scenario, ServerName: server, RunsSummary: true, Runs: len(runs), Transport: o.transport, Figures: map[string]spread{}}
	values := map[string][]float64{}
	for _, r := range runs {
		for k, v := range r {
			values[k] = append(values[k], v)
		}
	}
	for k, v := range values {
		s.Figures[k] = spreadOf(v)
	}
	return s
}
