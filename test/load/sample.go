package main

import (
	"fmt"
	"math"
)

// With --compress, a subscriber that inflates every message costs the
// tool far more CPU than it costs a server that compresses each message
// once for all its recipients: at 1,000 subscribers the tool, not the
// server, is what saturates. So only a sample (--inflate-sample, about N
// subscribers) reads through the WebSocket library and is measured:
// deliveries, loss against what the sample's own rooms were sent,
// latency, wire bytes per delivery. The other subscribers negotiate
// permessage-deflate and read every byte from their sockets, so the
// server writes to them as to anyone and TCP backpressure is real, but
// their frameFilter drops compressed messages unread (wsfilter.go).
//
// The fleet's deliveries per second are then the sample's times the
// expected deliveries of all subscribers over the sample's (subs/sample
// with one room), marked extrapolated. What checks that the others kept
// up: the mean bytes each read over the mean each sampled subscriber read
// (about 1; below minWireRatio a saturate step is not sustainable), the
// compressed messages each dropped next to the frames each sampled one
// read, their disconnects, and the server's slow-consumer closes and
// drops from /stats.

// defaultInflateSample is --inflate-sample's default. Each sampled
// subscriber inflates every message, about 14 µs for a 2.3 KB market
// snapshot here (each message has its own Huffman tables): 50 of them
// took about half of the tool's core at 600 msg/s, and the sample, not
// the server, was what fell behind (a saturate ramp ended at 608 msg/s,
// against 1,064 with 10).
const defaultInflateSample = 10

// minWireRatio is the least mean of the bytes read per other subscriber,
// over the sample's mean, at which a sampled step counts as sustainable.
const minWireRatio = 0.95

// pickSample chooses about n of subs subscribers to read in full, where
// subscriber i is in room i mod rooms and is the (i / rooms)-th to join
// it. Each room gets its share of n (rounded, at least one), spread evenly
// over the order in which its members join, so the sample is spread over
// the rooms as all subscribers are, and over the server's order of them.
// It returns the choice per subscriber and the sample's members per
// room, or nil, nil when every subscriber is to read in full (n is 0 or
// at least subs).
func pickSample(subs, rooms, n int) ([]bool, []int64) {
	if n <= 0 || n >= subs {
		return nil, nil
	}
	in := make([]bool, subs)
	members := make([]int64, rooms)
	total := 0
	for r := range rooms {
		m := (subs - r + rooms - 1) / rooms // subscribers r, r+rooms, …
		k := min(m, max(1, int(math.Round(float64(m)*float64(n)/float64(subs)))))
		for j := range k {
			in[(2*j+1)*m/(2*k)*rooms+r] = true
		}
		members[r] = int64(k)
		total += k
	}
	if total >= subs {
		return nil, nil
	}
	return in, members
}

// sampleFigures is a sampled step's measurement of its sample and the
// checks on the other subscribers (see the comment at the top of this
// file).
type sampleFigures struct {
	Subscribers int `json:"subscribers"` // in the sample: inflating, measured
	Others      int `json:"others"`      // reading without inflating
	// Scale is what the sample's deliveries were multiplied by: the
	// expected deliveries of all subscribers over the sample's.
	Scale         float64 `json:"scale"`
	DeliveredPerS float64 `json:"delivered_per_s"` // the sample's own
	WireBytes     int64   `json:"wire_bytes"`      // the sample's own
	// OthersWireRatio is the mean of the bytes each other subscriber read
	// over the mean each sampled one read; OthersWireRatioMin the least
	// other subscriber's over the same mean.
	OthersWireRatio    float64 `json:"others_wire_ratio"`
	OthersWireRatioMin float64 `json:"others_wire_ratio_min"`
	// OthersDroppedPerSub is the compressed messages each other
	// subscriber dropped unread, OthersPassedPerSub the uncompressed
	// messages each read, and FramesPerSub the messages (frames) each
	// sampled subscriber read, all on average.
	OthersDroppedPerSub float64 `json:"others_dropped_per_sub"`
	OthersPassedPerSub  float64 `json:"others_passed_per_sub"`
	FramesPerSub        float64 `json:"frames_per_sub"`
}

// othersCounts are the other subscribers' filter counters at one moment.
type othersCounts struct {
	bytes, dropped, passed int64
	each                   []int64 // bytes, per subscriber
}

// others reads the counters of the subscribers outside the sample.
func (f *fleet) others() othersCounts {
	f.mu.Lock()
	filters := f.filters
	f.mu.Unlock()
	c := othersCounts{each: make([]int64, len(filters))}
	for i, ff := range filters {
		b := ff.bytes.Load()
		c.each[i] = b
		c.bytes += b
		c.dropped += ff.dropped.Load()
		c.passed += ff.passed.Load()
	}
	return c
}

// sampleStep measures a sampled step: n subscribers in the sample, which
// read frames messages and sample of the wire bytes; o0 and o1 are the
// others' counters at the step's start and end.
func sampleStep(n int, scale float64, wire, frames int64, o0, o1 othersCounts) *sampleFigures {
	s := &sampleFigures{Subscribers: n, Others: len(o1.each), Scale: scale, WireBytes: wire}
	s.FramesPerSub = float64(frames) / float64(n)
	if s.Others == 0 || len(o0.each) != s.Others {
		return s
	}
	others := float64(s.Others)
	s.OthersDroppedPerSub = float64(o1.dropped-o0.dropped) / others
	s.OthersPassedPerSub = float64(o1.passed-o0.passed) / others
	perSample := float64(wire) / float64(n)
	if perSample <= 0 {
		return s
	}
	s.OthersWireRatio = float64(o1.bytes-o0.bytes) / others / perSample
	least := int64(math.MaxInt64)
	for i := range o1.each {
		least = min(least, o1.each[i]-o0.each[i])
	}
	s.OthersWireRatioMin = float64(least) / perSample
	return s
}

// failure says why the others' checks fail a step ("" if they pass):
// they read less than minWireRatio of the sample's bytes, or the server
// dropped messages or closed slow consumers.
func (s *sampleFigures) failure(slowClosed, dropped uint64) string {
	switch {
	case s == nil:
		return ""
	case s.Others > 0 && s.OthersWireRatio < minWireRatio:
		return fmt.Sprintf("the subscribers outside the sample read %.2f× the sample's bytes (under %.2f)", s.OthersWireRatio, minWireRatio)
	case slowClosed > 0 || dropped > 0:
		return fmt.Sprintf("the server closed %d slow subscribers and dropped %d messages", slowClosed, dropped)
	}
	return ""
}
