package main

import (
	"bytes"
	"compress/flate"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// The data of a load message (--payload) is one of:
//
//	pad     {"lt":…,"ls":…,"p":"xxx…"} padded to exactly --payload N bytes
//	        (default 128): nearly all of it compresses away
//	chat    a chat message of 150–300 bytes: a user name, a sentence of
//	        varied English words, a message id and a timestamp
//	market  a market-data snapshot of about 2 KB: 20 quotes, each with a
//	        symbol and random bid/ask/sizes/last/volume/change, so the
//	        digits carry real entropy and only the structure compresses
//
// Every kind starts with the send time and the step, {"lt":…,"ls":…,
// (frame.go), so the subscribers parse them all alike.
var payloadKinds = []string{"pad", "chat", "market"}

// payloadSpec is what --payload asks for.
type payloadSpec struct {
	kind string // pad, chat or market
	size int    // pad: bytes of data
}

func (p payloadSpec) String() string {
	if p.kind == "pad" {
		return fmt.Sprintf("pad %d B", p.size)
	}
	return p.kind
}

// maxSize is an upper bound of one payload's size, for buffers.
func (p payloadSpec) maxSize() int {
	switch p.kind {
	case "chat":
		return chatMax
	case "market":
		return 3 << 10
	}
	return p.size
}

// parsePayload reads --payload: a kind, or a number of bytes (a pad
// payload of that size, as before the kinds existed).
func parsePayload(s string, spec *payloadSpec) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 64 || n > 32<<10 {
			return fmt.Errorf("--payload %d: use 64 to 32768 bytes", n)
		}
		spec.kind, spec.size = "pad", n
		return nil
	}
	if !contains(payloadKinds, s) {
		return fmt.Errorf("--payload %q: use %s, or a number of bytes (pad)", s, strings.Join(payloadKinds, ", "))
	}
	spec.kind = s
	return nil
}

// payloadGen makes the payloads of one publishing goroutine (it is not
// safe for concurrent use).
type payloadGen struct {
	spec payloadSpec
	rng  *rand.Rand
	seq  uint64
}

func newPayloadGen(spec payloadSpec, seed uint64) *payloadGen {
	return &payloadGen{spec: spec, rng: rand.New(rand.NewPCG(seed, 0x5eed_10ad))}
}

// append appends one payload sent at sentNS (unix ns) for step to b.
func (g *payloadGen) append(b []byte, sentNS int64, step int) []byte {
	g.seq++
	switch g.spec.kind {
	case "chat":
		return g.appendChat(b, sentNS, step)
	case "market":
		return g.appendMarket(b, sentNS, step)
	}
	return appendPayload(b, sentNS, step, g.spec.size)
}

func appendMarker(b []byte, sentNS int64, step int) []byte {
	b = append(b, `{"lt":`...)
	b = appendInt(b, sentNS)
	b = append(b, `,"ls":`...)
	return appendInt(b, int64(step))
}

const (
	chatMin = 150
	chatMax = 300
)

// appendChat appends a chat message of chatMin to chatMax bytes:
//
//	{"lt":…,"ls":…,"id":"m_k3f9a2c81q","user":"mira.okafor","text":"…","at":"2026-12-06T17:02:18.123Z"}
func (g *payloadGen) appendChat(b []byte, sentNS int64, step int) []byte {
	start := len(b)
	b = appendMarker(b, sentNS, step)
	b = append(b, `,"id":"m_`...)
	for range 10 {
		b = append(b, idAlphabet[g.rng.IntN(len(idAlphabet))])
	}
	b = append(b, `","user":"`...)
	b = append(b, chatUsers[g.rng.IntN(len(chatUsers))]...)
	b = append(b, `","text":"`...)
	const at = `","at":"2006-01-02T15:04:05.000Z"}`
	// The sentence fills the message to a length drawn in [chatMin+16,
	// chatMax-2]; a word with its separator is at most 14 bytes, so the
	// message ends within range.
	target := chatMin + 16 + g.rng.IntN(chatMax-chatMin-17)
	room := target - (len(b) - start) - len(at) - 1 // 1: the final punctuation
	text := len(b)
	for first := true; ; first = false {
		w := chatWords[g.rng.IntN(len(chatWords))]
		sep := ""
		switch {
		case first:
		case g.rng.IntN(9) == 0:
			sep = ", "
		default:
			sep = " "
		}
		if len(b)-text+len(sep)+len(w) > room {
			break
		}
		b = append(b, sep...)
		if first {
			b = append(b, w[0]-'a'+'A')
			b = append(b, w[1:]...)
		} else {
			b = append(b, w...)
		}
	}
	b = append(b, ".!?."[g.rng.IntN(4)])
	b = append(b, `","at":"`...)
	b = time.Unix(0, sentNS).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	return append(b, `"}`...)
}

const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// appendMarket appends a snapshot of 20 quotes (about 2 KB):
//
//	{"lt":…,"ls":…,"venue":"XNAS","seq":…,"quotes":[{"sym":"AAPL","bid":187.42,"ask":187.45,"bidSize":300,"askSize":1200,"last":187.44,"vol":18234512,"chg":-0.42},…]}
func (g *payloadGen) appendMarket(b []byte, sentNS int64, step int) []byte {
	b = appendMarker(b, sentNS, step)
	b = append(b, `,"venue":"XNAS","seq":`...)
	b = strconv.AppendUint(b, 4_000_000+g.seq, 10)
	b = append(b, `,"quotes":[`...)
	// 20 of the symbols, chosen afresh each time (a partial shuffle).
	var idx [len(marketSymbols)]int
	for i := range idx {
		idx[i] = i
	}
	for i := range marketQuotes {
		j := i + g.rng.IntN(len(idx)-i)
		idx[i], idx[j] = idx[j], idx[i]
		s := marketSymbols[idx[i]]
		mid := s.price * (1 + (g.rng.Float64()-0.5)*0.04)
		spread := 0.01 * float64(1+g.rng.IntN(5))
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sym":"`...)
		b = append(b, s.sym...)
		b = append(b, `","bid":`...)
		b = strconv.AppendFloat(b, mid-spread/2, 'f', 2, 64)
		b = append(b, `,"ask":`...)
		b = strconv.AppendFloat(b, mid+spread/2, 'f', 2, 64)
		b = append(b, `,"bidSize":`...)
		b = strconv.AppendInt(b, int64(100*(1+g.rng.IntN(50))), 10)
		b = append(b, `,"askSize":`...)
		b = strconv.AppendInt(b, int64(100*(1+g.rng.IntN(50))), 10)
		b = append(b, `,"last":`...)
		b = strconv.AppendFloat(b, mid+spread*(g.rng.Float64()-0.5), 'f', 2, 64)
		b = append(b, `,"vol":`...)
		b = strconv.AppendInt(b, int64(100_000+g.rng.IntN(50_000_000)), 10)
		b = append(b, `,"chg":`...)
		b = strconv.AppendFloat(b, (g.rng.Float64()-0.5)*10, 'f', 2, 64)
		b = append(b, '}')
	}
	return append(b, `]}`...)
}

const marketQuotes = 20

var marketSymbols = [...]struct {
	sym   string
	price float64
}{
	{"AAPL", 187.4}, {"MSFT", 412.3}, {"GOOGL", 171.9}, {"AMZN", 184.6}, {"NVDA", 121.8}, {"META", 498.1},
	{"TSLA", 242.7}, {"BRK.B", 408.5}, {"JPM", 198.2}, {"V", 274.9}, {"UNH", 521.4}, {"XOM", 113.6},
	{"JNJ", 152.3}, {"WMT", 68.9}, {"MA", 455.2}, {"PG", 166.7}, {"HD", 348.1}, {"CVX", 158.4},
	{"LLY", 781.5}, {"ABBV", 171.2}, {"KO", 62.8}, {"PEP", 171.9}, {"AVGO", 1412.6}, {"COST", 812.3},
	{"MRK", 127.4}, {"ADBE", 512.8}, {"CSCO", 47.6}, {"CRM", 268.1}, {"NFLX", 642.9}, {"AMD", 158.3},
	{"INTC", 30.9}, {"ORCL", 139.7}, {"QCOM", 201.5}, {"TXN", 196.2}, {"IBM", 184.4}, {"BA", 178.9},
	{"DIS", 96.4}, {"NKE", 92.7}, {"SBUX", 79.3}, {"PYPL", 63.8},
}

var chatUsers = []string{
	"mira.okafor", "jonas_b", "priya", "tomasz.w", "aiko", "sam", "leila.haddad", "dev_oliver", "chen.wei", "fatima",
	"noah.k", "grace_h", "mateo", "ingrid.s", "yusuf", "hannah.lee", "ravi_k", "zoe", "kwame.a", "lucia.m",
	"erik", "amara_n", "felix.r", "sofia", "daniel.o", "nina_p", "omar", "clara.v", "ben_t", "yuki.t",
}

// chatWords are common English words of at most 12 letters.
var chatWords = strings.Fields(`
the be to of and a in that have it for not on with he as you do at this but his by from they we say her she or
an will my one all would there their what so up out if about who get which go me when make can like time no just
him know take people into year your good some could them see other than then now look only come its over think
also back after use two how our work first well way even new want because any these give day most us is was are
were been has had did said got made went found thought told asked seemed felt left called meeting tomorrow
tonight morning afternoon evening weekend lunch coffee dinner office project deadline release build test
deploy review branch merge ticket issue design draft slides report numbers budget client customer team call
quick update question answer idea plan schedule moved pushed fixed broke works sounds great thanks sorry
maybe probably definitely honestly actually really pretty quite still already almost again soon later
please let check send share ping sync chat talk discuss agree wonder guess hope need should might must
everyone anyone someone nothing something everything here where why while before during until since though
happy busy tired late early ready done blocked stuck waiting finished started running working looking
monday tuesday wednesday thursday friday weather train traffic home remote laptop screen link doc notes
figure logs dashboard alert server database cache latency traffic metrics graph spike drop hour minute
`)

// deflateSizer measures what a message costs compressed on its own, as
// permessage-deflate without context takeover sends it: deflate at level
// 6 with a fresh window, ended by a sync flush whose last four bytes
// (00 00 ff ff) are left off (RFC 7692 section 7.2.1). The WebSocket
// frame header (2 bytes up to 125 bytes of payload, 4 up to 64 KiB) is
// not counted. Compressing each envelope once for every recipient and
// sending it in a frame of its own cannot do better.
type deflateSizer struct {
	w   *flate.Writer
	buf bytes.Buffer
}

const floorLevel = 6

func newDeflateSizer() *deflateSizer {
	w, _ := flate.NewWriter(nil, floorLevel)
	return &deflateSizer{w: w}
}

func (d *deflateSizer) size(msg []byte) int {
	d.buf.Reset()
	d.w.Reset(&d.buf)
	_, _ = d.w.Write(msg)
	_ = d.w.Flush()
	return len(bytes.TrimSuffix(d.buf.Bytes(), []byte{0, 0, 0xff, 0xff}))
}

// envelopeSizes returns the mean size of msgs as they are and each
// compressed on its own (deflateSizer); zeros without msgs.
func envelopeSizes(msgs [][]byte) (raw, deflated float64) {
	if len(msgs) == 0 {
		return 0, 0
	}
	d := newDeflateSizer()
	var r, c int
	for _, m := range msgs {
		r += len(m)
		c += d.size(m)
	}
	return float64(r) / float64(len(msgs)), float64(c) / float64(len(msgs))
}

// meanPayloadSize is the mean size of spec's payloads, from a sample.
func meanPayloadSize(spec payloadSpec) float64 {
	if spec.kind == "pad" {
		return float64(spec.size)
	}
	g := newPayloadGen(spec, 1)
	const n = 256
	total := 0
	var b []byte
	for i := range n {
		b = g.append(b[:0], 1795344139268123456+int64(i)*1e7, 0)
		total += len(b)
	}
	return float64(total) / n
}
