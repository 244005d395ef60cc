package main

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// histShards spreads subscribers over several histograms so that their
// atomic adds do not all hit the same cache lines.
const histShards = 8

// stepStats is what the subscribers observe during one step (one rate).
type stepStats struct {
	startNS   atomic.Int64 // publish start, unix ns; 0 until the step starts
	delivered atomic.Int64
	lastNS    atomic.Int64 // latest delivery, unix ns
	hist      [histShards]histogram
	series    []atomic.Int64 // deliveries per second since startNS

	sampleMu sync.Mutex
	sample   [][]byte // the first envelopeSamples load messages of recorder.keeper
}

// envelopeSamples is how many load messages of a step are kept to size
// its envelopes (as they are, and deflated on their own).
const envelopeSamples = 256

// keep copies line into the sample if it is not full.
func (s *stepStats) keep(line []byte) {
	s.sampleMu.Lock()
	if len(s.sample) < envelopeSamples {
		s.sample = append(s.sample, bytes.Clone(line))
	}
	s.sampleMu.Unlock()
}

// samples returns the messages kept so far.
func (s *stepStats) samples() [][]byte {
	s.sampleMu.Lock()
	defer s.sampleMu.Unlock()
	return slices.Clone(s.sample)
}

func newStepStats(seconds int) *stepStats {
	return &stepStats{series: make([]atomic.Int64, seconds)}
}

func (s *stepStats) observe(shard int, sentNS, nowNS int64) {
	s.delivered.Add(1)
	s.hist[shard%histShards].record(time.Duration(nowNS - sentNS))
	if start := s.startNS.Load(); start > 0 {
		i := int((nowNS - start) / int64(time.Second))
		if i >= len(s.series) {
			i = len(s.series) - 1
		}
		if i >= 0 {
			s.series[i].Add(1)
		}
	}
	for {
		l := s.lastNS.Load()
		if nowNS <= l || s.lastNS.CompareAndSwap(l, nowNS) {
			return
		}
	}
}

func (s *stepStats) snapshot() *hsnap {
	var h hsnap
	for i := range s.hist {
		h.add(&s.hist[i])
	}
	return &h
}

// recorder routes load messages to their step's stats. Subscribers call
// frame from their reader goroutines; steps are created before any
// message of theirs is published.
type recorder struct {
	steps []atomicStep // fixed length: the most steps a run may have
	// keeper is the subscriber whose load messages are kept as samples
	// of the envelopes: 0, or with an inflation sample its first member.
	keeper int
	other  atomic.Int64 // lines that are not load messages (welcome, …)
	stray  atomic.Int64 // load messages of an unknown step
}

// frame handles one received frame: every load message in it is
// attributed to its step with the frame's arrival time.
func (r *recorder) frame(shard int, frame []byte, nowNS int64) {
	for line := range lines(frame) {
		if len(line) == 0 {
			continue
		}
		sent, step, ok := parseLine(line)
		switch {
		case !ok:
			r.other.Add(1)
			continue
		default:
			// The keeper's messages are kept as samples of the
			// step's envelopes.
			if st := r.observe(shard, sent, step, nowNS); st != nil && shard == r.keeper {
				st.keep(line)
			}
		}
	}
}

// observe records a load message of step and returns the step's stats
// (nil for an unknown step).
func (r *recorder) observe(shard int, sentNS int64, step int, nowNS int64) *stepStats {
	var st *stepStats
	if step >= 0 && step < len(r.steps) {
		st = r.steps[step].Load()
	}
	if st == nil {
		r.stray.Add(1)
		return nil
	}
	st.observe(shard, sentNS, nowNS)
	return st
}

type atomicStep = atomic.Pointer[stepStats]

// messages handles a long-poll answer, one JSON object holding all its
// messages: every load message in it (found by its payload's marker) is
// attributed to its step with the answer's arrival time.
func (r *recorder) messages(shard int, body []byte, nowNS int64) {
	for {
		i := bytes.Index(body, markTime)
		if i < 0 {
			return
		}
		body = body[i:]
		sent, step, ok := parseLine(body)
		body = body[len(markTime):]
		if !ok {
			r.other.Add(1)
			continue
		}
		r.observe(shard, sent, step, nowNS)
	}
}
