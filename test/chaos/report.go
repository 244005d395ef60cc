package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// writeReports writes results.jsonl, report.md and timeline.html in dir
// and prints the Markdown to stdout.
func writeReports(dir string, results []*result, stdout io.Writer) error {
	var jl strings.Builder
	for _, r := range results {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		jl.Write(b)
		jl.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, "results.jsonl"), []byte(jl.String()), 0o644); err != nil {
		return err
	}
	md := markdown(results)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	f, err := os.Create(filepath.Join(dir, "timeline.html"))
	if err != nil {
		return err
	}
	defer f.Close()
	return timelineHTML(f, results)
}

// markdown is the report a person reads: per broker, the log's figures
// and one row per transport and fault.
func markdown(results []*result) string {
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "### %s: %d messages, subscribers %v\n\n", r.Broker, r.Messages, r.Subs)
		l := r.Log
		caught := "Not every subscriber caught up."
		if r.CaughtUp {
			caught = fmt.Sprintf("Every subscriber had everything %.2f s after the last publish was accepted.", r.CatchUpS)
		}
		loss := ""
		if r.DataLoss {
			loss = fmt.Sprintf(" The broker lost its log in a restart: %d messages with it, %d more accepted after the suite's last read of it.", l.LostWithTheLog, l.AcceptedNotInLog)
		}
		if l.Trimmed > 0 {
			loss += fmt.Sprintf(" The retention fault trimmed %d messages from the log.", l.Trimmed)
		}
		fmt.Fprintf(&b, "Publishers: %d accepted of %d (%d retries); in the log: %d, twice: %d, accepted but missing: %d.%s %s\n\n",
			l.Accepted, l.Messages, l.Retries, l.InLog, l.TwiceInLog, l.AcceptedNotInLog, loss, caught)
		b.WriteString("| transport | during | expected | received | lost, no signal | lost, signalled | lost with the log: broker restart, retention (signalled) | dropped by drop-oldest/conflate (newest missed) | dup by id | dup by seq | reordered | signals (unwarranted) | reconnects | latency p50 / p99 / max ms |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, f := range r.Rows {
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d (%d) | %d | %d | %d | %d (%d) | %d | %.0f / %.0f / %.0f |\n",
				f.Transport, f.Phase, f.Expected, f.Received, f.LostUnsignaled, f.LostSignaled, f.LostGone, f.DroppedByPolicy, f.NewestMissed,
				f.DupByID, f.DupBySeq, f.Reordered, f.Signals, f.Unwarranted, f.Reconnects, f.LatencyP50, f.LatencyP99, f.LatencyMax)
		}
		b.WriteString("\n")
		if r.Policies != nil {
			p := r.Policies
			fmt.Fprintf(&b, "Slow consumers at the stall's end (edges' /stats): closed %d, paused and replayed (resume) %d (%d with a gap), dropped (drop-oldest, conflate) %d, conflated %d.\n\n",
				p["slow_closed"], p["resume_gaps"], p["resume_gaps_lost"], p["dropped"], p["conflated"])
		}
		if len(r.Failures) == 0 {
			b.WriteString("Targets: all met.\n\n")
		} else {
			b.WriteString("Targets missed:\n")
			for _, f := range r.Failures {
				fmt.Fprintf(&b, "- %s\n", f)
			}
			if len(r.Examples) > 0 {
				b.WriteString("\nFirst examples, by subscriber:\n")
				for _, e := range r.Examples {
					fmt.Fprintf(&b, "- %s\n", e)
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// timelineHTML draws, per broker, accepted publishes and deliveries per
// transport over time as SVG polylines, with the faults as bands.
func timelineHTML(w io.Writer, results []*result) error {
	type series struct {
		Name, Color, Points string
	}
	type band struct {
		Name     string
		X, Width float64
	}
	type chart struct {
		Broker   string
		Width    int
		Height   int
		Series   []series
		Bands    []band
		Seconds  float64
		Failures []string
	}
	colors := map[string]string{"accepted": "#888", "websocket": "#1f77b4", "sse": "#2ca02c", "longpoll": "#d62728",
		"browser-websocket": "#17becf", "browser-sse": "#bcbd22", "browser-longpoll": "#e377c2"}
	names := append([]string{"accepted"}, transports...)
	for _, t := range browserTransports {
		names = append(names, "browser-"+t)
	}
	var charts []chart
	for _, r := range results {
		t := r.Timeline
		n := len(t.Accepted)
		for _, d := range t.Deliveries {
			n = max(n, len(d))
		}
		if n == 0 {
			continue
		}
		const width, height = 1000, 240
		peak := 1
		all := map[string][]int{"accepted": t.Accepted}
		for k, v := range t.Deliveries {
			all[k] = v
		}
		for _, v := range all {
			for _, x := range v {
				peak = max(peak, x)
			}
		}
		c := chart{Broker: r.Broker, Width: width, Height: height, Seconds: float64(n*t.BucketMS) / 1000, Failures: r.Failures}
		for _, name := range names {
			v := all[name]
			if strings.HasPrefix(name, "browser-") && r.Subs[name] == 0 {
				continue // a run without such subscribers
			}
			var pts strings.Builder
			for i := range n {
				x := 0
				if i < len(v) {
					x = v[i]
				}
				fmt.Fprintf(&pts, "%.1f,%.1f ", float64(i)*width/float64(n), height-float64(x)*height/float64(peak))
			}
			c.Series = append(c.Series, series{Name: name, Color: colors[name], Points: pts.String()})
		}
		span := float64(n * t.BucketMS)
		for _, p := range r.Faults {
			x := float64(p.Start.Sub(r.Started).Milliseconds()) * width / span
			wd := max(2, float64(p.End.Sub(p.Start).Milliseconds())*width/span)
			c.Bands = append(c.Bands, band{Name: p.Name, X: x, Width: wd})
		}
		charts = append(charts, c)
	}
	return timelineTmpl.Execute(w, charts)
}

var timelineTmpl = template.Must(template.New("t").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Switchboard chaos timeline</title>
<style>body{font:14px sans-serif;margin:2em}svg{border:1px solid #ccc;background:#fff}.legend span{margin-right:1.5em}</style>
</head><body>
<h1>Switchboard fault-injection suite: timeline</h1>
<p>Per broker: accepted publishes (grey) and deliveries per transport per bucket; shaded bands are faults, from injection until the process was back.</p>
{{range .}}
<h2>{{.Broker}} ({{printf "%.0f" .Seconds}} s)</h2>
<div class="legend">{{range .Series}}<span style="color:{{.Color}}">&#9632; {{.Name}}</span>{{end}}</div>
<svg width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}">
{{range .Bands}}<rect x="{{.X}}" y="0" width="{{.Width}}" height="100%" fill="#f5c518" opacity="0.3"><title>{{.Name}}</title></rect>
<text x="{{.X}}" y="12" font-size="11">{{.Name}}</text>{{end}}
{{range .Series}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.2" points="{{.Points}}"/>{{end}}
</svg>
{{if .Failures}}<ul>{{range .Failures}}<li>{{.}}</li>{{end}}</ul>{{else}}<p>Targets: all met.</p>{{end}}
{{end}}
</body></html>
`))
