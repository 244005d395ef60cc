package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// A subscriber of the centrifuge peer (test/load/peers/centrifuge) speaks
// Centrifuge's JSON client protocol, v2:
//
//	→ {"id":1,"connect":{"name":"load","subs":{"room-a":{}}}}
//	← {"id":1,"connect":{"client":"…","version":"","subs":{"room-a":{}},"ping":25,"pong":true}}
//	← {"push":{"channel":"room-a","pub":{"data":{"lt":…,"ls":…,"p":"…"}}}}
//	← {}            a ping; answered with {} (a pong)
//
// The channels named in the connect command become server-side
// subscriptions (see the peer's doc comment). The server packs up to 16
// messages into one frame, one per line, so a frame is split on '\n'
// like Switchboard's. A publication's data is embedded as raw JSON, so the
// load payload's marker ("data":{"lt":) is found as in any other line.

// cfKind is what one line of a centrifuge frame is.
type cfKind int

const (
	cfOther      cfKind = iota // a push we do not use (join, leave, …)
	cfPing                     // {}: answer with {}
	cfPub                      // a publication push
	cfReply                    // a reply to a command: its id is returned
	cfDisconnect               // a disconnect push
)

var (
	cfPushPub        = []byte(`{"push":{"channel":`)
	cfPubMark        = []byte(`"pub":{`)
	cfDisconnectMark = []byte(`{"push":{"disconnect":`)
	cfIDMark         = []byte(`{"id":`)
	cfPong           = []byte(`{}`)
)

// parseCentrifugeLine classifies one line of a frame. For a reply it also
// returns the command id. It looks at the line's start only: the server
// writes fields in a fixed order ("id" first in a reply, "push" first in a
// push), so no JSON decoding is needed on the hot path.
func parseCentrifugeLine(line []byte) (cfKind, int64) {
	line = bytes.TrimSpace(line)
	switch {
	case bytes.Equal(line, cfPong):
		return cfPing, 0
	case bytes.HasPrefix(line, cfPushPub):
		if bytes.Contains(line, cfPubMark) {
			return cfPub, 0
		}
		return cfOther, 0
	case bytes.HasPrefix(line, cfDisconnectMark):
		return cfDisconnect, 0
	case bytes.HasPrefix(line, cfIDMark):
		id, n := parseUint(line[len(cfIDMark):])
		if n == 0 {
			return cfOther, 0
		}
		return cfReply, id
	}
	return cfOther, 0
}

// cfPosition is a subscriber's place in a channel's history stream (the
// peer's --redis-url mode): the stream's epoch and the offset of the last
// publication seen.
type cfPosition struct {
	Epoch  string
	Offset uint64
}

// appendCentrifugeConnect appends the connect command (id 1) that
// subscribes to channels on the server side. A channel in recover asks
// to recover everything after that position:
// "room":{"recover":true,"epoch":"…","offset":41}.
func appendCentrifugeConnect(b []byte, channels []string, recover map[string]cfPosition) []byte {
	b = append(b, `{"id":1,"connect":{"name":"load","subs":{`...)
	for i, ch := range channels {
		if i > 0 {
			b = append(b, ',')
		}
		q, _ := json.Marshal(ch)
		b = append(b, q...)
		pos, ok := recover[ch]
		if !ok {
			b = append(b, `:{}`...)
			continue
		}
		e, _ := json.Marshal(pos.Epoch)
		b = append(b, `:{"recover":true,"epoch":`...)
		b = append(b, e...)
		b = append(b, `,"offset":`...)
		b = strconv.AppendUint(b, pos.Offset, 10)
		b = append(b, '}')
	}
	return append(b, `}}}`...)
}

// cfSubResult is one channel of a connect reply: where its stream is
// (epoch, offset: the top when the subscription began), and for a
// recovering subscription whether everything missed was recovered and
// the publications that were.
type cfSubResult struct {
	Recoverable   bool            `json:"recoverable"`
	Positioned    bool            `json:"positioned"`
	Epoch         string          `json:"epoch"`
	Offset        uint64          `json:"offset"`
	WasRecovering bool            `json:"was_recovering"`
	Recovered     bool            `json:"recovered"`
	Publications  []cfPublication `json:"publications"`
}

// cfPublication is a publication in a connect reply.
type cfPublication struct {
	Data   json.RawMessage `json:"data"`
	Offset uint64          `json:"offset"`
}

// parseCentrifugeConnect reads the connect reply (the line with id 1):
// no error, and every channel confirmed as a subscription. It returns
// each channel's result.
func parseCentrifugeConnect(line []byte, channels []string) (map[string]cfSubResult, error) {
	var reply struct {
		ID      int64 `json:"id"`
		Connect *struct {
			Client string                 `json:"client"`
			Subs   map[string]cfSubResult `json:"subs"`
		} `json:"connect"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(line, &reply); err != nil {
		return nil, fmt.Errorf("connect reply: %w: %.200s", err, line)
	}
	switch {
	case reply.Error != nil:
		return nil, fmt.Errorf("connect refused: %d %s", reply.Error.Code, reply.Error.Message)
	case reply.Connect == nil:
		return nil, fmt.Errorf("connect reply without a connect result: %.200s", line)
	}
	for _, ch := range channels {
		if _, ok := reply.Connect.Subs[ch]; !ok {
			return nil, fmt.Errorf("connect reply does not confirm a subscription to %q: %.300s", ch, line)
		}
	}
	return reply.Connect.Subs, nil
}

// checkCentrifugeConnect checks the connect reply (the line with id 1): no
// error, and every channel confirmed as a subscription.
func checkCentrifugeConnect(line []byte, channels []string) error {
	_, err := parseCentrifugeConnect(line, channels)
	return err
}

var cfOffsetMark = []byte(`"offset":`)

// centrifugePubOffset returns the stream offset of a publication push,
// {"push":{"channel":"a","pub":{"data":…,"offset":42}}}; ok is false when
// it has none (no history). The load payload never contains the mark, so
// the last one in the line is the publication's.
func centrifugePubOffset(line []byte) (uint64, bool) {
	i := bytes.LastIndex(line, cfOffsetMark)
	if i < 0 {
		return 0, false
	}
	v, n := parseUint(line[i+len(cfOffsetMark):])
	return uint64(v), n > 0
}

// centrifugeConn is one subscriber's connection: the reader goroutine
// answers pings, and closeGracefully may write a close frame, so writes
// are serialized.
type centrifugeConn struct {
	conn *websocket.Conn
	wmu  sync.Mutex
}

func (c *centrifugeConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

func (c *centrifugeConn) Close() error { return c.conn.Close() }

func (c *centrifugeConn) closeGracefully() error {
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.conn.Close()
}

// subscribeCentrifuge connects to the centrifuge peer, subscribes to
// r.rooms with the connect command and starts a reader that answers pings
// and hands every other line to the fleet.
func subscribeCentrifuge(ctx context.Context, f *fleet, t target, r subReq) error {
	if r.since != "" {
		return errors.New("the centrifuge peer resumes with epoch and offset (cfRecover), not since")
	}
	u := fmt.Sprintf("ws://%s/connection/websocket", t.host)
	if f.sample != nil && f.offerDeflate {
		// Centrifuge's pings are data messages, which may travel in a
		// compressed frame with publications that a subscriber outside
		// the sample drops unread, and a missed ping is a disconnect: in
		// a sampled fleet every subscriber asks for WebSocket ping frames
		// instead (Centrifuge's option for clients like wscat), which
		// pass the filter and which the library answers.
		u += "?cf_ws_frame_ping_pong=true"
	}
	d, filter := f.wsDialer(r)
	conn, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("%s: %w (HTTP %s)", u, err, resp.Status)
		}
		return fmt.Errorf("%s: %w", u, err)
	}
	f.dialDeflated(resp)
	c := &centrifugeConn{conn: conn}
	channels := strings.Split(r.rooms, ",")
	if err := c.write(appendCentrifugeConnect(nil, channels, r.cfRecover)); err != nil {
		conn.Close()
		return fmt.Errorf("%s: send connect: %w", u, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var first, rest []byte
	for first == nil {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return fmt.Errorf("%s: read connect reply: %w", u, err)
		}
		for frame := msg; len(frame) > 0; {
			line := frame
			if i := indexNL(frame); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			if kind, id := parseCentrifugeLine(line); kind == cfReply && id == 1 {
				first, rest = line, frame
				break
			}
		}
	}
	if err := checkCentrifugeConnect(first, channels); err != nil {
		conn.Close()
		return fmt.Errorf("%s: %w", u, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	f.welcomed(r.shard, first)
	f.add(c)
	if filter != nil {
		// Outside the sample: pings and disconnects in what passes the
		// filter are handled, nothing is recorded.
		handle := func(frame []byte) error { return c.lines(nil, r.shard, frame, 0) }
		if err := handle(rest); err != nil {
			return fmt.Errorf("%s: %w", u, err)
		}
		f.skim(conn, filter, r.shard, handle)
		return nil
	}
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		if len(rest) > 0 {
			if err := c.lines(f, r.shard, rest, time.Now().UnixNano()); err != nil {
				f.end(r.shard, err)
				return
			}
		}
		buf := make([]byte, 0, 4096)
		for {
			_, rd, err := conn.NextReader()
			if err == nil {
				buf, err = readAll(rd, buf[:0])
			}
			if err == nil {
				f.frames.add(r.shard, 1)
				err = c.lines(f, r.shard, buf, time.Now().UnixNano())
			}
			if err != nil {
				f.end(r.shard, err)
				return
			}
		}
	}()
	return nil
}

// lines handles one frame: pings are answered, a disconnect push ends the
// reader, and everything else goes to the fleet line by line (nowhere if
// f is nil).
func (c *centrifugeConn) lines(f *fleet, shard int, frame []byte, nowNS int64) error {
	for line := range lines(frame) {
		switch kind, _ := parseCentrifugeLine(line); kind {
		case cfPing:
			if err := c.write(cfPong); err != nil {
				return fmt.Errorf("pong: %w", err)
			}
		case cfDisconnect:
			return fmt.Errorf("disconnected by the server: %.200s", line)
		default:
			if f != nil {
				f.frame(shard, line, nowNS)
			}
		}
	}
	return nil
}
