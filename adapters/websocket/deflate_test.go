package websocket

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/adapters/internal/deflate"
	"github.com/switchboard-dev/switchboard/adapters/internal/testserver"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// inflateStd decodes a message payload as a client does: the standard
// library's decoder on the payload plus the sync flush's tail.
func inflateStd(t *testing.T, p []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflate.SyncTail))))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// deflateStd compresses p as a client does, without the sync tail.
func deflateStd(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), deflate.SyncTail)
}

// quotes is ~2 KB of the JSON a market-data feed pushes: an envelope's
// data.
func quotes(seq int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"seq":%d,"quotes":[`, seq)
	for i := range 20 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sym":"SYM%02d","bid":%d.%03d,"ask":%d.%03d,"vol":%d}`, i, 100+i*7+seq%13, (seq*37+i*11)%1000, 100+i*7+seq%13, (seq*41+i*17)%1000, 1000+(seq*i)%9000)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// marketData is an encoded envelope carrying quotes(seq).
func marketData(seq int) []byte {
	return fmt.Appendf(nil, `{"v":1,"type":"message","room":"ticker","id":"%d","data":%s}`, seq, quotes(seq))
}

// deflateWait bounds a wait for the server in these tests.
const deflateWait = 30 * time.Second

// TestAppendMessage: a batch sent compressed decodes, with a standard
// decoder, to its envelopes joined by '\n', whatever mix of frames below
// and above the threshold it holds and whichever comes last.
func TestAppendMessage(t *testing.T) {
	d := newDeflater(6, 100)
	big, big2, small, tiny := marketData(1), marketData(2), []byte(`{"v":1,"type":"ack","ref":"1"}`), []byte("x")
	huge := bytes.Repeat([]byte("y"), 70000) // over one stored block
	for _, tc := range []struct {
		name   string
		frames [][]byte
	}{
		{"one big", [][]byte{big}},
		{"big then small", [][]byte{big, small}},
		{"small then big", [][]byte{small, big}},
		{"small, big, big, tiny", [][]byte{small, big, big2, tiny}},
		{"a small one over a stored block's size", [][]byte{big, huge[:99]}},
		{"huge", [][]byte{tiny, huge}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dd := d
			if tc.name == "a small one over a stored block's size" {
				dd = newDeflater(6, 80000) // every frame stored, the big one too
				tc.frames = [][]byte{huge, small}
			}
			got := inflateStd(t, dd.appendMessage(nil, tc.frames))
			if want := bytes.Join(tc.frames, []byte("\n")); !bytes.Equal(got, want) {
				t.Fatalf("decoded %d bytes %.80q…, want %d bytes %.80q…", len(got), got, len(want), want)
			}
		})
	}
	if !d.worthIt([][]byte{small, big}) || d.worthIt([][]byte{small, tiny}) {
		t.Fatal("worthIt: want true only with a frame at the threshold")
	}
}

const deflateOffer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"

// TestPermessageDeflate, on every front end and reading mode: the offer
// is answered without context takeover; envelopes from the threshold up
// arrive compressed (RSV1) and decode; the client's compressed messages,
// whole or fragmented, are read; one that inflates past the limit closes
// with 4003 and bad deflate data with 1007; a client that does not offer
// it, or a server with compression off, speaks plain frames.
func TestPermessageDeflate(t *testing.T) {
	const limit = 4096
	for _, front := range fronts {
		t.Run(front, func(t *testing.T) {
			t.Parallel()
			b, err := memory.New(memory.Config{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			node, err := core.NewNode(core.Config{MaxMessageSize: limit, RateLimit: -1}, b, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = node.Shutdown(context.Background()) })
			url := "ws://" + serveFront(t, node, Config{CloseGrace: time.Second, CompressionThreshold: 200}, front) + "/ws?user=u&rooms=ticker"
			dial := func(t *testing.T, headers string) (*rawClient, *http.Response) {
				c, br, resp := handshakeWith(t, url, "dGhlIHNhbXBsZSBub25jZQ==", headers, nil)
				if resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("upgrade: %v", resp.Status)
				}
				r := &rawClient{t: t, c: c, br: br}
				r.expectEnv(`"type":"welcome"`)
				return r, resp
			}
			publish := func(t *testing.T, data []byte) {
				if _, err := node.Publish(context.Background(), core.RoomChannel("ticker"), &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "ticker", Data: json.RawMessage(data)}); err != nil {
					t.Fatal(err)
				}
			}
			data := quotes(3)

			t.Run("server to client", func(t *testing.T) {
				r, resp := dial(t, deflateOffer)
				if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != extensionResponse {
					t.Fatalf("Sec-WebSocket-Extensions %q, want %q", got, extensionResponse)
				}
				publish(t, data)
				op, p, err := r.next()
				if err != nil || op != opText || !r.rsv1 {
					t.Fatalf("opcode %d, RSV1 %v, %v; want a compressed text frame", op, r.rsv1, err)
				}
				got := inflateStd(t, p)
				if !bytes.Contains(got, data) || len(p) >= len(got)/2 {
					t.Fatalf("%d bytes on the wire decoding to %d: %.80q; want the quotes, at most half", len(p), len(got), got)
				}
				publish(t, []byte(`"short"`)) // under the threshold: plain
				if op, p, _ := r.next(); op != opText || r.rsv1 || !bytes.Contains(p, []byte(`"short"`)) {
					t.Fatalf("opcode %d, RSV1 %v, %q; want a plain text frame", op, r.rsv1, p)
				}
			})
			t.Run("client to server", func(t *testing.T) {
				r, _ := dial(t, deflateOffer)
				padded := []byte(`{"v":1,"type":"ping","ref":"z","data":"` + strings.Repeat("z", 1000) + `"}`)
				r.write(maskedFrame(true, opText|rsv1Bit, deflateStd(t, padded)))
				r.expectEnv(`"ref":"z"`)
				whole := deflateStd(t, ping("frag"))
				r.write(maskedFrame(false, opText|rsv1Bit, whole[:3]))
				r.write(maskedFrame(false, opContinuation, whole[3:5]))
				r.write(maskedFrame(true, opContinuation, whole[5:]))
				r.expectEnv(`"ref":"frag"`)
			})
			t.Run("inflates past the limit", func(t *testing.T) {
				r, _ := dial(t, deflateOffer)
				bomb := deflateStd(t, bytes.Repeat([]byte(" "), 10*limit)) // fits the limit compressed
				r.write(maskedFrame(true, opText|rsv1Bit, bomb))
				r.expectClose(core.DisconnectMessageTooLarge.Code, true)
			})
			t.Run("bad deflate data", func(t *testing.T) {
				r, _ := dial(t, deflateOffer)
				r.write(maskedFrame(true, opText|rsv1Bit, []byte{0xff, 0xff, 0xff}))
				r.expectClose(closeInvalidData, true)
			})
			t.Run("not offered", func(t *testing.T) {
				r, resp := dial(t, "")
				if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
					t.Fatalf("Sec-WebSocket-Extensions %q without an offer", got)
				}
				publish(t, data)
				if op, p, _ := r.next(); op != opText || r.rsv1 || !bytes.Contains(p, data) {
					t.Fatalf("opcode %d, RSV1 %v; want the quotes in a plain text frame", op, r.rsv1)
				}
				r.write(maskedFrame(true, opText|rsv1Bit, deflateStd(t, ping("x"))))
				r.expectClose(closeProtocolError, true)
			})
		})
	}
	t.Run("compression off", func(t *testing.T) {
		url := serveNodeWith(t, core.Config{}, Config{CloseGrace: time.Second, CompressionLevel: -1}) + "?user=u"
		_, _, resp := handshakeWith(t, url, "dGhlIHNhbXBsZSBub25jZQ==", deflateOffer, nil)
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Extensions") != "" {
			t.Fatalf("%s with Sec-WebSocket-Extensions %q; want 101 without", resp.Status, resp.Header.Get("Sec-WebSocket-Extensions"))
		}
	})
}

// TestDeflateFanOut: a room of clients with permessage-deflate, through
// another implementation (fasthttp/websocket, which writes compressed
// too): every message arrives intact everywhere, and each was compressed
// once for all of them.
func TestDeflateFanOut(t *testing.T) {
	const clients, messages = 40, 25
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{RateLimit: -1}, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(context.Background()) })
	h := newHandler(node, Config{CloseGrace: time.Second})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", h.httpHandler())
	url := "ws://" + testserver.HTTP(t, mux, nil) + "/ws?rooms=ticker&user="
	dialer := fws.Dialer{EnableCompression: true, HandshakeTimeout: deflateWait}
	conns := make([]*fws.Conn, clients)
	for i := range conns {
		c, resp, err := dialer.Dial(url+fmt.Sprint("u", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if resp.Header.Get("Sec-WebSocket-Extensions") == "" {
			t.Fatal("permessage-deflate not negotiated")
		}
		c.EnableWriteCompression(true)
		conns[i] = c
		if _, p, err := c.ReadMessage(); err != nil || !bytes.Contains(p, []byte(`"welcome"`)) {
			t.Fatalf("welcome: %q %v", p, err)
		}
	}
	// The publisher's messages go compressed too.
	for seq := range messages {
		pub := fmt.Sprintf(`{"v":1,"type":"publish","room":"ticker","data":%s}`, quotes(seq))
		if err := conns[0].WriteMessage(fws.TextMessage, []byte(pub)); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(deflateWait))
		for seq := 0; seq < messages; {
			_, p, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("client %d after %d messages: %v", i, seq, err)
			}
			for line := range bytes.SplitSeq(p, []byte("\n")) {
				var env core.Envelope
				if err := json.Unmarshal(line, &env); err != nil {
					t.Fatalf("client %d: %v in %.80q", i, err, line)
				}
				if env.Type != "message" {
					continue // the publisher's acks
				}
				if want := fmt.Sprintf(`"seq":%d,`, seq); !bytes.Contains(env.Data, []byte(want)) {
					t.Fatalf("client %d: message %d is %.60s", i, seq, env.Data)
				}
				seq++
			}
		}
	}
	if n := h.deflate.cache.Compressions(); n < messages || n > messages+clients {
		// Each message once; a batch of replies to one client is its own.
		t.Fatalf("%d compressions for %d messages to %d clients, want one per message", n, messages, clients)
	}
}
