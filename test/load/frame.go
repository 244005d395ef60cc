package main

import (
	"bytes"
	"iter"
)

// A published payload starts with the send time and the step number, so a
// subscriber finds both without decoding the envelope:
//
//	{"v":1,"id":"…","type":"message","room":"…","from":"…","ts":…,"data":{"lt":1795344139268123456,"ls":0,"p":"xxx…"}}
//
// The server writes data compacted and unchanged, and never a raw newline
// inside an envelope, so a frame is split on '\n' and each line searched
// for the marker.
var (
	markTime = []byte(`"data":{"lt":`)
	markStep = []byte(`,"ls":`)
)

// parseLine returns the send time (unix ns) and step of a load message
// line; ok is false for any other envelope (welcome, ack, …).
func parseLine(line []byte) (sentNS int64, step int, ok bool) {
	i := bytes.Index(line, markTime)
	if i < 0 {
		return 0, 0, false
	}
	line = line[i+len(markTime):]
	sentNS, n := parseUint(line)
	if n == 0 || !bytes.HasPrefix(line[n:], markStep) {
		return 0, 0, false
	}
	line = line[n+len(markStep):]
	s, m := parseUint(line)
	if m == 0 {
		return 0, 0, false
	}
	return sentNS, int(s), true
}

// parseUint reads leading decimal digits (at most 19, which fits int64).
func parseUint(b []byte) (v int64, n int) {
	for n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	return v, n
}

// appendPayload appends a load payload of exactly size bytes (when size is
// large enough for the fields) to b.
func appendPayload(b []byte, sentNS int64, step, size int) []byte {
	start := len(b)
	b = append(b, `{"lt":`...)
	b = appendInt(b, sentNS)
	b = append(b, `,"ls":`...)
	b = appendInt(b, int64(step))
	b = append(b, `,"p":"`...)
	for pad := size - (len(b) - start) - 2; pad > 0; pad-- {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

func appendInt(b []byte, v int64) []byte {
	var tmp [20]byte
	i := len(tmp)
	if v == 0 {
		return append(b, '0')
	}
	for v > 0 {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, tmp[i:]...)
}

func indexNL(b []byte) int { return bytes.IndexByte(b, '\n') }

// lines yields the '\n'-separated lines of a frame (several envelopes, or
// several protocol messages, travel in one frame).
func lines(frame []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(frame) > 0 {
			line := frame
			if i := indexNL(frame); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			if !yield(line) {
				return
			}
		}
	}
}
