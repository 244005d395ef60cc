package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// output collects results and shows progress. Results go out as JSON lines
// at once; the Markdown summary and the HTML report are written at the end.
type output struct {
	mode    string // bar, plain or off
	status  io.Writer
	jsonW   io.Writer
	jsonF   *os.File // nil when JSON goes to stdout
	md      io.Writer
	results []any
}

func newOutput(o options) (*output, error) {
	out := &output{mode: o.progress, status: o.stderr, jsonW: o.stdout, md: o.stderr}
	if out.mode == "auto" {
		out.mode = "plain"
		if isTerminal(o.stderr) {
			out.mode = "bar"
		}
	}
	if o.jsonPath != "" && o.jsonPath != "-" {
		f, err := os.Create(o.jsonPath)
		if err != nil {
			return nil, fmt.Errorf("--json: %w", err)
		}
		out.jsonF, out.jsonW, out.md = f, f, o.stdout
	}
	return out, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (out *output) close() {
	if out.jsonF != nil {
		_ = out.jsonF.Close()
	}
}

func (out *output) result(v any) {
	out.results = append(out.results, v)
	_ = json.NewEncoder(out.jsonW).Encode(v)
}

func (out *output) note(s string) {
	if out.mode != "off" {
		fmt.Fprintln(out.status, s)
	}
}

// finish writes the Markdown summary and the HTML report.
func (out *output) finish(o options) error {
	writeMarkdown(out.md, out.results)
	if o.htmlPath == "" {
		return nil
	}
	f, err := os.Create(o.htmlPath)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := writeHTML(f, o, out.results); err != nil {
		f.Close()
		return fmt.Errorf("--html: %w", err)
	}
	return f.Close()
}

// progress shows one bounded phase: a bar on a terminal, a plain line at
// most every second otherwise. add1 is safe for concurrent use.
type progress struct {
	bar  *progressbar.ProgressBar
	w    io.Writer
	desc string
	max  int64
	n    atomic.Int64
	mu   sync.Mutex
	last time.Time
}

func (out *output) progress(desc string, max int64) *progress {
	p := &progress{desc: desc, max: max}
	switch out.mode {
	case "bar":
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(out.status),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionClearOnFinish(),
		)
	case "plain":
		p.w = out.status
		p.last = time.Now()
	}
	return p
}

func (p *progress) add1() { p.set(p.n.Add(1), "") }

// set reports n of max done; a non-empty desc replaces the description.
func (p *progress) set(n int64, desc string) {
	p.n.Store(n)
	switch {
	case p.bar != nil:
		if desc != "" {
			p.bar.Describe(desc)
		}
		_ = p.bar.Set64(n)
	case p.w != nil:
		p.mu.Lock()
		defer p.mu.Unlock()
		if desc != "" {
			p.desc = desc
		}
		if time.Since(p.last) >= time.Second {
			p.last = time.Now()
			fmt.Fprintf(p.w, "%s: %d/%d\n", p.desc, n, p.max)
		}
	}
}

func (p *progress) done() {
	switch {
	case p.bar != nil:
		_ = p.bar.Finish()
	case p.w != nil:
		fmt.Fprintf(p.w, "%s: done\n", p.desc)
	}
}
