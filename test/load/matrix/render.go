package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// obj is one JSON line of the load tool, read by field name: the tool's
// JSON lines are this program's only interface to it.
type obj map[string]any

func parseLines(r io.Reader) ([]obj, error) {
	var out []obj
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20) // steps carry histograms
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var o obj
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			return out, fmt.Errorf("JSON line: %w", err)
		}
		out = append(out, o)
	}
	return out, sc.Err()
}

// num follows path through nested objects to a number; NaN if absent.
func (o obj) num(path ...string) float64 {
	var v any = map[string]any(o)
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return math.NaN()
		}
		v = m[k]
	}
	switch x := v.(type) {
	case float64:
		return x
	case bool:
		if x {
			return 1
		}
		return 0
	}
	return math.NaN()
}

func (o obj) str(k string) string {
	s, _ := o[k].(string)
	return s
}

func (o obj) is(k string) bool {
	b, _ := o[k].(bool)
	return b
}

func (o obj) has(k string) bool {
	_, ok := o[k]
	return ok
}

// entryResult is what one entry produced.
type entryResult struct {
	entry
	lines   []obj
	wall    time.Duration
	err     error
	skipped string
}

// figures are one server's per-run values of one entry, by figure name.
type figures struct {
	server    string
	runs      int
	vals      map[string][]float64
	disturbed int
	none      int // saturate runs without a sustainable step
}

func (f *figures) add(name string, v float64) {
	if !math.IsNaN(v) {
		f.vals[name] = append(f.vals[name], v)
	}
}

// median of a figure over the runs; NaN without values.
func (f *figures) median(name string) float64 {
	v := slices.Clone(f.vals[name])
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// collect turns an entry's JSON lines into per-server figures, in the
// order the servers appear. Runs summaries are ignored: every run's own
// line is here, and the medians are taken the same way in the quick form
// (one run) and the full one.
func collect(r entryResult) []*figures {
	var order []*figures
	byServer := map[string]*figures{}
	get := func(o obj) *figures {
		name := o.str("server_name")
		f := byServer[name]
		if f == nil {
			f = &figures{server: name, vals: map[string][]float64{}}
			byServer[name] = f
			order = append(order, f)
		}
		return f
	}
	for _, o := range r.lines {
		if o.is("runs_summary") || o.str("scenario") != r.scenario {
			continue
		}
		switch r.scenario {
		case "fanout":
			f := get(o)
			f.runs++
			fanoutFigures(f, o)
		case "saturate":
			if !o.is("summary") {
				continue
			}
			f := get(o)
			f.runs++
			best := o.num("max_sustainable_deliveries_per_s")
			if best <= 0 || math.IsNaN(best) {
				f.none++
				continue
			}
			f.add("sustainable", best)
			f.add("at_rate", o.num("at_rate"))
			// The step that was the run's best: same server, run and rate.
			for _, s := range r.lines {
				if s.has("step") && s.str("server_name") == f.server && s.num("run") == o.num("run") &&
					s.num("rate_target") == o.num("at_rate") && s.is("sustainable") {
					f.add("p99", s.num("latency_ms", "p99"))
					f.add("cpu_us", s.num("server", "cpu_cores")/s.num("delivered_per_s")*1e6)
					if s.is("disturbed") {
						f.disturbed++
					}
				}
			}
		case "idle":
			f := get(o)
			f.runs++
			for _, k := range []string{"rss_bytes_per_conn", "heap_bytes_per_conn", "goroutines_per_conn", "connects_per_s"} {
				f.add(k, o.num(k))
			}
		case "churn":
			f := get(o)
			f.runs++
			for _, k := range []string{"connects_per_s", "cycles_per_s", "return_seconds", "rss_retained_pct", "waves", "connects", "connect_errors", "goroutine_growth"} {
				f.add(k, o.num(k))
			}
			f.add("returned", o.num("connections_returned")*o.num("goroutines_returned"))
			f.add("bounded", o.num("memory_bounded"))
		case "resume":
			f := get(o)
			f.runs++
			for _, k := range []string{"replayed_per_s", "reconnect_seconds", "first_replay_ms", "replay_seconds", "lost", "duplicates", "loss_pct", "not_recovered", "subscribers", "messages"} {
				f.add(k, o.num(k))
			}
		}
	}
	return order
}

func fanoutFigures(f *figures, o obj) {
	f.add("delivered", o.num("delivered_per_s"))
	f.add("loss", o.num("loss_pct"))
	f.add("p50", o.num("latency_ms", "p50"))
	f.add("p99", o.num("latency_ms", "p99"))
	f.add("p999", o.num("latency_ms", "p999"))
	f.add("cpu_us", o.num("server", "cpu_cores")/o.num("delivered_per_s")*1e6)
	if o.is("disturbed") {
		f.disturbed++
	}
}

// fmtNum formats v with thousands separators and prec decimals; "–" for
// NaN.
func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	s := fmt.Sprintf("%.*f", prec, v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

func ratio(v, base float64) string {
	if math.IsNaN(v) || math.IsNaN(base) || base == 0 {
		return ""
	}
	return fmt.Sprintf(" (%.2f×)", v/base)
}

// render builds the doc block.
func render(results []entryResult, m machineInfo) string {
	byName := map[string]entryResult{}
	for _, r := range results {
		byName[r.name] = r
	}
	server := func(name, srv string) *figures {
		r, ok := byName[name]
		if !ok || r.skipped != "" {
			return nil
		}
		for _, f := range collect(r) {
			if f.server == srv {
				return f
			}
		}
		return nil
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("## Standard matrix (`make bench`)\n\n")
	w("_Generated by `make bench` (test/load/matrix); do not edit by hand between the bench markers._\n\n")
	runs := "medians of 3 runs"
	if m.quick {
		runs = "**reduced form (`BENCH_QUICK=1`): one run each and small counts, a smoke check, not a result**"
	}
	w("Measured %s at commit `%s`: %s, the whole matrix in %s (budget %s).\n",
		m.when.Format("2006-01-02 15:04 MST"), m.commit, runs, m.took.Round(time.Second), m.budget)
	w("Machine: %d CPUs (%s), %s, Linux %s, %s, `ulimit -n` %d; %s.\n\n", m.cpus, m.model, m.memory, m.kernel, m.goVersion, m.noFile, m.pinned)

	var notes []string
	for _, r := range results {
		switch {
		case r.skipped == notSelected:
		case r.skipped != "":
			notes = append(notes, fmt.Sprintf("`%s`: %s.", r.name, r.skipped))
		case r.err != nil:
			notes = append(notes, fmt.Sprintf("`%s` failed after %s: %s.", r.name, r.wall.Round(time.Second), firstLine(r.err.Error())))
		}
		for _, f := range collect(r) {
			if f.disturbed > 0 {
				notes = append(notes, fmt.Sprintf("`%s` %s: %d figure(s) measured while other processes used more than 0.25 CPU cores.", r.name, f.server, f.disturbed))
			}
		}
	}

	// Fan-out.
	w("**Fan-out** (one publisher over `POST /send`, 128-byte JSON payloads carrying the send time; latency is publish → deliver):\n\n")
	w("| measurement | delivered/s | loss %% | p50 ms | p99 ms | p99.9 ms | server CPU µs per delivery |\n|---|---|---|---|---|---|---|\n")
	for _, row := range []struct{ entry, label string }{
		{"ws-fanout-1k", "WebSocket, 1 room × %s subscribers, 100 msg/s"},
		{"ws-fanout-5k", "WebSocket, 1 room × %s subscribers, 100 msg/s"},
		{"rooms", "WebSocket, %s rooms × %s subscribers, %s msg/s in total"},
		{"sse-fanout-1k", "SSE, 1 room × %s subscribers, 100 msg/s"},
		{"longpoll-fanout-1k", "long-poll, 1 room × %s subscribers, 100 msg/s"},
	} {
		f := server(row.entry, "switchboard")
		label := fmt.Sprintf(row.label, subsLabel(byName[row.entry], false))
		if row.entry == "rooms" {
			r := byName[row.entry]
			label = fmt.Sprintf(row.label, argOf(r, "--rooms"), subsLabel(r, true), fmtNum(num(argOf(r, "--rate")), 0))
		}
		if f == nil {
			w("%s", emptyRow(7, label, missing(byName, row.entry)))
			continue
		}
		w("| %s | %s | %s | %s | %s | %s | %s |\n", label, fmtNum(f.median("delivered"), 0), fmtNum(f.median("loss"), 3),
			fmtNum(f.median("p50"), 2), fmtNum(f.median("p99"), 2), fmtNum(f.median("p999"), 2), fmtNum(f.median("cpu_us"), 2))
	}
	w("\nRooms: the rooms row has the deliveries per second of the first row spread over many small rooms; a cost per delivery that stays flat as rooms multiply means their CPU figures match.\n\n")

	// Saturation.
	w("**Saturation** (rate raised ×1.5 per step from 50 msg/s; sustainable = ≥ 99%% delivered and p99 ≤ 250 ms):\n\n")
	w("| measurement | sustainable deliveries/s | at msg/s | p99 ms there | server CPU µs per delivery | runs without a sustainable step |\n|---|---|---|---|---|---|\n")
	for _, row := range []struct{ entry, label string }{
		{"ws-saturate-1k", "WebSocket, 1 room × %s subscribers"},
		{"sse-saturate-1k", "SSE, 1 room × %s subscribers"},
		{"longpoll-saturate-1k", "long-poll, 1 room × %s subscribers"},
	} {
		f := server(row.entry, "switchboard")
		label := fmt.Sprintf(row.label, subsLabel(byName[row.entry], false))
		if f == nil {
			w("%s", emptyRow(6, label, missing(byName, row.entry)))
			continue
		}
		w("| %s | %s | %s | %s | %s | %d of %d |\n", label, fmtNum(f.median("sustainable"), 0), fmtNum(f.median("at_rate"), 0),
			fmtNum(f.median("p99"), 2), fmtNum(f.median("cpu_us"), 2), f.none, f.runs)
	}
	w("\n")

	// Idle.
	idleName := "idle-19k"
	if m.quick {
		idleName = "idle-2k"
	}
	w("**Idle WebSocket connections** (%s connections over 16 source addresses 127.0.0.x, measured after a %s settle, a fresh server per run; per connection = (after − before) ÷ connections):\n\n",
		connsLabel(byName[idleName]), argOf(byName[idleName], "--settle"))
	w("| server | RSS per connection | Go heap per connection | goroutines per connection | connects/s | projected RSS at 100,000 | at 1,000,000 |\n|---|---|---|---|---|---|---|\n")
	for _, srv := range []string{"switchboard", "fiber", "centrifuge"} {
		f := server(idleName, srv)
		if f == nil {
			w("%s", emptyRow(7, srv, missing(byName, idleName)))
			continue
		}
		rss := f.median("rss_bytes_per_conn")
		w("| %s | %s B | %s B | %s | %s | %s | %s |\n", srv, fmtNum(rss, 0), fmtNum(f.median("heap_bytes_per_conn"), 0),
			fmtNum(f.median("goroutines_per_conn"), 2), fmtNum(f.median("connects_per_s"), 0), gib(rss*1e5), gib(rss*1e6))
	}
	w("\n")

	// Peers.
	w("**Peers in the same run** (value, and peer ÷ Switchboard; the same tool, payload and pinning; `fiber` is raw Fiber + contrib/websocket writing each message to each connection in turn, `centrifuge` is github.com/centrifugal/centrifuge with its own WebSocket handler and JSON protocol, server-side subscriptions; see test/load/peers):\n\n")
	w("| figure | switchboard | fiber | centrifuge |\n|---|---|---|---|\n")
	peerRow := func(label, entryName, fig string, prec int) {
		base := server(entryName, "switchboard")
		cells := []string{label}
		var bv float64 = math.NaN()
		if base != nil {
			bv = base.median(fig)
		}
		for _, srv := range []string{"switchboard", "fiber", "centrifuge"} {
			f := server(entryName, srv)
			if f == nil {
				cells = append(cells, "–")
				continue
			}
			v := f.median(fig)
			c := fmtNum(v, prec)
			if srv != "switchboard" {
				c += ratio(v, bv)
			}
			cells = append(cells, c)
		}
		w("| %s |\n", strings.Join(cells, " | "))
	}
	peerRow("fan-out delivered/s ("+subsLabel(byName["ws-fanout-1k"], false)+" subs × 100 msg/s)", "ws-fanout-1k", "delivered", 0)
	peerRow("fan-out p50 ms", "ws-fanout-1k", "p50", 2)
	peerRow("fan-out p99 ms", "ws-fanout-1k", "p99", 2)
	peerRow("fan-out server CPU µs per delivery", "ws-fanout-1k", "cpu_us", 2)
	peerRow("sustainable deliveries/s ("+subsLabel(byName["ws-saturate-1k"], false)+" subs)", "ws-saturate-1k", "sustainable", 0)
	peerRow("idle RSS bytes per connection", idleName, "rss_bytes_per_conn", 0)
	peerRow("idle goroutines per connection", idleName, "goroutines_per_conn", 2)
	w("\n")

	// Churn and resume.
	if f := server("churn", "switchboard"); f != nil {
		w("**Churn** (waves of %s WebSocket connections opened, each to its welcome, then closed, alternately with a close frame and by dropping the socket, for %s): "+
			"%s connects/s while connecting, %s connect+close cycles/s, %s connects in %s waves (median), %s connect errors; "+
			"connections and goroutines back at their baseline in %d of %d runs (median %s s after the storm); "+
			"memory bounded (later waves reuse what earlier ones left) in %d of %d runs; %s%% of the storm's peak RSS growth still resident after the wait.\n\n",
			fmtNum(num(argOf(byName["churn"], "--conns")), 0), argOf(byName["churn"], "--duration"),
			fmtNum(f.median("connects_per_s"), 0), fmtNum(f.median("cycles_per_s"), 0), fmtNum(f.median("connects"), 0), fmtNum(f.median("waves"), 0),
			fmtNum(f.median("connect_errors"), 0), count(f.vals["returned"]), f.runs, fmtNum(f.median("return_seconds"), 1),
			count(f.vals["bounded"]), f.runs, fmtNum(f.median("rss_retained_pct"), 0))
	} else {
		w("**Churn**: %s.\n\n", missing(byName, "churn"))
	}
	if f := server("resume", "switchboard"); f != nil {
		w("**Resume** (%s WebSocket subscribers away while %s messages are published, then all reconnect with `since=` at once, 256 dials in flight, with 100 msg/s of live traffic racing the replay): "+
			"%s replayed messages/s (replay done %s s after the first dial, first replayed message after %s ms, every welcome after %s s); "+
			"lost %s, duplicates %s, `recovered:false` %s (medians).\n\n",
			fmtNum(f.median("subscribers"), 0), fmtNum(f.median("messages"), 0), fmtNum(f.median("replayed_per_s"), 0), fmtNum(f.median("replay_seconds"), 2),
			fmtNum(f.median("first_replay_ms"), 1), fmtNum(f.median("reconnect_seconds"), 2), fmtNum(f.median("lost"), 0),
			fmtNum(f.median("duplicates"), 0), fmtNum(f.median("not_recovered"), 0))
	} else {
		w("**Resume**: %s.\n\n", missing(byName, "resume"))
	}

	if len(notes) > 0 {
		w("Notes:\n\n")
		for _, n := range notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	w("Reproduce: `ulimit -n 20000 && make bench` (about 21 minutes, bounded at 25; JSON lines and HTML reports per entry in `test/artifacts/bench/`), " +
		"`BENCH_QUICK=1 make bench` for the reduced form (a few minutes, prints the block only), `make bench-core` for the Go benchmarks of `core` below. " +
		"One entry: `go -C test/load run ./matrix --only ws-fanout-1k`; the list: `go -C test/load run ./matrix --list`.\n")
	return b.String()
}

// emptyRow is a table row of cols cells: the label, why there is no
// figure, and empty cells.
func emptyRow(cols int, label, why string) string {
	return "| " + label + " | " + why + " |" + strings.Repeat(" |", cols-2) + "\n"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func count(v []float64) int {
	n := 0
	for _, x := range v {
		if x == 1 {
			n++
		}
	}
	return n
}

func gib(bytes float64) string {
	if math.IsNaN(bytes) {
		return "–"
	}
	return fmt.Sprintf("%.1f GiB", bytes/(1<<30))
}

// missing says why an entry has no figures.
func missing(byName map[string]entryResult, name string) string {
	r, ok := byName[name]
	switch {
	case !ok:
		return "not run"
	case r.skipped != "":
		return r.skipped
	case r.err != nil:
		return "failed (see notes)"
	}
	return "no result"
}

// argOf is the value following flag in the entry's arguments.
func argOf(r entryResult, flag string) string {
	if i := slices.Index(r.args, flag); i >= 0 && i+1 < len(r.args) {
		return r.args[i+1]
	}
	return "?"
}

// num parses a number argument; NaN if it is not one.
func num(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// subsLabel is the entry's --subs, or per room its --subs ÷ --rooms.
func subsLabel(r entryResult, perRoom bool) string {
	n := num(argOf(r, "--subs"))
	if perRoom {
		n = math.Floor(n / num(argOf(r, "--rooms")))
	}
	return fmtNum(n, 0)
}

func connsLabel(r entryResult) string { return fmtNum(num(argOf(r, "--conns")), 0) }
