package main

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// writeMarkdown prints one table per kind of result.
func writeMarkdown(w io.Writer, results []any) {
	var fan []*fanoutResult
	var sums []saturateSummary
	var idle []idleResult
	var churn []churnResult
	var resume []resumeResult
	var storms []stormResult
	var pubs []pubclusterResult
	var runs []runsSummary
	var figs []figuresSummary
	for _, r := range results {
		switch r := r.(type) {
		case runsSummary:
			runs = append(runs, r)
		case figuresSummary:
			figs = append(figs, r)
		case *fanoutResult:
			fan = append(fan, r)
		case saturateSummary:
			sums = append(sums, r)
		case idleResult:
			idle = append(idle, r)
		case churnResult:
			churn = append(churn, r)
		case resumeResult:
			resume = append(resume, r)
		case stormResult:
			storms = append(storms, r)
		case pubclusterResult:
			pubs = append(pubs, r)
		}
	}
	if len(fan) > 0 {
		fmt.Fprintln(w, "| scenario | server | run | step | transport | publisher | subs | rooms | rate msg/s | published/s | delivered/s | loss % | p50 ms | p99 ms | p99.9 ms | max ms | disconnects | slow closed | server CPU | load CPU | other CPU | payload | deflate subs | wire B/delivery | envelope B | own deflate B | wire ÷ own deflate | server CPU µs/delivery | load CPU µs/delivery | inflating subs | others' B ÷ sample's (least) | dropped per other ÷ frames per sampled |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range fan {
			srv, other := "n/a", "n/a"
			if r.Server != nil {
				srv, other = fmt.Sprintf("%.2f", r.Server.CPUCores), fmt.Sprintf("%.2f", r.Machine.OtherCores)
			}
			if r.Disturbed {
				other += " (disturbed)"
			}
			perDelivery := "n/a"
			if r.Server != nil {
				perDelivery = fmt.Sprintf("%.2f", r.ServerCPUPerDelivery)
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %d | %d | %.0f | %.0f | %.0f | %.3f | %.2f | %.2f | %.2f | %.2f | %d | %d | %s | %.2f | %s | %s | %s | %.1f | %s | %s | %s | %s | %.2f | %s | %s | %s |\n",
				r.Scenario, r.ServerName, r.Run, r.Step+1, r.Transport, r.Publisher, r.Subscribers, r.Rooms, r.RateTarget, r.PublishedPerS, r.DeliveredPerS, r.LossPct,
				r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Latency.Max, r.Disconnects, r.ServerSlowClosed, srv, r.Generator.CPUCores, other,
				payloadLabel(r.PayloadKind, r.PayloadBytes), deflateLabel(r.DeflateOffered, r.DeflatedSubs, r.Subscribers), r.WireBytesPerDelivery,
				orNA(r.EnvelopeBytes, "%.1f"), orNA(r.OwnDeflateBytes, "%.1f"), overFloor(r.WireBytesPerDelivery, r.OwnDeflateBytes), perDelivery, r.LoadCPUPerDelivery,
				sampleLabel(r.Sample, r.Subscribers), othersWireLabel(r.Sample), othersDroppedLabel(r.Sample))
		}
		fmt.Fprintln(w)
	}
	for _, s := range sums {
		extra := ""
		if s.Extrapolated {
			extra = fmt.Sprintf(", extrapolated from %d inflating subscribers", s.InflateSample)
		}
		fmt.Fprintf(w, "**saturate, %s%s, run %d**: highest sustainable %.0f deliveries/s (%d subscribers, %d rooms, at %.0f msg/s%s); stopped: %s\n\n",
			s.ServerName, variantLabel(s.PayloadKind, s.DeflateOffered), s.Run, s.MaxDeliveriesPerS, s.Subscribers, s.Rooms, s.AtRate, extra, s.Reason)
	}
	for _, s := range runs {
		what := "each run's step"
		if s.Scenario == "saturate" {
			what = "each run's highest sustainable step"
			if s.NoSustainable > 0 {
				what += fmt.Sprintf("; %d of %d runs had none", s.NoSustainable, s.Runs)
			}
		}
		if s.Disturbed > 0 {
			what += fmt.Sprintf("; %d disturbed by other processes", s.Disturbed)
		}
		if s.Measured == 0 {
			fmt.Fprintf(w, "**%s, %s, %d runs**: no run had a sustainable step.\n\n", s.Scenario, s.ServerName, s.Runs)
			continue
		}
		fmt.Fprintf(w, "**%s, %s%s, median (min–max) of %d runs** (%s):\n\n", s.Scenario, s.ServerName, variantLabel(s.PayloadKind, s.DeflateOffered), s.Measured, what)
		fmt.Fprintln(w, "| transport | publisher | subs | rooms | rate msg/s | published/s | delivered/s | loss % | p50 ms | p99 ms | p99.9 ms | max ms | server CPU | load CPU | other CPU | payload | deflate subs | wire B/delivery | envelope B | own deflate B | wire ÷ own deflate | server CPU µs/delivery | load CPU µs/delivery | inflating subs | others' B ÷ sample's |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		srv, other, perDelivery := "n/a", "n/a", "n/a"
		if s.ServerCPU != nil && s.OtherCPU != nil {
			srv, other = s.ServerCPU.format("%.2f"), s.OtherCPU.format("%.2f")
		}
		if s.ServerCPUPerDelivery != nil {
			perDelivery = s.ServerCPUPerDelivery.format("%.2f")
		}
		inflating, othersWire := "all", "n/a"
		if s.Extrapolated && s.OthersWireRatio != nil {
			inflating = fmt.Sprintf("%d/%d (extrapolated)", s.InflateSample, s.Subscribers)
			othersWire = s.OthersWireRatio.format("%.2f")
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n\n",
			s.Transport, s.Publisher, s.Subscribers, s.Rooms, s.RateTarget.format("%.0f"), s.PublishedPerS.format("%.0f"),
			s.DeliveredPerS.format("%.0f"), s.LossPct.format("%.3f"), s.P50.format("%.2f"), s.P99.format("%.2f"),
			s.P999.format("%.2f"), s.Max.format("%.2f"), srv, s.LoadCPU.format("%.2f"), other,
			s.PayloadKind, deflateLabel(s.DeflateOffered, s.DeflatedSubs, s.Subscribers), s.WireBytesPerDelivery.format("%.1f"),
			s.EnvelopeBytes.format("%.1f"), s.OwnDeflateBytes.format("%.1f"), overFloor(s.WireBytesPerDelivery.Median, s.OwnDeflateBytes.Median),
			perDelivery, s.LoadCPUPerDelivery.format("%.2f"), inflating, othersWire)
	}
	if len(idle) > 0 {
		fmt.Fprintln(w, "| idle | run | transport | conns | source IPs | connect s | connects/s | RSS B/conn | heap B/conn | sys B/conn | goroutines/conn | load CPU |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range idle {
			rss := "n/a"
			if r.RSSPerConn != 0 {
				rss = fmt.Sprintf("%.0f", r.RSSPerConn)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %d | %d | %.1f | %.0f | %s | %.0f | %.0f | %.2f | %.2f |\n",
				r.ServerName, r.Run, r.Transport, r.Conns, r.SourceIPs, r.ConnectSeconds, r.ConnectPerS, rss, r.HeapPerConn, r.SysPerConn, r.GorPerConn, r.Generator.CPUCores)
		}
		fmt.Fprintln(w)
	}
	if len(churn) > 0 {
		fmt.Fprintln(w, "| churn | run | transport | conns/wave | waves | connects | errors | connects/s | cycles/s | back after s | connections back | goroutines before→peak→after | RSS MiB before→peak→after | RSS retained % | memory bounded | heap growth KiB |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range churn {
			fmt.Fprintf(w, "| %s | %d | %s | %d | %d | %d | %d | %.0f | %.0f | %.1f | %s | %d→%d→%d (%s) | %s | %s | %s | %.0f |\n",
				r.ServerName, r.Run, r.Transport, r.ConnsPerWave, r.Waves, r.Connects, r.ConnectErrors, r.ConnectPerS, r.CyclesPerS,
				r.ReturnSeconds, yesNo(r.ConnectionsReturned), r.Before.Goroutines, r.Peak.Goroutines, r.After.Goroutines, yesNo(r.GoroutinesReturned),
				mibs(r.Before.RSS, r.Peak.RSS, r.After.RSS), pct(r.RSSRetainedPct, r.Before.RSS > 0), bounded(r), r.HeapGrowth/1024)
		}
		fmt.Fprintln(w)
	}
	if len(resume) > 0 {
		fmt.Fprintln(w, "| resume | run | transport | subs | rooms | messages away | live | reconnect s | first replay ms | replay s | replayed | replayed/s | lost | loss % | duplicates | recovered | disconnects | server CPU |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range resume {
			srv := "n/a"
			if r.Server != nil {
				srv = fmt.Sprintf("%.2f", r.Server.CPUCores)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %d | %d | %d | %d | %.2f | %.1f | %.2f | %d | %.0f | %d | %.3f | %d | %d of %d | %d | %s |\n",
				r.ServerName, r.Run, r.Transport, r.Subscribers, r.Rooms, r.Messages, r.LivePublished, r.ReconnectSeconds, r.FirstReplayMS,
				r.ReplaySeconds, r.Replayed, r.ReplayedPerS, r.Lost, r.LossPct, r.Duplicates, r.Recovered, r.Subscribers, r.Disconnects, srv)
		}
		fmt.Fprintln(w)
	}
	writeStormTable(w, storms)
	writePubClusterTable(w, pubs)
	for _, s := range figs {
		fmt.Fprintf(w, "**%s, %s, median (min–max) of %d runs:**\n\n| figure | value |\n|---|---|\n", s.Scenario, s.ServerName, s.Runs)
		names := make([]string, 0, len(s.Figures))
		for k := range s.Figures {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			fmt.Fprintf(w, "| %s | %s |\n", k, s.Figures[k].format("%.6g"))
		}
		fmt.Fprintln(w)
	}
	writeComparison(w, results)
}

// payloadLabel names a fanout payload: "pad 128 B", "chat ~212 B".
func payloadLabel(kind string, bytes int) string {
	switch kind {
	case "", "pad":
		return fmt.Sprintf("pad %d B", bytes)
	}
	return fmt.Sprintf("%s ~%d B", kind, bytes)
}

// deflateLabel says whether permessage-deflate was offered and accepted:
// "no offer", or "n/N" subscribers that have it.
func deflateLabel(offered bool, deflated int64, subs int) string {
	if !offered {
		return "no offer"
	}
	return fmt.Sprintf("%d/%d", deflated, subs)
}

// sampleLabel says who inflated and was measured: "all", or "50/1000
// (×20.00)", the sample and the factor its deliveries were scaled by.
func sampleLabel(s *sampleFigures, subs int) string {
	if s == nil {
		return "all"
	}
	return fmt.Sprintf("%d/%d (×%.2f)", s.Subscribers, subs, s.Scale)
}

// othersWireLabel is the bytes the subscribers outside the sample read
// over the sample's, on average and the least of them.
func othersWireLabel(s *sampleFigures) string {
	if s == nil || s.Others == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f (%.2f)", s.OthersWireRatio, s.OthersWireRatioMin)
}

// othersDroppedLabel is the compressed messages each subscriber outside
// the sample dropped next to the frames each sampled one read.
func othersDroppedLabel(s *sampleFigures) string {
	if s == nil || s.Others == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f ÷ %.1f", s.OthersDroppedPerSub, s.FramesPerSub)
}

// variantLabel qualifies a summary's server with a payload other than pad
// and the deflate offer.
func variantLabel(kind string, offered bool) string {
	s := ""
	if kind != "" && kind != "pad" {
		s += ", " + kind + " payload"
	}
	if offered {
		s += ", deflate offered"
	}
	return s
}

// overFloor is wire bytes per delivery over the own-deflate floor.
func overFloor(wire, floor float64) string {
	if floor <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", wire/floor)
}

func orNA(v float64, verb string) string {
	if v == 0 {
		return "n/a"
	}
	return fmt.Sprintf(verb, v)
}

func bounded(r churnResult) string {
	if r.Before.RSS == 0 || len(r.WaveRSS) < 4 {
		return "n/a"
	}
	return fmt.Sprintf("%s (%+.1f MiB late)", yesNo(r.MemoryBounded), r.RSSLateGrowth/(1<<20))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func mibs(v ...uint64) string {
	if v[0] == 0 {
		return "n/a"
	}
	var parts []string
	for _, x := range v {
		parts = append(parts, fmt.Sprintf("%.1f", float64(x)/(1<<20)))
	}
	return strings.Join(parts, "→")
}

func pct(v float64, ok bool) string {
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", v)
}

// chart is one SVG figure of the HTML report.
type chart struct {
	Title string
	SVG   template.HTML
}

func writeHTML(w io.Writer, o options, results []any) error {
	var md strings.Builder
	writeMarkdown(&md, results)
	var charts []chart
	var steps []*fanoutResult
	for _, r := range results {
		fr, ok := r.(*fanoutResult)
		if !ok {
			continue
		}
		steps = append(steps, fr)
		name := fmt.Sprintf("%s%s, %s run %d step %d, %.0f msg/s to %d subscribers", fr.ServerName, variantLabel(fr.PayloadKind, fr.DeflateOffered), fr.Scenario, fr.Run, fr.Step+1, fr.RateTarget, fr.Subscribers)
		charts = append(charts,
			chart{"Publish→deliver latency: " + name, latencySVG(fr.Histogram)},
			chart{"Delivered per second: " + name, seriesSVG(fr)},
		)
	}
	// One steps chart per run and server (a saturate ramp), first.
	var ramps []chart
	for lo := 0; lo < len(steps); {
		hi := lo + 1
		for hi < len(steps) && steps[hi].Run == steps[lo].Run && steps[hi].ServerName == steps[lo].ServerName && steps[hi].DeflateOffered == steps[lo].DeflateOffered {
			hi++
		}
		if hi-lo > 1 {
			ramps = append(ramps, chart{fmt.Sprintf("Delivered/s and p99 per step, %s%s, run %d", steps[lo].ServerName, variantLabel("", steps[lo].DeflateOffered), steps[lo].Run), stepsSVG(steps[lo:hi])})
		}
		lo = hi
	}
	charts = append(append(comparisonCharts(results), ramps...), charts...)
	return reportTmpl.Execute(w, map[string]any{
		"When":     time.Now().Format(time.RFC3339),
		"Scenario": o.scenario,
		"Args":     o.commandLine,
		"Summary":  md.String(),
		"Charts":   charts,
	})
}

var reportTmpl = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>switchboard load: {{.Scenario}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}
figure{margin:2em 0} figcaption{font-weight:600;margin-bottom:.5em}
svg text{font:11px system-ui,sans-serif;fill:#444}
</style></head><body>
<h1>switchboard load: {{.Scenario}}</h1>
<p>{{.When}} — <code>{{.Args}}</code></p>
<h2>Summary</h2>
<pre>{{.Summary}}</pre>
{{range .Charts}}<figure><figcaption>{{.Title}}</figcaption>{{.SVG}}</figure>
{{end}}</body></html>
`))

const (
	svgW, svgH = 900, 260
	padL, padB = 60, 30
	padT, padR = 10, 20
)

// latencySVG draws the histogram regrouped into log-spaced bins (10 per
// decade of milliseconds), as bars of the share of deliveries.
func latencySVG(bins []bin) template.HTML {
	if len(bins) == 0 {
		return "<p>no deliveries</p>"
	}
	const perDecade = 10
	lo := math.Floor(math.Log10(float64(bins[0].Lo)/1e6+1e-6) * perDecade)
	hi := math.Ceil(math.Log10(float64(bins[len(bins)-1].Hi)/1e6+1e-6)*perDecade) + 1
	n := int(hi - lo)
	counts := make([]float64, n)
	var total float64
	for _, b := range bins {
		mid := (float64(b.Lo) + float64(b.Hi)) / 2 / 1e6
		i := int(math.Floor(math.Log10(mid+1e-6)*perDecade) - lo)
		i = min(max(i, 0), n-1)
		counts[i] += float64(b.Count)
		total += float64(b.Count)
	}
	top := 0.0
	for _, c := range counts {
		top = max(top, c/total)
	}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`, svgW, svgH, svgW, svgH)
	axes(&s, fmt.Sprintf("%.0f%%", top*100), "0%")
	bw := float64(svgW-padL-padR) / float64(n)
	ph := float64(svgH - padT - padB)
	for i, c := range counts {
		h := c / total / top * ph
		fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#4a7bd0"><title>%s–%s ms: %.2f%%</title></rect>`,
			float64(padL)+float64(i)*bw, float64(svgH-padB)-h, math.Max(bw-1, 1), h,
			fmtMS(math.Pow(10, (lo+float64(i))/perDecade)), fmtMS(math.Pow(10, (lo+float64(i)+1)/perDecade)), c/total*100)
		if int(lo+float64(i))%perDecade == 0 {
			fmt.Fprintf(&s, `<text x="%.1f" y="%d">%s ms</text>`, float64(padL)+float64(i)*bw, svgH-padB+15, fmtMS(math.Pow(10, (lo+float64(i))/perDecade)))
		}
	}
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

func fmtMS(v float64) string { return fmt.Sprintf("%.3g", v) }

// seriesSVG draws deliveries per second over time and, dashed, what the
// publisher's sends per second should have produced.
func seriesSVG(r *fanoutResult) template.HTML {
	n := max(len(r.DeliveredSeries), len(r.PublishedSeries))
	if n == 0 {
		return "<p>no data</p>"
	}
	perMsg := 0.0
	if r.Published > 0 {
		perMsg = float64(r.Expected) / float64(r.Published)
	}
	want := make([]float64, n)
	got := make([]float64, n)
	top := 1.0
	for i := range n {
		if i < len(r.PublishedSeries) {
			want[i] = float64(r.PublishedSeries[i]) * perMsg
		}
		if i < len(r.DeliveredSeries) {
			got[i] = float64(r.DeliveredSeries[i])
		}
		top = max(top, want[i], got[i])
	}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`, svgW, svgH, svgW, svgH)
	axes(&s, fmt.Sprintf("%.0f/s", top), "0")
	polyline(&s, want, top, "#999", "6 4")
	polyline(&s, got, top, "#d0504a", "")
	for i := 0; i < n; i += max(1, n/10) {
		fmt.Fprintf(&s, `<text x="%.1f" y="%d">%ds</text>`, xAt(i, n), svgH-padB+15, i)
	}
	fmt.Fprintf(&s, `<text x="%d" y="%d" fill="#d0504a">— delivered/s</text><text x="%d" y="%d">- - expected from sends/s</text>`, svgW-260, padT+12, svgW-260, padT+26)
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

// stepsSVG draws each saturate step's delivered/s (bars) and p99 (line).
func stepsSVG(steps []*fanoutResult) template.HTML {
	top, topP99 := 1.0, 1.0
	for _, r := range steps {
		top, topP99 = max(top, r.DeliveredPerS), max(topP99, r.Latency.P99)
	}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`, svgW, svgH, svgW, svgH)
	axes(&s, fmt.Sprintf("%.0f/s", top), "0")
	bw := float64(svgW-padL-padR) / float64(len(steps))
	ph := float64(svgH - padT - padB)
	p99 := make([]float64, len(steps))
	for i, r := range steps {
		h := r.DeliveredPerS / top * ph
		fill := "#4a7bd0"
		if r.Sustainable != nil && !*r.Sustainable {
			fill = "#d0504a"
		}
		fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%.0f msg/s: %.0f delivered/s, loss %.2f%%, p99 %.1f ms</title></rect>`,
			float64(padL)+float64(i)*bw+2, float64(svgH-padB)-h, bw-4, h, fill, r.RateTarget, r.DeliveredPerS, r.LossPct, r.Latency.P99)
		fmt.Fprintf(&s, `<text x="%.1f" y="%d">%.0f</text>`, float64(padL)+float64(i)*bw+2, svgH-padB+15, r.RateTarget)
		p99[i] = r.Latency.P99
	}
	// p99 on its own scale, points at the bar centres.
	var pts []string
	for i, v := range p99 {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", float64(padL)+(float64(i)+0.5)*bw, float64(svgH-padB)-v/topP99*ph))
	}
	fmt.Fprintf(&s, `<polyline points="%s" fill="none" stroke="#e0a020" stroke-width="2"/>`, strings.Join(pts, " "))
	fmt.Fprintf(&s, `<text x="%d" y="%d">bars: delivered/s (red: not sustainable); line: p99 (top = %.1f ms); x: rate msg/s</text>`, padL+10, padT+12, topP99)
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

func axes(s *strings.Builder, topLabel, bottomLabel string) {
	fmt.Fprintf(s, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, padL, padT, padL, svgH-padB)
	fmt.Fprintf(s, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, padL, svgH-padB, svgW-padR, svgH-padB)
	fmt.Fprintf(s, `<text x="2" y="%d">%s</text><text x="2" y="%d">%s</text>`, padT+10, topLabel, svgH-padB, bottomLabel)
}

func xAt(i, n int) float64 {
	if n <= 1 {
		return padL
	}
	return float64(padL) + float64(i)*float64(svgW-padL-padR)/float64(n-1)
}

func polyline(s *strings.Builder, v []float64, top float64, color, dash string) {
	var pts []string
	for i, y := range v {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", xAt(i, len(v)), float64(svgH-padB)-y/top*float64(svgH-padT-padB)))
	}
	fmt.Fprintf(s, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`, strings.Join(pts, " "), color, dash)
}
