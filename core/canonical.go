package core

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// decodeCanonical decodes b when it is exactly what AppendEnvelope writes
// — the fields in their fixed order, strings without escapes, nothing
// else — without encoding/json's reflection: every node decodes every
// message of the log, and almost all of them were written so. It reports
// false for anything else (escaped strings, other field orders, unknown
// fields, whitespace), which UnmarshalEnvelope then decodes the general
// way; where it reports true the result equals json.Unmarshal's (a fuzz
// test holds it to that). e.Data aliases b.
func decodeCanonical(b []byte) (e *Envelope, ok bool) {
	const head = `{"v":1`
	if !bytes.HasPrefix(b, []byte(head)) || len(b) < len(head)+1 || b[len(b)-1] != '}' {
		return nil, false
	}
	e = &Envelope{V: 1}
	rest := b[len(head) : len(b)-1]
	field := func(name string) bool {
		if len(rest) < len(name)+4 || rest[0] != ',' || rest[1] != '"' || string(rest[2:2+len(name)]) != name || rest[2+len(name)] != '"' || rest[3+len(name)] != ':' {
			return false
		}
		rest = rest[4+len(name):]
		return true
	}
	str := func(dst *string) bool {
		if len(rest) < 2 || rest[0] != '"' {
			return false
		}
		for i := 1; i < len(rest); i++ {
			switch c := rest[i]; {
			case c == '"':
				s := rest[1:i]
				if !utf8.Valid(s) {
					return false
				}
				*dst = string(s)
				rest = rest[i+1:]
				return true
			case c == '\\' || c < 0x20:
				return false
			}
		}
		return false
	}
	if field("id") && !str(&e.ID) {
		return nil, false
	}
	if !field("type") || !str(&e.Type) {
		return nil, false
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"room", &e.Room}, {"to", &e.To}, {"from", &e.From}} {
		if field(f.name) && !str(f.dst) {
			return nil, false
		}
	}
	if field("ts") {
		n, i := int64(0), 0
		neg := len(rest) > 0 && rest[0] == '-'
		if neg {
			i = 1
		}
		start := i
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
			if i-start >= 18 { // keep clear of overflow: the general path decides
				return nil, false
			}
			n = n*10 + int64(rest[i]-'0')
		}
		if i == start || (rest[start] == '0' && i-start > 1) {
			return nil, false
		}
		if neg {
			n = -n
		}
		e.TS = n
		rest = rest[i:]
	}
	if field("ref") && !str(&e.Ref) {
		return nil, false
	}
	if field("data") {
		if len(rest) == 0 || bytes.ContainsAny(rest, "\t\n\r") || isSpace(rest[0]) || isSpace(rest[len(rest)-1]) || !json.Valid(rest) || !utf8.Valid(rest) {
			return nil, false
		}
		e.Data, rest = rest, nil
	}
	if len(rest) != 0 {
		return nil, false
	}
	return e, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
