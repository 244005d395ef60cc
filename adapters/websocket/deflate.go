package websocket

import (
	"strings"

	"github.com/switchboard-dev/switchboard/adapters/internal/deflate"
	"github.com/switchboard-dev/switchboard/adapters/internal/request"
)

// permessage-deflate (RFC 7692), without context takeover in either
// direction: every message is compressed on its own, so one compressed
// form of an envelope serves every connection it goes to, and neither
// side keeps a compressor or a window between messages. An idle
// connection holds no compression state at all.
//
// Sending: a batch whose envelopes are all shorter than the threshold
// goes as a plain text frame. Otherwise it goes as one compressed message
// (RSV1) of byte-aligned deflate runs (adapters/internal/deflate): each
// envelope from the threshold up is its compressed form, from a cache
// shared by the handler's connections (compressed once for all of them);
// a shorter one, and the '\n' between envelopes, a stored block.
//
// Receiving: a message with RSV1 is inflated once whole, into at most
// the node's MaxMessageSize (beyond it 4003, whatever the compressed size
// was: no decompression bomb); deflate data that does not decode closes
// with 1007.

// extensionResponse is the answer to a permessage-deflate offer, the one
// the Fiber upgrade (fasthttp/websocket) sends.
const extensionResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// offersDeflate reports whether r offers permessage-deflate, by the rule
// the Fiber upgrade accepts an offer with, so both front ends agree.
func offersDeflate(r request.Request) bool {
	for ext := range strings.SplitSeq(r.Header("Sec-WebSocket-Extensions"), ",") {
		if strings.HasPrefix(strings.TrimSpace(ext), "permessage-deflate") {
			return true
		}
	}
	return false
}

// deflater compresses the batches of a handler's connections.
type deflater struct {
	cache     *deflate.Cache
	threshold int
}

func newDeflater(level, threshold int) *deflater {
	c, err := deflate.NewCache(level)
	if err != nil {
		panic(err) // Config.Validate refused the level first
	}
	return &deflater{cache: c, threshold: threshold}
}

// worthIt reports whether a batch goes compressed: one of its envelopes
// reaches the threshold.
func (d *deflater) worthIt(frames [][]byte) bool { return deflate.Worth(frames, d.threshold) }

var newline = []byte{'\n'}

// appendMessage appends the payload of one compressed message carrying
// frames joined by '\n'.
func (d *deflater) appendMessage(b []byte, frames [][]byte) []byte {
	s := deflate.Segments{B: b}
	for i, f := range frames {
		switch {
		case len(f) < d.threshold && i > 0:
			s.Stored(newline, f)
		case len(f) < d.threshold:
			s.Stored(f)
		default:
			if i > 0 {
				s.Stored(newline)
			}
			s.Frame(d.cache, f)
		}
	}
	s.EndMessage()
	return s.B
}

// errBadDeflate closes with 1007.
const errBadDeflate = errInvalidData("invalid deflate data")
