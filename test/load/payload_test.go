package main

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// TestPayloadKinds: every kind starts with the marker the subscribers
// parse, is valid JSON, keeps to its size, and (chat, market) varies
// from one message to the next.
func TestPayloadKinds(t *testing.T) {
	for _, c := range []struct {
		spec     payloadSpec
		min, max int // bytes of one payload
		minFloor float64
	}{
		{payloadSpec{"pad", 128}, 128, 128, 0},
		{payloadSpec{"pad", 4096}, 4096, 4096, 0},
		{payloadSpec{"chat", 0}, chatMin, chatMax, 0.6},
		// Random figures: about a third is left after deflate, where
		// constant text would leave a few percent.
		{payloadSpec{"market", 0}, 1800, 2600, 0.25},
	} {
		t.Run(c.spec.String(), func(t *testing.T) {
			g := newPayloadGen(c.spec, 42)
			seen := map[string]bool{}
			var msgs [][]byte
			total := 0
			const n = 2000
			for i := range n {
				sent, step := 1795344139268123456+int64(i)*1e6, i%60
				p := g.append([]byte("junk"), sent, step)[len("junk"):]
				if len(p) < c.min || len(p) > c.max || len(p) > c.spec.maxSize() {
					t.Fatalf("payload %d: %d bytes, want %d to %d (max %d): %s", i, len(p), c.min, c.max, c.spec.maxSize(), p)
				}
				if !json.Valid(p) {
					t.Fatalf("payload %d is not JSON: %s", i, p)
				}
				line := []byte(`{"v":1,"id":"k-1","type":"message","room":"r","from":"p","ts":1795344139268,"data":` + string(p) + `}`)
				if gotSent, gotStep, ok := parseLine(line); !ok || gotSent != sent || gotStep != step {
					t.Fatalf("parseLine of payload %d = %d, %d, %v: %s", i, gotSent, gotStep, ok, p)
				}
				seen[string(p[bytes.IndexByte(p, ','):])] = true // without the send time
				msgs = append(msgs, p)
				total += len(p)
			}
			if mean := meanPayloadSize(c.spec); mean < float64(c.min) || mean > float64(c.max) {
				t.Errorf("meanPayloadSize = %.1f, outside %d to %d", mean, c.min, c.max)
			}
			raw, floor := envelopeSizes(msgs)
			if raw != float64(total)/n {
				t.Errorf("envelopeSizes raw %.1f, want %.1f", raw, float64(total)/n)
			}
			if c.spec.kind == "pad" {
				return
			}
			if len(seen) < n*99/100 {
				t.Errorf("only %d distinct payloads of %d", len(seen), n)
			}
			if floor/raw < c.minFloor {
				t.Errorf("each deflated on its own: %.1f of %.1f bytes (%.2f), want at least %.2f: too little entropy", floor, raw, floor/raw, c.minFloor)
			}
		})
	}
	for _, w := range chatWords {
		if len(w) > 12 || w[0] < 'a' || w[0] > 'z' {
			t.Errorf("chat word %q: want lower case, at most 12 letters", w)
		}
	}
}

func TestParsePayload(t *testing.T) {
	for _, c := range []struct {
		in   string
		want payloadSpec
		err  string
	}{
		{"chat", payloadSpec{"chat", 128}, ""},
		{"market", payloadSpec{"market", 128}, ""},
		{"pad", payloadSpec{"pad", 128}, ""},
		{"512", payloadSpec{"pad", 512}, ""},
		{"12", payloadSpec{}, "64 to 32768"},
		{"json", payloadSpec{}, "use pad, chat, market"},
	} {
		got := payloadSpec{"pad", 128}
		err := parsePayload(c.in, &got)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("parsePayload(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parsePayload(%q): error %v, want one containing %q", c.in, err, c.err)
		}
	}
}

// TestDeflateSizer: the size is that of a sync-flushed deflate stream
// without its last four bytes, which inflates back to the message once
// they are put back (as a permessage-deflate receiver does).
func TestDeflateSizer(t *testing.T) {
	d := newDeflateSizer()
	msg := bytes.Repeat([]byte(`{"sym":"AAPL","bid":187.42},`), 40)
	n := d.size(msg)
	out := d.buf.Bytes()
	if n != len(out)-4 || !bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
		t.Fatalf("size %d of %d bytes ending %x", n, len(out), out[max(0, len(out)-4):])
	}
	if n >= len(msg)/10 {
		t.Errorf("%d bytes of repeated text deflated to %d", len(msg), n)
	}
	wire := append(bytes.Clone(out[:n]), 0, 0, 0xff, 0xff)
	got, err := io.ReadAll(flate.NewReader(bytes.NewReader(wire)))
	if !errors.Is(err, io.ErrUnexpectedEOF) && err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("inflated %d bytes, want the %d of the message", len(got), len(msg))
	}
	// Each message on its own: the second is not smaller for following
	// the first.
	if again := d.size(msg); again != n {
		t.Errorf("second size %d, first %d", again, n)
	}
	if raw, floor := envelopeSizes(nil); raw != 0 || floor != 0 {
		t.Errorf("envelopeSizes(nil) = %v, %v", raw, floor)
	}
}

// TestCountingConn: what the dialled connections read is counted, per
// shard and in total; writes are not; a failed dial is passed on.
func TestCountingConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payloads := [][]byte{bytes.Repeat([]byte("a"), 100_000), []byte("hello")}
	served := make(chan error, len(payloads))
	go func() {
		for _, p := range payloads {
			c, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			go func() {
				defer c.Close()
				if _, err := io.Copy(io.Discard, io.LimitReader(c, 3)); err != nil {
					served <- err
					return
				}
				_, err := c.Write(p)
				served <- err
			}()
		}
	}()
	var bc shardedCounter
	d := &net.Dialer{}
	ctx := context.Background()
	for i, p := range payloads {
		conn, err := countingDial(d.DialContext, &bc, i+counterShards-1)(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte("go!")); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || len(got) != len(p) {
			t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(p))
		}
		if err := <-served; err != nil {
			t.Fatal(err)
		}
	}
	want := int64(len(payloads[0]) + len(payloads[1]))
	if got := bc.total(); got != want {
		t.Errorf("counted %d bytes, want %d", got, want)
	}
	if a, b := bc.shards[counterShards-1].n.Load(), bc.shards[0].n.Load(); a != int64(len(payloads[0])) || b != int64(len(payloads[1])) {
		t.Errorf("shards %d and %d, want %d and %d", a, b, len(payloads[0]), len(payloads[1]))
	}
	failed := errors.New("no route")
	_, err = countingDial(func(context.Context, string, string) (net.Conn, error) { return nil, failed }, &bc, 0)(ctx, "tcp", "x")
	if !errors.Is(err, failed) {
		t.Errorf("dial error %v, want %v", err, failed)
	}
}

func TestCompressOption(t *testing.T) {
	for _, c := range []struct {
		args []string
		want compressMode
		err  string
	}{
		{[]string{"fanout", "--url", "http://127.0.0.1:9"}, compressOff, ""},
		{[]string{"fanout", "--url", "http://127.0.0.1:9", "--compress"}, compressOn, ""},
		{[]string{"saturate", "--url", "http://127.0.0.1:9", "--compress=both"}, compressBoth, ""},
		{[]string{"fanout", "--url", "http://127.0.0.1:9", "--compress=false"}, compressOff, ""},
		{[]string{"fanout", "--url", "http://127.0.0.1:9", "--compress=maybe"}, compressOff, "use true"},
		{[]string{"fanout", "--url", "http://127.0.0.1:9", "--compress", "--transport", "sse"}, compressOff, "--transport websocket"},
		{[]string{"idle", "--url", "http://127.0.0.1:9", "--compress"}, compressOff, "fanout or saturate"},
		{[]string{"fanout", "--url", "http://127.0.0.1:9", "--payload", "market"}, compressOff, ""},
		{[]string{"churn", "--url", "http://127.0.0.1:9", "--payload", "chat"}, compressOff, "only fanout and saturate"},
		{[]string{"fanout", "--url", "http://127.0.0.1:9", "--payload", "30"}, compressOff, "64 to 32768"},
	} {
		o := defaultOptions()
		var stderr bytes.Buffer
		o.stdout, o.stderr = &stderr, &stderr
		err := parseArgs(&o, c.args)
		switch {
		case c.err == "" && (err != nil || o.compress != c.want):
			t.Errorf("%q: compress %q, %v; want %q", c.args, o.compress, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one containing %q", c.args, err, c.err)
		}
	}
	if got := compressBoth.offers(); len(got) != 2 || got[0] || !got[1] {
		t.Errorf("both: offers %v", got)
	}
}

// TestBatchFits: a publisher's fullest batch of any payload stays under
// the edge's default 64 KiB frame and body limit.
func TestBatchFits(t *testing.T) {
	for _, spec := range []payloadSpec{{"pad", 128}, {"pad", 4096}, {"pad", 32 << 10}, {"chat", 0}, {"market", 0}} {
		g := newPayloadGen(spec, 3)
		n := batchOf(spec)
		var body []byte
		for k := range n {
			if k > 0 {
				body = append(body, '\n')
			}
			body = append(body, `{"v":1,"type":"publish","room":"load-k3f9a2c81qzz-99999","data":`...)
			body = g.append(body, 1795344139268123456, 179)
			body = append(body, '}')
		}
		if len(body) > 64<<10 || n < 1 || (spec.kind == "pad" && spec.size == 128 && n != maxBatch) {
			t.Errorf("%s: %d envelopes in %d bytes", spec, n, len(body))
		}
	}
}
