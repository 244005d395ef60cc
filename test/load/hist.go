package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency histogram: log-linear buckets (as in HdrHistogram) over
// nanoseconds. Values below 2^subBits get one bucket each; above, every
// power of two is split into 2^subBits equal buckets, so a bucket's width is
// at most 1/64 of its lower bound (1.6% relative error) from 1 ns to the
// largest uint64, in 3,776 buckets.
const (
	subBits    = 6
	subCount   = 1 << subBits
	numBuckets = subCount + (64-subBits)*subCount
)

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // v>>shift is in [subCount, 2*subCount)
	return subCount + shift*subCount + int(v>>shift) - subCount
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := (i - subCount) / subCount
	m := uint64((i-subCount)%subCount + subCount)
	lo = m << shift
	return lo, lo + (1 << shift) - 1
}

// histogram counts latencies. Record is safe for concurrent use (atomic
// adds); readers take a snapshot once recording has stopped or accept a
// slightly torn view.
type histogram struct {
	counts [numBuckets]atomic.Uint64
	max    atomic.Uint64
}

func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// hsnap is a histogram snapshot, several histograms merged.
type hsnap struct {
	counts [numBuckets]uint64
	total  uint64
	max    uint64
}

func (s *hsnap) add(h *histogram) {
	for i := range h.counts {
		c := h.counts[i].Load()
		s.counts[i] += c
		s.total += c
	}
	s.max = max(s.max, h.max.Load())
}

// quantile returns the value at quantile q (0 < q <= 1): the upper bound of
// the bucket holding the ceil(q*total)-th smallest value, capped at the
// recorded maximum. Zero when empty.
func (s *hsnap) quantile(q float64) time.Duration {
	if s.total == 0 {
		return 0
	}
	rank := uint64(q*float64(s.total) + 0.999999999)
	rank = min(max(rank, 1), s.total)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			return time.Duration(min(hi, s.max))
		}
	}
	return time.Duration(s.max)
}

// bin is one non-empty bucket, for reports.
type bin struct {
	Lo    uint64 `json:"lo_ns"`
	Hi    uint64 `json:"hi_ns"`
	Count uint64 `json:"n"`
}

func (s *hsnap) bins() []bin {
	var out []bin
	for i, c := range s.counts {
		if c > 0 {
			lo, hi := bucketBounds(i)
			out = append(out, bin{lo, hi, c})
		}
	}
	return out
}
