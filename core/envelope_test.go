package core_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-dev/switchboard/core"
)

func TestDecodeEnvelopeValid(t *testing.T) {
	t.Parallel()
	room128 := strings.Repeat("r", core.MaxRoomLen)
	ref64 := strings.Repeat("f", core.MaxRefLen)
	tests := []struct {
		name string
		in   string
		want core.Envelope
	}{
		{"join", `{"v":1,"type":"join","room":"lobby","ref":"1"}`,
			core.Envelope{V: 1, Type: core.TypeJoin, Room: "lobby", Ref: "1"}},
		{"leave", `{"v":1,"type":"leave","room":"lobby","ref":"2"}`,
			core.Envelope{V: 1, Type: core.TypeLeave, Room: "lobby", Ref: "2"}},
		{"publish", `{"v":1,"type":"publish","room":"lobby","ref":"3","data":{"text":"hi"}}`,
			core.Envelope{V: 1, Type: core.TypePublish, Room: "lobby", Ref: "3", Data: json.RawMessage(`{"text":"hi"}`)}},
		{"direct", `{"v":1,"type":"direct","to":"bob","data":"psst"}`,
			core.Envelope{V: 1, Type: core.TypeDirect, To: "bob", Data: json.RawMessage(`"psst"`)}},
		{"ping", `{"v":1,"type":"ping"}`,
			core.Envelope{V: 1, Type: core.TypePing}},
		{"custom type", `{"v":1,"type":"chat.typing:v2_x-1","room":"r"}`,
			core.Envelope{V: 1, Type: "chat.typing:v2_x-1", Room: "r"}},
		{"nested keys are the app's business", `{"v":1,"type":"publish","room":"r","data":{"TYPE":"x","v":2,"v":3,"s":"a\\\"}"}}`,
			core.Envelope{V: 1, Type: core.TypePublish, Room: "r", Data: json.RawMessage(`{"TYPE":"x","v":2,"v":3,"s":"a\\\"}"}`)}},
		{"field order free", `{"data":[1],"room":"r","type":"publish","v":1}`,
			core.Envelope{V: 1, Type: core.TypePublish, Room: "r", Data: json.RawMessage(`[1]`)}},
		{"surrounding whitespace", " \r\n\t{\"v\":1,\"type\":\"ping\"}\r\n ",
			core.Envelope{V: 1, Type: core.TypePing}},
		{"data null is no data", `{"v":1,"type":"publish","room":"r","data":null}`,
			core.Envelope{V: 1, Type: core.TypePublish, Room: "r"}},
		{"data compacted, newlines removed", "{\"v\":1,\"type\":\"publish\",\"room\":\"r\",\"data\":{\n  \"a\" : [ 1 ,\n 2 ],\r\n\t\"b\": \"x y\\nz\"\n}}",
			core.Envelope{V: 1, Type: core.TypePublish, Room: "r", Data: json.RawMessage(`{"a":[1,2],"b":"x y\nz"}`)}},
		{"data scalar", `{"v":1,"type":"publish","room":"r","data":-1.5e3}`,
			core.Envelope{V: 1, Type: core.TypePublish, Room: "r", Data: json.RawMessage(`-1.5e3`)}},
		{"server-owned fields cleared", `{"v":1,"id":"forged-9","type":"publish","room":"r","from":"admin","ts":123,"data":1}`,
			core.Envelope{V: 1, Type: core.TypePublish, Room: "r", Data: json.RawMessage(`1`)}},
		{"every allowed room byte", `{"v":1,"type":"join","room":"azAZ09_-.:@/="}`,
			core.Envelope{V: 1, Type: core.TypeJoin, Room: "azAZ09_-.:@/="}},
		{"room at the length limit", `{"v":1,"type":"join","room":"` + room128 + `"}`,
			core.Envelope{V: 1, Type: core.TypeJoin, Room: room128}},
		{"ref at the length limit", `{"v":1,"type":"ping","ref":"` + ref64 + `"}`,
			core.Envelope{V: 1, Type: core.TypePing, Ref: ref64}},
		{"ref with any text", `{"v":1,"type":"ping","ref":"é \"q\" 😀"}`,
			core.Envelope{V: 1, Type: core.TypePing, Ref: `é "q" 😀`}},
		{"empty room is left to the handler", `{"v":1,"type":"join","room":""}`,
			core.Envelope{V: 1, Type: core.TypeJoin}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := core.DecodeEnvelope([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeEnvelope(%s): %v", tt.in, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("DecodeEnvelope(%s)\n got %+v (data %s)\nwant %+v (data %s)", tt.in, *got, got.Data, tt.want, tt.want.Data)
			}
		})
	}
}

func TestDecodeEnvelopeInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		code string
		msg  string // substring of the error message
	}{
		{"empty", ``, core.CodeBadRequest, "empty frame"},
		{"whitespace", " \n\t", core.CodeBadRequest, "empty frame"},
		{"array", `[{"v":1,"type":"ping"}]`, core.CodeBadRequest, "must be a JSON object"},
		{"string", `"ping"`, core.CodeBadRequest, "must be a JSON object"},
		{"number", `1`, core.CodeBadRequest, "must be a JSON object"},
		{"null", `null`, core.CodeBadRequest, "must be a JSON object"},
		{"missing v", `{"type":"ping"}`, core.CodeBadRequest, `"v": required`},
		{"v null", `{"v":null,"type":"ping"}`, core.CodeBadRequest, `"v": required`},
		{"v 2", `{"v":2,"type":"ping"}`, core.CodeBadRequest, "unsupported version 2"},
		{"v 0", `{"v":0,"type":"ping"}`, core.CodeBadRequest, "unsupported version 0"},
		{"v string", `{"v":"1","type":"ping"}`, core.CodeBadRequest, `field "v": expected int`},
		{"v fraction", `{"v":1.5,"type":"ping"}`, core.CodeBadRequest, `field "v"`},
		{"unknown field", `{"v":1,"type":"ping","colour":"red"}`, core.CodeBadRequest, `unknown field "colour"`},
		{"field name in another case", `{"v":1,"TYPE":"ping"}`, core.CodeBadRequest, `unknown field "TYPE"`},
		{"repeated field", `{"v":1,"type":"ping","type":"join"}`, core.CodeBadRequest, `field "type" appears twice`},
		{"escaped field name", `{"v":1,"t\u0079pe":"ping"}`, core.CodeBadRequest, "without escapes"},
		{"repeated after nested data", `{"v":1,"data":{"type":[1,{"x":"}"}]},"type":"ping","v":1}`, core.CodeBadRequest, `field "v" appears twice`},
		{"missing type", `{"v":1}`, core.CodeBadRequest, `"type": required`},
		{"type upper case", `{"v":1,"type":"Join"}`, core.CodeBadRequest, `"type"`},
		{"type leading digit", `{"v":1,"type":"1x"}`, core.CodeBadRequest, `"type"`},
		{"type with space", `{"v":1,"type":"a b"}`, core.CodeBadRequest, `"type"`},
		{"type too long", `{"v":1,"type":"` + strings.Repeat("t", core.MaxTypeLen+1) + `"}`, core.CodeBadRequest, "longer than 32"},
		{"type not a string", `{"v":1,"type":5}`, core.CodeBadRequest, `field "type": expected string`},
		{"room with space", `{"v":1,"type":"join","room":"a b"}`, core.CodeInvalidRoom, "not allowed"},
		{"room with hash", `{"v":1,"type":"join","room":"a#b"}`, core.CodeInvalidRoom, "not allowed"},
		{"room non-ASCII", `{"v":1,"type":"join","room":"café"}`, core.CodeInvalidRoom, "not allowed"},
		{"room too long", `{"v":1,"type":"join","room":"` + strings.Repeat("r", core.MaxRoomLen+1) + `"}`, core.CodeInvalidRoom, "longer than 128"},
		{"room not a string", `{"v":1,"type":"join","room":["a"]}`, core.CodeBadRequest, `field "room"`},
		{"to with slash-n", `{"v":1,"type":"direct","to":"bob\n"}`, core.CodeInvalidUser, "not allowed"},
		{"to too long", `{"v":1,"type":"direct","to":"` + strings.Repeat("u", core.MaxUserLen+1) + `"}`, core.CodeInvalidUser, "longer than 128"},
		{"ref too long", `{"v":1,"type":"ping","ref":"` + strings.Repeat("f", core.MaxRefLen+1) + `"}`, core.CodeBadRequest, `"ref": longer than 64`},
		{"ts not an integer", `{"v":1,"type":"ping","ts":1.5}`, core.CodeBadRequest, `field "ts"`},
		{"two envelopes", `{"v":1,"type":"ping"} {"v":1,"type":"ping"}`, core.CodeBadRequest, "unexpected data after the envelope"},
		{"trailing garbage", `{"v":1,"type":"ping"}x`, core.CodeBadRequest, "unexpected data after the envelope"},
		{"trailing bracket", `{"v":1,"type":"ping"}]`, core.CodeBadRequest, "unexpected data after the envelope"},
		{"truncated", `{"v":1,"type":"pi`, core.CodeBadRequest, "unexpected end of input"},
		{"syntax error", `{"v":1,,"type":"ping"}`, core.CodeBadRequest, "invalid JSON at offset"},
		{"data missing value", `{"v":1,"type":"ping","data":}`, core.CodeBadRequest, "invalid JSON"},
		{"raw newline inside a string", "{\"v\":1,\"type\":\"ping\",\"data\":\"a\nb\"}", core.CodeBadRequest, "invalid JSON"},
		{"invalid UTF-8 in data", "{\"v\":1,\"type\":\"publish\",\"room\":\"r\",\"data\":\"\xff\"}", core.CodeBadRequest, "UTF-8"},
		{"invalid UTF-8 in ref", "{\"v\":1,\"type\":\"ping\",\"ref\":\"\xc3\"}", core.CodeBadRequest, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := core.DecodeEnvelope([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeEnvelope(%q) = %+v, want error %s", tt.in, env, tt.code)
			}
			var pe *core.Error
			if !errors.As(err, &pe) {
				t.Fatalf("DecodeEnvelope(%q) error %T %v, want *core.Error", tt.in, err, err)
			}
			if pe.Code != tt.code || !strings.Contains(pe.Message, tt.msg) {
				t.Errorf("DecodeEnvelope(%q) = %q %q, want code %q and a message containing %q", tt.in, pe.Code, pe.Message, tt.code, tt.msg)
			}
			if core.ErrorCode(err) != tt.code {
				t.Errorf("ErrorCode = %q, want %q", core.ErrorCode(err), tt.code)
			}
		})
	}
}

func TestAppendEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  core.Envelope
		want string // exact encoding; empty: only round-trip
	}{
		{"minimal", core.Envelope{V: 1, Type: core.TypePong}, `{"v":1,"type":"pong"}`},
		{"every field", core.Envelope{V: 1, ID: "e-7", Type: core.TypeMessage, Room: "lobby", To: "bob", From: "ada", TS: 1700000000123, Ref: "r1", Data: json.RawMessage(`{"a":[1,"x"]}`)},
			`{"v":1,"id":"e-7","type":"message","room":"lobby","to":"bob","from":"ada","ts":1700000000123,"ref":"r1","data":{"a":[1,"x"]}}`},
		{"v is always 1", core.Envelope{Type: core.TypeAck}, `{"v":1,"type":"ack"}`},
		{"data string", core.Envelope{V: 1, Type: core.TypeDirect, Data: json.RawMessage(`"hi"`)}, `{"v":1,"type":"direct","data":"hi"}`},
		{"negative ts", core.Envelope{V: 1, Type: core.TypeMessage, TS: -42}, `{"v":1,"type":"message","ts":-42}`},
		{"max ts", core.Envelope{V: 1, Type: core.TypeMessage, TS: math.MaxInt64}, `{"v":1,"type":"message","ts":9223372036854775807}`},
		{"min ts", core.Envelope{V: 1, Type: core.TypeMessage, TS: math.MinInt64}, `{"v":1,"type":"message","ts":-9223372036854775808}`},
		{"ts zero omitted", core.Envelope{V: 1, Type: core.TypeMessage, TS: 0}, `{"v":1,"type":"message"}`},
		{"unicode", core.Envelope{V: 1, Type: core.TypeMessage, Ref: "héllo 世界 😀", From: "ü"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := []byte("prefix:")
			out := core.AppendEnvelope(bytes.Clone(prefix), &tt.env)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("AppendEnvelope clobbered dst: %q", out)
			}
			out = out[len(prefix):]
			if tt.want != "" && string(out) != tt.want {
				t.Errorf("AppendEnvelope =\n %s\nwant\n %s", out, tt.want)
			}
			if enc := tt.env.Encode(); !bytes.Equal(enc, out) {
				t.Errorf("Encode = %s, AppendEnvelope = %s", enc, out)
			}
			got, err := core.UnmarshalEnvelope(out)
			if err != nil {
				t.Fatalf("UnmarshalEnvelope(%s): %v", out, err)
			}
			want := tt.env
			want.V = core.Version
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("round trip\n got %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestUnmarshalEnvelope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    *core.Envelope
		wantErr bool
	}{
		{"ignores unknown fields", `{"v":1,"type":"message","room":"r","shard":3}`, &core.Envelope{V: 1, Type: core.TypeMessage, Room: "r"}, false},
		{"keeps server fields", `{"v":1,"id":"x-1","type":"message","from":"a","ts":5}`, &core.Envelope{V: 1, ID: "x-1", Type: core.TypeMessage, From: "a", TS: 5}, false},
		{"wrong version", `{"v":2,"type":"message"}`, nil, true},
		{"missing version", `{"type":"message"}`, nil, true},
		{"not JSON", `nope`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := core.UnmarshalEnvelope([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("UnmarshalEnvelope(%s) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("UnmarshalEnvelope(%s) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestAppendEnvelopeEscaping covers the hand-written JSON string encoder:
// every string field goes through it, so it must produce JSON that
// decodes to the input (invalid UTF-8 replaced), stays on one line and is
// safe to embed in JavaScript.
func TestAppendEnvelopeEscaping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		encoded string // the JSON string as written
		decoded string // what a JSON parser reads back
	}{
		{"plain", "lobby", `"lobby"`, "lobby"},
		{"empty ref omitted", "", ``, ""},
		{"quote", `a"b`, `"a\"b"`, `a"b`},
		{"backslash", `a\b`, `"a\\b"`, `a\b`},
		{"newline, return, tab", "a\nb\rc\td", `"a\nb\rc\td"`, "a\nb\rc\td"},
		{"other control characters", "\x00\x01\x08\x0c\x1f", `"\u0000\u0001\u0008\u000c\u001f"`, "\x00\x01\x08\x0c\x1f"},
		{"DEL is printable in JSON", "\x7f", "\"\x7f\"", "\x7f"},
		{"non-ASCII kept", "héllo 世界 😀", `"héllo 世界 😀"`, "héllo 世界 😀"},
		{"invalid byte", "a\xffb", `"a\ufffdb"`, "a\ufffdb"},
		{"each invalid byte replaced", "\xff\xfe", `"\ufffd\ufffd"`, "\ufffd\ufffd"},
		{"truncated sequence", "a\xe4\xb8", `"a\ufffd\ufffd"`, "a\ufffd\ufffd"},
		{"encoded U+FFFD kept", "\ufffd", "\"\ufffd\"", "\ufffd"},
		{"line separators escaped", "a\u2028b\u2029c", `"a\u2028b\u2029c"`, "a\u2028b\u2029c"},
		{"html is not escaped", "</script>&", `"</script>&"`, "</script>&"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := core.AppendEnvelope(nil, &core.Envelope{Type: core.TypeAck, Ref: tt.in})
			want := `{"v":1,"type":"ack"}`
			if tt.encoded != "" {
				want = `{"v":1,"type":"ack","ref":` + tt.encoded + `}`
			}
			if string(out) != want {
				t.Errorf("encoded %q as\n %s\nwant\n %s", tt.in, out, want)
			}
			if !json.Valid(out) || !utf8.Valid(out) || bytes.ContainsAny(out, "\n\r\u2028\u2029") {
				t.Errorf("output %q is not single-line, valid UTF-8 JSON", out)
			}
			var back struct{ Ref string }
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", out, err)
			}
			if back.Ref != tt.decoded {
				t.Errorf("decoded back as %q, want %q", back.Ref, tt.decoded)
			}
		})
	}
}

func TestSplitFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		frame string
		want  []string
	}{
		{"empty", "", nil},
		{"one line", "a", []string{"a"}},
		{"trailing newline", "a\n", []string{"a"}},
		{"two lines", "a\nb", []string{"a", "b"}},
		{"blank lines skipped", "\na\n\n \t\nb\n\n", []string{"a", "b"}},
		{"only blank lines", "\n \n\r\n", nil},
		{"lines are not trimmed", " a \r\nb", []string{" a \r", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			core.SplitFrame([]byte(tt.frame), func(line []byte) { got = append(got, string(line)) })
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SplitFrame(%q) = %q, want %q", tt.frame, got, tt.want)
			}
		})
	}
}

func TestValidateNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		check func(string) error
		in    string
		code  string // empty: valid
	}{
		{"room ok", core.ValidateRoom, "team/42:chat@eu=1", ""},
		{"room empty", core.ValidateRoom, "", core.CodeInvalidRoom},
		{"room star", core.ValidateRoom, "a*", core.CodeInvalidRoom},
		{"room too long", core.ValidateRoom, strings.Repeat("x", core.MaxRoomLen+1), core.CodeInvalidRoom},
		{"user ok", core.ValidateUser, "ada@example.com", ""},
		{"user empty", core.ValidateUser, "", core.CodeInvalidUser},
		{"user space", core.ValidateUser, "a b", core.CodeInvalidUser},
		{"user too long", core.ValidateUser, strings.Repeat("x", core.MaxUserLen+1), core.CodeInvalidUser},
		{"type ok", core.ValidateType, "a1_.:-", ""},
		{"type empty", core.ValidateType, "", core.CodeBadRequest},
		{"type dash first", core.ValidateType, "-a", core.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.check(tt.in)
			switch {
			case tt.code == "" && err != nil:
				t.Errorf("%q: unexpected error %v", tt.in, err)
			case tt.code != "" && core.ErrorCode(err) != tt.code:
				t.Errorf("%q: error %v, want code %s", tt.in, err, tt.code)
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	t.Parallel()
	wrapped := errors.Join(errors.New("context"), core.Errorf(core.CodeForbidden, "no %s", "entry"))
	tests := []struct {
		err  error
		want string
	}{
		{core.Errorf(core.CodeNotJoined, "x"), core.CodeNotJoined},
		{wrapped, core.CodeForbidden},
		{errors.New("plain"), core.CodeInternal},
		{nil, core.CodeInternal},
	}
	for _, tt := range tests {
		if got := core.ErrorCode(tt.err); got != tt.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if got, want := core.Errorf(core.CodeForbidden, "no %d", 1).Error(), "forbidden: no 1"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// FuzzDecodeEnvelope checks that the decoder never panics, fails only with
// client-facing codes, and that whatever it accepts re-encodes to one line
// of valid UTF-8 JSON that decodes back to the same envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	seeds := []string{
		`{"v":1,"type":"join","room":"lobby","ref":"1"}`,
		`{"v":1,"type":"publish","room":"r","data":{"a":[1,2,{"b":null}],"s":"x\ny\u2028"}}`,
		`{"v":1,"type":"direct","to":"bob","data":"hi"}`,
		`{"v":1,"type":"ping","ref":"é\"\\"}`,
		`{"v":1,"id":"x","from":"y","ts":5,"type":"a.b:c"}`,
		"{\"v\":1,\"type\":\"publish\",\"room\":\"r\",\"data\":{\n \"a\" : 1\n}}",
		"{\"v\":1,\"type\":\"publish\",\"room\":\"r\",\"data\":\"\xff\"}",
		`{"v":2,"type":"ping"}`,
		`{"v":1,"type":"ping"} {}`,
		`[1]`,
		``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		env, err := core.DecodeEnvelope(in)
		if err != nil {
			switch code := core.ErrorCode(err); code {
			case core.CodeBadRequest, core.CodeInvalidRoom, core.CodeInvalidUser:
			default:
				t.Fatalf("DecodeEnvelope(%q): error code %q (%v)", in, code, err)
			}
			return
		}
		if env.ID != "" || env.From != "" || env.TS != 0 {
			t.Fatalf("DecodeEnvelope(%q) kept server-owned fields: %+v", in, env)
		}
		out := core.AppendEnvelope(nil, env)
		if !json.Valid(out) {
			t.Fatalf("AppendEnvelope produced invalid JSON %q from %q", out, in)
		}
		if !utf8.Valid(out) {
			t.Fatalf("AppendEnvelope produced invalid UTF-8 %q from %q", out, in)
		}
		if bytes.IndexByte(out, '\n') >= 0 {
			t.Fatalf("AppendEnvelope produced a raw newline %q from %q", out, in)
		}
		back, err := core.UnmarshalEnvelope(out)
		if err != nil {
			t.Fatalf("UnmarshalEnvelope(%q): %v", out, err)
		}
		if !reflect.DeepEqual(back, env) {
			t.Fatalf("round trip of %q\n got %+v\nwant %+v", in, back, env)
		}
		again, err := core.DecodeEnvelope(out)
		if err != nil {
			t.Fatalf("the encoding %q of accepted input %q is rejected: %v", out, in, err)
		}
		if !reflect.DeepEqual(again, env) {
			t.Fatalf("re-decoding %q\n got %+v\nwant %+v", out, again, env)
		}
	})
}
