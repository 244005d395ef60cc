package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
)

func TestBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 123456789, 1 << 40, 1<<63 + 12345, ^uint64(0)} {
		i := bucketOf(v)
		if i < prev {
			t.Errorf("bucketOf(%d) = %d, below the previous %d", v, i, prev)
		}
		prev = i
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Errorf("%d is outside its bucket %d [%d, %d]", v, i, lo, hi)
		}
		if lo >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-12 {
			t.Errorf("bucket %d [%d, %d] is wider than 1/%d of its lower bound", i, lo, hi, subCount)
		}
	}
	// Adjacent buckets tile the line.
	for i := 1; i < numBuckets; i++ {
		_, hi := bucketBounds(i - 1)
		lo, _ := bucketBounds(i)
		if lo != hi+1 {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, hi)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var h histogram
	for v := 1; v <= 10000; v++ { // 1 µs … 10 ms, uniform
		h.record(time.Duration(v) * time.Microsecond)
	}
	var s hsnap
	s.add(&h)
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := s.quantile(c.q)
		if got < c.want || float64(got-c.want) > float64(c.want)/subCount {
			t.Errorf("quantile(%v) = %v, want %v (+1/%d)", c.q, got, c.want, subCount)
		}
	}
	if s.total != 10000 || time.Duration(s.max) != 10*time.Millisecond {
		t.Errorf("total %d max %v", s.total, time.Duration(s.max))
	}
	var empty hsnap
	if empty.quantile(0.99) != 0 {
		t.Error("empty histogram: want 0")
	}
	// One value: every quantile is that value exactly (capped at max).
	var one histogram
	one.record(1234567)
	var s1 hsnap
	s1.add(&one)
	if got := s1.quantile(0.5); got != 1234567 {
		t.Errorf("single value: quantile = %d", got)
	}
}

func TestParseLine(t *testing.T) {
	payload := appendPayload(nil, 1795344139268123456, 7, 128)
	if len(payload) != 128 || !json.Valid(payload) {
		t.Fatalf("payload %d bytes, valid %v: %s", len(payload), json.Valid(payload), payload)
	}
	line := []byte(`{"v":1,"id":"25gomkk4-1","type":"message","room":"load-x-0","from":"load-publisher","ts":1795344139268,"data":` + string(payload) + `}`)
	ts, step, ok := parseLine(line)
	if !ok || ts != 1795344139268123456 || step != 7 {
		t.Fatalf("parseLine = %d, %d, %v", ts, step, ok)
	}
	for _, bad := range []string{
		`{"v":1,"type":"welcome","data":{"conn":"x","user":"u","rooms":["r"]}}`,
		`{"v":1,"type":"ack","data":{"room":"r","id":"1-1"}}`,
		`{"v":1,"type":"message","data":{"lt":,"ls":1}}`,
		`{"v":1,"type":"message","data":{"lt":12,"p":"x"}}`,
		`{"v":1,"type":"message","data":{"lt":12,"ls":}}`,
		``,
	} {
		if _, _, ok := parseLine([]byte(bad)); ok {
			t.Errorf("parseLine(%s) = ok", bad)
		}
	}
	// A batched frame: two load messages around a pong.
	rec := &recorder{steps: make([]atomicStep, 8)}
	st := newStepStats(4)
	rec.steps[7].Store(st)
	frame := bytes.Join([][]byte{line, []byte(`{"v":1,"type":"pong"}`), line, nil}, []byte("\n"))
	rec.frame(0, frame, 1795344139268123456+int64(time.Millisecond))
	if st.delivered.Load() != 2 || rec.other.Load() != 1 {
		t.Fatalf("delivered %d other %d", st.delivered.Load(), rec.other.Load())
	}
	if q := st.snapshot().quantile(0.5); q != time.Millisecond {
		t.Errorf("latency %v, want 1ms", q)
	}
}

// TestFanoutSmoke runs the fanout scenario for two seconds with 20
// subscribers against an in-process edge, for each subscriber transport
// and publisher: everything published arrives. Rates and latencies are not
// asserted. The last case repeats the run (--runs 2) and checks the
// summary of the runs.
func TestFanoutSmoke(t *testing.T) {
	cfg := config.Default()
	cfg.Node.RateLimit = -1
	ln := startEdge(t, cfg)

	for _, c := range []struct {
		transport, publisher string
		runs                 int
	}{
		{"websocket", "http", 1},
		{"sse", "http", 1},
		{"longpoll", "http", 1},
		{"websocket", "ws", 1},
		{"longpoll", "http", 2},
	} {
		t.Run(fmt.Sprintf("%s-%s-%d", c.transport, c.publisher, c.runs), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			o := defaultOptions()
			o.stdout, o.stderr = &stdout, &stderr
			err := parseArgs(&o, []string{"fanout", "--url", "http://" + ln.Addr().String(),
				"--transport", c.transport, "--publisher", c.publisher, "--runs", strconv.Itoa(c.runs),
				"--subs", "20", "--rate", "50", "--duration", "2s", "--drain", "5s", "--progress", "off",
				"--html", t.TempDir() + "/report.html"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := run(ctx, o); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			dec := json.NewDecoder(&stdout)
			for i := range c.runs {
				var res fanoutResult
				if err := dec.Decode(&res); err != nil {
					t.Fatalf("result %d: %v", i+1, err)
				}
				if res.Run != i+1 || res.Publisher != c.publisher || res.Transport != c.transport {
					t.Errorf("run %d: run %d, publisher %q, transport %q", i+1, res.Run, res.Publisher, res.Transport)
				}
				if res.Published == 0 || res.DeliveredPerS <= 0 {
					t.Errorf("published %d, delivered/s %v: want both positive", res.Published, res.DeliveredPerS)
				}
				if res.LossPct != 0 || res.Delivered != res.Published*20 || res.Disconnects != 0 || res.PublishErrors != 0 || res.Acked != res.Published {
					t.Errorf("loss %v%%: delivered %d of %d×20, %d disconnects (%s), %d acked, %d publish errors (%s)",
						res.LossPct, res.Delivered, res.Published, res.Disconnects, res.Disconnect, res.Acked, res.PublishErrors, res.PublishError)
				}
			}
			if c.runs > 1 {
				var sum runsSummary
				if err := dec.Decode(&sum); err != nil {
					t.Fatalf("runs summary: %v", err)
				}
				if !sum.RunsSummary || sum.Measured != c.runs || sum.DeliveredPerS.Median <= 0 ||
					sum.DeliveredPerS.Min > sum.DeliveredPerS.Median || sum.DeliveredPerS.Median > sum.DeliveredPerS.Max {
					t.Errorf("runs summary %+v", sum)
				}
				if !strings.Contains(stderr.String(), fmt.Sprintf("median (min–max) of %d runs", c.runs)) {
					t.Errorf("no runs summary in the Markdown:\n%s", stderr.String())
				}
			}
			want := fmt.Sprintf("| fanout | switchboard | 1 | 1 | %s | %s | 20 |", c.transport, c.publisher)
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("no %q in the Markdown summary:\n%s", want, stderr.String())
			}
		})
	}
}

// TestFanoutCompressSmoke runs fanout with --compress=both and market
// payloads against an in-process edge (compression on by default): in
// each run the plain subscribers get no deflate and read at least the
// envelopes' size, the offering ones all have it accepted and read far
// less, but not less than each envelope deflated on its own.
func TestFanoutCompressSmoke(t *testing.T) {
	cfg := config.Default()
	cfg.Node.RateLimit = -1
	ln := startEdge(t, cfg)
	dec, md := runTool(t, "fanout", "--url", "http://"+ln.Addr().String(), "--compress=both", "--payload", "market",
		"--subs", "10", "--rate", "40", "--duration", "1s", "--drain", "5s", "--runs", "2")
	for i := range 4 {
		var res fanoutResult
		if err := dec.Decode(&res); err != nil {
			t.Fatalf("result %d: %v", i+1, err)
		}
		offered := i%2 == 1
		if res.Run != i/2+1 || res.DeflateOffered != offered || res.PayloadKind != "market" || res.PayloadBytes < 1800 {
			t.Errorf("result %d: run %d, offered %v, payload %s %d B", i+1, res.Run, res.DeflateOffered, res.PayloadKind, res.PayloadBytes)
		}
		if res.Published == 0 || res.LossPct != 0 || res.Delivered != res.Published*10 || res.Disconnects != 0 {
			t.Errorf("result %d: published %d, delivered %d, loss %v%%, disconnects %d (%s)", i+1, res.Published, res.Delivered, res.LossPct, res.Disconnects, res.Disconnect)
		}
		if res.EnvelopeBytes < float64(res.PayloadBytes) || res.OwnDeflateBytes <= 0 || res.OwnDeflateBytes > res.EnvelopeBytes/2 {
			t.Errorf("result %d: envelope %.1f B, own deflate %.1f B", i+1, res.EnvelopeBytes, res.OwnDeflateBytes)
		}
		switch {
		case !offered && (res.DeflatedSubs != 0 || res.WireBytesPerDelivery < res.EnvelopeBytes):
			t.Errorf("plain run %d: %d deflated subscribers, %.1f B/delivery for %.1f B envelopes", res.Run, res.DeflatedSubs, res.WireBytesPerDelivery, res.EnvelopeBytes)
		case offered && (res.DeflatedSubs != 10 || res.WireBytesPerDelivery > res.EnvelopeBytes/2 || res.WireBytesPerDelivery < res.OwnDeflateBytes*0.9):
			t.Errorf("deflate run %d: %d deflated subscribers, %.1f B/delivery for %.1f B envelopes, %.1f B each deflated",
				res.Run, res.DeflatedSubs, res.WireBytesPerDelivery, res.EnvelopeBytes, res.OwnDeflateBytes)
		}
		if res.LoadCPUPerDelivery <= 0 {
			t.Errorf("result %d: load CPU %.2f µs/delivery", i+1, res.LoadCPUPerDelivery)
		}
	}
	for _, offered := range []bool{false, true} {
		var sum runsSummary
		if err := dec.Decode(&sum); err != nil {
			t.Fatalf("runs summary: %v", err)
		}
		if !sum.RunsSummary || sum.DeflateOffered != offered || sum.Measured != 2 || sum.WireBytesPerDelivery.Median <= 0 || sum.OwnDeflateBytes.Median <= 0 {
			t.Errorf("runs summary %+v", sum)
		}
	}
	for _, want := range []string{"| market ~", "| no offer |", "| 10/10 |", "**fanout, switchboard, market payload, deflate offered, median (min–max) of 2 runs**"} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in the Markdown:\n%s", want, md)
		}
	}
}

func TestSpread(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want spread
	}{
		{[]float64{3, 1, 2}, spread{2, 1, 3}},
		{[]float64{4, 1, 3, 2}, spread{2.5, 1, 4}},
		{[]float64{7}, spread{7, 7, 7}},
		{nil, spread{}},
	} {
		if got := spreadOf(c.in); got != c.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

// startEdge serves an in-process edge with cfg on a free loopback port
// until the test ends, and returns its listener.
func startEdge(t *testing.T, cfg config.Config) net.Listener {
	t.Helper()
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln
}

// TestSampledSmoke runs fanout, then a two-step saturate, with
// --compress=both, market payloads and an inflation sample of 6 of 30
// subscribers in 3 rooms against an in-process edge. Without the offer
// every subscriber is measured, as before; with it, 2 per room inflate
// and are measured, deliveries/s are theirs ×5, and the other 24 read as
// many bytes and drop as many compressed messages as the sample reads
// frames.
func TestSampledSmoke(t *testing.T) {
	cfg := config.Default()
	cfg.Node.RateLimit = -1
	ln := startEdge(t, cfg)
	for _, scenario := range []string{"fanout", "saturate"} {
		t.Run(scenario, func(t *testing.T) {
			dec, md := runTool(t, scenario, "--url", "http://"+ln.Addr().String(), "--compress=both", "--payload", "market",
				"--inflate-sample", "6", "--subs", "30", "--rooms", "3", "--rate", "40", "--rate-start", "40", "--max-steps", "2",
				"--duration", "1s", "--drain", "5s")
			steps := 1
			if scenario == "saturate" {
				steps = 2
			}
			for _, offered := range []bool{false, true} {
				for range steps {
					var res fanoutResult
					if err := dec.Decode(&res); err != nil {
						t.Fatal(err)
					}
					checkSampled(t, &res, offered)
				}
				if scenario == "saturate" {
					var sum saturateSummary
					if err := dec.Decode(&sum); err != nil {
						t.Fatal(err)
					}
					if !sum.Summary || sum.DeflateOffered != offered || sum.Extrapolated != offered || (offered && sum.InflateSample != 6) || sum.MaxDeliveriesPerS <= 0 {
						t.Errorf("saturate summary %+v", sum)
					}
				}
			}
			for _, want := range []string{"| all |", "| 6/30 (×5.00) |"} {
				if !strings.Contains(md, want) {
					t.Errorf("no %q in the Markdown:\n%s", want, md)
				}
			}
		})
	}
}

// checkSampled checks one step of TestSampledSmoke.
func checkSampled(t *testing.T, res *fanoutResult, offered bool) {
	t.Helper()
	if res.DeflateOffered != offered || res.Published == 0 || res.LossPct != 0 || res.Disconnects != 0 {
		t.Errorf("offered %v: published %d, loss %v%%, disconnects %d (%s)", res.DeflateOffered, res.Published, res.LossPct, res.Disconnects, res.Disconnect)
	}
	if res.Sustainable != nil && !*res.Sustainable {
		t.Errorf("offered %v: step %d at %.0f msg/s not sustainable", offered, res.Step+1, res.RateTarget)
	}
	s := res.Sample
	if !offered {
		if res.Extrapolated || s != nil || res.Delivered != res.Published*10 {
			t.Errorf("plain: extrapolated %v, sample %+v, delivered %d of %d×10 (members per room)", res.Extrapolated, s, res.Delivered, res.Published)
		}
		return
	}
	if !res.Extrapolated || s == nil {
		t.Fatalf("deflate: extrapolated %v, sample %+v", res.Extrapolated, s)
	}
	if res.Delivered != res.Published*2 || res.DeflatedSubs != 30 {
		t.Errorf("deflate: delivered %d, want %d×2 (the sample's members per room); %d deflated", res.Delivered, res.Published, res.DeflatedSubs)
	}
	if s.Subscribers != 6 || s.Others != 24 || s.Scale != 5 || math.Abs(res.DeliveredPerS-s.DeliveredPerS*5) > 1e-6 {
		t.Errorf("deflate: sample %+v, delivered/s %v", *s, res.DeliveredPerS)
	}
	// The server batches what queued up, differently for each
	// subscriber: frames and dropped messages per subscriber are close,
	// not equal; bytes hardly differ.
	if s.FramesPerSub <= 0 || s.OthersDroppedPerSub < s.FramesPerSub*0.8 || s.OthersDroppedPerSub > float64(res.Published) {
		t.Errorf("deflate: %.2f frames per sampled subscriber, %.2f dropped per other (%d published)", s.FramesPerSub, s.OthersDroppedPerSub, res.Published)
	}
	if s.OthersWireRatio < minWireRatio || s.OthersWireRatio > 1.2 || s.OthersWireRatioMin < 0.8 {
		t.Errorf("deflate: others' bytes over the sample's %.3f (least %.3f)", s.OthersWireRatio, s.OthersWireRatioMin)
	}
	if res.WireBytesPerDelivery > res.EnvelopeBytes/2 || res.WireBytesPerDelivery < res.OwnDeflateBytes*0.9 {
		t.Errorf("deflate: the sample read %.1f B/delivery for %.1f B envelopes, %.1f B each deflated", res.WireBytesPerDelivery, res.EnvelopeBytes, res.OwnDeflateBytes)
	}
}

func TestPickSample(t *testing.T) {
	for _, c := range []struct {
		subs, rooms, n int
		want           []int64 // sample members per room; nil: all read in full
	}{
		{1000, 1, 50, []int64{50}},
		{1000, 10, 50, []int64{5, 5, 5, 5, 5, 5, 5, 5, 5, 5}},
		{1000, 3, 50, []int64{17, 17, 17}},
		{30, 3, 6, []int64{2, 2, 2}},
		{100, 60, 10, slices.Repeat([]int64{1}, 60)}, // at least one per room
		{1000, 1, 0, nil},
		{50, 1, 50, nil},
		{10, 1, 50, nil},
		{4, 4, 2, nil}, // one per room is everyone
	} {
		in, members := pickSample(c.subs, c.rooms, c.n)
		if !slices.Equal(members, c.want) || (in == nil) != (c.want == nil) {
			t.Errorf("pickSample(%d, %d, %d): members %v, want %v", c.subs, c.rooms, c.n, members, c.want)
			continue
		}
		if in == nil {
			continue
		}
		// The choice agrees with the members per room, and is spread
		// over each room's join order: no two picks of a room adjacent
		// unless the room is mostly sample.
		got := make([]int64, c.rooms)
		last := map[int]int{}
		for i, ok := range in {
			if !ok {
				continue
			}
			r, pos := i%c.rooms, i/c.rooms
			got[r]++
			m := (c.subs - r + c.rooms - 1) / c.rooms
			if p, seen := last[r]; seen && pos-p < m/int(members[r]) {
				t.Errorf("pickSample(%d, %d, %d): room %d picks positions %d and %d of %d", c.subs, c.rooms, c.n, r, p, pos, m)
			}
			last[r] = pos
		}
		if !slices.Equal(got, members) {
			t.Errorf("pickSample(%d, %d, %d): picks per room %v, members %v", c.subs, c.rooms, c.n, got, members)
		}
	}
}
