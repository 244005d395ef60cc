package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// rawClient speaks WebSocket frame by frame over a plain TCP connection,
// so tests can send what no well-behaved client library would.
type rawClient struct {
	t     *testing.T
	c     net.Conn
	br    *bufio.Reader
	lines [][]byte // envelopes of text frames read but not yet expected
	rsv1  bool     // the last frame read had RSV1 (compressed)
}

// dialRaw upgrades a TCP connection to url (ws://host/path?query). early
// is written in the same write as the upgrade request, before the 101
// (a client that does not wait).
func dialRaw(t *testing.T, url string, early []byte) *rawClient {
	t.Helper()
	c, br, resp := handshake(t, url, "dGhlIHNhbXBsZSBub25jZQ==", early)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v", resp)
	}
	return &rawClient{t: t, c: c, br: br}
}

// handshake sends an upgrade request with the given Sec-WebSocket-Key
// (none if empty) and returns the connection and the server's answer.
func handshake(t *testing.T, url, key string, early []byte) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	return handshakeWith(t, url, key, "", early)
}

// handshakeWith is handshake with extra request header lines
// ("Name: value\r\n" each).
func handshakeWith(t *testing.T, url, key, headers string, early []byte) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	hostPath := strings.TrimPrefix(url, "ws://")
	host, path, _ := strings.Cut(hostPath, "/")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /" + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	if key != "" {
		req += "Sec-WebSocket-Key: " + key + "\r\n"
	}
	req += headers + "Sec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write(append([]byte(req), early...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	return c, br, resp
}

func (r *rawClient) write(b []byte) {
	r.t.Helper()
	_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// next reads one server frame; it fails the test on a masked or
// non-final frame, which a server must never send here.
func (r *rawClient) next() (op byte, payload []byte, err error) {
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		r.t.Fatalf("server frame header %x: want final and unmasked", h)
	}
	r.rsv1 = h[0]&rsv1Bit != 0
	n := int(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint64(e[:]))
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r.br, payload)
	return h[0] & 0x0F, payload, err
}

// expect reads the next frame and checks its opcode and that its payload
// contains want.
func (r *rawClient) expect(op byte, want string) []byte {
	r.t.Helper()
	if len(r.lines) > 0 {
		r.t.Fatalf("envelopes %q not expected yet", r.lines)
	}
	got, p, err := r.next()
	if err != nil || got != op || !bytes.Contains(p, []byte(want)) {
		r.t.Fatalf("got opcode %d %q %v; want opcode %d containing %q", got, p, err, op, want)
	}
	return p
}

// expectEnv reads the next envelope (a server text frame may carry
// several, '\n'-separated) and checks that it contains want.
func (r *rawClient) expectEnv(want string) {
	r.t.Helper()
	for len(r.lines) == 0 {
		op, p, err := r.next()
		if err != nil || op != opText {
			r.t.Fatalf("got opcode %d %q %v; want a text frame with %q", op, p, err, want)
		}
		r.lines = bytes.Split(p, []byte("\n"))
	}
	line := r.lines[0]
	r.lines = r.lines[1:]
	if !bytes.Contains(line, []byte(want)) {
		r.t.Fatalf("envelope %s; want one containing %q", line, want)
	}
}

// expectClose reads a close frame with code, answers it as a client must
// (unless it was the answer to the client's own), and expects the server
// to drop the connection at once.
func (r *rawClient) expectClose(code uint16, answer bool) {
	r.t.Helper()
	p := r.expect(opClose, "")
	if len(p) < 2 || binary.BigEndian.Uint16(p) != code {
		r.t.Fatalf("close payload %q, want code %d", p, code)
	}
	if answer {
		r.write(maskedFrame(true, opClose, p[:2]))
	}
	if _, _, err := r.next(); err != io.EOF {
		r.t.Fatalf("after the close frame: %v, want EOF", err)
	}
}

func ping(ref string) []byte { return []byte(`{"v":1,"type":"ping","ref":"` + ref + `"}`) }

// TestWireProtocol drives the frame reader with raw frames on both
// front ends in both reading modes: partial frames, several frames per read, fragmentation
// with control frames in between, the closing handshake, each kind of
// protocol violation with its close code (after the replies to the valid
// messages before it), text that is not UTF-8 (1007) however it is
// fragmented, and upgrade requests whose Sec-WebSocket-Key
// is not the base64 of 16 bytes (400).
func TestWireProtocol(t *testing.T) {
	const limit = 1024
	type tc struct {
		name string
		run  func(t *testing.T, r *rawClient)
	}
	violation := func(frame []byte, code uint16) func(*testing.T, *rawClient) {
		return func(t *testing.T, r *rawClient) {
			r.write(frame)
			r.expectClose(code, true)
		}
	}
	badClose := func(payload []byte, code uint16) func(*testing.T, *rawClient) {
		return func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(true, opClose, payload))
			r.expectClose(code, false)
		}
	}
	cases := []tc{
		{"a frame split into single-byte writes", func(t *testing.T, r *rawClient) {
			for _, b := range maskedFrame(true, opText, ping("split")) {
				r.write([]byte{b})
			}
			r.expectEnv(`"ref":"split"`)
		}},
		{"three frames in one write", func(t *testing.T, r *rawClient) {
			var b []byte
			for _, ref := range []string{"a", "b", "c"} {
				b = append(b, maskedFrame(true, opText, ping(ref))...)
			}
			r.write(b)
			for _, ref := range []string{"a", "b", "c"} {
				r.expectEnv(`"ref":"` + ref + `"`)
			}
		}},
		{"a 16-bit length frame in two writes", func(t *testing.T, r *rawClient) {
			env := []byte(`{"v":1,"type":"ping","ref":"big","data":"` + strings.Repeat("x", 300) + `"}`)
			f := maskedFrame(true, opBinary, env)
			r.write(f[:3])
			r.write(f[3:])
			r.expectEnv(`"ref":"big"`)
		}},
		{"fragments with a ping between them", func(t *testing.T, r *rawClient) {
			msg := ping("frag")
			r.write(maskedFrame(false, opText, msg[:5]))
			r.write(maskedFrame(true, opPing, []byte("hello")))
			r.write(maskedFrame(false, opContinuation, msg[5:10]))
			r.write(maskedFrame(true, opContinuation, msg[10:]))
			r.expect(opPong, "hello")
			r.expectEnv(`"ref":"frag"`)
		}},
		{"a pong frame is accepted silently", func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(true, opPong, []byte("x")))
			r.write(maskedFrame(true, opText, ping("after")))
			r.expectEnv(`"ref":"after"`)
		}},
		{"client close is echoed", func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(true, opClose, append([]byte{0x03, 0xE8}, "bye"...)))
			r.expectClose(1000, false)
		}},
		{"empty client close gets an empty close", func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(true, opClose, nil))
			if p := r.expect(opClose, ""); len(p) != 0 {
				t.Fatalf("close payload %q, want empty", p)
			}
		}},
		{"frame over the size limit", func(t *testing.T, r *rawClient) {
			// Only the header: the server must not wait for the payload.
			f := maskedFrame(true, opText, make([]byte, limit+1))
			r.write(f[:8])
			r.expectClose(4003, true)
		}},
		{"fragments over the size limit", func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(false, opText, make([]byte, limit/2+1)))
			r.write(maskedFrame(true, opContinuation, make([]byte, limit/2+1)))
			r.expectClose(4003, true)
		}},
		{"unmasked frame", violation([]byte{0x81, 0x02, 'h', 'i'}, closeProtocolError)},
		{"reserved bit", violation([]byte{0xC1, 0x80, 0, 0, 0, 0}, closeProtocolError)},
		{"unknown opcode", violation(maskedFrame(true, 0x3, nil), closeProtocolError)},
		{"continuation first", violation(maskedFrame(true, opContinuation, []byte("x")), closeProtocolError)},
		{"new message inside a fragmented one", func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(false, opText, []byte("{")))
			r.write(maskedFrame(true, opText, ping("x")))
			r.expectClose(closeProtocolError, true)
		}},
		{"fragmented ping", violation(maskedFrame(false, opPing, nil), closeProtocolError)},
		{"ping over 125 bytes", violation(maskedFrame(true, opPing, make([]byte, 126)), closeProtocolError)},
		// A bad close frame is still the client's close: the server
		// answers and drops the connection without waiting for more.
		{"close with one byte", badClose([]byte{3}, closeProtocolError)},
		{"close with code 1005", badClose([]byte{0x03, 0xED}, closeProtocolError)},
		{"close reason not UTF-8", badClose([]byte{0x03, 0xE8, 0xff}, closeInvalidData)},
		// Text must be UTF-8 (§8.1): 1007, checked fragment by fragment.
		{"text not UTF-8", violation(maskedFrame(true, opText, ping("\xff")), closeInvalidData)},
		{"text ending in half a sequence", violation(maskedFrame(true, opText, []byte("{\xe2\x82")), closeInvalidData)},
		{"a sequence split across fragments is valid", func(t *testing.T, r *rawClient) {
			msg := ping("\u20ac") // € is E2 82 AC: cut after each of its bytes
			i := bytes.IndexByte(msg, 0xE2)
			r.write(maskedFrame(false, opText, msg[:i+1]))
			r.write(maskedFrame(false, opContinuation, msg[i+1:i+2]))
			r.write(maskedFrame(true, opContinuation, msg[i+2:]))
			r.expectEnv(`"ref":"€"`)
		}},
		{"an invalid sequence split across fragments", func(t *testing.T, r *rawClient) {
			msg := ping("\xe2\x82(") // E2 82 needs one more byte in 80-BF
			i := bytes.IndexByte(msg, '(')
			r.write(maskedFrame(false, opText, msg[:i]))
			r.write(maskedFrame(true, opContinuation, msg[i:]))
			r.expectClose(closeInvalidData, true)
		}},
		{"half a sequence at the end of the last fragment", func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(false, opText, []byte(`{"ref":"`)))
			r.write(maskedFrame(true, opContinuation, []byte("\"}\xe2\x82")))
			r.expectClose(closeInvalidData, true)
		}},
		// Fail fast: the message is refused from its first bad fragment,
		// without waiting for the rest.
		{"a bad first fragment fails at once", func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(false, opText, []byte("{\"ref\":\"\xc0\xaf")))
			r.expectClose(closeInvalidData, true)
		}},
		{"a fragment ending in a sequence nothing can complete", func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(false, opText, []byte("{\"ref\":\"\xed\xa0"))) // a UTF-16 surrogate
			r.expectClose(closeInvalidData, true)
		}},
		{"binary frames are not checked for UTF-8", func(t *testing.T, r *rawClient) {
			r.write(maskedFrame(true, opBinary, ping("\xff")))
			r.expectEnv(`"bad_request"`)
			r.write(maskedFrame(true, opBinary, ping("ok")))
			r.expectEnv(`"ref":"ok"`)
		}},
		// Replies to the valid messages before a violation, in the same
		// read, are written before the close frame.
		{"replies before a 1007 go out first", func(t *testing.T, r *rawClient) {
			b := append(maskedFrame(true, opText, ping("r1")), maskedFrame(true, opText, ping("r2"))...)
			r.write(append(b, maskedFrame(true, opText, ping("\xff"))...))
			r.expectEnv(`"ref":"r1"`)
			r.expectEnv(`"ref":"r2"`)
			r.expectClose(closeInvalidData, true)
		}},
		{"replies before a 1002 go out first", func(t *testing.T, r *rawClient) {
			// The reader answers a ping itself, before it reads on.
			b := append(maskedFrame(true, opPing, []byte("p")), maskedFrame(true, opText, ping("r1"))...)
			b = append(b, maskedFrame(true, opText, ping("r2"))...)
			r.write(append(b, 0x81, 0x02, 'h', 'i')) // unmasked
			r.expect(opPong, "p")
			r.expectEnv(`"ref":"r1"`)
			r.expectEnv(`"ref":"r2"`)
			r.expectClose(closeProtocolError, true)
		}},
	}
	// A Sec-WebSocket-Key must be the base64 of 16 bytes (§4.2.1).
	badKeys := []struct{ name, key string }{
		{"missing", ""},
		{"not base64", "not a base64 key, at all"},
		{"15 bytes", "AAAAAAAAAAAAAAAAAAAA"},
		{"17 bytes", "AAAAAAAAAAAAAAAAAAAAAAA="},
		{"16 bytes unpadded", "dGhlIHNhbXBsZSBub25jZQ"},
		{"non-zero padding bits", "dGhlIHNhbXBsZSBub25jZR=="},
	}
	for _, front := range fronts {
		t.Run(front, func(t *testing.T) {
			url := serveNodeMode(t, core.Config{MaxMessageSize: limit}, Config{CloseGrace: time.Second}, front)
			// A bystander on the same node must be unaffected by every case.
			by := dialRaw(t, url+"?user=bystander", nil)
			by.expectEnv(`"welcome"`)
			for i, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					r := dialRaw(t, url+"?user=u", nil)
					r.expectEnv(`"welcome"`)
					c.run(t, r)
					ref := fmt.Sprintf("by%d", i)
					by.write(maskedFrame(true, opText, ping(ref)))
					by.expectEnv(`"ref":"` + ref + `"`)
				})
			}
			for i, k := range badKeys {
				t.Run("handshake key "+k.name, func(t *testing.T) {
					_, _, resp := handshake(t, url+"?user=u", k.key, nil)
					body, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"bad_request"`)) {
						t.Fatalf("status %d %q, want 400", resp.StatusCode, body)
					}
					ref := fmt.Sprintf("key%d", i)
					by.write(maskedFrame(true, opText, ping(ref)))
					by.expectEnv(`"ref":"` + ref + `"`)
				})
			}
		})
	}
}

// TestEarlyFrame: a frame sent right behind the upgrade request, before
// the 101 arrived, sits in the HTTP server's buffer; it is still read.
func TestEarlyFrame(t *testing.T) {
	for _, front := range fronts {
		t.Run(front, func(t *testing.T) {
			url := serveNodeMode(t, core.Config{}, Config{CloseGrace: time.Second}, front)
			r := dialRaw(t, url+"?user=u", maskedFrame(true, opText, ping("early")))
			r.expectEnv(`"welcome"`)
			r.expectEnv(`"ref":"early"`)
		})
	}
}

// TestHugeContinuationLength: a continuation frame declaring 2^63-1 bytes
// after a started message is refused with 4003 (the size check must not
// overflow), and the server keeps serving.
func TestHugeContinuationLength(t *testing.T) {
	for _, front := range fronts {
		t.Run(front, func(t *testing.T) {
			url := serveNodeMode(t, core.Config{MaxMessageSize: 1024}, Config{CloseGrace: time.Second}, front)
			r := dialRaw(t, url+"?user=u", nil)
			r.expectEnv(`"welcome"`)
			r.write(maskedFrame(false, opText, []byte("{")))
			r.write([]byte{0x80 | opContinuation, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 'x'})
			r.expectClose(4003, true)
			other := dialRaw(t, url+"?user=v", nil)
			other.expectEnv(`"welcome"`)
			other.write(maskedFrame(true, opText, ping("alive")))
			other.expectEnv(`"ref":"alive"`)
		})
	}
}

// TestPartialFrameBuffer: a client announcing a large frame and sending a
// few bytes of it costs a small buffer, not the announced size.
func TestPartialFrameBuffer(t *testing.T) {
	c := &conn{limit: 1 << 20}
	f := maskedFrame(true, opText, make([]byte, 1<<20))
	c.input(f[:20])
	if len(c.pending) != 20 || cap(c.pending) > 8<<10 {
		t.Fatalf("pending len %d cap %d after 20 bytes of a 1 MiB frame; want 20 and a few KiB", len(c.pending), cap(c.pending))
	}
}

// TestWriteErrorIsFinal: a write that times out part-way leaves a partial
// frame on the wire, so nothing may be written after it and the socket is
// closed.
func TestWriteErrorIsFinal(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	// The write deadline is far away; the test moves it to now once the
	// client has read part of the frame, as the deadline passing would.
	c := &conn{nc: server, writeTimeout: time.Hour, log: nil}
	got := make(chan []byte)
	partial := make(chan struct{})
	stalled := make(chan struct{})
	go func() {
		buf := make([]byte, 10)
		n, _ := io.ReadFull(client, buf) // read 10 bytes of the first frame, then stop
		close(partial)
		<-stalled
		rest, _ := io.ReadAll(client) // ends when the server closes
		got <- append(buf[:n], rest...)
	}()
	go func() {
		<-partial
		_ = server.SetWriteDeadline(time.Now())
	}()
	err := c.write(append(appendHeader(nil, opText, 100), make([]byte, 100)...))
	close(stalled)
	if err == nil {
		t.Fatal("a write the client stopped reading succeeded")
	}
	if err := c.write(pingFrame); err == nil {
		t.Fatal("a write after a failed one succeeded")
	}
	if b := <-got; len(b) != 10 {
		t.Fatalf("client received %d bytes, want exactly the 10 it read before stopping", len(b))
	}
}
