package main

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// A headline is one server's main figures for one measurement (a
// scenario with its transport, subscribers, rooms and rate): the median of
// the runs when there were several, else the single run's. Headlines of
// the same measurement from different servers are compared as ratios to
// Switchboard's.
type headline struct {
	key    string // what was measured, e.g. "fanout websocket, 1000 subs, 1 room, 100 msg/s"
	server string
	figs   []figure
}

type figure struct {
	name   string
	value  float64
	verb   string // e.g. "%.0f"
	higher bool   // higher is better
}

// headlines picks each server's headline per measurement from results,
// in the order the measurements first appear. A runs summary replaces the
// single runs it summarizes.
func headlines(results []any) []headline {
	summarized := map[string]bool{} // scenario+server with a runs summary
	for _, r := range results {
		switch r := r.(type) {
		case runsSummary:
			summarized[summaryKey(r.Scenario, r.ServerName, r.DeflateOffered)] = true
		case figuresSummary:
			summarized[r.Scenario+"/"+r.ServerName] = true
		}
	}
	var out []headline
	add := func(scenario, server, key string, figs ...figure) {
		if len(figs) > 0 {
			out = append(out, headline{key: scenario + " " + key, server: server, figs: figs})
		}
	}
	// The key of a fan-out measurement: the payload (other than pad) and
	// the deflate offer are part of what was measured.
	fanKey := func(transport string, subs, rooms int, rate float64, payload string, deflate bool) string {
		k := fmt.Sprintf("%s, %d subs, %d rooms", transport, subs, rooms)
		if rate > 0 {
			k += fmt.Sprintf(", %.0f msg/s", rate)
		}
		return k + variantLabel(payload, deflate)
	}

	for _, r := range results {
		switch r := r.(type) {
		case runsSummary:
			if r.Measured == 0 {
				continue
			}
			rate := r.RateTarget.Median
			figs := []figure{{"delivered/s", r.DeliveredPerS.Median, "%.0f", true}}
			if r.Scenario == "saturate" {
				rate = 0
				figs[0].name = "sustainable deliveries/s"
			}
			figs = append(figs, figure{"p50 ms", r.P50.Median, "%.2f", false}, figure{"p99 ms", r.P99.Median, "%.2f", false})
			switch {
			case r.ServerCPUPerDelivery != nil && r.ServerCPUPerDelivery.Median > 0:
				figs = append(figs, figure{"server CPU µs/delivery", r.ServerCPUPerDelivery.Median, "%.2f", false})
			case r.ServerCPU != nil && r.DeliveredPerS.Median > 0:
				figs = append(figs, figure{"server CPU µs/delivery", r.ServerCPU.Median / r.DeliveredPerS.Median * 1e6, "%.2f", false})
			}
			if r.WireBytesPerDelivery.Median > 0 {
				figs = append(figs, figure{"wire B/delivery", r.WireBytesPerDelivery.Median, "%.1f", false})
			}
			add(r.Scenario, r.ServerName, fanKey(r.Transport, r.Subscribers, r.Rooms, rate, r.PayloadKind, r.DeflateOffered), figs...)
		case *fanoutResult:
			if r.Scenario != "fanout" || summarized[summaryKey(r.Scenario, r.ServerName, r.DeflateOffered)] {
				continue
			}
			figs := []figure{{"delivered/s", r.DeliveredPerS, "%.0f", true}, {"p50 ms", r.Latency.P50, "%.2f", false}, {"p99 ms", r.Latency.P99, "%.2f", false}}
			switch {
			case r.ServerCPUPerDelivery > 0:
				figs = append(figs, figure{"server CPU µs/delivery", r.ServerCPUPerDelivery, "%.2f", false})
			case r.Server != nil && r.DeliveredPerS > 0:
				figs = append(figs, figure{"server CPU µs/delivery", r.Server.CPUCores / r.DeliveredPerS * 1e6, "%.2f", false})
			}
			if r.WireBytesPerDelivery > 0 {
				figs = append(figs, figure{"wire B/delivery", r.WireBytesPerDelivery, "%.1f", false})
			}
			add(r.Scenario, r.ServerName, fanKey(r.Transport, r.Subscribers, r.Rooms, r.RateTarget, r.PayloadKind, r.DeflateOffered), figs...)
		case saturateSummary:
			if summarized[summaryKey("saturate", r.ServerName, r.DeflateOffered)] {
				continue
			}
			add("saturate", r.ServerName, fanKey(r.Transport, r.Subscribers, r.Rooms, 0, r.PayloadKind, r.DeflateOffered), figure{"sustainable deliveries/s", r.MaxDeliveriesPerS, "%.0f", true})
		case idleResult:
			if summarized["idle/"+r.ServerName] {
				continue
			}
			var figs []figure
			if r.RSSPerConn != 0 {
				figs = append(figs, figure{"RSS B/conn", r.RSSPerConn, "%.0f", false})
			}
			figs = append(figs, figure{"heap B/conn", r.HeapPerConn, "%.0f", false}, figure{"goroutines/conn", r.GorPerConn, "%.2f", false},
				figure{"connects/s", r.ConnectPerS, "%.0f", true})
			add("idle", r.ServerName, fmt.Sprintf("%s, %d conns", r.Transport, r.Conns), figs...)
		case churnResult:
			if summarized["churn/"+r.ServerName] {
				continue
			}
			add("churn", r.ServerName, fmt.Sprintf("%s, %d conns/wave", r.Transport, r.ConnsPerWave),
				figure{"connects/s", r.ConnectPerS, "%.0f", true}, figure{"back after s", r.ReturnSeconds, "%.1f", false})
		case stormResult:
			if !summarized["storm/"+r.ServerName] {
				add("storm", r.ServerName, r.Transport, r.headline()...)
			}
		case pubclusterResult:
			if !summarized["pubcluster/"+r.ServerName] {
				add("pubcluster", r.ServerName, pubclusterKey, r.headline()...)
			}
		case figuresSummary:
			var figs []figure
			pick := func(name, label, verb string, higher bool) {
				if s, ok := r.Figures[name]; ok {
					figs = append(figs, figure{label, s.Median, verb, higher})
				}
			}
			switch r.Scenario {
			case "idle":
				pick("rss_bytes_per_conn", "RSS B/conn", "%.0f", false)
				pick("heap_bytes_per_conn", "heap B/conn", "%.0f", false)
				pick("goroutines_per_conn", "goroutines/conn", "%.2f", false)
				pick("connects_per_s", "connects/s", "%.0f", true)
			case "churn":
				pick("connects_per_s", "connects/s", "%.0f", true)
				pick("return_seconds", "back after s", "%.1f", false)
			case "resume":
				pick("replayed_per_s", "replayed/s", "%.0f", true)
			case "storm":
				pick("caught_up_all_s", "all caught up s", "%.2f", false)
				pick("caught_up_p50_s", "p50 caught up s", "%.2f", false)
				pick("not_recovered", "not recovered", "%.0f", false)
				pick("lost", "lost", "%.0f", false)
				pick("duplicates", "duplicates", "%.0f", false)
				pick("publish_rate_during", "B publish/s during", "%.0f", true)
				pick("publish_failed_during", "B publish failures", "%.0f", false)
				pick("extra_cpu_b_s", "B extra CPU s", "%.2f", false)
				pick("extra_cpu_broker_s", "broker extra CPU s", "%.2f", false)
			case "pubcluster":
				pick("accepted_per_s", "accepted/s", "%.0f", true)
				pick("p50_ms", "p50 ms", "%.2f", false)
				pick("p99_ms", "p99 ms", "%.2f", false)
				pick("node_cpu_us_per_publish", "node CPU µs/publish", "%.1f", false)
			}
			add(r.Scenario, r.ServerName, r.Transport, figs...)
		}
	}
	return out
}

// summaryKey names the single runs a runs summary replaces: those of a
// scenario on a server, with or without the deflate offer.
func summaryKey(scenario, server string, deflate bool) string {
	return fmt.Sprintf("%s/%s/%v", scenario, server, deflate)
}

// compareGroups groups headlines by measurement, keeping only those
// measured on Switchboard and at least one other server; Switchboard's
// comes first in each group.
func compareGroups(hs []headline) [][]headline {
	var keys []string
	byKey := map[string][]headline{}
	for _, h := range hs {
		if _, ok := byKey[h.key]; !ok {
			keys = append(keys, h.key)
		}
		if h.server == "switchboard" {
			byKey[h.key] = append([]headline{h}, byKey[h.key]...)
		} else {
			byKey[h.key] = append(byKey[h.key], h)
		}
	}
	var out [][]headline
	for _, k := range keys {
		g := byKey[k]
		if len(g) > 1 && g[0].server == "switchboard" {
			out = append(out, g)
		}
	}
	return out
}

// ratio formats v relative to base: "1.52×". For figures where lower is
// better the ratio is still peer / Switchboard; the header says which way
// is better.
func ratio(v, base float64) string {
	if base == 0 || math.IsNaN(v/base) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", v/base)
}

// writeComparison prints, for every measurement made on Switchboard and a
// peer, each server's figures with the ratio to Switchboard's.
func writeComparison(w io.Writer, results []any) {
	for _, g := range compareGroups(headlines(results)) {
		base := g[0]
		fmt.Fprintf(w, "**%s: versus Switchboard** (value, and peer ÷ Switchboard):\n\n", base.key)
		fmt.Fprint(w, "| server |")
		for _, f := range base.figs {
			better := "lower is better"
			if f.higher {
				better = "higher is better"
			}
			fmt.Fprintf(w, " %s (%s) |", f.name, better)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "|---|"+strings.Repeat("---|", len(base.figs)))
		for _, h := range g {
			fmt.Fprintf(w, "| %s |", h.server)
			for i, bf := range base.figs {
				if i >= len(h.figs) || h.figs[i].name != bf.name {
					fmt.Fprint(w, " n/a |")
					continue
				}
				f := h.figs[i]
				if h.server == base.server {
					fmt.Fprintf(w, " "+f.verb+" |", f.value)
				} else {
					fmt.Fprintf(w, " "+f.verb+" (%s) |", f.value, ratio(f.value, bf.value))
				}
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
}

// comparisonCharts draws, per compared measurement, each server's first
// figure as a bar.
func comparisonCharts(results []any) []chart {
	var out []chart
	for _, g := range compareGroups(headlines(results)) {
		name := g[0].figs[0].name
		top := 0.0
		for _, h := range g {
			if len(h.figs) > 0 && h.figs[0].name == name {
				top = max(top, h.figs[0].value)
			}
		}
		if top <= 0 {
			continue
		}
		var s strings.Builder
		fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`, svgW, svgH, svgW, svgH)
		axes(&s, fmt.Sprintf(g[0].figs[0].verb, top), "0")
		bw := float64(svgW-padL-padR) / float64(len(g))
		ph := float64(svgH - padT - padB)
		for i, h := range g {
			if len(h.figs) == 0 || h.figs[0].name != name {
				continue
			}
			v := h.figs[0].value
			hgt := v / top * ph
			fill := "#999"
			if h.server == "switchboard" {
				fill = "#4a7bd0"
			}
			fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: `+h.figs[0].verb+`</title></rect>`,
				float64(padL)+float64(i)*bw+4, float64(svgH-padB)-hgt, bw-8, hgt, fill, h.server, v)
			fmt.Fprintf(&s, `<text x="%.1f" y="%d">%s `+h.figs[0].verb+` (%s)</text>`,
				float64(padL)+float64(i)*bw+4, svgH-padB+15, template.HTMLEscapeString(h.server), v, ratio(v, g[0].figs[0].value))
		}
		s.WriteString(`</svg>`)
		out = append(out, chart{Title: fmt.Sprintf("%s: %s per server", g[0].key, name), SVG: template.HTML(s.String())})
	}
	return out
}
