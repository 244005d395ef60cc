package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Version is the envelope version this package speaks.
const Version = 1

// Client → server envelope types.
const (
	TypeJoin    = "join"    // {room}: join a room; answered by ack
	TypeLeave   = "leave"   // {room}: leave a room; answered by ack
	TypePublish = "publish" // {room, data}: publish to a joined room; ack carries the id
	TypeDirect  = "direct"  // {to, data}: private message to every connection of user "to"; also server → client
	TypePing    = "ping"    // answered by pong
	TypeRefresh = "refresh" // {data: {token}}: new credentials for this connection; answered by ack {expires?}
)

// Server → client envelope types.
const (
	TypeWelcome   = "welcome"   // first envelope: {conn, user, rooms, recovered?}
	TypeMessage   = "message"   // a room publication
	TypeAck       = "ack"       // success reply carrying the request's ref
	TypeError     = "error"     // {code, message} carrying the request's ref
	TypePong      = "pong"      // reply to ping
	TypeGap       = "gap"       // {recovered:false}: a replay after a resume-policy pause could not be completed
	TypeBroadcast = "broadcast" // a message to every connection (server API)
)

// Limits on envelope fields.
const (
	MaxRoomLen = 128
	MaxUserLen = 128
	MaxTypeLen = 32
	MaxRefLen  = 64
)

// Envelope is the v1 message unit on every transport and in the broker.
//
//	{"v":1,"id":"…","type":"…","room":"…","to":"…","from":"…","ts":<unix ms>,"ref":"…","data":<any JSON>}
//
// ID is the broker position of a room or direct message (opaque; send it
// back as since= to resume). From is set by the server. Ref is the client's
// correlation id, echoed on ack and error replies.
type Envelope struct {
	V    int             `json:"v"`
	ID   string          `json:"id,omitempty"`
	Type string          `json:"type"`
	Room string          `json:"room,omitempty"`
	To   string          `json:"to,omitempty"`
	From string          `json:"from,omitempty"`
	TS   int64           `json:"ts,omitempty"`
	Ref  string          `json:"ref,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`

	// Trace carries the publisher's span context across the broker (see
	// Tracer). Brokers keep it in message metadata; it is never encoded
	// in the envelope and never read from clients. Nil without tracing.
	Trace map[string]string `json:"-"`
}

// DecodeEnvelope strictly decodes one client envelope: a JSON object in
// valid UTF-8, no unknown fields, v == 1, a well-formed type, room, to and
// ref. Fields the server owns (id, from, ts) are cleared. Data is
// compacted so an encoded envelope never contains a raw newline. The
// error is an *Error with CodeBadRequest (or CodeInvalidRoom /
// CodeInvalidUser) and a message precise enough to fix the client.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, Errorf(CodeBadRequest, "empty frame")
	}
	if b[0] != '{' {
		return nil, Errorf(CodeBadRequest, "envelope must be a JSON object")
	}
	// encoding/json does not validate UTF-8 inside a json.RawMessage, so
	// without this check invalid bytes in "data" would be relayed verbatim
	// to every subscriber, and a browser fails a WebSocket connection that
	// receives a text frame with invalid UTF-8 (one client could disconnect
	// a whole room). Reject the frame instead.
	if !utf8.Valid(b) {
		return nil, Errorf(CodeBadRequest, "envelope is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var raw struct {
		V    *int            `json:"v"`
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Room string          `json:"room"`
		To   string          `json:"to"`
		From string          `json:"from"`
		TS   int64           `json:"ts"`
		Ref  string          `json:"ref"`
		Data json.RawMessage `json:"data"`
	}
	if err := dec.Decode(&raw); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Errorf(CodeBadRequest, "unexpected data after the envelope (separate envelopes with a newline)")
	}
	if err := checkKeys(b); err != nil {
		return nil, err
	}
	if raw.V == nil {
		return nil, Errorf(CodeBadRequest, `field "v": required (use 1)`)
	}
	if *raw.V != Version {
		return nil, Errorf(CodeBadRequest, `field "v": unsupported version %d (use 1)`, *raw.V)
	}
	if err := ValidateType(raw.Type); err != nil {
		return nil, err
	}
	if len(raw.Ref) > MaxRefLen {
		return nil, Errorf(CodeBadRequest, `field "ref": longer than %d bytes`, MaxRefLen)
	}
	if raw.Room != "" {
		if err := ValidateRoom(raw.Room); err != nil {
			return nil, err
		}
	}
	if raw.To != "" {
		if err := ValidateUser(raw.To); err != nil {
			return nil, err
		}
	}
	env := &Envelope{V: Version, Type: raw.Type, Room: raw.Room, To: raw.To, Ref: raw.Ref}
	if len(raw.Data) > 0 && !bytes.Equal(raw.Data, []byte("null")) {
		var buf bytes.Buffer
		buf.Grow(len(raw.Data))
		if err := json.Compact(&buf, raw.Data); err != nil { // cannot fail: Decode validated it
			return nil, Errorf(CodeBadRequest, `field "data": %v`, err)
		}
		env.Data = buf.Bytes()
	}
	return env, nil
}

// checkKeys rejects what encoding/json tolerates: field names in another
// case ("TYPE") or spelled with escapes, and repeated fields. b must be a
// syntactically valid JSON object (the struct decode has checked it), so
// this is a single allocation-free scan of the top level.
func checkKeys(b []byte) error {
	var seen uint16 // bit per known field
	i := skipSpace(b, 1)
	for i < len(b) && b[i] == '"' {
		end := i + 1
		for end < len(b) && b[end] != '"' && b[end] != '\\' {
			end++
		}
		if end >= len(b) || b[end] == '\\' {
			return Errorf(CodeBadRequest, "field names must be plain lower-case names without escapes")
		}
		bit := keyBit(b[i+1 : end])
		if bit == 0 {
			return Errorf(CodeBadRequest, "unknown field %q (field names are lower-case)", b[i+1:end])
		}
		if seen&bit != 0 {
			return Errorf(CodeBadRequest, "field %q appears twice", b[i+1:end])
		}
		seen |= bit
		i = skipSpace(b, end+1) // at ':'
		i = skipValue(b, skipSpace(b, i+1))
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return nil
}

func keyBit(k []byte) uint16 {
	for i, name := range [...]string{"v", "id", "type", "room", "to", "from", "ts", "ref", "data"} {
		if string(k) == name {
			return 1 << i
		}
	}
	return 0
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the valid JSON value at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // end of the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// SplitFrame calls fn for every non-empty line of a frame: one frame may
// carry several envelopes separated by '\n'.
func SplitFrame(frame []byte, fn func(line []byte)) {
	for len(frame) > 0 {
		i := bytes.IndexByte(frame, '\n')
		var line []byte
		if i < 0 {
			line, frame = frame, nil
		} else {
			line, frame = frame[:i], frame[i+1:]
		}
		if len(bytes.TrimSpace(line)) > 0 {
			fn(line)
		}
	}
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return Errorf(CodeBadRequest, "invalid JSON at offset %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "envelope"
		}
		return Errorf(CodeBadRequest, "field %q: expected %s, got JSON %s", field, te.Type.String(), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Errorf(CodeBadRequest, "invalid JSON: unexpected end of input")
	default:
		msg := strings.TrimPrefix(err.Error(), "json: ")
		return Errorf(CodeBadRequest, "%s", msg)
	}
}

// ValidateType checks an envelope type: 1-32 bytes of [a-z0-9_.:-],
// starting with a letter.
func ValidateType(t string) error {
	if t == "" {
		return Errorf(CodeBadRequest, `field "type": required`)
	}
	if len(t) > MaxTypeLen {
		return Errorf(CodeBadRequest, `field "type": longer than %d bytes`, MaxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		ok := c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-')
		if !ok {
			return Errorf(CodeBadRequest, `field "type": %q must be lower-case letters, digits, '_', '.', ':' or '-', starting with a letter`, t)
		}
	}
	return nil
}

// ValidateRoom checks a room name: 1-128 bytes of ASCII letters, digits
// and "_-.:@/=". The rule keeps names safe as broker topics and URL query
// values.
func ValidateRoom(room string) error {
	if room == "" {
		return Errorf(CodeInvalidRoom, "room name is empty")
	}
	if len(room) > MaxRoomLen {
		return Errorf(CodeInvalidRoom, "room name longer than %d bytes", MaxRoomLen)
	}
	if i := badNameByte(room); i >= 0 {
		return Errorf(CodeInvalidRoom, "room %q: character %q not allowed (use letters, digits and _-.:@/=)", room, room[i])
	}
	return nil
}

// ValidateUser checks a user id with the same character rules as rooms.
func ValidateUser(user string) error {
	if user == "" {
		return Errorf(CodeInvalidUser, "user id is empty")
	}
	if len(user) > MaxUserLen {
		return Errorf(CodeInvalidUser, "user id longer than %d bytes", MaxUserLen)
	}
	if i := badNameByte(user); i >= 0 {
		return Errorf(CodeInvalidUser, "user %q: character %q not allowed (use letters, digits and _-.:@/=)", user, user[i])
	}
	return nil
}

func badNameByte(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '-' || c == '.' || c == ':' || c == '@' || c == '/' || c == '=':
		default:
			return i
		}
	}
	return -1
}

// AppendEnvelope appends the JSON encoding of e to dst, with a fixed field
// order, empty fields omitted and v always written. It does not allocate
// beyond growing dst. e.Data must be valid, compact JSON (DecodeEnvelope
// and the server's own constructors guarantee it).
func AppendEnvelope(dst []byte, e *Envelope) []byte {
	dst = append(dst, `{"v":`...)
	dst = appendInt(dst, int64(Version))
	if e.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, e.ID)
	}
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, e.Type)
	if e.Room != "" {
		dst = append(dst, `,"room":`...)
		dst = appendString(dst, e.Room)
	}
	if e.To != "" {
		dst = append(dst, `,"to":`...)
		dst = appendString(dst, e.To)
	}
	if e.From != "" {
		dst = append(dst, `,"from":`...)
		dst = appendString(dst, e.From)
	}
	if e.TS != 0 {
		dst = append(dst, `,"ts":`...)
		dst = appendInt(dst, e.TS)
	}
	if e.Ref != "" {
		dst = append(dst, `,"ref":`...)
		dst = appendString(dst, e.Ref)
	}
	if len(e.Data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, e.Data...)
	}
	return append(dst, '}')
}

// Encode returns the JSON encoding of e in a new slice.
func (e *Envelope) Encode() []byte {
	return AppendEnvelope(make([]byte, 0, 96+len(e.ID)+len(e.Room)+len(e.Data)), e)
}

// UnmarshalEnvelope decodes a server-produced envelope (from the broker or
// history) leniently: unknown fields are ignored so newer nodes can add
// fields during a rolling upgrade. Data comes back without line breaks or
// tabs (compacted if a foreign producer wrote them).
func UnmarshalEnvelope(b []byte) (*Envelope, error) {
	if e, ok := decodeCanonical(b); ok {
		return e, nil
	}
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("switchboard/core: decode envelope: %w", err)
	}
	if e.V != Version {
		return nil, fmt.Errorf("switchboard/core: decode envelope: unsupported version %d", e.V)
	}
	if bytes.ContainsAny(e.Data, "\n\r\t") {
		// A foreign producer's data with line breaks would split the
		// envelope across frames of a newline-delimited transport: keep
		// it compact, as AppendEnvelope requires. (These bytes cannot
		// occur raw inside JSON strings, so only such data pays.)
		var buf bytes.Buffer
		if err := json.Compact(&buf, e.Data); err != nil {
			return nil, fmt.Errorf("switchboard/core: decode envelope: data: %w", err)
		}
		e.Data = buf.Bytes()
	}
	return &e, nil
}

// appendInt uses strconv.AppendInt (which also does not allocate): the
// hand-rolled version negated n, which overflows for math.MinInt64 and
// wrote non-digit bytes.
func appendInt(dst []byte, n int64) []byte {
	return strconv.AppendInt(dst, n, 10)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Control characters, quotes and
// backslashes are escaped, invalid UTF-8 becomes U+FFFD, and U+2028/U+2029
// are escaped so the output is safe to evaluate as JavaScript.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
